"""The shared audio layer: loading any file, its error cases, resampling, levelling, VAD trimming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from signals.errors import AudioError, SignalsError
from signals.speech.audio import (
    check_audio,
    load_audio,
    normalize_loudness,
    resample,
    rms_dbfs,
    speech_seconds,
    trim_long_silences,
    trim_silence,
    vad_flags,
    write_audio,
)

REPO = Path(__file__).resolve().parents[1]


def _tone(seconds: float = 1.0, sr: int = 16000, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _speech(librispeech_root, seconds: float = 4.0) -> np.ndarray:
    wav, sr = load_audio(librispeech_root / "train-clean-100" / "103-1240-0000.flac")
    assert sr == 16000
    return wav[: int(seconds * sr)]


# --- error cases: every one is an AudioError that names the file -------------------------------------

def test_missing_and_folder(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty.wav is an empty file \(0 bytes\)"):
        load_audio(p)


def test_wav_without_samples(tmp_path):
    p = tmp_path / "nosamples.wav"
    sf.write(p, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="nosamples.wav contains no audio samples"):
        load_audio(p)


@pytest.mark.parametrize("content", [b"hello, this is text and not audio\n" * 20, bytes(range(256)) * 8,
                                     b"RIFF\x10\x00\x00\x00WAVEfmt garbage"])
def test_corrupt_or_non_audio(tmp_path, content):
    p = tmp_path / "notaudio.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError, match="notaudio.wav is not a readable audio file"):
        load_audio(p)


def test_nan_samples(tmp_path):
    wav = _tone(0.5)
    wav[100:103] = np.nan
    p = tmp_path / "nan.wav"
    sf.write(p, wav, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav contains 3 NaN or infinite samples"):
        load_audio(p)
    with pytest.raises(AudioError, match="NaN"):
        check_audio(wav, 16000, name="x")


def test_silent_too_short_and_empty_in_memory():
    with pytest.raises(AudioError, match="clip is silent"):
        check_audio(np.zeros(16000, np.float32), 16000, name="clip")
    with pytest.raises(AudioError, match=r"clip is too short: 0.100 s"):
        check_audio(_tone(0.1), 16000, name="clip", min_seconds=0.5)
    with pytest.raises(AudioError, match="clip is empty"):
        check_audio(np.zeros(0, np.float32), 16000, name="clip")
    assert isinstance(AudioError("x"), SignalsError)


# --- formats: channels, bit depth, rates ----------------------------------------------------------------

def test_six_channels_are_averaged(tmp_path):
    rng = np.random.default_rng(0)
    data = (0.1 * rng.standard_normal((8000, 6))).astype(np.float32)
    p = tmp_path / "six.wav"
    sf.write(p, data, 16000, subtype="FLOAT")
    wav, sr = load_audio(p)
    assert sr == 16000 and wav.shape == (8000,) and wav.dtype == np.float32
    np.testing.assert_allclose(wav, data.mean(axis=1), atol=1e-6)
    multi, _ = load_audio(p, mono=False)
    assert multi.shape == (6, 8000)


def test_stereo_mix(tmp_path):
    left, right = _tone(0.5, amp=0.5), _tone(0.5, freq=1000.0, amp=0.2)
    p = tmp_path / "stereo.flac"
    sf.write(p, np.stack([left, right], axis=1), 16000)
    wav, _ = load_audio(p)
    np.testing.assert_allclose(wav, (left + right) / 2, atol=2e-4)  # 16-bit FLAC quantisation


def test_8bit_wav_is_scaled_to_unit_range(tmp_path):
    ref = _tone(0.5, amp=0.8)
    p = tmp_path / "u8.wav"
    sf.write(p, ref, 16000, subtype="PCM_U8")
    wav, _ = load_audio(p)
    assert np.abs(wav).max() <= 1.0
    np.testing.assert_allclose(wav, ref, atol=1.5 / 128)  # one 8-bit step


def test_load_resamples_and_resample_keeps_pitch(tmp_path):
    p = write_audio(tmp_path / "tone44.wav", _tone(1.0, sr=44100, freq=1000.0), 44100)
    wav, sr = load_audio(p, sample_rate=16000)
    assert sr == 16000 and abs(len(wav) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(wav[1000:-1000]))
    peak_hz = np.argmax(spectrum) * 16000 / len(wav[1000:-1000])
    assert abs(peak_hz - 1000.0) < 2.0
    with pytest.raises(AudioError, match="sample rates must be positive"):
        resample(wav, 0, 16000)


# --- levelling and trimming ----------------------------------------------------------------------------

def test_normalize_loudness():
    quiet = _tone(1.0, amp=0.001)
    assert abs(rms_dbfs(normalize_loudness(quiet, -30.0)) - (-30.0)) < 1e-3
    loud = _tone(1.0, amp=0.9)
    assert np.array_equal(normalize_loudness(loud, -30.0, increase_only=True), loud)
    assert abs(rms_dbfs(normalize_loudness(loud, -30.0)) - (-30.0)) < 1e-3


def test_trim_silence_cuts_edges_only():
    tone = _tone(0.5)
    wav = np.concatenate([np.zeros(8000, np.float32), tone, np.zeros(4000, np.float32), tone,
                          np.zeros(8000, np.float32)])
    out = trim_silence(wav, 16000)
    assert abs(len(out) - (2 * len(tone) + 4000)) <= 400  # one 25 ms frame each side


def test_vad_removes_a_long_pause_in_real_speech(librispeech_root):
    speech = _speech(librispeech_root)
    gap = np.zeros(32000, np.float32)  # 2 s of digital silence in the middle
    wav = np.concatenate([speech[:32000], gap, speech[32000:]])
    out = trim_long_silences(wav, 16000)
    base = trim_long_silences(speech, 16000)
    assert len(out) < len(wav) - 30000
    # The gap goes, except the up to 6 + 1 windows (30 ms each) the dilation keeps beside speech on each side.
    assert 0 <= len(out) - len(base) <= 2 * 7 * 480 + 2 * 480
    assert vad_flags(speech, 16000).mean() > 0.5  # it is speech


def test_vad_errors():
    with pytest.raises(AudioError, match="no speech detected"):
        trim_long_silences(np.zeros(16000, np.float32), 16000, name="quiet.wav")
    with pytest.raises(AudioError, match="resample first"):
        trim_long_silences(_tone(1.0, sr=22050), 22050)
    with pytest.raises(AudioError, match="too short for voice activity detection"):
        trim_long_silences(_tone(0.01), 16000)


# --- declared sample rates, speech presence, atomic writes -------------------------------------------------

@pytest.mark.parametrize("rate", [1, 3999, 384001, 1_000_000])
def test_implausible_declared_rate_is_refused_before_reading(tmp_path, rate):
    import struct

    p = tmp_path / "rate.wav"
    sf.write(p, _tone(0.5), 16000)
    data = bytearray(p.read_bytes())
    i = data.index(b"fmt ")  # a damaged header: the samples stay, the declared rate changes
    data[i + 12 : i + 20] = struct.pack("<II", rate, 2 * rate)
    p.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=rf"rate.wav declares a sample rate of {rate} Hz"):
        load_audio(p)  # at 1 Hz this would otherwise resample 8000 samples into 128 million


def test_lowest_and_highest_rates_load(tmp_path):
    for rate in (4000, 384000):
        p = write_audio(tmp_path / f"r{rate}.wav", _tone(0.1, sr=rate, freq=300.0), rate)
        assert load_audio(p)[1] == rate


def test_speech_seconds_tells_speech_from_noise_and_tones():
    rng = np.random.default_rng(0)
    speech, sr = load_audio(REPO / "examples" / "speech" / "voice_a_1.wav")
    assert speech_seconds(normalize_loudness(speech, -30.0, increase_only=True), sr) > 3.5
    noisy = speech + 0.3 * np.sqrt(np.mean(speech**2)) * rng.standard_normal(len(speech))  # SNR 10.5 dB
    assert speech_seconds(noisy.astype(np.float32), sr) > 2.0  # about 10 dB SNR in white noise still counts
    for amp in (0.05, 0.5):  # the VAD alone calls loud white noise speech
        white = (amp * rng.standard_normal(4 * sr)).astype(np.float32)
        assert vad_flags(white, sr).mean() > 0.9 and speech_seconds(white, sr) == 0.0
    assert speech_seconds(np.zeros(sr, np.float32), sr) == 0.0
    assert speech_seconds(_tone(0.01, sr=16000), 16000) == 0.0  # shorter than one window
    # any rate: resampled to 16 kHz for the VAD
    assert speech_seconds(resample(speech, sr, 22050), 22050) > 3.5


def test_write_audio_is_atomic_and_refuses_bad_paths(tmp_path):
    from signals.errors import OutputError

    out = write_audio(tmp_path / "new" / "a.wav", _tone(0.2), 16000)
    assert sf.info(out).samplerate == 16000
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.wav"]
    with pytest.raises(OutputError, match="is a folder"):
        write_audio(tmp_path, _tone(0.2), 16000)
    with pytest.raises(OutputError, match="unsupported audio format"):
        write_audio(tmp_path / "a.xyz", _tone(0.2), 16000)
    with pytest.raises(OutputError, match="--float"):
        write_audio(tmp_path / "a.flac", _tone(0.2), 16000, subtype="FLOAT")
