"""The HAR front end: a recording (file, streamed) -> raw acc/gyro at 50 Hz -> the 9 UCI HAR channels.

Numpy + scipy (+ soxr for other rates) only. Training windows (``signals.har.data``) and the
torch-free runtime (``signals.har.infer``) both run exactly this code, so a model sees the same
signals in both.

Recordings (:func:`iter_recording`, streamed in constant memory):

* a UCI HAPT raw pair: ``acc_expXX_userYY.txt`` or ``gyro_expXX_userYY.txt`` (the partner file is
  found beside it), ``x y z`` per line, acc in g, gyro in rad/s, 50 Hz unless ``sample_rate`` says
  otherwise;
* a CSV with a header naming ``acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z`` (g, rad/s) and optionally
  ``time`` or ``timestamp`` (seconds), from which the rate is inferred; otherwise ``sample_rate``
  is required.

The UCI HAR README describes the front end as: a median filter and a 3rd-order Butterworth low-pass
at 20 Hz to remove noise, then a Butterworth low-pass at 0.3 Hz separating gravity from body
acceleration (body_acc = total_acc - gravity). It does not say whether the filters are zero-phase.
We choose **causal** filters (``scipy.signal.sosfilt`` with carried state and a median with carried
context) so that a recording can be streamed chunk by chunk in constant memory and the result is
identical, sample for sample, to filtering the whole recording at once. The price is a small delay
(1 sample for the median, a third of a sample for the 20 Hz low-pass, 1.06 s group delay at DC
for the 0.3 Hz gravity estimate, so body_acc briefly shows an orientation change as motion); the
model is trained on the same delayed signals, so it learns them as they are.
Filter states start at steady state for the first sample, so a recording does not begin with a
filter transient.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from signals.errors import DataError

CSV_COLUMNS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
TIME_COLUMNS = ("time", "timestamp")
HAPT_RATE = 50.0
_HAPT_RE = re.compile(r"^(acc|gyro)(_exp\d+_user\d+\.txt)$")

CHANNELS = [
    "body_acc_x", "body_acc_y", "body_acc_z",
    "body_gyro_x", "body_gyro_y", "body_gyro_z",
    "total_acc_x", "total_acc_y", "total_acc_z",
]  # fmt: skip


# Sample rates a recording may have (Hz), from --sample-rate or derived from a time column. Phones log
# motion at 5 Hz (Android's slowest delay) up to a few hundred Hz, lab IMUs at a few kHz. Outside this
# range the number is a mistake (a time column in ms, a typo): 0.001 Hz would be upsampled 50,000-fold
# (gigabytes), 1e12 Hz would take hours for a few samples.
MIN_RATE_HZ = 5.0
MAX_RATE_HZ = 10_000.0
MAX_KERNEL = 101  # front-end sizes a config.json may ask for (far above the UCI HAR 3 / 3 / 128)
MAX_FILTER_ORDER = 16
MAX_WINDOW = 100_000


@dataclass(frozen=True)
class PreprocessConfig:
    """The UCI HAR front end and its windowing (2.56 s windows with 50 % overlap at 50 Hz)."""

    sample_rate: float = 50.0
    median_kernel: int = 3  # odd; 1 disables the median filter
    noise_cutoff_hz: float = 20.0  # Butterworth low-pass removing sensor noise
    gravity_cutoff_hz: float = 0.3  # Butterworth low-pass estimating gravity from total acceleration
    filter_order: int = 3
    window: int = 128
    hop: int = 64

    def __post_init__(self) -> None:
        nyquist = self.sample_rate / 2
        if self.median_kernel < 1 or self.median_kernel % 2 == 0:
            raise ValueError(f"median_kernel must be odd and >= 1, got {self.median_kernel}")
        if not 0 < self.gravity_cutoff_hz < self.noise_cutoff_hz < nyquist:
            raise ValueError(
                f"need 0 < gravity_cutoff_hz < noise_cutoff_hz < Nyquist ({nyquist} Hz), got "
                f"{self.gravity_cutoff_hz} and {self.noise_cutoff_hz}"
            )
        if self.filter_order < 1 or self.window < 1 or not 1 <= self.hop:
            raise ValueError(f"filter_order, window and hop must be positive: {self}")
        # a model folder's config.json sets these: bound them so a damaged one cannot ask for a filter of
        # order 10^12 or windows of 10^12 samples (MemoryError deep inside scipy/numpy)
        if not MIN_RATE_HZ <= self.sample_rate <= MAX_RATE_HZ:
            raise ValueError(f"sample_rate must be {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz, got {self.sample_rate}")
        if self.median_kernel > MAX_KERNEL or self.filter_order > MAX_FILTER_ORDER or self.window > MAX_WINDOW \
                or self.hop > self.window:
            raise ValueError(f"median_kernel <= {MAX_KERNEL}, filter_order <= {MAX_FILTER_ORDER}, window <= "
                             f"{MAX_WINDOW} and hop <= window are required: {self}")



class UCIHARFilter:
    """Stateful streaming UCI HAR filter.

    Feed chunks of raw ``acc [n, 3]`` (g) and ``gyro [n, 3]`` (rad/s) sampled at ``cfg.sample_rate``
    to :meth:`process`; each call returns the filtered samples that are ready, ``float32 [9, m]`` in
    :data:`CHANNELS` order. :meth:`flush` returns the last ``median_kernel // 2`` samples (the
    median's look-ahead, closed by repeating the final sample). Concatenating all outputs gives
    exactly :func:`filter_recording` of the concatenated input, whatever the chunking.
    """

    def __init__(self, cfg: PreprocessConfig = PreprocessConfig()) -> None:
        self.cfg = cfg
        nyq = cfg.sample_rate / 2
        self._sos_noise = signal.butter(cfg.filter_order, cfg.noise_cutoff_hz / nyq, output="sos")
        self._sos_gravity = signal.butter(cfg.filter_order, cfg.gravity_cutoff_hz / nyq, output="sos")
        self._half = cfg.median_kernel // 2
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next sample starts a new recording."""
        self._context: np.ndarray | None = None  # last (kernel - 1) raw samples [k-1, 6]
        self._zi_noise: np.ndarray | None = None  # sosfilt state [sections, 2, 6]
        self._zi_gravity: np.ndarray | None = None  # sosfilt state [sections, 2, 3]
        self._last: np.ndarray | None = None  # last raw sample [6], closes the median at flush

    @staticmethod
    def _check(name: str, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 3:
            raise DataError(f"{name} must have shape [n, 3] (x, y, z columns), got {list(a.shape)}")
        if not np.isfinite(a).all():
            row = int(np.argwhere(~np.isfinite(a))[0, 0])
            raise DataError(f"{name} contains NaN or infinite values (first at row {row} of this chunk)")
        return a

    def process(self, acc: np.ndarray, gyro: np.ndarray) -> np.ndarray:
        """acc, gyro: [n, 3] raw -> float32 [9, m] filtered (m = n, less the median delay on the first call)."""
        acc = self._check("acc", acc)
        gyro = self._check("gyro", gyro)
        if len(acc) != len(gyro):
            raise DataError(f"acc and gyro chunks differ in length: {len(acc)} vs {len(gyro)} samples")
        raw = np.concatenate([acc, gyro], axis=1)  # [n, 6]
        if len(raw) == 0:
            return np.zeros((9, 0), np.float32)
        if self._context is None:
            # Edge: the median sees the first sample repeated before the recording starts.
            self._context = np.repeat(raw[:1], self._half, axis=0)
        self._last = raw[-1]
        return self._filter(raw)

    def flush(self) -> np.ndarray:
        """The samples held back by the median's look-ahead; the filter is then reset."""
        if self._last is None or self._half == 0:
            self.reset()
            return np.zeros((9, 0), np.float32)
        tail = np.repeat(self._last[None], self._half, axis=0)
        out = self._filter(tail)
        self.reset()
        return out

    def _filter(self, raw: np.ndarray) -> np.ndarray:
        """raw [n, 6] new samples -> [9, m] for every centre whose median window is now complete."""
        k = self.cfg.median_kernel
        buf = np.concatenate([self._context, raw], axis=0)
        self._context = buf[len(buf) - (k - 1) :] if k > 1 else buf[:0]
        if len(buf) < k:
            return np.zeros((9, 0), np.float32)
        if k > 1:
            view = np.lib.stride_tricks.sliding_window_view(buf, k, axis=0)  # [m, 6, k]
            med = np.partition(view, k // 2, axis=-1)[
                ..., k // 2
            ]  # the median (k odd), 3x faster than np.median
        else:
            med = buf
        if self._zi_noise is None:  # steady state for the first sample: no start-up transient
            self._zi_noise = signal.sosfilt_zi(self._sos_noise)[:, :, None] * med[0][None, None, :]
        smooth, self._zi_noise = signal.sosfilt(self._sos_noise, med, axis=0, zi=self._zi_noise)
        total_acc, body_gyro = smooth[:, :3], smooth[:, 3:]
        if self._zi_gravity is None:
            self._zi_gravity = signal.sosfilt_zi(self._sos_gravity)[:, :, None] * total_acc[0][None, None, :]
        gravity, self._zi_gravity = signal.sosfilt(self._sos_gravity, total_acc, axis=0, zi=self._zi_gravity)
        out = np.concatenate([total_acc - gravity, body_gyro, total_acc], axis=1)  # CHANNELS order
        return np.ascontiguousarray(out.T, dtype=np.float32)


def filter_recording(
    acc: np.ndarray, gyro: np.ndarray, cfg: PreprocessConfig = PreprocessConfig()
) -> np.ndarray:
    """Whole recording at once: acc, gyro [T, 3] -> float32 [9, T] (= process + flush)."""
    f = UCIHARFilter(cfg)
    return np.concatenate([f.process(acc, gyro), f.flush()], axis=1)


def sliding_windows(x: np.ndarray, window: int, hop: int) -> np.ndarray:
    """x [C, T] -> [N, C, window] copies of the windows starting at 0, hop, 2*hop, ... that fit."""
    if x.ndim != 2:
        raise ValueError(f"sliding_windows expects [C, T], got shape {list(x.shape)}")
    if x.shape[1] < window:
        return np.zeros((0, x.shape[0], window), x.dtype)
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=1)[:, ::hop]  # [C, N, window]
    return np.ascontiguousarray(view.transpose(1, 0, 2))


