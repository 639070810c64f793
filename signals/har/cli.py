"""``signals har ...`` commands: train, evaluate, export, predict.

Parsing stays torch-free: every handler imports its implementation when it runs, so
``signals --help`` and ``signals har predict`` (numpy + onnxruntime) never load torch.
"""

from __future__ import annotations

import argparse

from signals.cliutil import add_command, add_group

DATASETS_HELP = "uci-har | hapt | uci-har-official | motionsense | basicmotions"


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``signals har train`` (also ``python -m signals.har.train`` / torchrun).

    Defaults of None mean "the recipe's value" (``signals.har.train.TrainConfig``).
    """
    p.add_argument("--dataset", default="uci-har", help=DATASETS_HELP)
    p.add_argument("--data", default=None, help="dataset folder (default: $SIGNALS_DATA/<dataset folder>)")
    p.add_argument("--out", default="runs/har/fusionactnet", help="output folder (config.json, model.safetensors)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the static-branch stage (recipe: 25)")
    p.add_argument("--dynamic-epochs", type=int, default=None,
                   help="epochs of the dynamic-branch stage (recipe: 10; capped by --epochs)")
    p.add_argument("--fusion-epochs", type=int, default=None,
                   help="epochs of the fusion (guidance) stage (recipe: 2; capped by --epochs)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="AdamW peak learning rate (one-cycle)")
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience (epochs)")
    p.add_argument("--val-subjects", type=int, default=None, help="training subjects held out for validation")
    p.add_argument("--rotate-deg", type=float, default=None, help="max random 3-D rotation (augmentation)")
    p.add_argument("--no-augment", action="store_true", help="disable all augmentation")
    p.add_argument("--seed", type=int, default=None, help="single seed (one model)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="several seeds -> probability-averaged ensemble")
    p.add_argument("--widths", type=int, nargs="+", default=None, help="branch widths (paper: 64 128 256 512 512)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (recipe: 1)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--limit", type=int, default=None, help="use only the first N train/test windows (smoke runs)")


def _train(args) -> int:
    from signals.har.train import run_train

    return run_train(args)


def _evaluate(args) -> int:
    from signals.har.metrics import run_evaluate

    return run_evaluate(args)


def _export(args) -> int:
    from signals.har.export import run_export

    return run_export(args)


def _predict(args) -> int:
    from signals.har.infer import run_predict

    return run_predict(args)


def register(parser: argparse.ArgumentParser) -> None:
    group = add_group(parser)

    p = add_command(group, "train", "train FusionActNet (static, dynamic, fusion stages; DDP via torchrun)", _train)
    add_train_arguments(p)

    p = add_command(group, "evaluate", "accuracy, macro-F1, per-class P/R, confusion matrix (JSON + PNG)", _evaluate)
    p.add_argument("--model", default=None, help="model folder (default: models/har)")
    p.add_argument("--dataset", default="uci-har", help=DATASETS_HELP)
    p.add_argument("--data", default=None, help="dataset folder (default: $SIGNALS_DATA/<dataset folder>)")
    p.add_argument("--split", default="test", choices=["test", "train"])
    p.add_argument("--backend", default="torch", choices=["torch", "onnx", "int8"],
                   help="PyTorch weights, fp32 ONNX or int8 ONNX (onnxruntime)")
    p.add_argument("--int8", action="store_true", help="evaluate the int8 ONNX graph (= --backend int8)")
    p.add_argument("--json", default=None, help="write the metrics as JSON here")
    p.add_argument("--png", default=None, help="write the confusion matrix as PNG here")
    p.add_argument("--record", action="store_true", help="also store the metrics in the model's config.json")
    p.add_argument("--threads", type=int, default=None)

    p = add_command(group, "export", "ONNX fp32 (+ int8) with parity check against PyTorch", _export)
    p.add_argument("--model", default=None, help="model folder to export in place (default: models/har)")
    p.add_argument("--data", default=None, help="dataset folder for the int8 calibration windows (train split)")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 variant")
    p.add_argument("--calib-windows", type=int, default=512, help="train windows used to calibrate int8")

    p = add_command(group, "predict", "activity timeline of a recording (onnxruntime, no torch)", _predict)
    p.add_argument("recording", help="recording file (see signals.har.infer for the accepted formats)")
    p.add_argument("--model", default=None, help="model folder (default: models/har)")
    p.add_argument("--sample-rate", type=float, default=None, help="sample rate of the recording in Hz")
    p.add_argument("--int8", action="store_true", help="use the int8 graph")
    p.add_argument("--json", default=None, help="write the predictions as JSON here")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
