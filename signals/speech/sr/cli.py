"""``signals speech upsample`` and ``signals speech sr train | evaluate | export``.

Handlers import their implementation lazily: ``upsample`` and ``evaluate`` run on the torch-free
runtime; ``train`` and ``export`` need the training extra (torch).
"""

from __future__ import annotations

import argparse
import json

from signals.cliutil import add_command, add_group


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model folder (default: models/super_resolution)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: all cores)")


def _upsample(args) -> int:
    from signals.speech.sr.infer import load

    sr = load(args.model, threads=args.threads)
    info = sr.upsample_file(args.input, args.output, subtype="FLOAT" if args.float else "PCM_16",
                            postprocess=not args.no_postprocess)
    print(f"wrote {info['output']}: {info['seconds']:.2f} s, {info['channels']} channel(s), 48000 Hz "
          f"({'float32' if args.float else '16-bit'}) from {info['input_rate']} Hz input")
    return 0


def _train(args) -> int:
    from signals.speech.sr.train import train

    train(args)
    return 0


def _evaluate(args) -> int:
    from signals.speech.sr.evaluate import run

    run(args.dir, args.model, out=args.out, held_out=args.held_out, files=args.files,
        rates=tuple(args.rates), threads=args.threads)
    return 0


def _export(args) -> int:
    from signals.speech.sr.export import export

    info = export(args.weights, args.out)
    print(json.dumps(info))
    return 0


def register(group: argparse._SubParsersAction) -> None:
    """Add ``upsample`` and the ``sr`` group to ``signals speech``."""
    from signals.speech.sr.train_args import add_arguments

    p = add_command(group, "upsample", "super-resolve speech to 48 kHz (any input rate 4-48 kHz)", _upsample)
    p.add_argument("input", help="audio file (WAV/FLAC/...; mono or stereo; any length: streamed, flat memory)")
    p.add_argument("--output", "-o", required=True, help="output file (48 kHz)")
    p.add_argument("--float", action="store_true", help="write 32-bit float instead of 16-bit PCM")
    p.add_argument("--no-postprocess", action="store_true", help="raw generator output (no band-keeping crossover)")
    _model_args(p)

    sr = add_group(group.add_parser("sr", help="HiFi-SR super-resolution: train, evaluate, export"))
    add_arguments(add_command(sr, "train", "train HiFi-SR on a folder of wideband audio (torchrun-ready)", _train))

    p = add_command(sr, "evaluate", "LSD / high-band LSD / SI-SDR per input rate vs baselines", _evaluate)
    p.add_argument("dir", help="folder of wideband reference audio")
    p.add_argument("--held-out", action="store_true", help="only the test utterances listed in the model's config")
    p.add_argument("--files", nargs="*", help="only these utterance ids")
    p.add_argument("--rates", nargs="+", type=int, default=[4000, 8000, 16000, 24000], help="input rates (Hz)")
    p.add_argument("--out", help="folder for results.json and results.txt")
    _model_args(p)

    p = add_command(sr, "export", "export generator weights to an ONNX model folder (with parity check)", _export)
    p.add_argument("--weights", required=True, help="generator .safetensors from training")
    p.add_argument("--out", default="models/super_resolution", help="model folder to write")
