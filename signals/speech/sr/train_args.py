"""Command-line options of ``signals speech sr train`` (torch-free, so ``signals --help`` stays fast)."""

from __future__ import annotations

import argparse

# The shared VCTK excerpt: 2 utterances of each speaker held out for the test, 1 each for validation.
DEFAULT_TEST = ("p360_001", "p360_275", "p361_009", "p361_084")
DEFAULT_VAL = ("p360_354", "p361_174")


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--data", required=True, help="folder of wideband audio (any rate >= 44.1 kHz) or a prepared .npz")
    p.add_argument("--out", default="runs/sr", help="run folder: checkpoint.pt, generator*.safetensors, log, samples")
    p.add_argument("--config", choices=["paper", "small"], default="small", help="generator size")
    p.add_argument("--disc", choices=["full", "tiny"], default="full", help="discriminator widths (tiny: CPU tests)")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--max-seconds", type=float, default=0.0, help="stop after this wall time (0: no limit)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--segment", type=int, default=24576, help="crop length in samples at 48 kHz")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--disc-start", type=int, default=0, help="mel-only warm-up steps")
    p.add_argument("--disc-warmup", type=int, default=0,
                   help="after --disc-start, steps that train only the discriminators (the generator stays mel-only)")
    p.add_argument("--init-weights", default=None,
                   help="start the generator from these .safetensors weights (fine-tuning; ignored with --resume)")
    p.add_argument("--test", nargs="*", default=list(DEFAULT_TEST), help="utterance ids held out for evaluation")
    p.add_argument("--test-speakers", nargs="*", default=[],
                   help="hold out every utterance of these speakers too (VCTK SR split: p360 p361 p362 p363 p364 p374 p376 s5)")
    p.add_argument("--val", nargs="*", default=list(DEFAULT_VAL), help="utterance ids for validation (training speakers)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: best available)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--no-checkpoint", action="store_true", help="write no full checkpoint (weights only)")
    p.add_argument("--no-amp", action="store_true", help="float32 on GPU")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p
