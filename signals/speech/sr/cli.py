"""``signals speech upsample`` and ``signals speech sr prepare | train | train-envelope | evaluate | export |
export-envelope``. The only SR module that
parses or prints.

Handlers import their implementation lazily: ``upsample`` and ``evaluate`` run on the torch-free
runtime; ``train`` and ``export`` need the training extra (torch). Training options come from the fields
of :class:`signals.speech.sr.config.TrainConfig` (defaults live there only).
"""

from __future__ import annotations

import argparse
import json
import sys

from signals.cliutil import (
    add_command,
    add_group,
    float_range,
    int_range,
    nonnegative_int,
    positive_int,
    standalone,
    warn,
)

# `sr train` / `sr prepare` options with ranges of their own (other counts are >= 0, other numbers finite: configio)
FRACTION = float_range(0, 1)
TRAIN_TYPES = {
    "steps": positive_int,
    "max_seconds": float_range(0, 1e9),
    "batch_size": positive_int,
    "lr": float_range(0, 10, lo_open=True),
    "lr_min": FRACTION,
    "lr_decay": float_range(0, 1, lo_open=True),
    "grad_clip": float_range(0, 1e9, lo_open=True),
    "above_band_weight": FRACTION,
    "val_clips": positive_int,
    "log_every": positive_int,
    "eval_every": positive_int,
    "segment": positive_int,
    "vocoder_prob": FRACTION,
}
PREPARE_TYPES = {
    "min_bandwidth": float_range(0, 24000, lo_open=True),
    "min_seconds": float_range(0, 3600),
    "target_dbfs": float_range(-100, 0),
    "peak_dbfs": float_range(-100, 0),
    "pack_mb": float_range(0, 1e6, lo_open=True),
    "workers": positive_int,
}

