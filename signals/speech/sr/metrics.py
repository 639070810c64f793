"""Objective metrics of speech super-resolution (numpy only, shared by training and evaluation).

LSD follows the SR literature (NU-Wave 2, AudioSR, HiFi-SR): STFT power spectra (n_fft 2048, hop 512,
Hann), ``LSD = mean_frames sqrt(mean_bins (log10 P_ref - log10 P_est)^2)`` with power floored at 1e-8
(both signals at 48 kHz; reference peak-scale as recorded). The high-band LSD averages only the bins
above the input's Nyquist frequency.
"""

from __future__ import annotations

import numpy as np

from signals.speech.features import stft

LSD_FFT, LSD_HOP, POWER_FLOOR = 2048, 512, 1e-8


def _power_spec(x: np.ndarray) -> np.ndarray:
    """``x: [T]`` -> ``[frames, n_fft // 2 + 1]`` power (centred frames, reflect padding)."""
    return np.abs(stft(x, LSD_FFT, LSD_HOP, window=np.hanning(LSD_FFT + 1)[:-1], dtype=np.float64)) ** 2


def lsd(ref: np.ndarray, est: np.ndarray, sr: int = 48000, min_hz: float = 0.0, max_hz: float | None = None) -> float:
    """Log-spectral distance between ``ref`` and ``est`` (``[T]`` each, same length, same rate).

    ``min_hz`` > 0 restricts it to bins at or above that frequency (the high-band LSD); ``max_hz`` to
    bins below that frequency.
    """
    n = min(len(ref), len(est))
    pr, pe = _power_spec(ref[:n]), _power_spec(est[:n])
    freqs = np.fft.rfftfreq(LSD_FFT, 1.0 / sr)
    keep = (freqs >= min_hz) & (freqs < (max_hz if max_hz is not None else np.inf))
    d = np.log10(np.maximum(pr[:, keep], POWER_FLOOR)) - np.log10(np.maximum(pe[:, keep], POWER_FLOOR))
    return float(np.mean(np.sqrt(np.mean(d**2, axis=-1))))


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019); zero-mean signals, ``[T]`` each."""
    n = min(len(ref), len(est))
    r = np.asarray(ref[:n], dtype=np.float64)
    e = np.asarray(est[:n], dtype=np.float64)
    r, e = r - r.mean(), e - e.mean()
    alpha = np.dot(e, r) / (np.dot(r, r) + 1e-12)
    target = alpha * r
    return float(10 * np.log10((np.sum(target**2) + 1e-12) / (np.sum((e - target) ** 2) + 1e-12)))
