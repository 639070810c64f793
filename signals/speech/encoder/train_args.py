"""Arguments of `signals speech encoder train` (torch-free, so building the CLI does not import torch)."""

from __future__ import annotations

import argparse


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="folder of speaker-labelled audio (sub-folder per speaker or LibriSpeech names)")
    p.add_argument("--out", required=True, help="run folder (checkpoint, logs, splits); rerun to resume")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--speakers-per-batch", type=int, default=64)
    p.add_argument("--utterances-per-speaker", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--clip-grad-norm", type=float, default=3.0)
    p.add_argument("--holdout-speakers", type=int, default=0,
                   help="speakers kept out entirely for the final test (written to OUT/test_speakers.txt)")
    p.add_argument("--val-speakers", type=int, default=0, help="training speakers set aside for validation")
    p.add_argument("--speakers", help="file of speaker IDs to use (one per line); default all")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--threads", type=int, help="torch CPU threads per process")
    p.add_argument("--init", help="start from a model folder (model.safetensors), e.g. models/speaker_encoder")
