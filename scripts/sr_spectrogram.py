"""Spectrogram PNG of one utterance through HiFi-SR with several post-processing settings (the model card's).

    python scripts/sr_spectrogram.py ../shared/data/vctk-wideband/wav/p360_001.wav --rate 16000 \
        --setting 2 12 --envelope --out models/super_resolution/spectrogram_p360_001_16k.png

Rows: the 48 kHz reference, the input made from it with soxr at ``--rate``, then the output of each
``--setting R GAIN_DB`` (frame comb radius, generated-band gain; without the learned envelope) and, with
``--envelope``, the model folder as it is (its learned envelope of the generated band).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from signals.plotting import plot_spectrograms
from signals.speech.audio import load_audio, resample
from signals.speech.sr.infer import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reference", help="wideband recording (resampled to 48 kHz)")
    ap.add_argument("--rate", type=int, default=16000, help="input rate made from the reference (Hz)")
    ap.add_argument("--setting", nargs=2, action="append", metavar=("R", "GAIN_DB"), default=[],
                    help="frame comb radius and generated-band gain of one output row without the envelope (repeat)")
    ap.add_argument("--envelope", action="store_true", help="a last row: the folder as it is (learned envelope)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    ref, sr = load_audio(args.reference, sample_rate=48000)
    low = resample(ref, sr, args.rate)
    name = Path(args.reference).stem
    rows = [(ref, sr, f"reference {name}, 48 kHz"), (low, args.rate, f"input, {args.rate / 1000:g} kHz (soxr)")]
    for radius, gain in args.setting:
        model = load(args.model, frame_comb_radius=int(radius), generated_gain_db=float(gain), envelope=False)
        rows.append((model.upsample(low, args.rate, name=name), sr,
                     f"HiFi-SR, frame comb radius {int(radius)}, generated band {float(gain):+g} dB"))
    if args.envelope:
        model = load(args.model)
        rows.append((model.upsample(low, args.rate, name=name), sr,
                     f"HiFi-SR as shipped: frame comb radius {model.front.frame_comb_radius}, learned envelope"))
    plot_spectrograms(rows, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