# --------------------------------------------------------------------------------------------------
# Reading recordings, streamed (HAPT raw pairs and CSV files)


# Rows read per chunk: at most this many, so a high rate does not hold minutes of text rows in memory.
MAX_CHUNK_ROWS = 50_000
# A CSV's time column (seconds): the rate comes from its first rows; every later step must be positive and
# at most MAX_TIME_STEP periods (a few dropped samples are tolerated, a gap is not), and the row's time may
# drift from ``t0 + i / rate`` by at most max(TIME_DRIFT_S, TIME_DRIFT_FRACTION of the elapsed time).
RATE_ROWS = 1000
MAX_TIME_STEP = 4.0
TIME_DRIFT_S = 1.0
TIME_DRIFT_FRACTION = 0.01
_SNIFF_BYTES = 1 << 16
_TIME_UNITS = (("milliseconds", 1e-3), ("microseconds", 1e-6), ("nanoseconds", 1e-9))


def _show(cell: str, limit: int = 40) -> str:
    """A cell for an error message: its repr, cut short (a cell may be 100 KB of junk)."""
    cell = cell.strip()
    return repr(cell) if len(cell) <= limit else repr(cell[:limit]) + f"... ({len(cell)} characters)"


def check_rate(rate: float, what: str = "sample rate") -> float:
    """``rate`` as a float if it is a plausible sample rate (:data:`MIN_RATE_HZ`..:data:`MAX_RATE_HZ`)."""
    rate = float(rate)
    if not (np.isfinite(rate) and MIN_RATE_HZ <= rate <= MAX_RATE_HZ):
        raise DataError(f"{what} must be a positive number of Hz between {MIN_RATE_HZ:g} and {MAX_RATE_HZ:g}, "
                        f"got {rate:g}")
    return rate


