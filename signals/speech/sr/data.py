"""Training data for HiFi-SR: wideband corpora, on-the-fly degradation, random crops.

Degradation (what the model learns to undo): pick an input rate in 4-32 kHz, low-pass with one of
several anti-aliasing filters (polyphase FIR with a random Kaiser beta, IIR Butterworth / Chebyshev I /
Chebyshev II / elliptic / Bessel of random order, or an FFT brick wall), decimate to that rate and
bring it back to 48 kHz with a polyphase resampler. Varying the filter keeps the model from learning
one transition band. A share of the crops (``vocoder_prob``) instead imitates what the voice-cloning
pipeline feeds HiFi-SR: HiFi-GAN output at 22.05 kHz whose band above the vocoder mel's 8 kHz is
invented from the envelope (right level, wrong fine structure) and rolls off between 8 and 11 kHz
(:func:`vocoder_like`). All of it is scipy + numpy, so the training machine needs neither librosa nor
soxr; reading audio folders (soundfile, soxr) happens only in :func:`load_corpus` and
:func:`prepare_npz`, not on the training path when a prepared ``.npz`` is given.

Every crop carries its clip's measured bandwidth (Hz, scaled by the speed perturbation): the input rate
is drawn below it, and training masks the losses above it (see :mod:`signals.speech.sr.train`).

Training packs (``signals speech sr prepare``, :mod:`signals.speech.sr.corpus`) are folders with
``index.json`` (one entry per clip: byte range, codec, trim, gain, bandwidth, group, split) and
``audio.bin``; :func:`load_pack` decodes them (codec ``source``: the package's own Ogg/WAV bytes,
read with soundfile; ``pcm16``: raw 48 kHz int16, numpy only) and resamples to 48 kHz with scipy.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
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
    vocoder_prob: float = 0.15  # share of crops degraded like 22.05 kHz vocoder output (vocoder_like)
    # half of those crops end at the 22.05 kHz resampler's edge (~10.8 kHz, like the shipped HiFi-GAN V1's
    # copy-synthesis), the other half roll off at a random frequency in this range (Hz)
    vocoder_cutoff: tuple[float, float] = (8000.0, 10800.0)
    band_margin_hz: float = 1000.0  # the input's Nyquist stays this far below the clip's bandwidth

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


VOCODER_RATE = 22050  # the vocoder's output rate (VOCODER_MEL)


def vocoder_like(wav: np.ndarray, rng: np.random.Generator, cutoff: tuple[float, float] = (8000.0, 10800.0),
                 split: tuple[float, float] = (7000.0, 8500.0), sr: int = SAMPLE_RATE, plain: float = 0.5) -> np.ndarray:
    """Imitate HiFi-GAN V1 output at 22.05 kHz for ``wav: float [T]`` at ``sr``; ``float32 [T]`` at ``sr``.

    The vocoder reads a mel that stops at 8 kHz, so above it its output is invented: right envelope, wrong
    fine structure. Here: resample to 22.05 kHz; above a random split (7-8.5 kHz) replace the STFT
    (1024 / 256) by the magnitude smoothed over ~1 kHz and 5 frames with random phase and a random
    -6..+2 dB gain (500 Hz crossfade); with probability ``1 - plain`` low-pass at a random frequency in
    ``cutoff`` (Butterworth, order 2-8, zero phase); back to ``sr``. Aligned with ``wav`` like
    :func:`degrade`. Band levels against the reference at 8-9 / 9-10 / 10-10.5 / 10.5-11 kHz on 6 VCTK
    utterances: the shipped vocoder's copy-synthesis -1.6 / -2.5 / -0.8 / -21.5 dB; this, unfiltered
    (``plain``, mean of 6 draws), -2.0 / -3.1 / -4.7 / -9.0 dB.
    """
    from scipy.ndimage import uniform_filter

    n_fft, hop = 1024, 256
    x = resample_poly(np.asarray(wav, dtype=np.float32), sr, VOCODER_RATE, 8.0)
    n22 = len(x)
    x = np.pad(x, (0, max(0, n_fft - n22)))  # crops shorter than one STFT frame (tests)
    f, _, z = sps.stft(x, fs=VOCODER_RATE, nperseg=n_fft, noverlap=n_fft - hop)
    f_split = float(rng.uniform(*split))
    bin_hz = VOCODER_RATE / n_fft
    # float32 running sums leave tiny negative powers where a loud stretch meets near-silence: clamp them
    # (their square root was NaN, and one NaN crop poisons a training run)
    power = uniform_filter(np.abs(z) ** 2, size=(max(1, int(1000 / bin_hz)), 5), mode="nearest")
    env = np.sqrt(np.maximum(power, 0.0))
    # x2: random-phase frames add up incoherently in the windowed overlap-add (Hann, 75 % overlap), which
    # loses 6.0 dB (measured on white noise); without it the invented band would come out that much low.
    gain = 2.0 * 10 ** (float(rng.uniform(-6.0, 2.0)) / 20)
    noise = env * gain * np.exp(2j * np.pi * rng.random(z.shape))
    w = np.clip((f - f_split) / 500.0 + 0.5, 0.0, 1.0)[:, None]  # 0 below the split, 1 above, 500 Hz ramp
    _, y = sps.istft((1 - w) * z + w * noise, fs=VOCODER_RATE, nperseg=n_fft, noverlap=n_fft - hop)
    y = np.pad(y[: len(x)], (0, max(0, len(x) - len(y))))
    if rng.random() >= plain:
        sos = sps.butter(int(rng.integers(2, 9)), float(rng.uniform(*cutoff)), fs=VOCODER_RATE, output="sos")
        y = sps.sosfiltfilt(sos, y)
    out = resample_poly(y[:n22].astype(np.float32), VOCODER_RATE, sr, 8.0)
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


# --------------------------------------------------------------------------------------------------
# training packs (written by signals.speech.sr.corpus)

PACK_INDEX = "index.json"
PACK_AUDIO = "audio.bin"
PACK_FORMAT = "signals-sr-pack/1"
SPLITS = ("train", "val", "test")


def is_pack(path: str | Path) -> bool:
    return (Path(path) / PACK_INDEX).is_file()


def read_pack_index(folder: str | Path) -> dict:
    """The pack's ``index.json`` (format checked); clear :class:`DataError` when it is not a pack."""
    path = Path(folder) / PACK_INDEX
    if not path.is_file():
        raise DataError(f"{folder} is not a training pack (no {PACK_INDEX}); build one with `signals speech sr prepare`")
    index = json.loads(path.read_text())
    if index.get("format") != PACK_FORMAT:
        raise DataError(f"{path} has format {index.get('format')!r}, this code reads {PACK_FORMAT!r}")
    return index


