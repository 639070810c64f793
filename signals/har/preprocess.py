"""The UCI HAR front end: raw smartphone acc (g) + gyro (rad/s) at 50 Hz -> the 9 filtered channels.

Numpy + scipy only. Training windows (``signals.har.data``) and the torch-free runtime
(``signals.har.infer``) both run exactly this code, so a model sees the same signals in both.

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

from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy import signal

from signals.errors import DataError

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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown PreprocessConfig keys: {sorted(unknown)}")
        return cls(**d)


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
