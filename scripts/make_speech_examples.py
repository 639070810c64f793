"""Synthesise the demo's speech examples (no recorded speech is shipped).

    python scripts/make_speech_examples.py            # writes examples/speech/*.wav

Needs the Debian packages ``flite`` and ``espeak-ng`` (``apt-get install flite espeak-ng``) only when you
regenerate; the outputs are committed. Each synthetic voice stands in for a "speaker":

* ``voice_a_*`` - flite ``slt`` (female), ``voice_b_*`` - flite ``awb`` (male), ``voice_c_*`` - espeak-ng en-us.
* ``lowres_8k.wav`` / ``lowres_16k.wav`` - a ``voice_a`` sentence band-limited by our own degradation
  (soxr resampling) to 8 and 16 kHz, the super-resolution demo's inputs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from signals.speech.audio import load_audio, normalize_loudness, resample, write_audio  # noqa: E402

OUT = ROOT / "examples" / "speech"
SENTENCES = [
    "The quick brown fox jumps over the lazy dog while the birds sing in the morning sun.",
    "Please call Stella and ask her to bring these things with her from the store.",
]
VOICES = {
    "voice_a": ["flite", "-voice", "slt"],
    "voice_b": ["flite", "-voice", "awb"],
    "voice_c": ["espeak-ng", "-v", "en-us", "-s", "150"],
}


def synthesise(cmd: list[str], text: str, path: Path) -> None:
    if cmd[0] == "flite":
        subprocess.run([*cmd, "-t", text, "-o", str(path)], check=True)
    else:
        subprocess.run([*cmd, "-w", str(path), text], check=True)


def main() -> None:
    for tool in ("flite", "espeak-ng"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install flite espeak-ng")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd in VOICES.items():
            for i, text in enumerate(SENTENCES, start=1):
                raw = Path(tmp) / f"{name}_{i}.wav"
                synthesise(cmd, text, raw)
                wav, sr = load_audio(raw, sample_rate=16000)
                write_audio(OUT / f"{name}_{i}.wav", normalize_loudness(wav, -23.0), 16000)
    # Super-resolution inputs: our own band-limiting of a 16 kHz synthetic sentence.
    wav, _ = load_audio(OUT / "voice_a_2.wav", sample_rate=16000)
    write_audio(OUT / "lowres_16k.wav", wav, 16000)
    write_audio(OUT / "lowres_8k.wav", resample(wav, 16000, 8000), 8000)
    for p in sorted(OUT.glob("*.wav")):
        w, sr = load_audio(p)
        print(f"{p.relative_to(ROOT)}: {len(w) / sr:.2f} s at {sr} Hz, peak {np.abs(w).max():.2f}")


if __name__ == "__main__":
    main()
