"""Bad-input cases of the speech commands (``signals speech embed | verify | upsample | clone`` and the
``tts`` / ``sr`` / ``vocoder`` / ``encoder`` sub-commands) for ``tests/test_bad_inputs.py``.

Groups: output paths refused before the work (1), output = input (2), atomic outputs (3; the interrupted
run itself is a unit test in ``test_sr.py``), numeric ranges and declared sample rates (4), speech
presence (5), ``embed -o`` names and folders as inputs (6), other malformed inputs (7).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from badinput import Case

SR = 16000


def _write(path: Path, wav: np.ndarray, rate: int = SR, subtype: str = "PCM_16") -> None:
    import soundfile as sf

    sf.write(str(path), wav, rate, subtype=subtype)


def _speech(f: dict[str, Path], seconds: float | None = None, name: str = "voice_a") -> np.ndarray:
    import soundfile as sf

    wav, _ = sf.read(str(f[name]), dtype="float32")
    return wav if seconds is None else wav[: int(seconds * SR)]


def _noise(f: dict[str, Path]) -> None:
    """Two unrelated white-noise files at -20 dBFS RMS: the VAD alone calls both "speech"."""
    rng = np.random.default_rng(0)
    for name in ("noise1.wav", "noise2.wav"):
        _write(f["tmp"] / name, (0.1 * rng.standard_normal(4 * SR)).astype(np.float32))


def _patched_rate(rate: int):
    """A valid WAV of the example speech whose header then declares ``rate`` Hz (a damaged header)."""

    def setup(f: dict[str, Path]) -> None:
        data = bytearray(f["wav"].read_bytes())
        i = data.index(b"fmt ")  # chunk id, size (4), format (2), channels (2), rate (4), byte rate (4)
        data[i + 12 : i + 16] = struct.pack("<I", rate)
        data[i + 16 : i + 20] = struct.pack("<I", rate * 2)
        (f["tmp"] / f"rate{rate}.wav").write_bytes(bytes(data))

    return setup


def _short(seconds: float, name: str):
    def setup(f: dict[str, Path]) -> None:
        _write(f["tmp"] / name, _speech(f, seconds))

    return setup


def _nan(f: dict[str, Path]) -> None:
    wav = _speech(f)
    wav[1000:1003] = np.nan
    _write(f["tmp"] / "nan.wav", wav, subtype="FLOAT")


def _six_channels(f: dict[str, Path]) -> None:
    _write(f["tmp"] / "six.wav", np.stack([_speech(f)] * 6, axis=1))


def _empty(f: dict[str, Path]) -> None:
    (f["tmp"] / "empty.wav").write_bytes(b"")


def _text(f: dict[str, Path]) -> None:
    (f["tmp"] / "text.wav").write_text("this is a text file, not audio\n" * 50)


def _silent(f: dict[str, Path]) -> None:
    _write(f["tmp"] / "silent.wav", np.zeros(3 * SR, np.float32))


def _loud_float(f: dict[str, Path]) -> None:
    wav = _speech(f)
    _write(f["tmp"] / "loud.wav", 1.5 * wav / np.abs(wav).max(), subtype="FLOAT")


def _readonly(f: dict[str, Path]) -> None:
    ro = f["tmp"] / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)


def _existing_output(f: dict[str, Path]) -> None:
    (f["tmp"] / "out.wav").write_bytes(b"an existing output that a failed run must leave alone")
    _nan(f)


def _audio_named_npy(f: dict[str, Path]) -> None:
    (f["tmp"] / "a.npy").write_bytes(f["voice_a"].read_bytes())


# ---- checks of ok cases -------------------------------------------------------------------------------------

def _is_48k(path: str, channels: int = 1):
    def check(f: dict[str, Path], out: str) -> None:
        import soundfile as sf

        info = sf.info(path.format(**{k: str(v) for k, v in f.items()}))
        assert info.samplerate == 48000 and info.channels == channels and info.frames > 0, info

    return check


def _npy_rows(path: str, rows: int):
    def check(f: dict[str, Path], out: str) -> None:
        real = Path(path.format(**{k: str(v) for k, v in f.items()}))
        emb = np.load(real)
        assert emb.shape == (rows, 256) and np.isfinite(emb).all()
        assert f"wrote {real}:" in out, out  # the message names the file that was written

    return check


def _stdout_has(*needles: str, absent: tuple[str, ...] = ()):
    def check(f: dict[str, Path], out: str) -> None:
        for n in needles:
            assert n in out, f"{n!r} not in {out!r}"
        for n in absent:
            assert n not in out, f"{n!r} in {out!r}"

    return check


UP = ("speech", "upsample")
CLONE = ("speech", "clone", "--text", "Hi.")

CASES = [
    # 1. output paths: one error line naming the path, before the work, nothing created
    Case("speech-upsample-out-proc", (*UP, "{wav}", "-o", "/proc/x.wav"), match=r"/proc/x\.wav"),
    Case("speech-upsample-out-readonly-folder", (*UP, "{wav}", "-o", "{tmp}/ro/x.wav"), match=r"ro.*not writable",
         setup=_readonly, obeys_permissions=True),
    Case("speech-upsample-out-no-extension", (*UP, "{wav}", "-o", "{tmp}/out/noext"),
         match=r"out/noext.*no extension"),
    Case("speech-upsample-out-unknown-format", (*UP, "{wav}", "-o", "{tmp}/x.xyz"), match=r"x\.xyz.*\.xyz"),
    Case("speech-upsample-out-flac-float", (*UP, "{wav}", "-o", "{tmp}/x.flac", "--float"),
         match=r"x\.flac.*--float"),
    Case("speech-upsample-out-ogg-float", (*UP, "{wav}", "-o", "{tmp}/x.ogg", "--float"), match=r"x\.ogg.*--float"),
    Case("speech-upsample-out-mp3", (*UP, "{wav}", "-o", "{tmp}/x.mp3"), expect="ok", outputs=("{tmp}/x.mp3",),
         check=_is_48k("{tmp}/x.mp3")),
    Case("speech-upsample-out-is-folder", (*UP, "{wav}", "-o", "{tmp}"), match=r"is a folder"),
    Case("speech-upsample-out-parent-is-file", (*UP, "{wav}", "-o", "{voice_a}/x.wav"),
         match=r"voice_a_1\.wav is a file, not a folder"),
    Case("speech-upsample-out-dev-full", (*UP, "{wav}", "-o", "/dev/full"), match=r"/dev/full.*not a regular file"),
    Case("speech-upsample-frame-comb-too-wide", (*UP, "{wav}", "-o", "{tmp}/x.wav", "--frame-comb", "100000"),
         match=r"frame_comb_radius must be within 0 \.\.\. \d+ frames"),
    Case("speech-upsample-frame-comb-negative", (*UP, "{wav}", "-o", "{tmp}/x.wav", "--frame-comb", "-1"),
         match=r"--frame-comb: must be at least 0"),
    Case("speech-embed-out-proc", ("speech", "embed", "{wav}", "--output", "/proc/x.npy"), match=r"/proc/x\.npy"),
    Case("speech-embed-out-readonly-folder", ("speech", "embed", "{wav}", "--output", "{tmp}/ro/x.npy"),
         match=r"ro.*not writable", setup=_readonly, obeys_permissions=True),
    Case("speech-embed-out-parent-is-file", ("speech", "embed", "{wav}", "-o", "{wav}/e.npy"),
         match=r"lowres_16k\.wav is a file"),
    Case("speech-clone-out-proc", (*CLONE, "--reference", "{voice_a}", "-o", "/proc/x.wav"), match=r"/proc/x\.wav"),
    Case("speech-clone-out-opus-22050", (*CLONE, "--reference", "{voice_a}", "-o", "{tmp}/x.opus"),
         match=r"x\.opus.*22050"),

    # 2. output = input: refused (input intact) unless --overwrite, which still goes through a temporary file
    Case("speech-upsample-out-is-input", (*UP, "{wav}", "-o", "{wav}"), match="input", keep=("wav",)),
    Case("speech-upsample-overwrite", (*UP, "{wav}", "-o", "{wav}", "--overwrite"), expect="ok",
         outputs=("{wav}",), check=_is_48k("{wav}")),
    Case("speech-embed-out-is-input", ("speech", "embed", "{tmp}/a.npy", "-o", "{tmp}/a.npy"), match="input",
         setup=_audio_named_npy, keep=("{tmp}/a.npy",)),
    Case("speech-embed-overwrite", ("speech", "embed", "{tmp}/a.npy", "-o", "{tmp}/a.npy", "--overwrite"),
         expect="ok", setup=_audio_named_npy, outputs=("{tmp}/a.npy",), check=_npy_rows("{tmp}/a.npy", 1)),
    Case("speech-clone-out-is-reference", (*CLONE, "--reference", "{voice_a}", "-o", "{voice_a}"), match="input",
         keep=("voice_a",)),

    # 3. a failed run leaves an existing output as it was (and no temporary file)
    Case("speech-upsample-failure-keeps-old-output", (*UP, "{tmp}/nan.wav", "-o", "{tmp}/out.wav"), match="NaN",
         setup=_existing_output, keep=("{tmp}/out.wav",)),

    # 4. numeric ranges (usage errors naming the option) and declared sample rates
    Case("speech-upsample-threads-0", (*UP, "{wav}", "-o", "{tmp}/x.wav", "--threads", "0"), match="--threads"),
    Case("speech-embed-threads-negative", ("speech", "embed", "{wav}", "--threads", "-1"), match="--threads"),
    Case("speech-verify-threads-0", ("speech", "verify", "{voice_a}", "{voice_b}", "--threads", "0"),
         match="--threads"),
    Case("speech-clone-threads-0", (*CLONE, "--reference", "{voice_a}", "-o", "{tmp}/x.wav", "--threads", "0"),
         match="--threads"),
    Case("speech-clone-seed-negative", (*CLONE, "--reference", "{voice_a}", "-o", "{tmp}/x.wav", "--seed", "-3"),
         match="--seed"),
    Case("speech-verify-threshold-nan", ("speech", "verify", "{voice_a}", "{voice_b}", "--threshold", "nan"),
         match="--threshold.*finite"),
    Case("speech-verify-threshold-inf", ("speech", "verify", "{voice_a}", "{voice_b}", "--threshold=-inf"),
         match="--threshold.*finite"),
    Case("speech-sr-evaluate-rate-out-of-range", ("speech", "sr", "evaluate", "{tmp}", "--rates", "100"),
         match="--rates.*4000 and 48000"),
    Case("speech-sr-evaluate-limit-0", ("speech", "sr", "evaluate", "{tmp}", "--limit", "0"), match="--limit"),
    Case("speech-encoder-evaluate-threads-0", ("speech", "encoder", "evaluate", "{tmp}", "--threads", "0"),
         match="--threads"),
    Case("speech-vocoder-evaluate-threads-0", ("speech", "vocoder", "evaluate", "{tmp}", "--threads", "0"),
         match="--threads"),
    Case("speech-tts-corpus-utterances-0", ("speech", "tts", "corpus", "--out", "{tmp}/c", "--utterances", "0"),
         match="--utterances"),
    Case("speech-tts-evaluate-sentences-0", ("speech", "tts", "evaluate", "--sentences", "0"), match="--sentences"),
    Case("speech-embed-rate-1hz", ("speech", "embed", "{tmp}/rate1.wav"), match=r"rate1\.wav.*\b1 Hz",
         setup=_patched_rate(1), isolate=True),
    Case("speech-verify-rate-1hz", ("speech", "verify", "{tmp}/rate1.wav", "{voice_a}"), match=r"rate1\.wav.*\b1 Hz",
         setup=_patched_rate(1), isolate=True),
    Case("speech-upsample-rate-1hz", (*UP, "{tmp}/rate1.wav", "-o", "{tmp}/x.wav"), match=r"rate1\.wav.*\b1 Hz",
         setup=_patched_rate(1), isolate=True),
    Case("speech-clone-reference-rate-1hz", (*CLONE, "--reference", "{tmp}/rate1.wav", "-o", "{tmp}/x.wav"),
         match=r"rate1\.wav.*\b1 Hz", setup=_patched_rate(1), isolate=True),
    Case("speech-embed-rate-1mhz", ("speech", "embed", "{tmp}/rate1000000.wav"), match=r"1000000 Hz",
         setup=_patched_rate(1_000_000), isolate=True),

    # 5. speech presence: noise is refused, too little speech is refused, short speech is low confidence
    Case("speech-verify-white-noise", ("speech", "verify", "{tmp}/noise1.wav", "{tmp}/noise2.wav"),
         match=r"noise1\.wav: only 0\.\d+ s of speech", setup=_noise),
    Case("speech-embed-white-noise", ("speech", "embed", "{voice_a}", "{tmp}/noise2.wav"),
         match=r"noise2\.wav: only .* s of speech", setup=_noise),
    Case("speech-clone-reference-white-noise", (*CLONE, "--reference", "{tmp}/noise1.wav", "-o", "{tmp}/x.wav"),
         match=r"noise1\.wav: only .* s of speech", setup=_noise),
    Case("speech-verify-short-speech", ("speech", "verify", "{tmp}/short.wav", "{voice_a}"),
         match=r"short\.wav: only .* s of speech.*at least 1\.0 s", setup=_short(0.6, "short.wav")),
    Case("speech-clone-reference-short-speech", (*CLONE, "--reference", "{tmp}/short.wav", "-o", "{tmp}/x.wav"),
         match=r"short\.wav: only .* s of speech", setup=_short(0.6, "short.wav")),
    Case("speech-verify-low-confidence", ("speech", "verify", "{tmp}/s15.wav", "{voice_a}"), expect="ok",
         setup=_short(1.5, "s15.wav"), check=_stdout_has("low confidence")),
    Case("speech-verify-different-speakers", ("speech", "verify", "{voice_a}", "{voice_b}"), expect="ok",
         check=_stdout_has("different speakers", absent=("low confidence",))),
    Case("speech-verify-silent", ("speech", "verify", "{tmp}/silent.wav", "{voice_a}"), match=r"silent\.wav.*silent",
         setup=_silent),
    Case("speech-upsample-above-full-scale", (*UP, "{tmp}/loud.wav", "-o", "{tmp}/loud48.wav"), expect="ok",
         setup=_loud_float, outputs=("{tmp}/loud48.wav",), check=_is_48k("{tmp}/loud48.wav")),

    # 6. embed writes exactly the file it names; a folder as input says so
    Case("speech-embed-out-no-npy-suffix", ("speech", "embed", "{wav}", "-o", "{tmp}/name"),
         match=r"name.*\.npy"),
    Case("speech-embed-out-npy", ("speech", "embed", "{voice_a}", "{voice_b}", "-o", "{tmp}/sub/e.npy"), expect="ok",
         outputs=("{tmp}/sub/e.npy",), check=_npy_rows("{tmp}/sub/e.npy", 2)),
    Case("speech-embed-input-folder", ("speech", "embed", "{tmp}"), match="is a folder"),
    Case("speech-verify-input-folder", ("speech", "verify", "{voice_a}", "{tmp}"), match="is a folder"),
    Case("speech-upsample-input-folder", (*UP, "{tmp}", "-o", "{tmp}/x.wav"), match="is a folder"),
    Case("speech-clone-text-file-folder", (*CLONE[:2], "--reference", "{voice_a}", "--text-file", "{tmp}",
                                           "-o", "{tmp}/x.wav"), match="is a folder"),

    # 7. malformed inputs and missing models
    Case("speech-upsample-empty-file", (*UP, "{tmp}/empty.wav", "-o", "{tmp}/x.wav"), match=r"empty\.wav.*empty",
         setup=_empty),
    Case("speech-embed-empty-file", ("speech", "embed", "{tmp}/empty.wav"), match=r"empty\.wav.*empty",
         setup=_empty),
    Case("speech-embed-text-file", ("speech", "embed", "{tmp}/text.wav"), match=r"text\.wav is not a readable audio",
         setup=_text),
    Case("speech-upsample-text-file", (*UP, "{tmp}/text.wav", "-o", "{tmp}/x.wav"),
         match=r"text\.wav is not a readable audio", setup=_text),
    Case("speech-upsample-six-channels", (*UP, "{tmp}/six.wav", "-o", "{tmp}/x.wav"), match=r"six\.wav has 6 channels",
         setup=_six_channels),
    Case("speech-embed-six-channels", ("speech", "embed", "{tmp}/six.wav", "-o", "{tmp}/six.npy"), expect="ok",
         setup=_six_channels, outputs=("{tmp}/six.npy",), check=_npy_rows("{tmp}/six.npy", 1)),
    Case("speech-upsample-nan", (*UP, "{tmp}/nan.wav", "-o", "{tmp}/x.wav"), match=r"nan\.wav.*NaN", setup=_nan),
    Case("speech-verify-nan", ("speech", "verify", "{tmp}/nan.wav", "{voice_a}"), match=r"nan\.wav.*NaN", setup=_nan),
    Case("speech-embed-too-short", ("speech", "embed", "{tmp}/tiny.wav"), match=r"tiny\.wav is too short",
         setup=_short(0.2, "tiny.wav")),
    Case("speech-upsample-short", (*UP, "{tmp}/tiny.wav", "-o", "{tmp}/tiny48.wav"), expect="ok",
         setup=_short(0.2, "tiny.wav"), outputs=("{tmp}/tiny48.wav",), check=_is_48k("{tmp}/tiny48.wav")),
    Case("speech-upsample-missing-input", (*UP, "{tmp}/nope.wav", "-o", "{tmp}/x.wav"), match=r"nope\.wav"),
    Case("speech-upsample-missing-model", (*UP, "{wav}", "-o", "{tmp}/x.wav", "--model", "{tmp}/nomodel"),
         match="nomodel"),
    Case("speech-verify-missing-model", ("speech", "verify", "{voice_a}", "{voice_b}", "--model", "{tmp}/nomodel"),
         match="nomodel"),
    Case("speech-clone-missing-model", (*CLONE, "--reference", "{voice_a}", "-o", "{tmp}/x.wav", "--model",
                                        "{tmp}/nomodel"), match="nomodel"),
]
