"""Objective metrics of speech super-resolution (numpy only, shared by training and evaluation).

LSD follows the SR literature (NU-Wave 2, AudioSR, HiFi-SR): STFT power spectra (n_fft 2048, hop 512,
Hann), ``LSD = mean_frames sqrt(mean_bins (log10 P_ref - log10 P_est)^2)`` with power floored at 1e-8
(both signals at 48 kHz; reference peak-scale as recorded). The high-band LSD averages only the bins
above the input's Nyquist frequency; ``max_hz`` limits both to where the reference has content (clips
whose measured bandwidth stops below 24 kHz).

Tonal artefacts (steady lines in the generated band) are measured on the *time-averaged* power spectrum
(n_fft 4096, 11.7 Hz bins at 48 kHz): :func:`tonal_peak_db` is the largest ratio, in dB, between that
spectrum and its running median over +-500 Hz, inside a band. Speech harmonics move with the pitch, so
averaged over an utterance they leave only small peaks (a few dB); a generator that writes a fixed
frequency into every frame leaves a narrow peak that stands far above its neighbours.
:func:`tonal_excess_db` is the estimate's value minus the reference's in the generated band.
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


TONAL_FFT, TONAL_HOP, TONAL_WINDOW_HZ = 4096, 1024, 500.0
TONAL_FLOOR_DB = -120.0  # powers this far below the spectrum's maximum count as this floor (silent bands: 0 dB)


def mean_spectrum(x: np.ndarray, sr: int = 48000) -> tuple[np.ndarray, np.ndarray]:
    """``(freqs, time-averaged power)`` of ``x: [T]`` (n_fft 4096, hop 1024, Hann, centred frames)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < TONAL_FFT:
        x = np.pad(x, (0, TONAL_FFT - len(x)))
    spec = np.abs(stft(x, TONAL_FFT, TONAL_HOP, window=np.hanning(TONAL_FFT + 1)[:-1], dtype=np.float64)) ** 2
    return np.fft.rfftfreq(TONAL_FFT, 1.0 / sr), spec.mean(axis=0)


def tonal_peak_db(x: np.ndarray, sr: int = 48000, min_hz: float = 0.0, max_hz: float | None = None,
                  window_hz: float = TONAL_WINDOW_HZ) -> float:
    """Peak-to-median ratio (dB) of the time-averaged spectrum of ``x: [T]`` between ``min_hz`` and ``max_hz``.

    Each bin is compared with the median of the bins within +-``window_hz`` (so the spectral tilt does
    not count); the result is the largest such ratio in the band. 0 dB for an empty band or one below
    the floor (:data:`TONAL_FLOOR_DB` under the spectrum's maximum).
    """
    from scipy.ndimage import median_filter

    freqs, power = mean_spectrum(x, sr)
    floor = max(float(power.max()), 1e-30) * 10 ** (TONAL_FLOOR_DB / 10)
    power = np.maximum(power, floor)
    width = 2 * int(round(window_hz / (sr / TONAL_FFT))) + 1
    local = median_filter(power, size=width, mode="nearest")
    band = (freqs >= min_hz) & (freqs < (max_hz if max_hz is not None else np.inf))
    if not band.any():
        return 0.0
    return float(np.max(10 * np.log10(power[band] / local[band])))


def tonal_excess_db(ref: np.ndarray, est: np.ndarray, sr: int = 48000, min_hz: float = 0.0,
                    max_hz: float | None = None) -> float:
    """:func:`tonal_peak_db` of ``est`` minus that of ``ref`` in the same band (> 0: more tonal than the reference)."""
    return tonal_peak_db(est, sr, min_hz, max_hz) - tonal_peak_db(ref, sr, min_hz, max_hz)
