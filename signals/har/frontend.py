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


def describe_bad_row(cells: Sequence[str], ncols: int, lineno: int) -> str | None:
    """What is wrong with line ``lineno`` of a numeric table (wrong width, non-number, NaN), or None."""
    if len(cells) != ncols:
        return f"line {lineno}: expected {ncols} columns, found {len(cells)}"
    for col, cell in enumerate(cells, start=1):
        try:
            value = float(cell)
        except ValueError:
            return f"line {lineno}, column {col}: {cell.strip()!r} is not a number"
        if not np.isfinite(value):
            return f"line {lineno}, column {col}: {cell.strip()!r} (NaN/infinite values are not allowed)"
    return None
