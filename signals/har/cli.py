"""``signals har ...`` commands: train, evaluate, evaluate-recordings, fit-smoothing, export, predict. The only
HAR module that parses or prints.

Parsing stays torch-free: every handler imports its implementation when it runs, so
``signals --help`` and ``signals har predict`` (numpy + onnxruntime) never load torch. Training
options are derived from :class:`signals.har.train.TrainConfig`'s fields (defaults live there only).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from signals.cliutil import add_command, add_group, float_range, int_range, positive_int, standalone

DATASETS_HELP = "uci-har | hapt | uci-har-official | motionsense | basicmotions"
TRAIN_HELP = {
    "epochs": "epochs of the static-branch stage",
    "dynamic_epochs": "epochs of the dynamic-branch stage (capped by --epochs unless given)",
    "fusion_epochs": "epochs of the fusion (guidance) stage (capped by --epochs unless given)",
    "lr": "AdamW peak learning rate (one-cycle); also the fusion stage's unless --fusion-lr is given",
    "patience": "early-stopping patience (epochs)",
    "val_subjects": "training subjects held out for validation",
    "aug_rotate_deg": "max random 3-D rotation (augmentation)",
    "seeds": "several seeds -> probability-averaged ensemble",
    "threads": "torch CPU threads",
    "branch_widths": "branch widths (paper: 64 128 256 512 512)",
    "guide_stem": "guidance-net stem width (paper: 32)",
    "guide_widths": "guidance-net stage widths (paper: 64 128 256)",
    "guide_depths": "guidance-net blocks per stage (paper: 2 3 3)",
    "decimate": "average-pool the input windows by this factor inside the model (1: the paper; 2: 25 Hz, "
                "half the cost)",
    "teacher": "model folder to distil from (soft targets on the same augmented batches)",
    "kd_weight": "weight of the distillation loss against the label loss",
    "kd_temperature": "distillation temperature",
    "kd_stages": "the stages that distil from --teacher (the others learn from the labels alone)",
    "aug_time_scale": "cadence augmentation of the dynamic-branch stage: windows resampled by a factor in "
                      "[1 - a, 1 + a] (0: off)",
    "ema_decay": "keep and validate an exponential moving average of the weights with this decay (0: off)",
}


# --------------------------------------------------------------------------------------------------
# Range-checked options (signals.cliutil types): a number out of range is an argparse usage error naming
# the option, before any work (a sample rate of 0.001 Hz once grew to 4 GB, 1e12 Hz hung).

MAX_THREADS = 256
MAX_LAG_WINDOWS = 100_000  # about 35 hours at 1.28 s per window: beyond any recording's useful lag
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds
MAX_MIN_DURATION = 64  # windows (82 s at 1.28 s): the HMM grows to K x this many states
TRANSITIONS_HELP = ("a model folder with postural-transition classes (e.g. models/har-hapt): decode the timeline "
                    "with its transitions, each change of activity placed in the middle of the transition it "
                    "detects (both models run on every window)")


def rate_type():
    from signals.har.frontend import MAX_RATE_HZ, MIN_RATE_HZ

    return float_range(MIN_RATE_HZ, MAX_RATE_HZ)


THREADS = int_range(1, MAX_THREADS)
LAG = int_range(0, MAX_LAG_WINDOWS)
SEED = int_range(0, MAX_SEED)

# signals har train: the ranges of the options derived from TrainConfig / FusionActNetConfig
# (field -> argparse type; its range is shown in --help). Wider than any sensible recipe, narrow enough to refuse typos.
TRAIN_TYPES = {
    "epochs": int_range(1, 100_000),
    "dynamic_epochs": int_range(0, 100_000),
    "fusion_epochs": int_range(0, 100_000),
    "batch_size": int_range(1, 65_536),
    "lr": float_range(0, 10, lo_open=True),
    "fusion_lr": float_range(0, 10, lo_open=True),
    "weight_decay": float_range(0, 10),
    "label_smoothing": float_range(0, 1, hi_open=True),
    "patience": int_range(1, 100_000),
    "val_subjects": int_range(0, 10_000),
    "val_seed": SEED,
    "aug_rotate_deg": float_range(0, 180),
    "aug_scale": float_range(0, 1),
    "aug_jitter": float_range(0, 10),
    "aug_shift": int_range(0, 10_000),
    "aug_time_scale": float_range(0, 0.5),
    "ema_decay": float_range(0, 1, hi_open=True),
    "seeds": SEED,
    "kd_weight": float_range(0, 1),
    "kd_temperature": float_range(0, 100, lo_open=True),
    "threads": THREADS,
    "branch_widths": int_range(1, 8192),
    "guide_stem": int_range(1, 8192),
    "guide_widths": int_range(1, 8192),
    "guide_depths": int_range(1, 1000),
    "decimate": int_range(1, 8),
}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``signals har train`` (also ``python -m signals.har.train`` / torchrun)."""
    from signals.configio import add_arguments
    from signals.har.config import STAGES, FusionActNetConfig, TrainConfig

    p.add_argument("--dataset", default="uci-har", help=DATASETS_HELP)
    p.add_argument("--data", default=None, help="dataset folder (default: $SIGNALS_DATA/<dataset folder>)")
    p.add_argument("--out", default="runs/har/fusionactnet", help="output folder (config.json, model.safetensors)")
    add_arguments(p, TrainConfig, names={"aug_rotate_deg": "--rotate-deg"}, help=TRAIN_HELP, types=TRAIN_TYPES,
                  choices={"kd_stages": STAGES})
    p.add_argument("--seed", type=SEED, default=None, help=f"single seed (one model; = --seeds N; 0..{MAX_SEED})")
    p.add_argument("--no-augment", action="store_true", help="disable all augmentation")
    add_arguments(p, FusionActNetConfig, only=["branch_widths", "guide_stem", "guide_widths", "guide_depths", "decimate"],
                  names={"branch_widths": "--widths"}, help=TRAIN_HELP, types=TRAIN_TYPES)
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="use only the first N train/test windows (smoke runs; N >= 1)")
    p.add_argument("--no-test", action="store_true",
                   help="do not score the test split after training (runs that compare recipes on validation)")


