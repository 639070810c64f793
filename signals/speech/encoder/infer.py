"""Torch-free speaker-encoder runtime: audio -> 256-d embedding with numpy + onnxruntime.

    enc = load()                                   # models/speaker_encoder (or --model / $SIGNALS_MODELS)
    e = enc.embed_file("a.flac")                   # float32 [256], L2-normalised
    E = enc.embed_files(["a.flac", "b.wav"])       # float32 [2, 256], partials of all files batched
    enc.verify("a.flac", "b.wav")                  # VerifyResult(score=5.1, cosine=0.83, snorm=5.1, same=True, ...)
    enc.verify("a.flac", "b.wav", raw=True)        # plain cosine at the cosine threshold

When the model folder ships an impostor cohort (``files.cohort`` = ``cohort.npy``: embeddings of other
speakers), ``verify`` decides on the S-norm score, ``((s - mu_a) / sd_a + (s - mu_b) / sd_b) / 2`` with
mu/sd the mean/std of each recording's cosines with the cohort, at the threshold calibrated for it
(``config.json["runtime"]["snorm_threshold"]``); ``raw=True`` (CLI ``--raw``) uses the plain cosine.
The front end (``frontend.py``) reproduces Resemblyzer's preprocessing and partials.

Speech presence: ``embed_files`` and ``verify`` refuse a recording with less than
:data:`MIN_SPEECH_SECONDS` of detected speech (:func:`signals.speech.audio.speech_seconds`: VAD windows that
are not noise-flat), because the network maps noise, tones or silence to an embedding as confidently as a
voice (two white-noise files scored 5x the S-norm threshold). Between that and
:data:`LOW_CONFIDENCE_SPEECH_SECONDS` the result comes with a low-confidence warning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import AudioError, DataError, ModelError
from signals.modelfolder import ModelFolder
from signals.speech.audio import load_audio, speech_seconds
from signals.speech.encoder.frontend import FrontEnd, mean_embedding, partial_mels, preprocess
from signals.speech.encoder.metrics import cohort_stats, snorm

KIND = "speaker_encoder"
ONNX_FILE = "speaker_encoder.onnx"
COHORT_FILE = "cohort.npy"
# Below this much detected speech a recording is refused. Measured on the example voices against their
# other recordings: same-speaker S-norm scores of 0.6 s excerpts fell to 1.1-3.8 (threshold 2.36: half
# were called "different"), 1.0 s excerpts to 2.3-5.1, from 1.5 s on 4.0-5.2 (different speakers < 1.1).
MIN_SPEECH_SECONDS = 1.0
# Below this the result is reported as low confidence (a warning; `verify` marks its verdict).
LOW_CONFIDENCE_SPEECH_SECONDS = 2.0


@dataclass(frozen=True)
class Verification:
    """``config.json["runtime"]`` of a speaker encoder: how ``verify`` decides (written by ``--calibrate``)."""

    threshold: float | None = None  # cosine threshold at the calibration EER (`verify --raw`, or no cohort)
    snorm_threshold: float | None = None  # S-norm threshold at the calibration EER, valid for this cohort only
    cohort_speakers: tuple[str, ...] | None = None  # speaker ID of each cohort.npy row (leave-own-speaker-out)


@dataclass(frozen=True)
class VerifyResult:
    score: float  # the score decided on: the S-norm score, or the cosine when there is no cohort / raw=True
    same: bool  # score >= threshold
    threshold: float
    cosine: float  # raw cosine similarity of the two utterance embeddings
    snorm: float | None = None  # S-norm score against the model's cohort (None without a cohort)
    method: str = "cosine"  # "s-norm" or "cosine": which score the decision used
    speech_seconds: tuple[float, ...] = ()  # detected speech in a and b
    warnings: tuple[str, ...] = field(default=())  # why the verdict is low confidence (short speech)

    @property
    def low_confidence(self) -> bool:
        return bool(self.warnings)


def load_cohort(folder: ModelFolder, dim: int, rows: Sequence[str] | None) -> np.ndarray | None:
    """The impostor cohort ``float32 [K, dim]`` named by ``files.cohort``, checked; None when there is none."""
    name = folder.config.files.get("cohort")
    if not name:
        return None
    path = folder.file(name)
    try:
        cohort = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable .npy array: {exc}") from exc
    if cohort.ndim != 2 or cohort.shape[1] != dim or len(cohort) < 2:
        raise ModelError(f"{path}: expected a cohort of at least 2 embeddings [K, {dim}], got shape {cohort.shape}")
    if not np.isfinite(cohort).all():
        raise ModelError(f"{path}: cohort contains NaN or infinite values")
    if rows is not None and len(rows) != len(cohort):
        raise ModelError(f"{path}: {len(cohort)} rows but config.json lists {len(rows)} cohort speakers")
    return cohort.astype(np.float32)


@dataclass(frozen=True)
class EncoderRuntime:
    """A speaker-encoder model folder ready to run (the torch module is ``model.SpeakerEncoder``)."""

    folder: ModelFolder
    session: Any  # onnxruntime: mels float32 [B, frames, n_mels] -> embeddings float32 [B, D]
    front: FrontEnd
    verification: Verification
    embedding_size: int
    cohort: np.ndarray | None = None  # float32 [K, D] impostor embeddings for S-norm
    batch_size: int = 64

    @classmethod
    def load(cls, model_dir: str | Path | None = None, providers: Sequence[str] | None = None,
             threads: int | None = None) -> EncoderRuntime:
        folder = ModelFolder.find(KIND, model_dir)
        front = folder.section("frontend", FrontEnd)
        verification = folder.section("runtime", Verification)
        spec = folder.graph("encoder", ["mels"], ["embeddings"])
        n_mels, dim = spec.inputs["mels"][-1], spec.outputs["embeddings"][-1]
        # n_mels is stored by the front end, the network config and the graph: they must agree.
        if not n_mels == front.mel.n_mels == folder.config.model.get("n_mels", n_mels):
            raise ModelError(f"{folder.config_path}: frontend.mel.n_mels {front.mel.n_mels}, model.n_mels "
                             f"{folder.config.model.get('n_mels')} and the graph's {n_mels} mel bands disagree")
        cohort = load_cohort(folder, int(dim), verification.cohort_speakers)
        session = folder.session("encoder", providers=providers, threads=threads)
        return cls(folder=folder, session=session, front=front, verification=verification,
                   embedding_size=int(dim), cohort=cohort)

    @property
    def threshold(self) -> float | None:
        """Cosine same-speaker threshold calibrated at the EER (``config.json["runtime"]["threshold"]``)."""
        return self.verification.threshold

    @property
    def snorm_threshold(self) -> float | None:
        """S-norm threshold calibrated at the EER (``config.json["runtime"]["snorm_threshold"]``)."""
        return self.verification.snorm_threshold

    @property
    def cohort_speakers(self) -> list[str] | None:
        rows = self.verification.cohort_speakers
        return list(rows) if rows is not None else None

    def snorm_scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """S-norm scores of embedding pairs ``a, b: float [P, D]`` against the model's cohort -> ``float [P]``."""
        if self.cohort is None:
            raise ModelError("this model folder has no cohort.npy: run `signals speech encoder cohort DIR "
                             "--speakers LIST` to make one")
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        mu_a, sd_a = cohort_stats(a, self.cohort)
        mu_b, sd_b = cohort_stats(b, self.cohort)
        raw = np.einsum("pd,pd->p", a / np.linalg.norm(a, axis=1, keepdims=True),
                        b / np.linalg.norm(b, axis=1, keepdims=True))
        return snorm(raw, mu_a, sd_a, mu_b, sd_b)

    def run(self, mels: np.ndarray) -> np.ndarray:
        """``mels: float32 [N, T, n_mels]`` -> ``float32 [N, D]`` partial embeddings, in batches."""
        out = [self.session.run(["embeddings"], {"mels": np.ascontiguousarray(mels[i : i + self.batch_size])})[0]
               for i in range(0, len(mels), self.batch_size)]
        return np.concatenate(out).astype(np.float32)

    def preprocess(self, wav: np.ndarray, sample_rate: int, name: str = "audio") -> np.ndarray:
        """``wav: float [T]`` at ``sample_rate`` -> levelled, VAD-trimmed ``float32 [T']`` at 16 kHz."""
        return preprocess(wav, sample_rate, self.front, name=name)

    def embed_preprocessed(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        """Already preprocessed 16 kHz signals -> ``float32 [len(wavs), D]``; all partials in shared batches."""
        parts = [partial_mels(w, self.front) for w in wavs]
        if not parts:
            return np.zeros((0, self.embedding_size), np.float32)
        embeds = self.run(np.concatenate(parts))
        bounds = np.cumsum([0] + [len(p) for p in parts])
        return np.stack([mean_embedding(embeds[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])

    def speech(self, wav: np.ndarray, name: str = "audio", min_speech: float = MIN_SPEECH_SECONDS) -> float:
        """Seconds of speech in a preprocessed (levelled, 16 kHz) signal; :class:`AudioError` below ``min_speech``."""
        front = self.front
        seconds = speech_seconds(wav, front.sample_rate, front.vad_window_ms, front.vad_mode,
                                 front.vad_moving_average_width)
        if seconds < min_speech:
            raise AudioError(f"{name}: only {seconds:.2f} s of speech detected; a speaker embedding needs at least "
                             f"{min_speech:.1f} s (noise, music, tones or silence hold no voice): give a longer "
                             "recording of the speaker")
        return seconds

    def embed_utterance(self, wav: np.ndarray, sample_rate: int, name: str = "audio",
                        min_speech: float = 0.0) -> np.ndarray:
        """``wav: float [T]`` -> ``float32 [D]``; ``min_speech`` > 0 refuses less detected speech (see :meth:`speech`)."""
        pre = self.preprocess(wav, sample_rate, name)
        if min_speech > 0:
            self.speech(pre, name, min_speech)
        return self.embed_preprocessed([pre])[0]

    def embed_file(self, path: str | Path, min_speech: float = MIN_SPEECH_SECONDS) -> np.ndarray:
        return self.embed_files([path], min_speech)[0]

    def embed_files(self, paths: Sequence[str | Path], min_speech: float = MIN_SPEECH_SECONDS) -> np.ndarray:
        """``float32 [len(paths), D]``, rows in the order of ``paths`` (each with ``min_speech`` s of speech)."""
        return self.embed_files_info(paths, min_speech)[0]

    def embed_files_info(self, paths: Sequence[str | Path], min_speech: float = MIN_SPEECH_SECONDS
                         ) -> tuple[np.ndarray, list[float], list[str]]:
        """:meth:`embed_files` plus the seconds of speech found in each file and low-confidence warnings.

        Every file is read and checked before the network runs, so a bad last file costs no embedding time.
        """
        wavs, seconds, warnings = [], [], []
        for p in paths:
            wav, sr = load_audio(p)
            pre = self.preprocess(wav, sr, name=str(p))
            wavs.append(pre)
            seconds.append(self.speech(pre, str(p), min_speech))
            if seconds[-1] < LOW_CONFIDENCE_SPEECH_SECONDS:
                warnings.append(f"{p}: only {seconds[-1]:.1f} s of speech; embeddings of less than "
                                f"{LOW_CONFIDENCE_SPEECH_SECONDS:.0f} s of speech are unreliable, treat the result "
                                "as low confidence (3-30 s works best)")
        return self.embed_preprocessed(wavs), seconds, warnings

    def verify(self, a: str | Path, b: str | Path, threshold: float | None = None, raw: bool = False,
               min_speech: float = MIN_SPEECH_SECONDS) -> VerifyResult:
        """Same speaker? S-norm score vs its calibrated threshold when the model has a cohort, else cosine.

        ``raw=True`` decides on the plain cosine at the cosine threshold; ``threshold`` overrides the
        calibrated threshold of whichever score is used. Recordings with less than ``min_speech`` s of
        speech are refused; short ones give a result with ``warnings`` (``low_confidence``).
        """
        if threshold is not None and not math.isfinite(threshold):
            raise DataError(f"threshold must be a finite number, got {threshold}")
        use_snorm = self.cohort is not None and not raw
        if use_snorm:
            method, calibrated = "s-norm", self.snorm_threshold
            how = "`signals speech encoder evaluate DIR --split-halves --model-cohort --calibrate MODEL_DIR`, or pass --raw"
        else:
            method, calibrated = "cosine", self.threshold
            how = "`signals speech encoder evaluate DIR --calibrate MODEL_DIR`"
        threshold = calibrated if threshold is None else threshold
        if threshold is None:  # before the work: embedding two files to then refuse would waste it
            raise ModelError(f"this model has no calibrated {method} threshold: pass --threshold, or run {how}")
        (ea, eb), seconds, warnings = self.embed_files_info([a, b], min_speech)
        cosine = float(np.dot(ea, eb))
        score_snorm = float(self.snorm_scores(ea, eb)[0]) if self.cohort is not None else None
        score = score_snorm if use_snorm else cosine
        return VerifyResult(score=score, same=score >= threshold, threshold=float(threshold), cosine=cosine,
                            snorm=score_snorm, method=method, speech_seconds=tuple(seconds),
                            warnings=tuple(warnings))


def load(model_dir: str | Path | None = None, providers: Sequence[str] | None = None,
         threads: int | None = None) -> EncoderRuntime:
    return EncoderRuntime.load(model_dir, providers=providers, threads=threads)
