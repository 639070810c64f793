"""Vocoder runtime: log-mel -> 22.05 kHz waveform with onnxruntime. No torch.

    voc = load()                                   # models/vocoder (or --model / $SIGNALS_MODELS)
    wav = voc(mel)                                 # mel: float32 [80, frames] (VOCODER_MEL) -> [frames * 256]
    wav = voc(voc.mel(audio, sample_rate))         # copy-synthesis

Long mels run in chunks of ``chunk_frames`` frames, each with ``context_frames`` of true neighbours on
both sides (at least the generator's receptive field), so the output equals whole-mel synthesis up to
float rounding while the generator's working memory stays the same for any length;
:meth:`VocoderRuntime.stream` yields the audio chunk by chunk for constant total memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import DataError, ModelError
from signals.modelfolder import ModelFolder
from signals.speech.features import VOCODER_MEL, MelConfig, mel_numpy

KIND = "vocoder"
GRAPH = "generator"  # role of the ONNX graph in config.json: mel [batch, 80, frames] -> audio [batch, samples]


class MelInputError(DataError, ValueError):
    """A mel given to the vocoder has the wrong shape, is empty, or holds NaN/inf."""


@dataclass(frozen=True)
class SynthesisConfig:
    """The ``runtime`` section of the vocoder's config.json: how long mels are cut into chunks."""

    hop: int = 256  # output samples per mel frame (product of the upsampling rates)
    context_frames: int = 14  # frames of context on each side of a chunk (>= the generator's receptive field)
    chunk_frames: int = 512  # mel frames per generator call (about 6 s of audio); memory does not grow past it


@dataclass
class VocoderRuntime:
    """A loaded vocoder: the ONNX session, the mel it expects and the chunking settings."""

    folder: ModelFolder
    mel_cfg: MelConfig
    synthesis: SynthesisConfig
    session: Any  # onnxruntime.InferenceSession

    @property
    def sample_rate(self) -> int:
        return self.mel_cfg.sample_rate

    @property
    def n_mels(self) -> int:
        return self.mel_cfg.n_mels

    @property
    def hop(self) -> int:
        return self.synthesis.hop

    def check_mel(self, mel: np.ndarray, name: str = "mel") -> np.ndarray:
        """``mel`` as C-contiguous ``float32 [n_mels, frames]``, or a :class:`MelInputError` saying what is wrong."""
        try:
            mel = np.asarray(mel, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise MelInputError(f"{name} is not a numeric array: {exc}") from exc
        if mel.ndim != 2:
            raise MelInputError(f"{name} must be float32 [{self.n_mels}, frames], got shape {list(mel.shape)}")
        if mel.shape[0] != self.n_mels:
            hint = " (transposed? pass mel.T)" if mel.shape[1] == self.n_mels else ""
            raise MelInputError(f"{name} must have {self.n_mels} mel bands on axis 0, got shape {list(mel.shape)}{hint}")
        if mel.shape[1] == 0:
            raise MelInputError(f"{name} has no frames")
        if not np.all(np.isfinite(mel)):
            bad = int(mel.size - np.count_nonzero(np.isfinite(mel)))
            raise MelInputError(f"{name} contains {bad} NaN or infinite values")
        return np.ascontiguousarray(mel)

    def run(self, mel: np.ndarray) -> np.ndarray:
        """One generator call on ``mel: float32 [n_mels, frames]``, unchecked and unchunked (callers that cut
        their own windows with enough context, like the clone's stream): ``float32 [frames * hop]``."""
        return self.session.run(["audio"], {"mel": mel[None]})[0][0]

    def stream(self, mel: np.ndarray, chunk_frames: int | None = None) -> Iterator[np.ndarray]:
        """Audio of ``mel`` (``float32 [n_mels, frames]``) in pieces of ``chunk_frames * hop`` samples."""
        mel = self.check_mel(mel)
        chunk = int(chunk_frames or self.synthesis.chunk_frames)
        if chunk <= 0:
            raise ValueError(f"chunk_frames must be positive, got {chunk}")
        ctx, hop, n = self.synthesis.context_frames, self.hop, mel.shape[1]
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            lo, hi = max(0, a - ctx), min(n, b + ctx)
            yield self.run(mel[:, lo:hi])[(a - lo) * hop:(b - lo) * hop]

    def __call__(self, mel: np.ndarray, chunk_frames: int | None = None) -> np.ndarray:
        """``mel: float32 [n_mels, frames]`` (natural-log VOCODER_MEL) -> ``float32 [frames * hop]`` in [-1, 1]."""
        mel = self.check_mel(mel)
        out = np.empty(mel.shape[1] * self.hop, dtype=np.float32)
        pos = 0
        for piece in self.stream(mel, chunk_frames):
            out[pos:pos + len(piece)] = piece
            pos += len(piece)
        return out

    def mel(self, wav: np.ndarray, sample_rate: int, name: str = "audio") -> np.ndarray:
        """The vocoder's input for a recording: resampled (soxr) to its rate, ``float32 [n_mels, frames]``."""
        from signals.speech.audio import check_audio, resample

        wav = check_audio(wav, sample_rate, name=name, allow_silence=True)
        if wav.ndim != 1:
            raise DataError(f"{name} must be mono float [samples], got shape {list(wav.shape)}")
        wav = resample(wav, sample_rate, self.sample_rate)
        if len(wav) < self.mel_cfg.n_fft // 2 + 1:
            raise DataError(f"{name} is too short: {len(wav)} samples at {self.sample_rate} Hz, the mel needs "
                            f"at least {self.mel_cfg.n_fft // 2 + 1}")
        return mel_numpy(wav, self.mel_cfg)


def load(model: str | Path | None = None, providers: Sequence[str] | None = None,
         threads: int | None = None) -> VocoderRuntime:
    """The vocoder in ``model`` (default: ``$SIGNALS_MODELS/vocoder``, else the checkout's ``models/vocoder``)."""
    folder = ModelFolder.find(KIND, model)
    mel_cfg = folder.section("frontend", MelConfig)
    synthesis = folder.section("runtime", SynthesisConfig)
    graph = folder.graph(GRAPH, ["mel"], ["audio"])
    dims = graph.inputs["mel"]
    n_in = dims[1] if len(dims) == 3 else None  # mel: [batch, n_mels, frames]
    if n_in != mel_cfg.n_mels or mel_cfg.hop_length != synthesis.hop:
        raise ModelError(f"{folder.config_path}: the graph takes {n_in} mel bands at hop {synthesis.hop}, the "
                         f"frontend makes {mel_cfg.n_mels} at hop {mel_cfg.hop_length}; re-export the model")
    session = folder.session(GRAPH, providers=providers, threads=threads)
    return VocoderRuntime(folder=folder, mel_cfg=mel_cfg, synthesis=synthesis, session=session)


__all__ = ["VOCODER_MEL", "MelInputError", "SynthesisConfig", "VocoderRuntime", "load"]