TRAIN_NAMES = {"generator": "--config", "discriminator": "--disc"}
TRAIN_HELP = {
    "generator": "generator size",
    "discriminator": "discriminator widths (tiny: CPU tests)",
    "disc_start": "mel-only warm-up steps",
    "disc_warmup": "after --disc-start, steps that train only the discriminators (the generator stays mel-only)",
    "test": "utterance ids held out for evaluation (folders / .npz; a pack carries its own split)",
    "test_speakers": "hold out every utterance of these speakers too (VCTK SR split: p360 p361 p362 p363 p364 "
                     "p374 p376 s5)",
    "val": "utterance ids for validation (training speakers; folders / .npz only)",
    "segment": "crop length in samples at 48 kHz",
    "steps": "the run's planned total (the cosine schedule ends here); keep it when resuming",
    "max_seconds": "stop after this wall time, saving the state (one lent-GPU session)",
    "lr_schedule": "cosine: warm-up, then cosine to lr * lr_min at --steps; exp: lr_decay per 1000 steps",
    "warmup_steps": "linear learning-rate warm-up (D warms up again after a resume without its moments)",
    "lr_min": "cosine floor, as a fraction of lr",
    "above_band_weight": "mel-loss weight above each clip's measured bandwidth (1: train to the recorded silence, "
                         "0: ignore); below 1 the discriminators see both signals low-passed at the bandwidth",
    "val_clips": "validation clips scored per evaluation (checkpoints are chosen on their LSD only)",
    "state_moments": "optimiser moments kept in <out>/last: all (39.7 MB for small + compact), generator "
                     "(21.3 MB), none",
}


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model folder (default: $SIGNALS_MODELS/super_resolution, else "
                                   "models/super_resolution)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="onnxruntime intra-op threads, >= 1 (default: "
                                                                     "all cores)")
    p.add_argument("--frame-comb", type=nonnegative_int, metavar="R", dest="frame_comb",
                   help="override the model's frame_comb_radius: remove the generator's frame-locked lines by "
                        "subtracting each frame phase's mean over 2R+1 frames (0: off; default: the model's)")
    p.add_argument("--generated-gain", type=float, metavar="DB", dest="generated_gain",
                   help="override the model's generated_gain_db: gain on the generated band, after the frame "
                        "comb (default: the model's)")
    p.add_argument("--no-envelope", action="store_true", dest="no_envelope",
                   help="leave out the model's learned envelope of the generated band (then --generated-gain and "
                        "the model's fixed gain apply)")


def _upsample(args) -> int:
    from signals.outputs import check_audio_output
    from signals.speech.sr.frontend import SAMPLE_RATE
    from signals.speech.sr.infer import load

    # the output is checked before the model loads (upsample_file checks it again, with the channel count)
    check_audio_output(args.output, SAMPLE_RATE, float32=args.float, inputs=[args.input], overwrite=args.overwrite)
    sr = load(args.model, threads=args.threads, frame_comb_radius=args.frame_comb, generated_gain_db=args.generated_gain,
              envelope=not args.no_envelope)
    info = sr.upsample_file(args.input, args.output, subtype="FLOAT" if args.float else "PCM_16",
                            postprocess=not args.no_postprocess, overwrite=args.overwrite)
    for message in info["warnings"]:
        warn(message)
    print(f"wrote {info['output']}: {info['seconds']:.2f} s, {info['channels']} channel(s), {sr.sample_rate} Hz "
          f"({'float32' if args.float else '16-bit'}) from {info['input_rate']} Hz input")
    return 0


def add_train_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from signals.configio import add_arguments
    from signals.speech.sr.config import DISCRIMINATORS, GENERATORS, TrainConfig
    from signals.speech.sr.data import DegradeConfig

    p.add_argument("--data", required=True, help="training pack (sr prepare), folder of wideband audio (any rate "
                                                 ">= 44.1 kHz) or a prepared .npz")
    p.add_argument("--out", default="runs/sr", help="run folder: last/ (resumable state), generator*.safetensors, "
                                                     "log, samples")
    add_arguments(p, TrainConfig, names=TRAIN_NAMES, help=TRAIN_HELP, types=TRAIN_TYPES,
                  choices={"generator": tuple(GENERATORS), "discriminator": tuple(DISCRIMINATORS),
                           "lr_schedule": ("cosine", "exp"), "state_moments": ("all", "generator", "none")})
    add_arguments(p, DegradeConfig, only=["segment", "vocoder_prob"], types=TRAIN_TYPES, help={
        **TRAIN_HELP, "vocoder_prob": "share of crops degraded like 22.05 kHz vocoder output"})
    p.add_argument("--init-weights", default=None,
                   help="start the generator from these .safetensors weights (fine-tuning; ignored with --resume)")
    p.add_argument("--val-postprocess", default=None, metavar="FOLDER",
                   help="score validation (and choose generator_best) on the output as this HiFi-SR folder's runtime "
                        "post-processes it: frame comb, learned envelope, crossover (e.g. models/super_resolution; "
                        "default: the raw generator's output)")
    p.add_argument("--workers", type=nonnegative_int, default=2, help="DataLoader worker processes (0: load in the "
                                                                          "main process)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: best available)")
    p.add_argument("--resume", action="store_true", help="continue from the compact state <out>/last (if any)")
    p.add_argument("--no-checkpoint", action="store_true", help="write no resumable state (weights only)")
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
          amp=not args.no_amp, progress=not args.quiet, val_postprocess=args.val_postprocess)
    return 0


def main_train(argv: list[str] | None = None) -> int:
    """``torchrun -m signals.speech.sr.train``: the options of ``signals speech sr train``."""
    return standalone(add_train_arguments, _train, "Train HiFi-SR.", argv)


PREPARE_HELP = {
    "packages": "Debian packages to read",
    "min_bandwidth": "keep clips whose measured bandwidth reaches this (Hz)",
    "drop_db": "level criterion: the bandwidth ends where the spectrum falls this far below the 0-4 kHz level",
    "snr_db": "content criterion: speech must stand this far above the clip's noise floor",
    "min_seconds": "drop clips shorter than this after trimming silence",
    "trim_db": "leading/trailing frames this far below the loudest are silence",
    "target_dbfs": "active-speech level after loudness normalisation",
    "peak_dbfs": "normalisation never pushes the peak above this",
    "seed": "draws the default held-out groups and the device pack's order",
    "max_tonal_db": "drop clips whose time-averaged spectrum has lines this far above the local median (dB)",
    "exclude_groups": "groups never used (package/language or hedgewars/<voice>)",
    "val_groups": "groups held out for validation (default: one per package, drawn with --seed)",
    "test_groups": "groups held out for the test (default: one per package, drawn with --seed)",
    "pack_mb": "size limit of the device pack (MB of audio)",
    "pack_codec": "source: the packages' own Ogg bytes (decoded with soundfile); pcm16: 48 kHz int16",
    "pack_val_minutes": "validation audio inside the device pack",
    "prefer_bandwidth": "device pack: clips reaching this bandwidth (Hz) go first",
    "workers": "processes that decode and measure clips",
}