def recording_files(path: str | Path) -> list[Path]:
    """The files :func:`iter_recording` reads for ``path`` (both halves of a HAPT pair): an output must not
    replace any of them."""
    path = Path(path)
    m = _HAPT_RE.match(path.name)
    return [path.with_name("acc" + m.group(2)), path.with_name("gyro" + m.group(2))] if m else [path]


def check_recording_file(path: Path) -> None:
    """Refuse what cannot be a text recording before parsing it: a folder, a device, an unreadable or
    binary file (the parsers would report its bytes as a 'missing column' or a 'number')."""
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a recording: give a CSV file or a HAPT acc_/gyro_ file in it")
    if not path.exists():
        raise DataError(f"recording not found: {path}")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file (a device, pipe or socket); give a recording file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path} is UTF-16 text; save it as UTF-8 (plain CSV) and try again")
    if b"\0" in head:
        raise DataError(f"{path} is a binary file, not a text recording (CSV with acc_x..gyro_z columns, or a "
                        "UCI HAPT acc_/gyro_ file)")


def _open_text(path: Path, **kwargs):
    """A recording opened as text. Bytes that are not UTF-8 become U+FFFD, so a stray byte in a column the
    reader does not use (a logger's comment) is harmless, and one in a number is reported as a bad cell."""
    try:
        return open(path, encoding="utf-8-sig", errors="replace", **kwargs)
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None


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
        raise DataError(f"{path}: lines {linenos[0]}-{linenos[-1]}: unreadable numbers")
    return a


