"""The audio layer every speech model uses: load, mix to mono, resample, validate, normalise, trim.

Torch-free (numpy, soundfile, soxr). Every failure is an :class:`~signals.errors.AudioError` that
names the file and the problem, never a stack trace from inside libsndfile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from signals.errors import AudioError

# Peak below this (about -80 dBFS) is treated as digital silence.
SILENCE_PEAK = 1e-4
# The one list of audio file suffixes (lower case) that loaders look for in folders and the app offers
# for upload: all read by libsndfile >= 1.1 (Ogg Opus and MP3 included).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
# Declared sample rates outside this range are refused when a file is opened. HiFi-SR needs at least
# 4 kHz (the lowest rate it extends) and nothing below carries intelligible speech; 384 kHz is the
# highest rate audio interfaces record. The range also bounds memory: resampling a damaged header's
# "1 Hz" to 16 kHz would multiply the samples by 16000 (a 1 MB file would become 64 GB of float32).
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384000


def open_audio(path: str | Path):
    """Open an audio file for (streamed) reading: a ``soundfile.SoundFile``, or a clear :class:`AudioError`."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path} is an empty file (0 bytes)")
    try:
        fh = sf.SoundFile(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError by format
        raise _unreadable(path, exc) from exc
    try:
        check_sample_rate(int(fh.samplerate), name=str(path))
        if fh.channels < 1:
            raise AudioError(f"{path} declares {fh.channels} channels; it is damaged or not an audio file")
    except BaseException:
        fh.close()
        raise
    return fh


def check_sample_rate(sample_rate: int, name: str = "audio") -> int:
    """Refuse a sample rate outside ``MIN_SAMPLE_RATE ... MAX_SAMPLE_RATE`` (usually a damaged header)."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{name} declares a sample rate of {sample_rate} Hz; supported are {MIN_SAMPLE_RATE} to "
                         f"{MAX_SAMPLE_RATE} Hz (a damaged header, or not a recording?): re-export the file")
    return sample_rate


def _unreadable(path: Path, exc: Exception) -> AudioError:
    return AudioError(
        f"{path} is not a readable audio file ({exc}). Supported: WAV, FLAC, OGG/Vorbis, MP3 and "
        "other formats libsndfile reads."
    )


def load_audio(
    path: str | Path,
    sample_rate: int | None = None,
    mono: bool = True,
) -> tuple[np.ndarray, int]:
    """Read any WAV/FLAC/OGG/... file soundfile understands.

    Returns ``(wav, sr)``: ``float32 [T]`` when ``mono`` (channels averaged), else ``float32 [C, T]``;
    resampled to ``sample_rate`` when given. Integer formats (8/16/24/32-bit) are scaled to [-1, 1].
    """
    path = Path(path)
    with open_audio(path) as fh:
        sr = int(fh.samplerate)
        try:
            data = fh.read(dtype="float32", always_2d=True)
        except Exception as exc:  # a header that opens but a body that does not decode
            raise _unreadable(path, exc) from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path} contains no audio samples")
    wav = data.mean(axis=1) if mono else data.T
    wav = np.ascontiguousarray(wav, dtype=np.float32)
    check_finite(wav, name=str(path))
    if sample_rate is not None and sr != sample_rate:
        wav = resample(wav, sr, sample_rate)
        sr = sample_rate
    return wav, int(sr)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """High-quality (soxr VHQ) resampling along the last axis; ``float32`` out."""
    if orig_sr <= 0 or target_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    wav = np.asarray(wav, dtype=np.float32)
    if orig_sr == target_sr:
        return wav  # before importing soxr: training machines without it validate at 48 kHz
    import soxr

    if wav.ndim == 1:
        return soxr.resample(wav, orig_sr, target_sr, quality="VHQ").astype(np.float32)
    # soxr wants [T, C]
    flat = wav.reshape(-1, wav.shape[-1]).T
    out = soxr.resample(np.ascontiguousarray(flat), orig_sr, target_sr, quality="VHQ").T
    return np.ascontiguousarray(out.reshape(*wav.shape[:-1], -1), dtype=np.float32)


def check_finite(wav: np.ndarray, name: str = "audio") -> None:
    if not np.all(np.isfinite(wav)):
        bad = int(np.size(wav) - np.count_nonzero(np.isfinite(wav)))
        raise AudioError(f"{name} contains {bad} NaN or infinite samples")


def check_audio(
    wav: np.ndarray,
    sample_rate: int,
    name: str = "audio",
    min_seconds: float = 0.0,
    allow_silence: bool = False,
) -> np.ndarray:
    """Validate an in-memory signal; returns it as ``float32``.

    Raises :class:`AudioError` for empty, NaN/inf, silent or too-short audio.
    """
    wav = np.asarray(wav, dtype=np.float32)
    if wav.size == 0:
        raise AudioError(f"{name} is empty (0 samples)")
    check_finite(wav, name)
    seconds = wav.shape[-1] / float(sample_rate)
    if seconds < min_seconds:
        raise AudioError(f"{name} is too short: {seconds:.3f} s, at least {min_seconds:.2f} s is needed")
    if not allow_silence and float(np.max(np.abs(wav))) < SILENCE_PEAK:
        raise AudioError(f"{name} is silent (peak below {20 * np.log10(SILENCE_PEAK):.0f} dBFS)")
    return wav


def rms_dbfs(wav: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(wav, dtype=np.float64)) + 1e-12))


def normalize_loudness(wav: np.ndarray, target_dbfs: float = -30.0, increase_only: bool = False,
                       decrease_only: bool = False) -> np.ndarray:
    """Scale to an RMS level of ``target_dbfs`` (the GE2E encoder's convention)."""
    change = target_dbfs - rms_dbfs(wav)
    if (change < 0 and increase_only) or (change > 0 and decrease_only):
        return wav
    return (wav * 10 ** (change / 20)).astype(np.float32)


def write_audio(path: str | Path, wav: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write ``float [T]`` or ``[C, T]`` audio atomically (:mod:`signals.outputs`: a temporary file renamed
    into place, missing folders created); clips to [-1, 1] unless ``subtype`` is ``FLOAT``. The format follows
    the suffix (lossy formats get their own subtype); an unwritable path is an :class:`OutputError`."""
    from signals.outputs import write_audio as write_atomic

    if subtype not in ("PCM_16", "FLOAT"):
        raise ValueError(f"subtype must be PCM_16 or FLOAT, got {subtype!r}")
    return write_atomic(path, wav, sample_rate, float32=subtype == "FLOAT")


# --- voice activity detection ---------------------------------------------------------------------
# WebRTC's VAD (the `webrtcvad-wheels` package, import name `webrtcvad`) only accepts 16-bit mono PCM
# at these rates, in 10/20/30 ms windows.
VAD_SAMPLE_RATES = (8000, 16000, 32000, 48000)


def vad_flags(wav: np.ndarray, sample_rate: int, window_ms: int = 30, mode: int = 3) -> np.ndarray:
    """Per-window speech decision of WebRTC's VAD: ``bool [T // window]`` (a trailing partial window is dropped).

    ``mode`` 0..3 is the VAD's aggressiveness (3 = most eager to call a window non-speech).
    """
    try:
        import webrtcvad
    except ImportError as exc:  # pragma: no cover - it is a package dependency
        raise AudioError("voice activity detection needs the package `webrtcvad-wheels`") from exc

    if sample_rate not in VAD_SAMPLE_RATES:
        raise AudioError(f"the VAD works at {VAD_SAMPLE_RATES} Hz, got {sample_rate} Hz: resample first")
    if window_ms not in (10, 20, 30):
        raise AudioError(f"the VAD window must be 10, 20 or 30 ms, got {window_ms}")
    window = window_ms * sample_rate // 1000
    n = len(wav) // window
    # Clip before the int16 cast: an out-of-range float would wrap around to the opposite sign.
    pcm = np.round(np.clip(wav[: n * window], -1.0, 1.0) * 32767).astype("<i2").tobytes()
    vad = webrtcvad.Vad(mode)
    step = 2 * window  # bytes per window
    return np.array([vad.is_speech(pcm[i * step : (i + 1) * step], sample_rate) for i in range(n)], dtype=bool)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average with zero padding, same length as ``x`` (Resemblyzer's definition)."""
    padded = np.concatenate((np.zeros((width - 1) // 2), x, np.zeros(width // 2)))
    ret = np.cumsum(padded, dtype=float)
    ret[width:] = ret[width:] - ret[:-width]
    return ret[width - 1 :] / width


def trim_long_silences(
    wav: np.ndarray,
    sample_rate: int = 16000,
    window_ms: int = 30,
    moving_average_width: int = 8,
    max_silence_windows: int = 6,
    mode: int = 3,
    name: str = "audio",
) -> np.ndarray:
    """Remove pauses longer than ``max_silence_windows`` VAD windows; ``float32 [T'] `` with ``T' <= T``.

    The GE2E / Resemblyzer recipe: WebRTC VAD per window, smoothed by a moving average (so isolated
    flips do not count), rounded, then dilated by ``max_silence_windows`` so short pauses and the
    edges of words survive. The tail that does not fill a whole window is dropped, as in Resemblyzer.
    Raises :class:`AudioError` when no speech at all is found.
    """
    wav = np.asarray(wav, dtype=np.float32)
    window = window_ms * sample_rate // 1000
    flags = vad_flags(wav, sample_rate, window_ms, mode)
    if flags.size == 0:
        raise AudioError(f"{name} is too short for voice activity detection ({len(wav)} samples < {window})")
    mask = np.round(_moving_average(flags.astype(float), moving_average_width)).astype(bool)
    from scipy.ndimage import binary_dilation

    mask = binary_dilation(mask, np.ones(max_silence_windows + 1))
    if not mask.any():
        raise AudioError(f"{name}: no speech detected by the voice activity detector")
    return wav[: flags.size * window][np.repeat(mask, window)]


# --- is it speech? --------------------------------------------------------------------------------
# WebRTC's VAD calls loud broadband noise (white, pink) and steady tones "speech": it mostly looks at
# energy in its sub-bands. A window therefore counts as speech only when the VAD says so AND its
# spectrum between SPEECH_BAND_HZ is not noise-flat: voiced speech has harmonics (spectral flatness
# ~0.001-0.05 in that band), white noise ~0.57, pink ~0.4. Measured on the example voices, speech keeps
# well over half of its windows down to 0 dB SNR in white noise while 4 s of white/pink/uniform noise at
# any level keep none (after the same 8-window smoothing the encoder's VAD trimming uses).
SPEECH_BAND_HZ = (100.0, 3000.0)
SPEECH_MAX_FLATNESS = 0.3


def spectral_flatness(wav: np.ndarray, sample_rate: int, window: int, band: tuple[float, float] = SPEECH_BAND_HZ
                      ) -> np.ndarray:
    """Per-window spectral flatness (geometric / arithmetic mean of the power) within ``band``: ``float [T // window]``."""
    n = len(wav) // window
    if n == 0:
        return np.zeros(0)
    frames = np.asarray(wav[: n * window], dtype=np.float64).reshape(n, window) * np.hanning(window)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(window, 1.0 / sample_rate)
    power = power[:, (freqs >= band[0]) & (freqs <= band[1])] + 1e-20
    return np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)


def speech_seconds(wav: np.ndarray, sample_rate: int, window_ms: int = 30, mode: int = 3,
                   moving_average_width: int = 8) -> float:
    """Seconds of ``wav: float [T]`` that sound like speech: VAD windows that are not noise-flat, smoothed.

    Resamples to 16 kHz when the VAD does not take ``sample_rate``. Callers that level their input (the
    speaker encoder raises quiet recordings to -30 dBFS) should pass the levelled signal: the VAD's
    decision depends on the level.
    """
    wav = np.asarray(wav, dtype=np.float32)
    if sample_rate not in VAD_SAMPLE_RATES:
        wav, sample_rate = resample(wav, sample_rate, 16000), 16000
    window = window_ms * sample_rate // 1000
    flags = vad_flags(wav, sample_rate, window_ms, mode)
    if flags.size == 0:
        return 0.0
    flags &= spectral_flatness(wav, sample_rate, window) < SPEECH_MAX_FLATNESS
    # the same smoothing as trim_long_silences: an isolated window (a click, a breath) is not speech
    smooth = np.round(_moving_average(flags.astype(float), moving_average_width)).astype(bool)
    return float(smooth.sum() * window / sample_rate)


def silence_bounds(wav: np.ndarray, sample_rate: int, top_db: float = 40.0, frame_ms: float = 25.0) -> tuple[int, int]:
    """``(start, stop)`` sample indices of ``wav: [T]`` without its leading and trailing silence (frames more
    than ``top_db`` below the loudest); ``(0, T)`` when the signal is shorter than one frame."""
    wav = np.asarray(wav, dtype=np.float32)
    frame = max(1, int(sample_rate * frame_ms / 1000))
    n = len(wav) // frame
    if n == 0:
        return 0, len(wav)
    energy = np.mean(np.square(wav[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    db = 10 * np.log10(energy + 1e-20)
    loud = np.flatnonzero(db > db.max() - top_db)
    return int(loud[0] * frame), int(min(len(wav), (loud[-1] + 1) * frame))


def trim_silence(wav: np.ndarray, sample_rate: int, top_db: float = 40.0, frame_ms: float = 25.0) -> np.ndarray:
    """Cut leading and trailing silence (frames more than ``top_db`` below the loudest); ``float32 [T']``.

    Energy-based, any sample rate; keeps pauses inside the signal (use :func:`trim_long_silences` for those).
    """
    wav = np.asarray(wav, dtype=np.float32)
    start, stop = silence_bounds(wav, sample_rate, top_db, frame_ms)
    return wav[start:stop]
