"""Bad inputs of ``signals har ...`` (the hardening issue), in the table format of ``tests/badinput.py``.

Output paths (``--json``, ``--png``), out-of-range numbers, time columns that lie (milliseconds, gaps, rows out
of order, 1e30), CSV quirks that must now work (a UTF-8 BOM, an extra text column) and files that are no
recording at all (a folder, empty, binary, UTF-16, a 200 KB cell).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from badinput import REPO, Case

RAW = REPO / "examples/har/RawData"
HAPT = "acc_exp04_user02.txt"
MODEL = "{models}/har"


# --------------------------------------------------------------------------------------------------
# setup helpers: variants of the example CSV (header + 2000 rows at 50 Hz) written into the case's folder


def _rows(f) -> list[str]:
    return f["csv"].read_text().splitlines()


def _write(f, name: str, lines: list[str], prefix: bytes = b"") -> None:
    (f["tmp"] / name).write_bytes(prefix + ("\n".join(lines) + "\n").encode("utf-8"))


def _retime(f, name: str, time_of) -> None:
    """The example with its time column replaced by ``time_of(row index)`` (a string)."""
    lines = _rows(f)
    _write(f, name, [lines[0]] + [f"{time_of(i)},{row.split(',', 1)[1]}" for i, row in enumerate(lines[1:])])


def _edit(name: str, change):
    """setup: the example CSV with ``change(lines)`` applied, as ``name``."""

    def setup(f) -> None:
        lines = _rows(f)
        _write(f, name, change(lines))

    return setup


def _copy_hapt(f) -> None:
    for src in RAW.glob("*_exp04_user02.txt"):
        shutil.copyfile(src, f["tmp"] / src.name)


def _hapt_folder(f) -> Path:
    """A UCI HAPT layout (RawData/ with labels.txt) holding the example experiment."""
    raw = f["tmp"] / "hapt" / "RawData"
    raw.mkdir(parents=True)
    for src in RAW.iterdir():
        shutil.copyfile(src, raw / src.name)
    return raw


def _read_only_folder(f) -> None:
    (f["tmp"] / "ro").mkdir()
    (f["tmp"] / "ro").chmod(0o555)


def _timeline_ok(f, out: str) -> None:
    # the example is a test subject lying down, then walking
    assert "LAYING" in out and "WALKING" in out, out


def _json_ok(f, out: str) -> None:
    doc = json.loads((f["tmp"] / "out" / "pred.json").read_text())
    assert doc["segments"][0]["label"] == "LAYING" and doc["segments"][-1]["end_s"] > 39


def _move_row(lines: list[str], src: int, dst: int) -> list[str]:
    lines = list(lines)
    lines.insert(dst, lines.pop(src))
    return lines


def _with_cell(lines: list[str], row: int, col: int, value: str) -> list[str]:
    lines = list(lines)
    cells = lines[row].split(",")
    cells[col] = value
    lines[row] = ",".join(cells)
    return lines


PREDICT = ("har", "predict")

CASES = [
    # 1. outputs: checked before the work, never over an input, written atomically
    Case("har-json-proc", (*PREDICT, "{csv}", "--json", "/proc/x.json"), match=r"/proc/x\.json"),
    Case("har-json-is-input", (*PREDICT, "{csv}", "--json", "{csv}"), match=r"input.*--overwrite", keep=("csv",)),
    Case("har-json-is-hapt-partner", (*PREDICT, "{tmp}/" + HAPT, "--json", "{tmp}/gyro_exp04_user02.txt"),
         match=r"gyro_exp04_user02\.txt is also an input", setup=_copy_hapt, keep=("{tmp}/gyro_exp04_user02.txt",)),
    Case("har-json-read-only-folder", (*PREDICT, "{csv}", "--json", "{tmp}/ro/x.json"), match=r"ro/x\.json.*not writable",
         setup=_read_only_folder, obeys_permissions=True),
    Case("har-json-is-folder", (*PREDICT, "{csv}", "--json", "{tmp}"), match=r"is a folder"),
    Case("har-json-parent-is-file", (*PREDICT, "{csv}", "--json", "{csv}/x.json"), match=r"is a file, not a folder"),
    Case("har-json-wrong-type", (*PREDICT, "{csv}", "--json", "{tmp}/pred.txt"), match=r"pred\.txt.*\.json"),
    Case("har-json-empty-name", (*PREDICT, "{csv}", "--json", ""), match=r"--json.*empty file name"),
    Case("har-json-into-new-folder", (*PREDICT, "{csv}", "--json", "{tmp}/out/pred.json"), expect="ok",
         outputs=("{tmp}/out/pred.json",), check=_json_ok),
    Case("har-json-bad-recording-leaves-nothing", (*PREDICT, "{tmp}/missing.csv", "--json", "{tmp}/out/pred.json"),
         match=r"recording not found.*missing\.csv"),
    Case("har-evaluate-json-proc", ("har", "evaluate", "--model", MODEL, "--json", "/proc/x.json"),
         match=r"/proc/x\.json"),
    Case("har-evaluate-png-proc", ("har", "evaluate", "--model", MODEL, "--png", "/proc/cm.png"),
         match=r"/proc/cm\.png"),
    Case("har-evaluate-png-wrong-type", ("har", "evaluate", "--model", MODEL, "--png", "{tmp}/cm.json"),
         match=r"cm\.json.*\.png"),
    Case("har-evaluate-json-is-model-config", ("har", "evaluate", "--model", MODEL, "--json", MODEL + "/config.json"),
         match=r"config\.json is also an input", keep=(MODEL + "/config.json",)),
    Case("har-evaluate-json-read-only-folder", ("har", "evaluate", "--model", MODEL, "--json", "{tmp}/ro/m.json"),
         match=r"not writable", setup=_read_only_folder, obeys_permissions=True),
    Case("har-evaluate-recordings-json-proc", ("har", "evaluate-recordings", "--model", MODEL, "--json", "/proc/x.json"),
         match=r"/proc/x\.json"),
    Case("har-evaluate-recordings-json-is-metrics",
         ("har", "evaluate-recordings", "--model", MODEL, "--json", MODEL + "/metrics.json"),
         match=r"metrics\.json is also an input", keep=(MODEL + "/metrics.json",)),

    # 2. numbers out of range: usage errors naming the option, before any work
    Case("har-rate-tiny", (*PREDICT, "{csv}", "--sample-rate", "0.001"), match="sample-rate", isolate=True),
    Case("har-rate-huge", (*PREDICT, "{csv}", "--sample-rate", "1e12"), match="sample-rate", isolate=True),
    Case("har-rate-1e300", (*PREDICT, "{csv}", "--sample-rate", "1e300"), match="sample-rate", isolate=True),
    Case("har-rate-nan", (*PREDICT, "{csv}", "--sample-rate", "nan"), match="sample-rate"),
    Case("har-rate-inf", (*PREDICT, "{csv}", "--sample-rate", "inf"), match="sample-rate"),
    Case("har-rate-negative", (*PREDICT, "{csv}", "--sample-rate=-50"), match="sample-rate"),
    Case("har-rate-zero", (*PREDICT, "{csv}", "--sample-rate", "0"), match="sample-rate"),
    Case("har-rate-text", (*PREDICT, "{csv}", "--sample-rate", "fast"), match="sample-rate.*'fast'"),
    Case("har-threads-zero", (*PREDICT, "{csv}", "--threads", "0"), match="threads"),
    Case("har-threads-negative", (*PREDICT, "{csv}", "--threads=-1"), match="threads"),
    Case("har-threads-huge", (*PREDICT, "{csv}", "--threads", "100000"), match="threads"),
    Case("har-lag-negative", (*PREDICT, "{csv}", "--lag=-1"), match="lag"),
    Case("har-evaluate-threads-zero", ("har", "evaluate", "--threads", "0"), match="threads"),
    Case("har-recordings-tolerance-nan", ("har", "evaluate-recordings", "--tolerance", "nan"), match="tolerance"),
    Case("har-recordings-tolerance-negative", ("har", "evaluate-recordings", "--tolerance=-1"), match="tolerance"),
    Case("har-recordings-subject-zero", ("har", "evaluate-recordings", "--subjects", "0"), match="subjects"),
    Case("har-recordings-lag-negative", ("har", "evaluate-recordings", "--lag=-3"), match="lag"),
    Case("har-smoothing-prior-weight", ("har", "fit-smoothing", "--prior-weight", "2"), match="prior-weight"),
    Case("har-smoothing-emission-weight", ("har", "fit-smoothing", "--emission-weight", "0"), match="emission-weight"),
    Case("har-smoothing-pseudo-count", ("har", "fit-smoothing", "--pseudo-count", "inf"), match="pseudo-count"),
    Case("har-export-calib-zero", ("har", "export", "--calib-windows", "0"), match="calib-windows"),
    Case("har-train-epochs-zero", ("har", "train", "--epochs", "0"), match="epochs"),
    Case("har-train-lr-nan", ("har", "train", "--lr", "nan"), match="--lr"),
    Case("har-train-seed-negative", ("har", "train", "--seed=-1"), match="seed"),
    Case("har-train-seeds-huge", ("har", "train", "--seeds", "1", "99999999999"), match="seeds"),
    Case("har-train-limit-zero", ("har", "train", "--limit", "0"), match="limit"),
    Case("har-train-widths-zero", ("har", "train", "--widths", "8", "0"), match="widths"),
    Case("har-train-decimate-zero", ("har", "train", "--decimate", "0"), match="decimate"),
    Case("har-train-decimate-too-coarse", ("har", "train", "--decimate", "8", "--widths", "8", "8", "8", "8", "8"),
         match="decimate 8 leaves 16 of the 128 samples, fewer than the 32"),
    Case("har-export-float-blocks-negative", ("har", "export", "--float-blocks", "-1"), match="float-blocks"),

    # 3. the time column, checked over the whole file as it streams
    Case("har-time-milliseconds", (*PREDICT, "{tmp}/ms.csv"), match=r"ms\.csv.*milliseconds.*50 Hz", isolate=True,
         setup=lambda f: _retime(f, "ms.csv", lambda i: f"{i * 20}")),
    Case("har-time-nanoseconds", (*PREDICT, "{tmp}/ns.csv"), match=r"ns\.csv.*nanoseconds",
         setup=lambda f: _retime(f, "ns.csv", lambda i: f"{1_700_000_000_000_000_000 + i * 20_000_000}")),
    Case("har-time-1e30", (*PREDICT, "{tmp}/huge.csv"), match=r"huge\.csv.*time column", isolate=True,
         setup=lambda f: _retime(f, "huge.csv", lambda i: f"{(i + 1) * 1e30:g}")),
    Case("har-time-too-fast", (*PREDICT, "{tmp}/fast.csv"), match=r"fast\.csv.*outside 5\.\.10000 Hz",
         setup=lambda f: _retime(f, "fast.csv", lambda i: f"{i * 1e-6:.8f}")),
    Case("har-time-reversed-late", (*PREDICT, "{tmp}/rev.csv"), match=r"rev\.csv: line 1502: .*increase",
         setup=_edit("rev.csv", lambda lines: _move_row(lines, 1500, 1501))),
    Case("har-time-repeated-late", (*PREDICT, "{tmp}/dup.csv"), match=r"dup\.csv: line 1801: .*increase",
         setup=_edit("dup.csv", lambda lines: lines[:1800] + [lines[1799]] + lines[1800:])),
    Case("har-time-gap-late", (*PREDICT, "{tmp}/gap.csv"), match=r"gap\.csv: line 1502: a gap of 30",
         setup=lambda f: _retime(f, "gap.csv", lambda i: f"{i * 0.02 + (30 if i >= 1500 else 0):.2f}")),
    Case("har-time-rate-changes", (*PREDICT, "{tmp}/drift.csv"), match=r"drift\.csv: line \d+: .*rate changes",
         setup=lambda f: _retime(f, "drift.csv", lambda i: f"{i * 0.02 if i < 1200 else 24 + (i - 1200) * 0.025:.3f}")),
    Case("har-time-nan-late", (*PREDICT, "{tmp}/nan.csv"), match=r"nan\.csv: line 1701, column 1: 'nan'",
         setup=_edit("nan.csv", lambda lines: _with_cell(lines, 1700, 0, "nan"))),
    Case("har-time-one-row", (*PREDICT, "{tmp}/one.csv"), match=r"one\.csv: .*two rows",
         setup=_edit("one.csv", lambda lines: lines[:2])),
    Case("har-time-ignored-with-rate", (*PREDICT, "{tmp}/ms.csv", "--sample-rate", "50"), expect="ok",
         setup=lambda f: _retime(f, "ms.csv", lambda i: f"{i * 20}"), check=_timeline_ok),

    # 4. CSV quirks: a BOM and unused text columns work; oversized cells and folders are clear errors
    Case("har-csv-bom", (*PREDICT, "{tmp}/bom.csv"), expect="ok", check=_timeline_ok,
         setup=lambda f: _write(f, "bom.csv", _rows(f), prefix=b"\xef\xbb\xbf")),
    Case("har-csv-extra-text-column", (*PREDICT, "{tmp}/label.csv"), expect="ok", check=_timeline_ok,
         setup=_edit("label.csv", lambda lines: [lines[0] + ",label"] + [r + ",walk fast" for r in lines[1:]])),
    Case("har-csv-text-column-first", (*PREDICT, "{tmp}/note.csv"), expect="ok", check=_timeline_ok,
         setup=_edit("note.csv", lambda lines: ["note," + lines[0]] + [f'"row {i}, ok",{r}' for i, r in
                                                                       enumerate(lines[1:])])),
    Case("har-csv-latin1-in-unused-column", (*PREDICT, "{tmp}/latin.csv"), expect="ok", check=_timeline_ok,
         setup=lambda f: (f["tmp"] / "latin.csv").write_bytes(
             b"\n".join([_rows(f)[0].encode() + b",where"] + [r.encode() + b",caf\xe9" for r in _rows(f)[1:]]))),
    Case("har-csv-huge-cell", (*PREDICT, "{tmp}/big.csv"), match=r"big\.csv: line 6: a cell is longer",
         setup=_edit("big.csv", lambda lines: _with_cell(lines, 5, 1, "1" * 200_000))),
    Case("har-csv-unclosed-quote", (*PREDICT, "{tmp}/quote.csv"), match=r"quote\.csv: line \d+",
         setup=_edit("quote.csv", lambda lines: _with_cell(lines * 5, 5, 1, '"0.1'))),
    Case("har-recording-is-folder", (*PREDICT, "{tmp}"), match=r"is a folder, not a recording"),

    # 5. files that are no recording: a clear error naming the file, never a traceback
    Case("har-recording-missing", (*PREDICT, "{tmp}/nothing.csv"), match=r"recording not found.*nothing\.csv"),
    Case("har-recording-device", (*PREDICT, "/dev/null"), match=r"/dev/null is not a regular file"),
    Case("har-csv-empty", (*PREDICT, "{tmp}/empty.csv"), match=r"empty\.csv: empty file",
         setup=lambda f: (f["tmp"] / "empty.csv").write_bytes(b"")),
    Case("har-csv-blank-lines", (*PREDICT, "{tmp}/blank.csv"), match=r"blank\.csv: empty file",
         setup=lambda f: (f["tmp"] / "blank.csv").write_text("\n \n\n")),
    Case("har-csv-header-only", (*PREDICT, "{tmp}/head.csv"), match=r"head\.csv: no data rows",
         setup=_edit("head.csv", lambda lines: lines[:1])),
    Case("har-csv-binary", (*PREDICT, "{tmp}/bin.csv"), match=r"bin\.csv is a binary file",
         setup=lambda f: (f["tmp"] / "bin.csv").write_bytes(bytes(range(256)) * 40)),
    Case("har-csv-utf16", (*PREDICT, "{tmp}/u16.csv"), match=r"u16\.csv is UTF-16",
         setup=lambda f: (f["tmp"] / "u16.csv").write_bytes(f["csv"].read_text().encode("utf-16"))),
    Case("har-csv-non-utf8-number", (*PREDICT, "{tmp}/bytes.csv"), match=r"bytes\.csv: line 3, column 3: .*not a number",
         setup=lambda f: (f["tmp"] / "bytes.csv").write_bytes(
             f["csv"].read_bytes().replace(b"0.795833", b"0.79\xff833", 1))),
    Case("har-csv-nan-cell", (*PREDICT, "{tmp}/nan.csv"), match=r"nan\.csv: line 1001, column 4: 'NaN'",
         setup=_edit("nan.csv", lambda lines: _with_cell(lines, 1000, 3, "NaN"))),
    Case("har-csv-missing-column", (*PREDICT, "{tmp}/cols.csv"), match=r"cols\.csv: line 1: missing columns \['gyro_z'\]",
         setup=_edit("cols.csv", lambda lines: [",".join(r.split(",")[:6]) for r in lines])),
    Case("har-csv-ragged-row", (*PREDICT, "{tmp}/ragged.csv"), match=r"ragged\.csv: line 1900: expected 7 columns",
         setup=_edit("ragged.csv", lambda lines: lines[:1899] + [lines[1899] + ",1"] + lines[1900:])),
    Case("har-csv-no-time-no-rate", (*PREDICT, "{tmp}/notime.csv"), match=r"notime\.csv: .*--sample-rate",
         setup=_edit("notime.csv", lambda lines: [r.split(",", 1)[1] for r in lines])),
    Case("har-hapt-binary", (*PREDICT, "{tmp}/" + HAPT), match=r"gyro_exp04_user02\.txt is a binary file",
         setup=lambda f: (_copy_hapt(f), (f["tmp"] / "gyro_exp04_user02.txt").write_bytes(b"\0\1\2" * 999))),
    Case("har-hapt-partner-missing", (*PREDICT, "{tmp}/" + HAPT), match=r"partner .*gyro_exp04_user02\.txt is missing",
         setup=lambda f: shutil.copyfile(RAW / HAPT, f["tmp"] / HAPT)),
    Case("har-hapt-non-utf8", (*PREDICT, "{tmp}/" + HAPT), match=rf"{HAPT}: line 3, column 1: .*not a number",
         setup=lambda f: (_copy_hapt(f), (f["tmp"] / HAPT).write_bytes(
             b"\n".join(b"\xe9" + ln if i == 2 else ln for i, ln in enumerate((RAW / HAPT).read_bytes().split(b"\n")))))),
    Case("har-recordings-data-is-file", ("har", "evaluate-recordings", "--model", MODEL, "--data", "{csv}"),
         match=r"no UCI HAPT raw data under .*exp04_user02\.csv"),
    Case("har-recordings-binary-labels", ("har", "evaluate-recordings", "--model", MODEL, "--data", "{tmp}/hapt",
                                          "--subjects", "2"), match=r"labels\.txt is a binary file",
         setup=lambda f: (_hapt_folder(f) / "labels.txt").write_bytes(b"\0" * 100)),
    Case("har-recordings-binary-recording", ("har", "evaluate-recordings", "--model", MODEL, "--data", "{tmp}/hapt",
                                             "--subjects", "2"), match=rf"{HAPT} is a binary file",
         setup=lambda f: (_hapt_folder(f) / HAPT).write_bytes(b"\0" * 100)),
]