def _prepare(args) -> int:
    from signals.configio import from_args
    from signals.speech.sr.config import PrepareConfig
    from signals.speech.sr.corpus import prepare

    m = prepare(args.out, from_args(PrepareConfig, args), cache=args.cache, debs=args.debs, pack=args.pack,
                progress=not args.quiet)
    kept, dev = m["kept"], m["device_pack"]
    print(json.dumps({
        "found": m["found"], "kept": {k: kept[k] for k in ("clips", "minutes")}, "per_split": kept["per_split"],
        "languages": len(kept["per_language"]), "dropped": m["dropped"], "split": m["split"],
        "full_pack": {k: m["full_pack"][k] for k in ("folder", "clips", "minutes", "bytes")},
        "device_pack": {k: dev[k] for k in ("folder", "clips", "minutes", "bytes", "per_split")},
        "seconds": m["seconds"], "manifest": f"{args.out}/manifest.json"}, indent=1))
    return 0


def _evaluate(args) -> int:
    from signals.speech.sr.evaluate import evaluate, format_table

    result = evaluate(args.dir, args.model, out=args.out, held_out=args.held_out, files=args.files,
                      rates=tuple(args.rates), threads=args.threads, split=args.split, vocoder=args.vocoder,
                      limit=args.limit, frame_comb_radius=args.frame_comb, generated_gain_db=args.generated_gain,
                      envelope=not args.no_envelope, record=args.record, command="signals " + " ".join(sys.argv[1:]))
    print(format_table(result))
    return 0


def _train_envelope(args) -> int:
    from dataclasses import replace

    from signals.configio import from_args
    from signals.speech.sr.config import EnvelopeConfig, EnvelopeTrainConfig
    from signals.speech.sr.train_envelope import train_envelope

    cfg = from_args(EnvelopeTrainConfig, args)
    cfg = replace(cfg, net=from_args(EnvelopeConfig, args, cfg.net))
    result = train_envelope(cfg, args.data, args.model, args.out, workers=args.workers, threads=args.threads,
                            progress=not args.quiet, data_share=args.data_share)
    print(json.dumps(result))
    return 0


def _export_envelope(args) -> int:
    from signals.speech.sr.export import export_envelope

    graph = export_envelope(args.weights, args.model)
    print(json.dumps({"onnx": f"{args.model}/{graph.file}", "parity_max_abs": graph.parity_max_abs_diff}))
    return 0


def _export(args) -> int:
    from safetensors.numpy import load_file

    from signals.speech.sr.export import export, run_provenance

    source, licence = run_provenance(args.weights)
    cfg = export(args.weights, args.out, source=source, licence=licence, frame_comb_radius=args.frame_comb,
                 generated_gain_db=args.generated_gain)
    params = sum(v.size for v in load_file(f"{args.out}/{cfg.weights}").values())
    print(json.dumps({"onnx": [f"{args.out}/{g.file}" for g in cfg.graphs.values()],
                      "parity_max_abs": max(g.parity_max_abs_diff for g in cfg.graphs.values()), "params": params}))
    return 0


