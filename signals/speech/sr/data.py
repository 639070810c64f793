"""Training data for HiFi-SR: wideband corpora, on-the-fly degradation, random crops.

Degradation (what the model learns to undo): pick an input rate in 4-32 kHz, low-pass with one of
several anti-aliasing filters (polyphase FIR with a random Kaiser beta, IIR Butterworth / Chebyshev I /
Chebyshev II / elliptic / Bessel of random order, or an FFT brick wall), decimate to that rate and
bring it back to 48 kHz with a polyphase resampler. Varying the filter keeps the model from learning
one transition band. All of it is scipy + numpy, so the training machine needs neither librosa nor
soxr; reading audio folders (soundfile, soxr) happens only in :func:`load_corpus` and
:func:`prepare_npz`, not on the training path when a prepared ``.npz`` is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import signal as sps

from signals.errors import DataError
from signals.speech.audio import AUDIO_SUFFIXES
from signals.speech.features import SR_MEL

SAMPLE_RATE = SR_MEL.sample_rate  # 48 kHz: the target rate of training and of the runtime
FILTERS = ("poly", "butter", "cheby1", "cheby2", "ellip", "bessel", "fft")


@dataclass(frozen=True)
class DegradeConfig:
    min_rate: int = 4000
    max_rate: int = 32000
    rate_step: int = 500  # rates on a 500 Hz grid (plus 11025/22050) keep polyphase filters short
    filters: tuple[str, ...] = FILTERS
    segment: int = 24576  # training crop in samples at 48 kHz (96 mel frames)
    gain_db: tuple[float, float] = (-32.0, -14.0)  # random RMS level of the crop (dBFS)
    speed: tuple[float, float] = (0.92, 1.08)  # random speed (pitch + formant) perturbation


    def rates(self) -> list[int]:
        grid = list(range(self.min_rate, self.max_rate + 1, self.rate_step))
        extra = [r for r in (11025, 22050) if self.min_rate <= r <= self.max_rate]
        return sorted(set(grid + extra))


def _ratio(rate_in: int, rate_out: int) -> tuple[int, int]:
    f = Fraction(rate_out, rate_in)
    return f.numerator, f.denominator


def resample_poly(x: np.ndarray, rate_in: int, rate_out: int, beta: float = 5.0) -> np.ndarray:
    """Polyphase (Kaiser-windowed sinc) resampling along the last axis, zero phase. ``float32``."""
    if rate_in == rate_out:
        return np.asarray(x, dtype=np.float32)
    up, down = _ratio(rate_in, rate_out)
    return sps.resample_poly(x, up, down, axis=-1, window=("kaiser", beta)).astype(np.float32)


def lowpass(x: np.ndarray, cutoff: float, kind: str, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Zero-phase low-pass of ``x: [T]`` at ``cutoff`` Hz with filter family ``kind``."""
    wn = min(cutoff / (sr / 2), 0.999)
    if kind == "poly":
        return np.asarray(x, dtype=np.float32)  # the polyphase resampler's own FIR is the filter
    if kind == "fft":
        spec = np.fft.rfft(x)
        spec[int(wn * (len(spec) - 1)) + 1 :] = 0
        return np.fft.irfft(spec, n=len(x)).astype(np.float32)
    order = int(rng.integers(4, 11))
    if kind == "butter":
        sos = sps.butter(order, wn, output="sos")
    elif kind == "cheby1":
        sos = sps.cheby1(order, float(rng.uniform(0.05, 1.0)), wn, output="sos")
    elif kind == "cheby2":
        sos = sps.cheby2(order, float(rng.uniform(40, 80)), wn, output="sos")
    elif kind == "ellip":
        sos = sps.ellip(order, float(rng.uniform(0.05, 1.0)), float(rng.uniform(40, 80)), wn, output="sos")
    elif kind == "bessel":
        sos = sps.bessel(order, wn, output="sos", norm="mag")
    else:
        raise ValueError(f"unknown filter kind {kind!r}; choose from {FILTERS}")
    return sps.sosfiltfilt(sos, x).astype(np.float32)


