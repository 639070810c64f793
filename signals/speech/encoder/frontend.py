"""The speaker encoder's front end: audio -> levelled, VAD-trimmed 16 kHz speech -> mel partials.

Numpy only (+ webrtcvad); training (``data.py``, ``train.py``) and the runtime (``infer.py``) run
exactly this code. It reproduces Resemblyzer's ``preprocess_wav`` + ``embed_utterance``: resample to
16 kHz, raise the level to -30 dBFS (never lower it), drop pauses longer than ~200 ms with WebRTC's
VAD, cut 160-frame (1.6 s) partials at 1.3 partials per second (about 50 % overlap); the network embeds
each partial and :func:`mean_embedding` averages and re-normalises them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from signals.errors import AudioError
from signals.speech.audio import check_audio, normalize_loudness, resample, trim_long_silences
from signals.speech.features import ENCODER_MEL, MelConfig, mel_numpy


@dataclass(frozen=True)
class FrontEnd:
    """Everything between an audio signal and the network's input; stored in ``config.json``."""

    sample_rate: int = 16000
    target_dbfs: float = -30.0
    increase_only: bool = True  # quiet recordings are raised, loud ones left alone
    vad: bool = True
    vad_window_ms: int = 30
    vad_moving_average_width: int = 8
    vad_max_silence_windows: int = 6  # pauses up to 6 x 30 ms survive
    vad_mode: int = 3
    min_seconds: float = 0.5  # shortest input accepted (before VAD)
    partial_frames: int = 160  # 1.6 s at a 10 ms hop
    partial_rate: float = 1.3  # partials per second (step 77 frames: ~50 % overlap)
    min_coverage: float = 0.75  # keep a zero-padded last partial if it is at least this full
    mel: MelConfig = ENCODER_MEL  # 40-band linear power mel, 25 ms / 10 ms (the network's input)


def preprocess(wav: np.ndarray, sample_rate: int, front: FrontEnd = FrontEnd(), name: str = "audio") -> np.ndarray:
    """``wav: float [T]`` at ``sample_rate`` -> ``float32 [T']`` at ``front.sample_rate``, levelled and VAD-trimmed."""
    wav = check_audio(wav, sample_rate, name=name, min_seconds=front.min_seconds)
    if wav.ndim != 1:
        raise AudioError(f"{name}: expected a mono signal [T], got shape {wav.shape}")
    if sample_rate != front.sample_rate:
        wav = resample(wav, sample_rate, front.sample_rate)
    wav = normalize_loudness(wav, front.target_dbfs, increase_only=front.increase_only)
    if front.vad:
        wav = trim_long_silences(wav, front.sample_rate, front.vad_window_ms, front.vad_moving_average_width,
                                 front.vad_max_silence_windows, front.vad_mode, name=name)
    return wav.astype(np.float32, copy=False)


def partial_slices(n_samples: int, front: FrontEnd = FrontEnd(), hop: int = 160) -> list[slice]:
    """Frame ranges of the partials covering ``n_samples`` samples (Resemblyzer's ``compute_partial_slices``).

    Always at least one; the last is dropped when it would be less than ``min_coverage`` real audio.
    Ranges may run past the signal: pad the waveform to ``slices[-1].stop * hop`` samples.
    """
    n_frames = int(np.ceil((n_samples + 1) / hop))
    step = int(np.round((front.sample_rate / front.partial_rate) / hop))
    if not 0 < step <= front.partial_frames:
        raise ValueError(f"partial_rate {front.partial_rate} gives a step of {step} frames (1..{front.partial_frames})")
    n_steps = max(1, n_frames - front.partial_frames + step + 1)
    slices = [slice(i, i + front.partial_frames) for i in range(0, n_steps, step)]
    last = slices[-1]
    coverage = (n_samples - last.start * hop) / ((last.stop - last.start) * hop)
    if coverage < front.min_coverage and len(slices) > 1:
        slices = slices[:-1]
    return slices


def partial_mels(wav: np.ndarray, front: FrontEnd = FrontEnd()) -> np.ndarray:
    """Preprocessed ``wav: float32 [T]`` -> the network's input ``float32 [N, partial_frames, n_mels]``."""
    mel = front.mel
    slices = partial_slices(len(wav), front, mel.hop_length)
    need = slices[-1].stop * mel.hop_length
    if need >= len(wav):
        wav = np.pad(wav, (0, need - len(wav)))
    frames = mel_numpy(wav, mel).T  # [frames, n_mels]
    return np.stack([frames[s] for s in slices]).astype(np.float32)


def mean_embedding(partials: np.ndarray) -> np.ndarray:
    """``float [N, D]`` partial embeddings -> the L2-normalised mean ``float32 [D]``."""
    raw = partials.mean(axis=0)
    return (raw / max(float(np.linalg.norm(raw)), 1e-12)).astype(np.float32)