def register(group: argparse._SubParsersAction) -> None:
    """Add ``upsample`` and the ``sr`` group to ``signals speech``."""
    p = add_command(group, "upsample", "super-resolve speech to 48 kHz (any input rate 4-48 kHz)", _upsample)
    p.add_argument("input", help="audio file (WAV/FLAC/...; 4-384 kHz, higher rates are resampled to 48 kHz; mono "
                                 "or stereo; any length: streamed, flat memory)")
    p.add_argument("--output", "-o", required=True, help="output file at 48 kHz: .wav, .flac, .aiff (16-bit), .ogg, "
                                                          ".opus, .mp3 (lossy); written to a temporary file and "
                                                          "renamed when complete")
    p.add_argument("--float", action="store_true", help="write 32-bit float instead of 16-bit PCM (.wav/.aiff only)")
    p.add_argument("--overwrite", action="store_true", help="allow --output to be the input file (replaced only once "
                                                            "the new file is complete)")
    p.add_argument("--no-postprocess", action="store_true", help="raw generator output (no band-keeping crossover)")
    _model_args(p)

    sr = add_group(group.add_parser("sr", help="HiFi-SR super-resolution: prepare, train, evaluate, export"))
    p = add_command(sr, "prepare", "build training data from wideband speech in Debian packages (apt-get download)",
                    _prepare)
    from signals.configio import add_arguments
    from signals.speech.sr.config import PrepareConfig

    p.add_argument("--out", default="data/sr_debian", help="output folder: manifest.json, clips.tsv, full/ and pack/")
    p.add_argument("--cache", help="where packages are downloaded and unpacked (default $SIGNALS_CACHE/debian)")
    p.add_argument("--debs", help="folder with already downloaded NAME_*.deb files (else apt-get download)")
    p.add_argument("--pack", help="folder of the device pack (default <out>/pack)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_arguments(p, PrepareConfig, help=PREPARE_HELP, choices={"pack_codec": ("source", "pcm16")},
                  types=PREPARE_TYPES)
    add_train_arguments(add_command(sr, "train", "train HiFi-SR on a folder of wideband audio (torchrun-ready)",
                                    _train))

    p = add_command(sr, "train-envelope", "train the learned envelope of a model folder's generated band (CPU, "
                                          "minutes)", _train_envelope)
    from signals.speech.sr.config import EnvelopeConfig, EnvelopeTrainConfig

    p.add_argument("--data", nargs="+", required=True, help="training packs (sr prepare) and/or folders of wideband "
                                                            "audio")
    p.add_argument("--model", default=None, help="the HiFi-SR folder whose generated band it shapes (validation runs "
                                                 "its runtime; default models/super_resolution)")
    p.add_argument("--data-share", nargs="+", type=float_range(0, 1e6), metavar="W", dest="data_share",
                   help="share of the training crops drawn from each --data path, one per path (default: in "
                        "proportion to their audio's length)")
    p.add_argument("--out", default="runs/sr_envelope", help="run folder: log, envelope*.safetensors")
    add_arguments(p, EnvelopeTrainConfig, skip=["net", "degrade"], types=TRAIN_TYPES, help={
        "steps": "training steps (the cosine schedule ends here)", "segment": "crop length in samples at 48 kHz",
        "val_clips": "validation clips per training pack (evenly spaced)",
        "max_seconds": "stop after this much training time (0: no limit)"})
    add_arguments(p, EnvelopeConfig, only=["channels", "kernel", "dilations", "band_hz"], types={
        "channels": positive_int, "kernel": positive_int, "band_hz": float_range(50, 24000)})
    p.add_argument("--workers", type=nonnegative_int, default=1, help="DataLoader worker processes")
    p.add_argument("--threads", type=positive_int, default=None, help="torch / onnxruntime threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add_command(sr, "evaluate", "LSD / high-band LSD / SI-SDR / tonal artefacts per input rate vs baselines",
                    _evaluate)
    p.add_argument("dir", help="folder of wideband reference audio, or a training pack (sr prepare)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="a pack's split to score")
    p.add_argument("--vocoder", action="store_true", help="also score 22.05 kHz vocoder copy-synthesis as input "
                                                          "(the voice-cloning pipeline's; needs models/vocoder)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="at most this many files, >= 1 (evenly spaced)")
    p.add_argument("--held-out", action="store_true", help="only the test utterances listed in the model's config")
    p.add_argument("--files", nargs="*", help="only these utterance ids")
    p.add_argument("--rates", nargs="+", type=int_range(4000, 48000), default=[4000, 8000, 16000, 24000],
                   help="input rates (Hz, 4000-48000)")
    p.add_argument("--out", help="folder for results.json and results.txt")
    p.add_argument("--record", metavar="NAME", help="also store the summary in the model folder's metrics.json "
                                                    "under evaluations.NAME (the folder as it is: no overrides)")
    _model_args(p)

    p = add_command(sr, "export-envelope", "add a trained envelope net to a model folder (envelope.onnx, "
                                           "frontend.envelope; replaces the fixed gain)", _export_envelope)
    p.add_argument("--weights", required=True, help="envelope .safetensors from train-envelope")
    p.add_argument("--model", default="models/super_resolution", help="model folder to add it to")

    p = add_command(sr, "export", "export generator weights to an ONNX model folder (with parity check)", _export)
    p.add_argument("--weights", required=True, help="generator .safetensors from training")
    p.add_argument("--out", default="models/super_resolution", help="model folder to write")
    p.add_argument("--frame-comb", type=nonnegative_int, default=0, metavar="R", dest="frame_comb",
                   help="frontend.frame_comb_radius of the folder (choose it on validation audio with "
                        "scripts/sr_frame_comb_sweep.py; 0: off) (default: 0)")
    p.add_argument("--generated-gain", type=float, default=0.0, metavar="DB", dest="generated_gain",
                   help="frontend.generated_gain_db of the folder: gain on the generated band after the frame comb "
                        "(choose it on validation audio with scripts/sr_frame_comb_sweep.py) (default: 0)")