def degrade(
    wav: np.ndarray, rate: int, kind: str = "poly", rng: np.random.Generator | None = None, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Simulate a ``rate`` Hz recording of ``wav: float [T]`` at ``sr``; returns ``float32 [T]`` at ``sr``.

    Low-pass (``kind``) -> decimate to ``rate`` -> polyphase back to ``sr``. Aligned with the input
    (every step is zero phase), so the original is the sample-exact target.
    """
    rng = rng or np.random.default_rng()
    x = lowpass(np.asarray(wav, dtype=np.float32), rate / 2, kind, rng, sr)
    beta = float(rng.uniform(4.0, 12.0)) if kind == "poly" else 8.0
    low = resample_poly(x, sr, rate, beta)
    out = resample_poly(low, rate, sr, 8.0)
    n = len(wav)
    return np.pad(out[:n], (0, max(0, n - len(out)))).astype(np.float32)


def speed_perturb(wav: np.ndarray, factor: float) -> np.ndarray:
    """Play ``wav`` ``factor`` times faster (shifts pitch and formants) by polyphase resampling."""
    f = Fraction(factor).limit_denominator(25)
    if f == 1:
        return wav
    return sps.resample_poly(wav, f.denominator, f.numerator, window=("kaiser", 8.0)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# corpora


def find_audio(folder: str | Path) -> list[Path]:
    """Audio files under ``folder`` (VCTK layout ``wav48*/pXXX/*.flac``, ``wav/*.wav`` or plain files)."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"training data folder not found: {folder}")
    if folder.is_file():
        return [folder]
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found under {folder}")
    return files


def utterance_id(path: str | Path) -> str:
    return Path(path).stem.replace("_mic1", "").replace("_mic2", "")


def speaker_id(utt: str) -> str:
    """VCTK ``p360_001`` -> ``p360``; other names -> the part before the first ``_`` or ``-``."""
    for sep in ("_", "-"):
        if sep in utt:
            return utt.split(sep)[0]
    return utt


def load_corpus(folder: str | Path, sr: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """``{utterance_id: float32 [T] at sr}`` for every audio file under ``folder`` (or a prepared .npz)."""
    path = Path(folder)
    if path.suffix == ".npz":
        if not path.is_file():
            raise DataError(f"prepared corpus not found: {path}")
        with np.load(path) as z:
            rate = int(z["__sample_rate__"]) if "__sample_rate__" in z else sr
            if rate != sr:
                raise DataError(f"{path} holds {rate} Hz audio, {sr} Hz is needed; prepare it again")
            return {k: (z[k].astype(np.float32) / 32768.0 if z[k].dtype == np.int16 else z[k].astype(np.float32))
                    for k in z.files if k != "__sample_rate__"}
    from signals.speech.audio import load_audio

    return {utterance_id(f): load_audio(f, sample_rate=sr)[0] for f in find_audio(path)}


def prepare_npz(folder: str | Path, out: str | Path, sr: int = SAMPLE_RATE) -> Path:
    """Decode a folder once to a compact int16 ``.npz`` at ``sr`` (for machines without audio libraries)."""
    corpus = load_corpus(folder, sr)
    arrays = {k: np.clip(np.round(v * 32767.0), -32768, 32767).astype(np.int16) for k, v in corpus.items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, __sample_rate__=np.array(sr), **arrays)
    return out


def split_corpus(
    utts: list[str], test: list[str], val: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """(train, val, test) utterance ids; unknown names in ``test``/``val`` are an error."""
    missing = [u for u in [*test, *val] if u not in utts]
    if missing:
        raise DataError(f"held-out utterances not in the corpus: {', '.join(missing)}")
    train = [u for u in utts if u not in test and u not in val]
    if not train:
        raise DataError("no training utterances left after holding out the test and validation sets")
    return train, [u for u in utts if u in val], [u for u in utts if u in test]


class SRDataset:
    """Random degraded crops of a list of 48 kHz waveforms (a map-style torch dataset).

    Item ``i`` -> ``(low: float32 [segment], high: float32 [segment], rate: int)``; ``low`` is the
    degraded input at 48 kHz and ``high`` the target. Randomness comes from ``(seed, i)``, so every
    DataLoader worker and DDP rank draws different crops without coordination.
    """

    def __init__(self, wavs: list[np.ndarray], cfg: DegradeConfig = DegradeConfig(), length: int = 10**7,
                 seed: int = 0, augment: bool = True):
        if not wavs:
            raise DataError("SRDataset needs at least one waveform")
        self.wavs = [np.asarray(w, dtype=np.float32) for w in wavs]
        self.cfg, self.length, self.seed, self.augment = cfg, length, seed, augment
        self.weights = np.array([len(w) for w in self.wavs], dtype=np.float64)
        self.weights /= self.weights.sum()
        self.rates = cfg.rates()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        rng = np.random.default_rng([self.seed, int(i)])
        cfg = self.cfg
        wav = self.wavs[int(rng.choice(len(self.wavs), p=self.weights))]
        speed = float(rng.uniform(*cfg.speed)) if self.augment else 1.0
        # crop a little extra before changing speed so the final crop is full length
        need = int(math.ceil(cfg.segment * speed)) + 64
        start = int(rng.integers(0, max(1, len(wav) - need)))
        x = wav[start : start + need]
        if self.augment:
            x = speed_perturb(x, speed)
        x = np.pad(x, (0, max(0, cfg.segment - len(x))))[: cfg.segment]
        if self.augment:
            rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-8)
            x = x * (10 ** (float(rng.uniform(*cfg.gain_db)) / 20) / rms)
            if rng.random() < 0.5:
                x = -x
            peak = float(np.max(np.abs(x)))
            if peak > 0.99:  # never clip the target
                x = x * (0.99 / peak)
        x = x.astype(np.float32)
        rate = int(rng.choice(self.rates))
        kind = str(rng.choice(cfg.filters))
        return degrade(x, rate, kind, rng), x, rate


def collate(batch: list[tuple[np.ndarray, np.ndarray, int]]):
    """-> ``(low: Tensor[B, T], high: Tensor[B, T], rates: Tensor[B])``."""
    import torch

    low = torch.from_numpy(np.stack([b[0] for b in batch]))
    high = torch.from_numpy(np.stack([b[1] for b in batch]))
    return low, high, torch.tensor([b[2] for b in batch])