def decode_clip(data: bytes, entry: dict, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One pack entry's bytes -> ``float32 [T]`` at ``sr``: decode, mix to mono, trim, gain, resample."""
    if entry["codec"] == "pcm16":
        x = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    elif entry["codec"] == "source":
        try:
            import soundfile as sf
        except ImportError as exc:  # the lent GPU's image has no soundfile: carry its wheel, or use pcm16
            raise DataError("decoding a 'source' pack needs the soundfile package (pip install soundfile, or "
                            "carry its wheel), or rebuild the pack with --pack-codec pcm16") from exc
        x = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)[0].mean(axis=1)
    else:
        raise DataError(f"pack entry {entry.get('id')!r} has unknown codec {entry['codec']!r}")
    x = x[int(entry["start"]) : int(entry["stop"])] * np.float32(10 ** (float(entry["gain_db"]) / 20))
    return resample_poly(x, int(entry["rate"]), sr, 8.0)


def _decode_many(args: tuple[str, list[dict]]) -> list[np.ndarray]:
    path, entries = args
    with open(path, "rb") as fh:
        out = []
        for e in entries:
            fh.seek(int(e["offset"]))
            out.append(decode_clip(fh.read(int(e["nbytes"])), e))
    return out


@dataclass
class Corpus:
    """Training audio at 48 kHz with what is known about each clip.

    ``bandwidth``: the measured content bandwidth (Hz) per clip; ``split``: ``train`` / ``val`` / ``test``
    per clip where the data carries its own split (packs), else empty; ``groups``: speaker or language
    group per clip (packs), else empty.
    """

    wavs: dict[str, np.ndarray]
    bandwidth: dict[str, float]
    split: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)


def load_pack(folder: str | Path, splits: tuple[str, ...] = SPLITS, workers: int = 0,
              ids: set[str] | None = None) -> Corpus:
    """Decode the clips of ``splits`` from a training pack (``workers`` > 1: that many processes); with
    ``ids``, only those clips (the others are not decoded)."""
    folder = Path(folder)
    index = read_pack_index(folder)
    entries = [e for e in index["clips"] if e["split"] in splits and (ids is None or e["id"] in ids)]
    if not entries:
        raise DataError(f"{folder} holds no clips of split(s) {', '.join(splits)}")
    audio = str(folder / PACK_AUDIO)
    if workers > 1 and len(entries) > 1:
        from concurrent.futures import ProcessPoolExecutor

        n = min(workers, len(entries))
        parts = [entries[k::n] for k in range(n)]
        with ProcessPoolExecutor(n) as ex:
            decoded = list(ex.map(_decode_many, [(audio, part) for part in parts]))
        wav_of = {e["id"]: w for part, ws in zip(parts, decoded) for e, w in zip(part, ws)}
    else:
        wav_of = dict(zip((e["id"] for e in entries), _decode_many((audio, entries))))
    return Corpus(
        wavs={e["id"]: wav_of[e["id"]] for e in entries},
        bandwidth={e["id"]: float(e["bandwidth_hz"]) for e in entries},
        split={e["id"]: e["split"] for e in entries},
        groups={e["id"]: e["group"] for e in entries},
    )


