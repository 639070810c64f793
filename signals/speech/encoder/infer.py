"""Torch-free speaker-encoder runtime: audio -> 256-d embedding with numpy + onnxruntime.

    enc = SpeakerEncoder.load()                    # models/speaker_encoder
    e = enc.embed_file("a.flac")                   # float32 [256], L2-normalised
    E = enc.embed_files(["a.flac", "b.wav"])       # float32 [2, 256], partials of all files batched
    enc.verify("a.flac", "b.wav")                  # VerifyResult(score=5.1, cosine=0.83, snorm=5.1, same=True, ...)
    enc.verify("a.flac", "b.wav", raw=True)        # plain cosine at the cosine threshold

When the model folder ships an impostor cohort (``cohort.npy``: embeddings of other speakers, described
in ``config.json["cohort"]``), ``verify`` decides on the S-norm score, ``((s - mu_a) / sd_a + (s - mu_b) / sd_b) / 2``
with mu/sd the mean/std of each recording's cosines with the cohort, at the threshold calibrated for it
(``config.json["verification"]["snorm"]``); ``raw=True`` (CLI ``--raw``) uses the plain cosine.

The front end reproduces Resemblyzer's ``preprocess_wav`` + ``embed_utterance``: resample to 16 kHz,
raise the level to -30 dBFS (never lower it), drop pauses longer than ~200 ms with WebRTC's VAD, cut
160-frame (1.6 s) partials at 1.3 partials per second (about 50 % overlap), embed each, average,
re-normalise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import AudioError, ModelError
from signals.paths import model_dir as _model_dir
from signals.runtime import create_session, read_config
from signals.speech.audio import check_audio, load_audio, normalize_loudness, resample, trim_long_silences
from signals.speech.encoder.metrics import cohort_stats, snorm
from signals.speech.features import ENCODER_MEL, MelConfig, mel_numpy

MODEL_NAME = "speaker_encoder"
ONNX_FILE = "speaker_encoder.onnx"


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrontEnd:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


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


def partial_mels(wav: np.ndarray, front: FrontEnd = FrontEnd(), mel: MelConfig = ENCODER_MEL) -> np.ndarray:
    """Preprocessed ``wav: float32 [T]`` -> the network's input ``float32 [N, partial_frames, n_mels]``."""
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


@dataclass(frozen=True)
class VerifyResult:
    score: float  # the score decided on: the S-norm score, or the cosine when there is no cohort / raw=True
    same: bool  # score >= threshold
    threshold: float
    cosine: float  # raw cosine similarity of the two utterance embeddings
    snorm: float | None = None  # S-norm score against the model's cohort (None without a cohort)
    method: str = "cosine"  # "s-norm" or "cosine": which score the decision used


def load_cohort(folder: Path, cfg: dict[str, Any]) -> tuple[np.ndarray | None, list[str] | None]:
    """The impostor cohort ``float32 [K, D]`` and its per-row speaker IDs, if ``config.json`` declares one."""
    info = cfg.get("cohort")
    if not info:
        return None, None
    path = folder / info.get("file", "cohort.npy")
    if not path.is_file():
        raise ModelError(f"{folder}/config.json declares a score-normalisation cohort but {path} is missing")
    try:
        cohort = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable .npy array: {exc}") from exc
    dim = cfg["model"]["embedding_size"]
    if cohort.ndim != 2 or cohort.shape[1] != dim or len(cohort) < 2:
        raise ModelError(f"{path}: expected a cohort of at least 2 embeddings [K, {dim}], got shape {cohort.shape}")
    if not np.isfinite(cohort).all():
        raise ModelError(f"{path}: cohort contains NaN or infinite values")
    rows = info.get("row_speakers")
    if rows is not None and len(rows) != len(cohort):
        raise ModelError(f"{path}: {len(cohort)} rows but config.json lists {len(rows)} row speakers")
    return cohort.astype(np.float32), (list(map(str, rows)) if rows is not None else None)


@dataclass
class SpeakerEncoder:
    session: Any
    config: dict[str, Any]
    front: FrontEnd = field(default_factory=FrontEnd)
    mel: MelConfig = ENCODER_MEL
    batch_size: int = 64
    cohort: np.ndarray | None = None  # float32 [K, D] impostor embeddings for S-norm (config["cohort"])
    cohort_speakers: list[str] | None = None  # speaker ID of each cohort row

    @classmethod
    def load(cls, model_dir: str | Path | None = None, providers: Sequence[str] | None = None,
             threads: int | None = None) -> SpeakerEncoder:
        folder = Path(model_dir) if model_dir is not None else _model_dir(MODEL_NAME)
        cfg = read_config(folder)
        try:
            front = FrontEnd.from_dict(cfg["frontend"])
            mel = MelConfig.from_dict(cfg["mel"])
            onnx_file = cfg.get("onnx", {}).get("file", ONNX_FILE)
            cohort, cohort_speakers = load_cohort(folder, cfg)
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{folder}/config.json is not a speaker-encoder config: missing {exc}") from exc
        session = create_session(folder / onnx_file, providers=providers, threads=threads)
        return cls(session=session, config=cfg, front=front, mel=mel, cohort=cohort, cohort_speakers=cohort_speakers)

    @property
    def threshold(self) -> float | None:
        """Cosine same-speaker threshold calibrated at the EER (``config.json["verification"]["threshold"]``)."""
        value = (self.config.get("verification") or {}).get("threshold")
        return None if value is None else float(value)

    @property
    def snorm_threshold(self) -> float | None:
        """S-norm threshold calibrated at the EER (``config.json["verification"]["snorm"]["threshold"]``)."""
        value = ((self.config.get("verification") or {}).get("snorm") or {}).get("threshold")
        return None if value is None else float(value)

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
        return preprocess(wav, sample_rate, self.front, name=name)

    def embed_preprocessed(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        """Already preprocessed 16 kHz signals -> ``float32 [len(wavs), D]``; all partials in shared batches."""
        parts = [partial_mels(w, self.front, self.mel) for w in wavs]
        if not parts:
            return np.zeros((0, self.config["model"]["embedding_size"]), np.float32)
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
         threads: int | None = None) -> SpeakerEncoder:
    return SpeakerEncoder.load(model_dir, providers=providers, threads=threads)