def train_config(args: argparse.Namespace):
    """The TrainConfig of parsed ``signals har train`` options."""
    from signals.configio import from_args
    from signals.errors import ConfigError
    from signals.har.config import FusionActNetConfig, TrainConfig

    given = vars(args)
    cfg = from_args(TrainConfig, args)
    if args.seed is not None and "seeds" not in given:
        cfg = replace(cfg, seeds=(args.seed,))
    # a short smoke run (--epochs 1) shortens the later stages too, unless they are given
    cfg = replace(cfg, dynamic_epochs=given.get("dynamic_epochs", min(cfg.dynamic_epochs, cfg.epochs)),
                  fusion_epochs=given.get("fusion_epochs", min(cfg.fusion_epochs, cfg.epochs)),
                  fusion_lr=given.get("fusion_lr", cfg.lr))
    if args.no_augment:
        cfg = replace(cfg, aug_rotate_deg=0.0, aug_scale=0.0, aug_jitter=0.0, aug_shift=0, aug_time_scale=0.0)
    try:
        return replace(cfg, model=from_args(FusionActNetConfig, args, cfg.model))
    except ValueError as exc:  # e.g. --decimate too large for the windows and --widths (FusionActNetConfig)
        raise ConfigError(f"--decimate / --widths: {exc}") from None


def _train(args) -> int:
    from signals.har.data import load_dataset
    from signals.har.train import limit_dataset, train

    ds = load_dataset(args.dataset, root=args.data)
    if args.limit:
        ds = limit_dataset(ds, args.limit)
    train(train_config(args), ds, args.out, device=args.device, resume=args.resume, evaluate_test=not args.no_test)
    return 0


def main_train(argv: list[str] | None = None) -> int:
    """``python -m signals.har.train`` / ``torchrun -m signals.har.train``: the options of ``signals har train``."""
    from signals.har import train as train_module

    return standalone(add_train_arguments, _train, train_module.__doc__, argv)