def load_training_data(path: str | Path, splits: tuple[str, ...] = ("train", "val"), workers: int = 0) -> Corpus:
    """A pack (its own split and measured bandwidths), a ``.npz`` or an audio folder (bandwidths measured
    here with the runtime's detector; no split)."""
    from signals.speech.sr.postprocess import detect_bandwidth

    if Path(path).is_dir() and is_pack(path):
        return load_pack(path, splits, workers)
    wavs = load_corpus(path)
    return Corpus(wavs, {k: min(detect_bandwidth(v, SAMPLE_RATE), SAMPLE_RATE / 2) for k, v in wavs.items()})


class SRDataset:
    """Random degraded crops of a list of 48 kHz waveforms (a map-style torch dataset).

    Item ``i`` -> ``(low: float32 [segment], high: float32 [segment], rate: int, bandwidth: float)``; ``low``
    is the degraded input at 48 kHz, ``high`` the target and ``bandwidth`` the target's content bandwidth
    in Hz (the clip's measured one, times the speed factor; ``bandwidths=None``: full band). The input
    rate is drawn among those whose Nyquist lies ``band_margin_hz`` below it, so there is always a band
    to generate. ``rate`` is ``VOCODER_RATE`` for vocoder-like crops. Randomness comes from ``(seed, i)``,
    so every DataLoader worker and DDP rank draws different crops without coordination.
    """

    def __init__(self, wavs: list[np.ndarray], cfg: DegradeConfig = DegradeConfig(), length: int = 10**7,
                 seed: int = 0, augment: bool = True, bandwidths: list[float] | None = None,
                 clip_weights: list[float] | None = None):
        if not wavs:
            raise DataError("SRDataset needs at least one waveform")
        self.wavs = [np.asarray(w, dtype=np.float32) for w in wavs]
        self.bandwidths = [float(b) for b in bandwidths] if bandwidths is not None else [SAMPLE_RATE / 2] * len(wavs)
        if len(self.bandwidths) != len(self.wavs):
            raise DataError(f"{len(self.wavs)} waveforms but {len(self.bandwidths)} bandwidths")
        self.cfg, self.length, self.seed, self.augment = cfg, length, seed, augment
        # crops are drawn in proportion to each clip's length (times its clip_weight, if given)
        self.weights = np.array([len(w) for w in self.wavs], dtype=np.float64)
        if clip_weights is not None:
            if len(clip_weights) != len(self.wavs) or not all(np.isfinite(c) and c >= 0 for c in clip_weights):
                raise DataError(f"clip_weights: {len(self.wavs)} finite weights >= 0 needed, got {len(clip_weights)}")
            self.weights *= np.asarray(clip_weights, dtype=np.float64)
        if not self.weights.sum() > 0:
            raise DataError("SRDataset: every clip has weight 0")
        self.weights /= self.weights.sum()
        self.rates = cfg.rates()

    def __len__(self) -> int:
        return self.length

    def rates_below(self, bandwidth: float) -> list[int]:
        """Input rates whose Nyquist stays ``band_margin_hz`` below ``bandwidth`` (else the lowest rate)."""
        ok = [r for r in self.rates if r / 2 <= bandwidth - self.cfg.band_margin_hz]
        return ok or self.rates[:1]

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, int, float]:
        rng = np.random.default_rng([self.seed, int(i)])
        cfg = self.cfg
        k = int(rng.choice(len(self.wavs), p=self.weights))
        wav = self.wavs[k]
        speed = float(rng.uniform(*cfg.speed)) if self.augment else 1.0
        # crop a little extra before changing speed so the final crop is full length
        need = int(math.ceil(cfg.segment * speed)) + 64
        start = int(rng.integers(0, max(1, len(wav) - need)))
        x = wav[start : start + need]
        if self.augment:
            x = speed_perturb(x, speed)
        bandwidth = min(self.bandwidths[k] * speed, SAMPLE_RATE / 2)  # playing faster moves every frequency up
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
        if rng.random() < cfg.vocoder_prob and VOCODER_RATE / 2 <= bandwidth - cfg.band_margin_hz:
            return vocoder_like(x, rng, cfg.vocoder_cutoff), x, VOCODER_RATE, bandwidth
        rate = int(rng.choice(self.rates_below(bandwidth)))
        kind = str(rng.choice(cfg.filters))
        return degrade(x, rate, kind, rng), x, rate, bandwidth


def collate(batch: list[tuple[np.ndarray, np.ndarray, int, float]]):
    """-> ``(low: Tensor[B, T], high: Tensor[B, T], rates: Tensor[B], bandwidths: Tensor[B] float32)``."""
    import torch

    low = torch.from_numpy(np.stack([b[0] for b in batch]))
    high = torch.from_numpy(np.stack([b[1] for b in batch]))
    return (low, high, torch.tensor([b[2] for b in batch]),
            torch.tensor([b[3] for b in batch], dtype=torch.float32))
