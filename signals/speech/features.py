"""The mel spectrogram, defined once, in numpy (runtime) and torch (training) that agree.

Three named definitions serve the whole speech stack (see ``../shared/DESIGN.md``):

* :data:`ENCODER_MEL` - the GE2E speaker encoder's 40-band mel at 16 kHz (25 ms window, 10 ms hop).
  It is a *linear power* mel, exactly what Resemblyzer / Real-Time-Voice-Cloning feed their LSTM,
  so their pretrained weights work unchanged.
* :data:`SR_MEL` - the 48 kHz mel of HiFi-SR (n_fft 1024, hop 256, 80 bands, up to 24 kHz),
  natural-log magnitude with a 1e-5 floor as in HiFi-GAN.
* :data:`VOCODER_MEL` - the mel of the HiFi-GAN V1 vocoder, which the TTS synthesizer predicts:
  22.05 kHz, n_fft 1024, hop 256, 80 Slaney bands from 0 to 8 kHz, natural-log magnitude, 1e-5 floor.

Both implementations share the filterbank (librosa's Slaney mel, computed once) and the periodic
Hann window, so the only difference between them is floating-point rounding. :func:`stft` is the one
numpy STFT framing of the package (mel features, the SR metrics, the app's spectrogram plots).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class MelConfig:
    """One mel definition (to and from JSON with :mod:`signals.configio`, which refuses unknown keys)."""

    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int | None = None  # None = n_fft
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None  # None = sample_rate / 2
    power: float = 1.0  # 1 = magnitude, 2 = power
    center: bool = True  # pad n_fft // 2 on both sides so frame i is centred on sample i * hop
    pad_mode: str = "reflect"  # "reflect" or "constant" (zeros)
    log: bool = True  # natural log of max(mel, log_floor)
    log_floor: float = 1e-5
    norm: str | None = "slaney"
    htk: bool = False

    @property
    def win(self) -> int:
        return self.win_length or self.n_fft

    def n_frames(self, n_samples: int) -> int:
        if self.center:
            return 1 + n_samples // self.hop_length
        return 1 + (n_samples - self.n_fft) // self.hop_length


ENCODER_MEL = MelConfig(
    sample_rate=16000, n_fft=400, hop_length=160, n_mels=40, power=2.0, log=False, pad_mode="constant"
)
SR_MEL = MelConfig(sample_rate=48000, n_fft=1024, hop_length=256, n_mels=80, fmax=24000.0, power=1.0, log=True)
# The synthesizer's output and the vocoder's input: the universal HiFi-GAN V1's mel (Kong et al. 2020).
# Frames are centred (reflect padding), so a signal of T samples gives 1 + T // 256 frames and the
# vocoder returns frames * 256 samples. See models/vocoder/README.md for the copy-synthesis check.
VOCODER_MEL = MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, n_mels=80, fmin=0.0, fmax=8000.0,
                        power=1.0, center=True, pad_mode="reflect", log=True, log_floor=1e-5)


def _hz_to_mel(f: np.ndarray, htk: bool) -> np.ndarray:
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above.
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray, htk: bool) -> np.ndarray:
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=16)
def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """``float32 [n_mels, n_fft // 2 + 1]`` triangular filters, identical to ``librosa.filters.mel``.

    Written out in numpy so that training machines without librosa compute the same features.
    """
    fmax = cfg.fmax if cfg.fmax is not None else cfg.sample_rate / 2.0
    fft_freqs = np.linspace(0.0, cfg.sample_rate / 2.0, cfg.n_fft // 2 + 1)
    mels = np.linspace(_hz_to_mel(np.array(cfg.fmin), cfg.htk), _hz_to_mel(np.array(fmax), cfg.htk), cfg.n_mels + 2)
    edges = _mel_to_hz(mels, cfg.htk)
    fdiff = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if cfg.norm == "slaney":
        weights *= (2.0 / (edges[2 : cfg.n_mels + 2] - edges[: cfg.n_mels]))[:, None]
    elif cfg.norm is not None:
        raise ValueError(f"unsupported mel norm {cfg.norm!r}: use 'slaney' or None")
    return weights.astype(np.float32)


def periodic_hann(n: int) -> np.ndarray:
    """Periodic Hann window of ``n`` samples, ``float64 [n]`` (the STFT's default)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


@lru_cache(maxsize=16)
def stft_window(cfg: MelConfig) -> np.ndarray:
    """Periodic Hann of ``win`` samples, zero-padded (centred) to ``n_fft``, ``float32 [n_fft]``."""
    win = periodic_hann(cfg.win)
    left = (cfg.n_fft - cfg.win) // 2
    return np.pad(win, (left, cfg.n_fft - cfg.win - left)).astype(np.float32)


def stft(
    x: np.ndarray,
    n_fft: int,
    hop_length: int,
    window: np.ndarray | None = None,
    center: bool = True,
    pad_mode: str = "reflect",
    dtype: type = np.float32,
) -> np.ndarray:
    """Complex STFT ``[..., frames, n_fft // 2 + 1]`` of ``x: [..., T]`` along the last axis.

    ``window`` (``[n_fft]``) defaults to the periodic Hann; ``center`` pads ``n_fft // 2`` on both
    sides with ``pad_mode`` ("reflect" or "constant") so frame ``i`` is centred on sample
    ``i * hop_length``; without it frame ``i`` starts there. ``dtype`` is the precision of the
    framing and FFT (float32 for features, float64 for metrics).
    """
    x = np.asarray(x, dtype=dtype)
    n = x.shape[-1]
    if center:
        pad = [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)]
        x = np.pad(x, pad, mode=pad_mode)
    if x.shape[-1] < n_fft:
        raise ValueError(f"signal of {n} samples is shorter than one {n_fft}-sample frame")
    if window is None:
        window = periodic_hann(n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=-1)[..., ::hop_length, :]
    return np.fft.rfft(frames * np.asarray(window, dtype=dtype), axis=-1)


def mel_numpy(wav: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """``wav: float [..., T]`` -> ``float32 [..., n_mels, frames]``."""
    spec = np.abs(stft(wav, cfg.n_fft, cfg.hop_length, stft_window(cfg), cfg.center, cfg.pad_mode)).astype(np.float32)
    if cfg.power != 1.0:
        spec = spec ** cfg.power
    mel = np.einsum("mf,...tf->...mt", mel_filterbank(cfg), spec)
    if cfg.log:
        mel = np.log(np.maximum(mel, cfg.log_floor))
    return mel.astype(np.float32)


def mel_torch(wav, cfg: MelConfig):
    """``wav: Tensor[..., T]`` -> ``Tensor[..., n_mels, frames]`` (differentiable, same numbers as numpy)."""
    import torch

    shape = wav.shape
    x = wav.reshape(-1, shape[-1])
    window = torch.from_numpy(stft_window(cfg)).to(x.device, x.dtype)
    if cfg.center:
        # torch.stft's own centring pads with the same modes; do it explicitly for 'constant'
        # because older torch versions only reflect-pad inside stft.
        x = torch.nn.functional.pad(x.unsqueeze(1), (cfg.n_fft // 2, cfg.n_fft // 2), mode=cfg.pad_mode).squeeze(1)
    spec = torch.stft(x, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.n_fft, window=window,
                      center=False, return_complex=True).abs()
    if cfg.power != 1.0:
        spec = spec ** cfg.power
    fb = torch.from_numpy(mel_filterbank(cfg)).to(x.device, spec.dtype)
    mel = torch.matmul(fb, spec)
    if cfg.log:
        mel = torch.log(torch.clamp(mel, min=cfg.log_floor))
    return mel.reshape(*shape[:-1], *mel.shape[-2:])