def _evaluate(args) -> int:
    from signals.har.evaluate import evaluate, record
    from signals.har.metrics import format_report

    backend = "int8" if args.int8 else args.backend
    m = evaluate(args.model, args.dataset, args.data, backend, args.json, args.png, args.threads, args.split,
                 overwrite=args.overwrite)
    print(format_report(m))
    if args.record:
        print(f"recorded in {record(m['model'], m)} under {m['split']}_{backend}")
    if args.json:
        print(f"wrote {args.json}")
    if args.png:
        print(f"wrote {args.png}")
    return 0


def _export(args) -> int:
    from signals.har.export import export
    from signals.modelfolder import find_model

    folder = find_model("har", args.model)
    cfg = export(folder, int8=not args.no_int8, data=args.data, n_calib=args.calib_windows,
                 calib_method=args.calib_method, float_blocks=args.float_blocks)
    fp32 = cfg.graphs["fp32"]
    print(f"{folder}/{fp32.file}: onnx.checker ok, max |torch - onnx| = {fp32.parity_max_abs_diff:.2e}")
    if "int8" in cfg.graphs:
        q = cfg.graphs["int8"]
        print(f"{folder}/{q.file}: static int8 (QDQ), calibrated on "
              f"{cfg.source['export']['int8_calibration_windows']} train windows, max |torch - int8| = "
              f"{q.parity_max_abs_diff:.3f}")
    return 0


def _predict(args) -> int:
    from signals.har.frontend import recording_files
    from signals.har.infer import (
        HARRuntime,
        format_timeline,
        load_pair,
        open_outputs,
        predict_recording,
        smoother,
    )

    to_stdout = args.json == "-"
    # the output is checked (and its temporary file made) before the model or the recording is read, so a
    # path that cannot be written fails at once, and a failed run leaves nothing behind
    with open_outputs({"json": (None if to_stdout else args.json, (".json",))}, recording_files(args.recording),
                      args.overwrite) as outs:
        if args.transitions:
            runtime = load_pair(args.model, args.transitions, threads=args.threads, int8=args.int8)
        else:
            runtime = HARRuntime.load(args.model, threads=args.threads, int8=args.int8)
        smoothing = False if args.no_smoothing else (True if args.lag is not None else None)
        decoder = smoother(runtime, smoothing, args.lag)  # checks --lag before the recording is read
        segments = predict_recording(runtime, args.recording, sample_rate=args.sample_rate,
                                     smoothing=decoder is not None, lag=args.lag)
        timeline = format_timeline(segments)
        doc = {"recording": str(args.recording), "model": str(runtime.folder.path),
               "transitions": str(runtime.transition.folder.path) if args.transitions else None,
               "smoothing": {"lag_windows": decoder.lag} if decoder is not None else None,
               "segments": [asdict(s) for s in segments]}
        text = json.dumps(doc, indent=2) + "\n"
        if "json" in outs:
            outs["json"].tmp.write_text(text, encoding="utf-8")
    if to_stdout:
        print(timeline, file=sys.stderr)  # stdout carries the JSON only
        sys.stdout.write(text)
    else:
        print(timeline)
    return 0


