"""``signals speech upsample`` and ``signals speech sr train | evaluate | export``. The only SR module that
parses or prints.

Handlers import their implementation lazily: ``upsample`` and ``evaluate`` run on the torch-free
runtime; ``train`` and ``export`` need the training extra (torch). Training options come from the fields
of :class:`signals.speech.sr.config.TrainConfig` (defaults live there only).
"""

from __future__ import annotations

import argparse
import json

from signals.cliutil import add_command, add_group, standalone

TRAIN_NAMES = {"generator": "--config", "discriminator": "--disc"}
TRAIN_HELP = {
    "generator": "generator size",
    "discriminator": "discriminator widths (tiny: CPU tests)",
    "max_seconds": "stop after this wall time (0: no limit)",
    "disc_start": "mel-only warm-up steps",
    "disc_warmup": "after --disc-start, steps that train only the discriminators (the generator stays mel-only)",
    "test": "utterance ids held out for evaluation",
    "test_speakers": "hold out every utterance of these speakers too (VCTK SR split: p360 p361 p362 p363 p364 "
                     "p374 p376 s5)",
    "val": "utterance ids for validation (training speakers)",
    "segment": "crop length in samples at 48 kHz",
}


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model folder (default: $SIGNALS_MODELS/super_resolution, else "
                                   "models/super_resolution)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: all cores)")


def _upsample(args) -> int:
    from signals.speech.sr.infer import load

    sr = load(args.model, threads=args.threads)
    info = sr.upsample_file(args.input, args.output, subtype="FLOAT" if args.float else "PCM_16",
                            postprocess=not args.no_postprocess)
    print(f"wrote {info['output']}: {info['seconds']:.2f} s, {info['channels']} channel(s), {sr.sample_rate} Hz "
          f"({'float32' if args.float else '16-bit'}) from {info['input_rate']} Hz input")
    return 0


def add_train_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from signals.configio import add_arguments
    from signals.speech.sr.config import DISCRIMINATORS, GENERATORS, TrainConfig
    from signals.speech.sr.data import DegradeConfig

    p.add_argument("--data", required=True, help="folder of wideband audio (any rate >= 44.1 kHz) or a prepared .npz")
    p.add_argument("--out", default="runs/sr", help="run folder: checkpoint.pt, generator*.safetensors, log, samples")
    add_arguments(p, TrainConfig, names=TRAIN_NAMES, help=TRAIN_HELP,
                  choices={"generator": tuple(GENERATORS), "discriminator": tuple(DISCRIMINATORS)})
    add_arguments(p, DegradeConfig, only=["segment"], help=TRAIN_HELP)
    p.add_argument("--init-weights", default=None,
                   help="start the generator from these .safetensors weights (fine-tuning; ignored with --resume)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: best available)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--no-checkpoint", action="store_true", help="write no full checkpoint (weights only)")
    p.add_argument("--no-amp", action="store_true", help="float32 on GPU")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def train_config(args: argparse.Namespace):
    """The TrainConfig of parsed ``signals speech sr train`` options."""
    from dataclasses import replace

    from signals.configio import from_args
    from signals.speech.sr.config import TrainConfig
    from signals.speech.sr.data import DegradeConfig

    cfg = from_args(TrainConfig, args)
    return replace(cfg, degrade=from_args(DegradeConfig, args, cfg.degrade))


def _train(args) -> int:
    from signals.speech.sr.train import train

    train(train_config(args), args.data, args.out, device=args.device, resume=args.resume,
          init_weights=args.init_weights, workers=args.workers, checkpoint=not args.no_checkpoint,
          amp=not args.no_amp, progress=not args.quiet)
    return 0


def main_train(argv: list[str] | None = None) -> int:
    """``torchrun -m signals.speech.sr.train``: the options of ``signals speech sr train``."""
    return standalone(add_train_arguments, _train, "Train HiFi-SR.", argv)


def _evaluate(args) -> int:
    from signals.speech.sr.evaluate import evaluate, format_table

    result = evaluate(args.dir, args.model, out=args.out, held_out=args.held_out, files=args.files,
                      rates=tuple(args.rates), threads=args.threads)
    print(format_table(result))
    return 0


def _export(args) -> int:
    from safetensors.numpy import load_file

    from signals.speech.sr.export import export

    cfg = export(args.weights, args.out)
    graph = cfg.graphs["generator"]
    params = sum(v.size for v in load_file(f"{args.out}/{cfg.weights}").values())
    print(json.dumps({"onnx": f"{args.out}/{graph.file}", "parity_max_abs": graph.parity_max_abs_diff,
                      "params": params}))
    return 0


def register(group: argparse._SubParsersAction) -> None:
    """Add ``upsample`` and the ``sr`` group to ``signals speech``."""
    p = add_command(group, "upsample", "super-resolve speech to 48 kHz (any input rate 4-48 kHz)", _upsample)
    p.add_argument("input", help="audio file (WAV/FLAC/...; mono or stereo; any length: streamed, flat memory)")
    p.add_argument("--output", "-o", required=True, help="output file (48 kHz)")
    p.add_argument("--float", action="store_true", help="write 32-bit float instead of 16-bit PCM")
    p.add_argument("--no-postprocess", action="store_true", help="raw generator output (no band-keeping crossover)")
    _model_args(p)

    sr = add_group(group.add_parser("sr", help="HiFi-SR super-resolution: train, evaluate, export"))
    add_train_arguments(add_command(sr, "train", "train HiFi-SR on a folder of wideband audio (torchrun-ready)",
                                    _train))

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