def _hapt_pair(path: Path) -> tuple[Path, Path] | None:
    m = _HAPT_RE.match(path.name)
    if not m:
        return None
    acc, gyro = recording_files(path)
    for p in (acc, gyro):
        if not p.is_file():
            raise DataError(f"{path} is one half of a UCI HAPT raw pair, but its partner {p} is missing")
        check_recording_file(p)
    return acc, gyro


def _iter_hapt(acc_path: Path, gyro_path: Path, chunk: int) -> Iterator[np.ndarray]:
    """[n, 6] raw chunks from a HAPT acc/gyro pair read in lock-step."""
    with _open_text(acc_path) as fa, _open_text(gyro_path) as fg:
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


def _csv_rows(reader, path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, cells)`` of every non-blank row; the csv module's errors become DataError."""
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise DataError(f"{path}: line {reader.line_num}: a cell is longer than {csv.field_size_limit():,} "
                                "characters (an unclosed quote, or not a recording CSV)") from None
            raise DataError(f"{path}: line {reader.line_num}: not a readable CSV row ({exc})") from None
        if any(c.strip() for c in cells):
            yield reader.line_num, cells


def _describe_csv_row(cells: list[str], header: list[str], used: list[int], lineno: int) -> str | None:
    """What is wrong with a CSV row in the columns the reader uses (wrong width, non-number, NaN), or None."""
    if len(cells) != len(header):
        return f"line {lineno}: expected {len(header)} columns, found {len(cells)}"
    for col in used:
        cell = cells[col]
        try:
            value = float(cell)
        except ValueError:
            return f"line {lineno}, column {col + 1}: {_show(cell)} is not a number (column {header[col].strip()})"
        if not np.isfinite(value):
            return (f"line {lineno}, column {col + 1}: {_show(cell)} (NaN/infinite values are not allowed, "
                    f"column {header[col].strip()})")
    return None


def _parse_csv(rows: list[tuple[int, list[str]]], header: list[str], used: list[int], path: Path) -> np.ndarray:
    """The ``used`` columns of a chunk of CSV rows -> float64 [n, len(used)]; other columns are not read."""
    width = len(header)
    try:
        if any(len(cells) != width for _, cells in rows):
            raise ValueError("ragged")
        a = np.asarray([[cells[i] for i in used] for _, cells in rows], dtype=np.float64)
        ok = bool(np.isfinite(a).all())
    except ValueError:
        ok = False
    if not ok:
        for lineno, cells in rows:
            problem = _describe_csv_row(cells, header, used, lineno)
            if problem:
                raise DataError(f"{path}: {problem}")
        raise DataError(f"{path}: lines {rows[0][0]}-{rows[-1][0]}: unreadable numbers")
    return a


def _unit_hint(period: float) -> str:
    """Which unit a time column that gives an implausible rate is probably in."""
    for unit, seconds in _TIME_UNITS:
        rate = 1.0 / (period * seconds)
        if MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            return f"it looks like {unit} (that would be {rate:.4g} Hz): convert it to seconds, or"
    return "it must be in seconds:"


