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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import ModelError
from signals.modelfolder import ModelFolder
from signals.speech.audio import load_audio
from signals.speech.encoder.frontend import FrontEnd, mean_embedding, partial_mels, preprocess
from signals.speech.encoder.metrics import cohort_stats, snorm

KIND = "speaker_encoder"
ONNX_FILE = "speaker_encoder.onnx"
COHORT_FILE = "cohort.npy"


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

    def embed_utterance(self, wav: np.ndarray, sample_rate: int, name: str = "audio") -> np.ndarray:
        """``wav: float [T]`` -> ``float32 [D]``."""
        return self.embed_preprocessed([self.preprocess(wav, sample_rate, name)])[0]

    def embed_file(self, path: str | Path) -> np.ndarray:
        return self.embed_files([path])[0]

    def embed_files(self, paths: Sequence[str | Path]) -> np.ndarray:
        """``float32 [len(paths), D]``, rows in the order of ``paths``."""
        wavs = []
        for p in paths:
            wav, sr = load_audio(p)
            wavs.append(self.preprocess(wav, sr, name=str(p)))
        return self.embed_preprocessed(wavs)

    def verify(self, a: str | Path, b: str | Path, threshold: float | None = None, raw: bool = False) -> VerifyResult:
        """Same speaker? S-norm score vs its calibrated threshold when the model has a cohort, else cosine.

        ``raw=True`` decides on the plain cosine at the cosine threshold; ``threshold`` overrides the
        calibrated threshold of whichever score is used.
        """
        ea, eb = self.embed_files([a, b])
        cosine = float(np.dot(ea, eb))
        score_snorm = float(self.snorm_scores(ea, eb)[0]) if self.cohort is not None else None
        if score_snorm is not None and not raw:
            method, score, calibrated = "s-norm", score_snorm, self.snorm_threshold
            how = "`signals speech encoder evaluate DIR --split-halves --model-cohort --calibrate MODEL_DIR`, or pass --raw"
        else:
            method, score, calibrated = "cosine", cosine, self.threshold
            how = "`signals speech encoder evaluate DIR --calibrate MODEL_DIR`"
        threshold = calibrated if threshold is None else threshold
        if threshold is None:
            raise ModelError(f"this model has no calibrated {method} threshold: pass --threshold, or run {how}")
        return VerifyResult(score=score, same=score >= threshold, threshold=float(threshold), cosine=cosine,
                            snorm=score_snorm, method=method)


def load(model_dir: str | Path | None = None, providers: Sequence[str] | None = None,
         threads: int | None = None) -> EncoderRuntime:
    return EncoderRuntime.load(model_dir, providers=providers, threads=threads)