def _evaluate_recordings(args) -> int:
    from signals.har.evaluate import evaluate_recordings, format_recordings_report
    from signals.modelfolder import update_metrics

    subjects = tuple(args.subjects) if args.subjects else None
    m = evaluate_recordings(args.model, args.data, subjects, int8=args.int8, threads=args.threads, lag=args.lag,
                            tolerance_s=args.tolerance, json_out=args.json, overwrite=args.overwrite,
                            transitions=args.transitions)
    print(format_recordings_report(m))
    if args.record:
        keep = {k: v for k, v in m.items() if k != "per_recording"}
        key = f"recordings_{m['graph']}" + (f"_with_{Path(m['transitions']).name}" if m["transitions"] else "")
        update_metrics(m["model"], **{key: keep})
        print(f"recorded in {m['model']}/metrics.json under {key}")
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _fit_smoothing(args) -> int:
    from signals.har.smoothing import fit_folder

    kw = {k: v for k, v in dict(lag=args.lag, emission_weight=args.emission_weight, prior_weight=args.prior_weight,
                                 min_duration=args.min_duration).items() if v is not None}
    path, cfg, info = fit_folder(args.model, args.data, pseudo_count=args.pseudo_count,
                                 switch_scale=args.switch_scale, **kw)
    print(f"{path}/config.json: runtime.smoothing fitted on {info['recordings']} HAPT recordings of training "
          f"subjects {','.join(map(str, info['subjects']))} ({info['labelled_windows']} labelled windows, "
          f"{info['transitions']} changes of activity); lag {cfg.lag} windows, emission weight {cfg.emission_weight:g}, "
          f"prior weight {cfg.prior_weight:g}")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    group = add_group(parser)

    p = add_command(group, "train", "train FusionActNet (static, dynamic, fusion stages; DDP via torchrun)", _train)
    add_train_arguments(p)

    p = add_command(group, "evaluate", "accuracy, macro-F1, per-class P/R, confusion matrix (JSON + PNG)", _evaluate)
    p.add_argument("--model", default=None, help="model folder (default: $SIGNALS_MODELS/har, else models/har)")
    p.add_argument("--dataset", default="uci-har", help=DATASETS_HELP)
    p.add_argument("--data", default=None, help="dataset folder (default: $SIGNALS_DATA/<dataset folder>)")
    p.add_argument("--split", default="test", choices=["test", "train"])
    p.add_argument("--backend", default="torch", choices=["torch", "onnx", "int8"],
                   help="PyTorch weights, fp32 ONNX or int8 ONNX (onnxruntime)")
    p.add_argument("--int8", action="store_true", help="evaluate the int8 ONNX graph (= --backend int8)")
    p.add_argument("--json", default=None, help="write the metrics as JSON here (.json)")
    p.add_argument("--png", default=None, help="write the confusion matrix as PNG here (.png)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow --json / --png to replace one of the model's own files")
    p.add_argument("--record", action="store_true", help="also store the metrics in the model's metrics.json")
    p.add_argument("--threads", type=THREADS, default=None,
                   help=f"torch / onnxruntime CPU threads (1..{MAX_THREADS})")

    p = add_command(group, "export", "ONNX fp32 (+ int8) with parity check against PyTorch", _export)
    p.add_argument("--model", default=None, help="model folder to export in place (default: models/har)")
    p.add_argument("--data", default=None, help="dataset folder for the int8 calibration windows (train split)")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 variant")
    p.add_argument("--calib-windows", type=int_range(1, 1_000_000), default=512,
                   help="train windows used to calibrate int8 (1..1000000; default: 512)")
    p.add_argument("--calib-method", default="minmax", choices=["minmax", "percentile", "entropy"],
                   help="how int8 activation ranges are calibrated (default: minmax)")
    p.add_argument("--float-blocks", type=int_range(0, 64), default=0, metavar="N",
                   help="keep the whole first N blocks of both branches and of the guidance net float in the "
                        "int8 graph, not only the convolutions reading the input (0..64; default: 0)")

    p = add_command(group, "predict", "activity timeline of a recording (onnxruntime, no torch)", _predict)
    p.add_argument("recording", help="recording file (see signals.har.frontend for the accepted formats)")
    p.add_argument("--model", default=None, help="model folder (default: $SIGNALS_MODELS/har, else models/har)")
    p.add_argument("--transitions", default=None, metavar="MODEL", help=TRANSITIONS_HELP)
    p.add_argument("--sample-rate", type=rate_type(), default=None,
                   help="sample rate of the recording in Hz (5..10000); overrides a CSV's time column, which is "
                        "then not used (default: HAPT files 50 Hz, CSV files from the time column in seconds)")
    p.add_argument("--int8", action="store_true", help="use the int8 graph")
    p.add_argument("--json", default=None, help="write the predictions as JSON here (.json; - for stdout)")
    p.add_argument("--overwrite", action="store_true", help="allow --json to replace the recording itself")
    p.add_argument("--threads", type=THREADS, default=None, help=f"onnxruntime intra-op threads (1..{MAX_THREADS})")
    p.add_argument("--no-smoothing", action="store_true",
                   help="one label per window (raw argmax), no HMM smoothing of the timeline")
    p.add_argument("--lag", type=LAG, default=None,
                   help=f"smoothing lag in windows (fixed-lag Viterbi; 1 window = 1.28 s; 0..{MAX_LAG_WINDOWS}; "
                        "default: the model's)")

    p = add_command(group, "evaluate-recordings",
                    "whole HAPT recordings through the streaming runtime: sample accuracy and segment F1, raw vs "
                    "smoothed", _evaluate_recordings)
    p.add_argument("--model", default=None, help="model folder (default: $SIGNALS_MODELS/har, else models/har)")
    p.add_argument("--data", default=None, help="UCI HAPT folder (default: $SIGNALS_DATA/uci-hapt)")
    p.add_argument("--transitions", default=None, metavar="MODEL", help=TRANSITIONS_HELP + "; scored on the "
                   "activity model's classes, recorded under recordings_<graph>_with_<its folder name>")
    p.add_argument("--subjects", type=positive_int, nargs="*", default=None,
                   help="users (>= 1) whose recordings are scored (default: the test subjects 2 4 9 10 12 13 18 20 "
                        "24)")
    p.add_argument("--int8", action="store_true", help="use the int8 graph")
    p.add_argument("--lag", type=LAG, default=None,
                   help=f"smoothing lag in windows (0..{MAX_LAG_WINDOWS}; default: the model's)")
    p.add_argument("--tolerance", type=float_range(0, 60), default=2.0,
                   help="segment onset/offset tolerance in seconds (0..60; default: 2.0)")
    p.add_argument("--json", default=None, help="write the results (with per-recording scores) as JSON here (.json)")
    p.add_argument("--overwrite", action="store_true", help="allow --json to replace one of the model's own files")
    p.add_argument("--record", action="store_true", help="also store the results in the model's metrics.json")
    p.add_argument("--threads", type=THREADS, default=None, help=f"onnxruntime intra-op threads (1..{MAX_THREADS})")

    p = add_command(group, "fit-smoothing",
                    "fit the timeline HMM (transitions, class prior) on the training subjects' HAPT recordings",
                    _fit_smoothing)
    p.add_argument("--model", default=None, help="model folder to update (default: models/har)")
    p.add_argument("--data", default=None, help="UCI HAPT folder (default: $SIGNALS_DATA/uci-hapt)")
    p.add_argument("--lag", type=LAG, default=None,
                   help=f"default smoothing lag in windows (0..{MAX_LAG_WINDOWS}; default: 8)")
    p.add_argument("--emission-weight", type=float_range(0, 100, lo_open=True), default=None,
                   help="weight of the window log-probabilities against the transition costs ((0, 100]; "
                        "default: 1.0)")
    p.add_argument("--prior-weight", type=float_range(0, 1), default=None,
                   help="[0, 1]: how far window posteriors are divided by the training class prior (default: 0)")
    p.add_argument("--pseudo-count", type=float_range(0, 1e6, lo_open=True), default=0.5,
                   help="added to every transition count, so no change of activity is impossible ((0, 1e6]; "
                        "default: 0.5)")
    p.add_argument("--min-duration", type=int_range(1, MAX_MIN_DURATION), default=None,
                   help=f"duration-aware HMM: no activity lasts fewer than this many windows, except at a recording's "
                        f"ends (1..{MAX_MIN_DURATION}; default: 1, the plain HMM)")
    p.add_argument("--switch-scale", type=float_range(0, 100, lo_open=True), default=1.0,
                   help="multiplies the fitted probabilities of changing activity (< 1: fewer changes; (0, 100]; "
                        "default: 1)")