class TimeColumn:
    """Checks a CSV's time column (seconds) chunk by chunk, over the whole file, against the rate derived
    from its first rows: finite (the parser checks), strictly increasing, no gap, no drift. Errors name the
    file and the line."""

    def __init__(self, path: Path, t: np.ndarray, linenos: list[int]) -> None:
        self.path = path
        self._increasing(t, linenos)
        if len(t) < 2:
            raise DataError(f"{path}: the time column needs at least two rows to give the sample rate; give it "
                            "with --sample-rate HZ")
        dt = np.diff(t)
        median = float(np.median(dt))
        if not MIN_RATE_HZ <= 1.0 / median <= MAX_RATE_HZ:
            raise DataError(f"{path}: the time column steps by {median:.6g} per row, i.e. {1.0 / median:.4g} Hz, "
                            f"outside {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz; {_unit_hint(median)} give the rate "
                            "with --sample-rate HZ (the time column is then not used)")
        # the mean of the regular steps, not their median: a clock rounded to fewer digits than the period
        # needs (60 Hz in 10 ms: steps of 10 and 20 ms) has the right mean and a wrong median. Steps far from
        # the median (a gap) would bias it; a rare dropped sample (2x) biases it by a fraction of a percent.
        regular = dt[(dt >= 0.4 * median) & (dt <= 2.5 * median)]
        self.rate = float(np.round(1.0 / regular.mean(), 3))
        self.period = 1.0 / self.rate
        self.t0, self.n, self.last = float(t[0]), 0, None

    def _increasing(self, t: np.ndarray, linenos: list[int], prev: float | None = None) -> None:
        """Every row later than the one before it (``prev``: the last time of the previous chunk)."""
        steps = np.diff(t) if prev is None else np.diff(t, prepend=prev)
        first_row = 1 if prev is None else 0  # steps[k] ends at row k + first_row
        bad = np.flatnonzero(steps <= 0)
        if len(bad):
            i = int(bad[0]) + first_row
            before = t[i - 1] if i > 0 else prev
            raise DataError(f"{self.path}: line {linenos[i]}: the time column goes from {before:.6g} to {t[i]:.6g}; "
                            "it must increase strictly (rows out of order or repeated?)")

    def check(self, t: np.ndarray, linenos: list[int]) -> None:
        """The next rows' times (after the rows already checked)."""
        if not len(t):
            return
        self._increasing(t, linenos, self.last)
        steps = np.diff(t, prepend=t[0] if self.last is None else self.last)
        gaps = np.flatnonzero(steps > MAX_TIME_STEP * self.period)
        if len(gaps):
            i = int(gaps[0])
            raise DataError(f"{self.path}: line {linenos[i]}: a gap of {steps[i]:.6g} s in the time column (one row "
                            f"is {self.period:.6g} s at {self.rate:g} Hz): samples are missing, or recordings were "
                            "joined; split the file there")
        elapsed = t - self.t0
        expected = (self.n + np.arange(len(t))) * self.period
        drift = np.flatnonzero(np.abs(elapsed - expected) > np.maximum(TIME_DRIFT_S, TIME_DRIFT_FRACTION * elapsed))
        if len(drift):
            i = int(drift[0])
            raise DataError(f"{self.path}: line {linenos[i]}: the time column is at {elapsed[i]:.6g} s from its start "
                            f"where {self.rate:g} Hz (the rate of its first rows) puts this row at {expected[i]:.6g} s: "
                            "the rate changes within the file; resample it to one rate, or split it")
        self.n += len(t)
        self.last = float(t[-1])


