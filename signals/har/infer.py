"""Torch-free FusionActNet runtime: a continuous recording -> a timeline of activities.

numpy + scipy + soxr + onnxruntime only (never torch). The recording is streamed in chunks:
read -> resample to the model's rate (``soxr.ResampleStream``) -> the UCI HAR front end
(:class:`signals.har.preprocess.UCIHARFilter`, the very code that built the training windows) ->
sliding windows -> ONNX model -> consecutive windows with the same label merged into segments.
Memory stays constant however long the recording is (only the segments list grows, with each
change of activity).

Recordings:

* a UCI HAPT raw pair: ``acc_expXX_userYY.txt`` or ``gyro_expXX_userYY.txt`` (the partner file is
  found beside it), ``x y z`` per line, acc in g, gyro in rad/s, 50 Hz unless ``sample_rate`` says
  otherwise;
* a CSV with a header naming ``acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z`` (g, rad/s) and optionally
  ``time`` or ``timestamp`` (seconds), from which the rate is inferred; otherwise ``sample_rate``
  is required.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import DataError, ModelError
from signals.har.data import describe_bad_row
from signals.har.preprocess import CHANNELS, PreprocessConfig, UCIHARFilter
from signals.paths import model_dir as default_model_dir
from signals.runtime import create_session, read_config

CSV_COLUMNS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
TIME_COLUMNS = ("time", "timestamp")
HAPT_RATE = 50.0
_HAPT_RE = re.compile(r"^(acc|gyro)(_exp\d+_user\d+\.txt)$")


# --------------------------------------------------------------------------------------------------
# The model


@dataclass
class HARRuntime:
    session: Any  # onnxruntime.InferenceSession: x float32 [B, 9, T] -> probs float32 [B, K]
    config: dict

    @classmethod
    def load(
        cls,
        model_dir: str | Path | None = None,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        int8: bool = False,
    ) -> HARRuntime:
        """The model in ``model_dir`` (default ``models/har``); ``int8`` picks the quantised graph."""
        folder = Path(model_dir) if model_dir is not None else default_model_dir("har")
        config = read_config(folder)
        missing = [k for k in ("classes", "channels", "preprocess", "onnx") if k not in config]
        if missing:
            raise ModelError(f"{folder / 'config.json'} lacks keys {missing}; re-export the model")
        if list(config["channels"]) != CHANNELS:
            raise ModelError(f"{folder}: the model's channels {config['channels']} are not the UCI HAR "
                             f"front end's {CHANNELS}; this runtime cannot feed it")  # fmt: skip
        try:
            PreprocessConfig.from_dict(config["preprocess"])
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{folder / 'config.json'}: bad 'preprocess' section: {exc}") from exc
        kind = "int8" if int8 else "fp32"
        name = (config.get("onnx") or {}).get(kind)
        if not name:
            raise ModelError(
                f"{folder / 'config.json'} names no {kind} ONNX graph (config['onnx'][{kind!r}])"
            )
        session = create_session(folder / name, providers=providers, threads=threads)
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if inputs != ["x"] or "probs" not in outputs:
            raise ModelError(
                f"{folder / name}: expected input 'x' and output 'probs', found {inputs} -> {outputs}"
            )
        return cls(session=session, config=config)

    @property
    def classes(self) -> list[str]:
        return list(self.config["classes"])

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.config["preprocess"])

    def predict_windows(self, x: np.ndarray) -> np.ndarray:
        """x: float32 [N, 9, window] filtered channels (raw units) -> probs float32 [N, K]."""
        cfg = self.preprocess
        x = np.asarray(x)
        want = (len(CHANNELS), cfg.window)
        if x.ndim != 3 or x.shape[1:] != want:
            raise DataError(f"windows must have shape [N, {want[0]}, {want[1]}], got {list(x.shape)}")
        if not np.issubdtype(x.dtype, np.number):
            raise DataError(f"windows must be numeric, got dtype {x.dtype}")
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            bad = int(np.argwhere(~np.isfinite(x))[0, 0])
            raise DataError(f"windows contain NaN or infinite values (first in window {bad})")
        k = len(self.config["classes"])
        if len(x) == 0:
            return np.zeros((0, k), np.float32)
        probs = self.session.run(["probs"], {"x": np.ascontiguousarray(x)})[0]
        if probs.shape != (len(x), k):
            raise ModelError(f"model returned probs of shape {list(probs.shape)}, expected [{len(x)}, {k}]")
        return probs.astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------------
# Reading recordings, streamed


def _parse_rows(rows: list[list[str]], linenos: list[int], path: Path, ncols: int) -> np.ndarray:
    """Cells of one chunk -> float64 [n, ncols], or DataError naming the file and line."""
    try:
        a = np.asarray(rows, dtype=np.float64) if rows else np.zeros((0, ncols))
        ok = a.ndim == 2 and a.shape[1] == ncols and np.isfinite(a).all()
    except ValueError:  # ragged rows or non-numeric cells
        ok = False
    if not ok:
        for cells, lineno in zip(rows, linenos):
            problem = describe_bad_row(cells, ncols, lineno)
            if problem:
                raise DataError(f"{path}: {problem}")
    return a


def _hapt_pair(path: Path) -> tuple[Path, Path] | None:
    m = _HAPT_RE.match(path.name)
    if not m:
        return None
    acc, gyro = path.with_name("acc" + m.group(2)), path.with_name("gyro" + m.group(2))
    for p in (acc, gyro):
        if not p.is_file():
            raise DataError(f"{path} is one half of a UCI HAPT raw pair, but its partner {p} is missing")
    return acc, gyro


def _iter_hapt(acc_path: Path, gyro_path: Path, chunk: int) -> Iterator[np.ndarray]:
    """[n, 6] raw chunks from a HAPT acc/gyro pair read in lock-step."""
    with open(acc_path) as fa, open(gyro_path) as fg:
        lineno = 0
        while True:
            la, lg = list(itertools.islice(fa, chunk)), list(itertools.islice(fg, chunk))
            if len(la) != len(lg):
                short = acc_path if len(la) < len(lg) else gyro_path
                raise DataError(f"{short} ends at line {lineno + min(len(la), len(lg))} but its partner "
                                f"file is longer: the acc and gyro files must have one line per sample each")  # fmt: skip
            if not la:
                return
            nums = list(range(lineno + 1, lineno + len(la) + 1))
            lineno += len(la)
            keep = [i for i, line in enumerate(la) if line.strip() or lg[i].strip()]
            a = _parse_rows([la[i].split() for i in keep], [nums[i] for i in keep], acc_path, 3)
            g = _parse_rows([lg[i].split() for i in keep], [nums[i] for i in keep], gyro_path, 3)
            yield np.concatenate([a, g], axis=1)


def _iter_csv(
    path: Path, sample_rate: float | None, columns: Sequence[str] | None, chunk_seconds: float
) -> tuple[float, Iterator[np.ndarray]]:
    """(sample rate, iterator of [n, 6] raw chunks) for a CSV with named columns."""
    wanted = list(columns) if columns is not None else CSV_COLUMNS
    if len(wanted) != 6:
        raise DataError(f"columns must name 6 columns (acc x, y, z, gyro x, y, z), got {wanted}")
    fh = open(path, newline="", encoding="utf-8", errors="replace")  # closed when the generator ends
    reader = csv.reader(fh)
    header = next(reader, None)
    if not header:
        fh.close()
        raise DataError(f"{path}: empty file (expected a header line with {', '.join(wanted)})")
    names = [h.strip().lower() for h in header]
    missing = [c for c in wanted if c.lower() not in names]
    if missing:
        fh.close()
        raise DataError(f"{path}: line 1: missing columns {missing}; the header has {header} "
                        f"(need {', '.join(CSV_COLUMNS)} in g and rad/s, and optionally time in seconds)")  # fmt: skip
    cols = [names.index(c.lower()) for c in wanted]
    tcol = next((names.index(t) for t in TIME_COLUMNS if t in names), None)
    ncols = len(header)

    def chunks(n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            rows, linenos = [], []
            for cells in itertools.islice(reader, n):
                if not any(c.strip() for c in cells):
                    continue  # blank line
                rows.append(cells)
                linenos.append(reader.line_num)
            if not rows:
                return
            a = _parse_rows(rows, linenos, path, ncols)
            yield a[:, cols], (a[:, tcol] if tcol is not None else None)

    first_n = 1000
    it = chunks(first_n)
    first = next(it, None)
    if first is None:
        fh.close()
        raise DataError(f"{path}: no data rows after the header")
    rate = sample_rate
    if rate is None:
        if tcol is None:
            fh.close()
            raise DataError(f"{path}: no '{TIME_COLUMNS[0]}' column to infer the sample rate from; "
                            "give the rate (--sample-rate HZ)")  # fmt: skip
        dt = np.diff(first[1])
        if len(dt) == 0 or not (dt > 0).all():
            fh.close()
            raise DataError(f"{path}: the time column must increase strictly over at least two rows to "
                            "infer the sample rate; give it with --sample-rate HZ")  # fmt: skip
        rate = float(np.round(1.0 / np.median(dt), 3))

    def gen() -> Iterator[np.ndarray]:
        try:
            yield first[0]
            for data, _ in chunks(max(1, int(chunk_seconds * rate))):
                yield data
        finally:
            fh.close()

    return rate, gen()


def iter_recording(
    path: str | Path,
    sample_rate: float | None = None,
    columns: Sequence[str] | None = None,
    chunk_seconds: float = 60,
    target_rate: float = HAPT_RATE,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream a recording as ``(acc [n, 3] g, gyro [n, 3] rad/s)`` chunks at ``target_rate`` (50 Hz).

    ``path``: a HAPT raw file (either half of the pair) or a CSV (see the module docstring).
    ``sample_rate`` overrides the file's rate (HAPT: 50 Hz; CSV: from its time column). Other rates
    are resampled with ``soxr.ResampleStream``. ``columns`` renames the six CSV columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"recording not found: {path}")
    if sample_rate is not None and not (np.isfinite(sample_rate) and sample_rate > 0):
        raise DataError(f"sample rate must be a positive number of Hz, got {sample_rate}")
    pair = _hapt_pair(path)
    if pair is not None:
        rate = float(sample_rate or HAPT_RATE)
        source = _iter_hapt(pair[0], pair[1], max(1, int(chunk_seconds * rate)))
    else:
        rate, source = _iter_csv(path, sample_rate, columns, chunk_seconds)
    return _resampled(source, rate, target_rate)


def _resampled(
    source: Iterator[np.ndarray], rate: float, target: float
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    if abs(rate - target) < 1e-9:
        for raw in source:
            yield raw[:, :3], raw[:, 3:]
        return
    import soxr

    # soxr sees silence (zeros) before the first and after the last sample; for a signal sitting on
    # 1 g of gravity that is a step, and its ringing would read as motion. So both ends are padded
    # with 1 s of the edge sample, and the matching output is trimmed.
    stream = soxr.ResampleStream(rate, target, 6, dtype="float64", quality="HQ")
    pad = int(np.ceil(rate))
    skip = round(pad * target / rate)  # output samples that belong to the leading pad
    n_in = n_out = 0
    last = None
    for raw in source:
        if not len(raw):
            continue
        if last is None:
            raw = np.concatenate([np.repeat(raw[:1], pad, axis=0), raw])
            n_in -= pad
        n_in += len(raw)
        last = raw[-1]
        out = stream.resample_chunk(np.ascontiguousarray(raw))
        drop = min(skip, len(out))
        out, skip = out[drop:], skip - drop
        n_out += len(out)
        if len(out):
            yield out[:, :3], out[:, 3:]
    if last is None:
        return
    out = stream.resample_chunk(np.repeat(last[None], pad, axis=0), last=True)[skip:]
    out = out[: max(0, round(n_in * target / rate) - n_out)]  # drop the trailing pad
    if len(out):
        yield out[:, :3], out[:, 3:]


# --------------------------------------------------------------------------------------------------
# Recording -> timeline


@dataclass
class Segment:
    start_s: float
    end_s: float
    label: str
    confidence: float  # mean over the segment's windows of the winning class probability
    windows: int = 1


def predict_recording(
    runtime: HARRuntime,
    path: str | Path,
    sample_rate: float | None = None,
    batch_size: int = 256,
    columns: Sequence[str] | None = None,
) -> list[Segment]:
    """Classify every window of a recording and merge consecutive windows with the same label.

    Window ``i`` covers samples ``[i*hop, i*hop + window)``; on the timeline it owns the ``hop``
    samples around its centre, so segments tile the recording without overlap (the first starts
    at 0 s, the last ends at the recording's end).
    """
    cfg = runtime.preprocess
    classes = runtime.classes
    sr, win, hop = cfg.sample_rate, cfg.window, cfg.hop
    filt = UCIHARFilter(cfg)
    buf = np.zeros((len(CHANNELS), 0), np.float32)  # filtered samples from absolute index buf_start
    buf_start = next_start = total = n_windows = 0
    pending: list[np.ndarray] = []
    segments: list[Segment] = []

    def run_batch() -> None:
        nonlocal n_windows
        if not pending:
            return
        probs = runtime.predict_windows(np.stack(pending))
        pending.clear()
        for p in probs:
            label, conf = classes[int(p.argmax())], float(p.max())
            i = n_windows
            n_windows += 1
            lo = 0.0 if i == 0 else (i * hop + (win - hop) / 2) / sr
            hi = (i * hop + (win + hop) / 2) / sr
            last = segments[-1] if segments else None
            if last is not None and last.label == label:
                last.confidence = (last.confidence * last.windows + conf) / (last.windows + 1)
                last.windows += 1
                last.end_s = hi
            else:
                segments.append(Segment(lo, hi, label, conf))

    def consume(filtered: np.ndarray) -> None:
        nonlocal buf, buf_start, next_start
        buf = np.concatenate([buf, filtered], axis=1)
        while next_start + win <= buf_start + buf.shape[1]:
            s = next_start - buf_start
            pending.append(buf[:, s : s + win])
            next_start += hop
            if len(pending) >= batch_size:
                run_batch()
        drop = next_start - buf_start  # samples no future window needs
        if drop > 0:
            buf = buf[:, drop:].copy()
            buf_start += drop

    for acc, gyro in iter_recording(path, sample_rate=sample_rate, columns=columns, target_rate=sr):
        total += len(acc)
        try:
            consume(filt.process(acc, gyro))
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
    consume(filt.flush())
    run_batch()
    if not segments:
        raise DataError(f"{path}: recording too short: {total} samples ({total / sr:.2f} s at {sr:g} Hz) is "
                        f"less than one {win}-sample window ({win / sr:.2f} s)")  # fmt: skip
    segments[-1].end_s = max(segments[-1].end_s, total / sr)
    return segments


def _clock(t: float) -> str:
    m, s = divmod(t, 60)
    h, m = divmod(int(m), 60)
    return f"{h:d}:{m:02d}:{s:04.1f}" if h else f"{m:d}:{s:04.1f}"


def format_timeline(segments: Sequence[Segment]) -> str:
    """A human-readable table: start, end, duration, activity, confidence."""
    if not segments:
        return "(no segments)"
    width = max(8, *(len(s.label) for s in segments))
    lines = [f"{'start':>9}  {'end':>9}  {'dur s':>6}  {'activity':<{width}}  confidence"]
    for s in segments:
        lines.append(f"{_clock(s.start_s):>9}  {_clock(s.end_s):>9}  {s.end_s - s.start_s:6.1f}  "
                     f"{s.label:<{width}}  {s.confidence:.2f}")  # fmt: skip
    return "\n".join(lines)


def run_predict(args) -> int:
    """``signals har predict RECORDING``: print the activity timeline (and optionally write JSON)."""
    model = getattr(args, "model", None)
    runtime = HARRuntime.load(
        model, threads=getattr(args, "threads", None), int8=bool(getattr(args, "int8", False))
    )
    segments = predict_recording(runtime, args.recording, sample_rate=getattr(args, "sample_rate", None))
    json_path = getattr(args, "json", None)
    timeline = format_timeline(segments)
    if json_path:
        doc = {
            "recording": str(args.recording),
            "model": str(model or default_model_dir("har")),
            "segments": [asdict(s) for s in segments],
        }
        text = json.dumps(doc, indent=2)
        if json_path == "-":
            print(timeline, file=sys.stderr)  # stdout carries the JSON only
            print(text)
            return 0
        Path(json_path).write_text(text + "\n")
    print(timeline)
    return 0