def _iter_csv(
    path: Path, sample_rate: float | None, columns: Sequence[str] | None, chunk_seconds: float
) -> tuple[float, Iterator[np.ndarray]]:
    """(sample rate, iterator of [n, 6] raw chunks) for a CSV with named columns.

    Only the six sensor columns and (when the rate is not given) the time column are read; other columns
    (a logger's labels or comments) are ignored. With ``sample_rate`` the time column is not used.
    """
    wanted = list(columns) if columns is not None else CSV_COLUMNS
    if len(wanted) != 6:
        raise DataError(f"columns must name 6 columns (acc x, y, z, gyro x, y, z), got {wanted}")
    fh = _open_text(path, newline="")  # closed when the generator ends (or on an error here)
    try:
        rows = _csv_rows(csv.reader(fh), path)
        first_line, header = next(rows, (0, None))
        if not header:
            raise DataError(f"{path}: empty file (expected a header line with {', '.join(wanted)})")
        names = [h.strip().lower() for h in header]
        missing = [c for c in wanted if c.lower() not in names]
        if missing:
            shown = ", ".join(_show(h, 30) for h in header[:12]) + (", ..." if len(header) > 12 else "")
            raise DataError(f"{path}: line {first_line}: missing columns {missing}; the header has {shown} "
                            f"(need {', '.join(CSV_COLUMNS)} in g and rad/s, and optionally time in seconds)")  # fmt: skip
        used = [names.index(c.lower()) for c in wanted]
        tcol = next((names.index(t) for t in TIME_COLUMNS if t in names), None)
        if sample_rate is None and tcol is None:
            raise DataError(f"{path}: no '{TIME_COLUMNS[0]}' column to infer the sample rate from; "
                            "give the rate (--sample-rate HZ)")  # fmt: skip
        if sample_rate is None:
            used.append(tcol)

        def chunks(n: int) -> Iterator[tuple[np.ndarray, list[int]]]:
            while block := list(itertools.islice(rows, n)):
                yield _parse_csv(block, header, used, path), [lineno for lineno, _ in block]

        first = next(chunks(RATE_ROWS), None)
        if first is None:
            raise DataError(f"{path}: no data rows after the header")
        clock = TimeColumn(path, first[0][:, 6], first[1]) if sample_rate is None else None
        rate = clock.rate if clock is not None else sample_rate
    except BaseException:
        fh.close()
        raise

    def gen() -> Iterator[np.ndarray]:
        try:
            for data, linenos in itertools.chain([first], chunks(_chunk_rows(chunk_seconds, rate))):
                if clock is not None:
                    clock.check(data[:, 6], linenos)
                yield data[:, :6]
        finally:
            fh.close()

    return rate, gen()


def _chunk_rows(chunk_seconds: float, rate: float) -> int:
    return max(1, min(int(chunk_seconds * rate), MAX_CHUNK_ROWS))


def iter_recording(
    path: str | Path,
    sample_rate: float | None = None,
    columns: Sequence[str] | None = None,
    chunk_seconds: float = 60,
    target_rate: float = HAPT_RATE,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream a recording as ``(acc [n, 3] g, gyro [n, 3] rad/s)`` chunks at ``target_rate`` (50 Hz).

    ``path``: a HAPT raw file (either half of the pair) or a CSV (see the module docstring).
    ``sample_rate`` overrides the file's rate (HAPT: 50 Hz; CSV: from its time column, which is then not
    used). Other rates are resampled with ``soxr.ResampleStream``. ``columns`` renames the six CSV columns.
    Rates must lie in :data:`MIN_RATE_HZ`..:data:`MAX_RATE_HZ`; a CSV's time column is checked over the
    whole file as it streams (:class:`TimeColumn`), so a bad row late in the file stops the stream there.
    """
    path = Path(path)
    check_recording_file(path)
    if sample_rate is not None:
        sample_rate = check_rate(sample_rate)
    pair = _hapt_pair(path)
    if pair is not None:
        rate = float(sample_rate or HAPT_RATE)
        source = _iter_hapt(pair[0], pair[1], _chunk_rows(chunk_seconds, rate))
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


def describe_bad_row(cells: Sequence[str], ncols: int, lineno: int) -> str | None:
    """What is wrong with line ``lineno`` of a numeric table (wrong width, non-number, NaN), or None."""
    if len(cells) != ncols:
        return f"line {lineno}: expected {ncols} columns, found {len(cells)}"
    for col, cell in enumerate(cells, start=1):
        try:
            value = float(cell)
        except ValueError:
            return f"line {lineno}, column {col}: {_show(cell)} is not a number"
        if not np.isfinite(value):
            return f"line {lineno}, column {col}: {_show(cell)} (NaN/infinite values are not allowed)"
    return None
