"""``signals speech embed | verify`` and ``signals speech encoder train | evaluate | cohort | export | convert``.

The only speaker-encoder module that parses or prints. Handlers import their implementation lazily:
``embed``, ``verify``, ``evaluate`` and ``cohort`` run on the torch-free runtime; ``train``, ``export``
and ``convert`` need the training extra (torch). Training options come from the fields of
:class:`signals.speech.encoder.config.TrainConfig` (defaults live there only).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from signals.cliutil import (
    add_command,
    add_group,
    finite_float,
    float_range,
    int_range,
    positive_int,
    standalone,
    warn,
)

# `encoder train` options with ranges of their own (other counts are >= 0, other numbers finite: configio).
# GE2E needs at least 2 speakers and 2 utterances each: every utterance is compared with its own centroid
# (without itself) and with the other speakers'.
TRAIN_TYPES = {
    "steps": positive_int,
    "speakers_per_batch": int_range(2),
    "utterances_per_speaker": int_range(2),
    "lr": float_range(0, 10, lo_open=True),
    "clip_grad_norm": float_range(0, 1e9, lo_open=True),
    "wb_lr_scale": float_range(0, 1),
    "val_every": positive_int,
    "save_every": positive_int,
}

TRAIN_HELP = {
    "holdout_speakers": "speakers kept out entirely for the final test (written to OUT/test_speakers.txt)",
    "val_speakers": "training speakers set aside for validation",
    "wb_lr_scale": "learning-rate factor of GE2E's similarity w and b",
}


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model folder (default: $SIGNALS_MODELS/speaker_encoder, else models/speaker_encoder)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="onnxruntime intra-op threads, >= 1 (default: "
                                                                     "all cores)")


def _load(args):
    from signals.speech.encoder.infer import EncoderRuntime

    return EncoderRuntime.load(args.model, threads=args.threads)


def _embed(args) -> int:
    import contextlib
    import os

    import numpy as np

    from signals.outputs import AtomicOutput

    # The output (exactly this name: numpy's save would append .npy) is checked and its temporary file
    # created before any work, so /proc/x.npy or a read-only folder fails at once; it becomes the output
    # only when the array is complete, and is removed on any error.
    out = (AtomicOutput(args.output, inputs=args.files, overwrite=args.overwrite, suffixes=(".npy",))
           if args.output else contextlib.nullcontext())
    with out:
        enc = _load(args)
        embeds, _, warnings = enc.embed_files_info(args.files)
        for message in warnings:
            warn(message)
        if args.output:
            with open(out.tmp, "wb") as fh:
                np.save(fh, embeds, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
    if args.output:
        print(f"wrote {out.path}: {embeds.shape[0]} x {embeds.shape[1]} float32 (rows in argument order)")
    if args.json or not args.output:
        print(json.dumps([{"file": str(f), "embedding": [round(float(x), 6) for x in e]}
                          for f, e in zip(args.files, embeds)]))
    return 0


def _verify(args) -> int:
    enc = _load(args)
    r = enc.verify(args.a, args.b, threshold=args.threshold, raw=args.raw)
    for message in r.warnings:
        warn(message)
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, "method": r.method, "score": r.score, "cosine": r.cosine,
                          "snorm": r.snorm, "threshold": r.threshold, "same": r.same,
                          "speech_seconds": [round(x, 2) for x in r.speech_seconds],
                          "low_confidence": r.low_confidence}))
    else:
        verdict = "same speaker" if r.same else "different speakers"
        if r.low_confidence:
            verdict += " (low confidence: too little speech, see the warning)"
        snorm = f", S-norm score {r.snorm:.3f}" if r.snorm is not None else ""
        print(f"cosine similarity {r.cosine:.4f}{snorm}; decision on {r.method} "
              f"(threshold {r.threshold:.4f}): {verdict}")
    return 0


def _evaluate(args) -> int:
    from signals.speech.encoder.evaluate import calibrate, evaluate, record

    enc = _load(args)
    rep = evaluate(args.dir, enc, split=args.split_halves, speakers=args.speakers, out=args.out,
                   cohort_speakers=args.cohort_speakers, exclude_speakers=args.exclude_speakers,
                   model_cohort=args.model_cohort)
    print(f"{rep['n_speakers']} speakers, {rep['n_embeddings']} embeddings, {rep['n_target']} same-speaker / "
          f"{rep['n_nontarget']} different-speaker pairs")
    if rep["n_cohort_embeddings"]:
        inside = (f"; {rep['n_speakers_in_cohort']} trial speakers are in it and were scored leave-own-speaker-out"
                  if rep["n_speakers_in_cohort"] else "")
        print(f"S-norm against a cohort of {rep['n_cohort_embeddings']} embeddings of other speakers "
              f"({rep['cohort_speakers_file']}){inside}")
    print(f"EER {100 * rep['eer']:.2f} % at threshold {rep['threshold']:.4f} "
          f"(mean {rep['score']} same {rep['target_mean']:.3f}, different {rep['nontarget_mean']:.3f})")
    if "at_model_threshold" in rep:
        d = rep["at_model_threshold"]
        print(f"at the model's {rep['score']} threshold {d['threshold']:.4f}: false accepts {d['false_accepts']}/"
              f"{rep['n_nontarget']} (FAR {100 * d['far']:.2f} %), false rejects {d['false_rejects']}/"
              f"{rep['n_target']} (FRR {100 * d['frr']:.2f} %), accuracy {100 * d['accuracy']:.2f} %")
    for path in rep.get("outputs", []):
        print(f"wrote {path}")
    if args.calibrate:
        print(f"calibrated threshold written to {calibrate(args.calibrate, rep)}")
    if args.record:
        print(f"evaluation recorded in {record(args.record, rep)}")
    return 0


def _cohort(args) -> int:
    from signals.speech.encoder.cohort import make_cohort

    path, info = make_cohort(args.dir, args.speakers, args.model, exclude=args.exclude, split=args.split_halves,
                             licence=args.licence, threads=args.threads)
    print(f"wrote {path}: {info['n_embeddings']} x {read_dim(path)} float32 embeddings of {info['n_speakers']} "
          f"speakers ({info['n_recordings']} recordings), {path.stat().st_size / 1e6:.2f} MB; "
          "config.json updated (any S-norm threshold of an earlier cohort dropped)")
    return 0


def read_dim(path) -> int:
    import numpy as np

    return int(np.load(path, mmap_mode="r").shape[1])


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from signals.configio import add_arguments
    from signals.speech.encoder.config import TrainConfig

    p.add_argument("data", help="folder of speaker-labelled audio (sub-folder per speaker or LibriSpeech names)")
    p.add_argument("--out", required=True, help="run folder (checkpoint, logs, splits); rerun to resume")
    add_arguments(p, TrainConfig, help=TRAIN_HELP, types=TRAIN_TYPES)
    p.add_argument("--speakers", help="file of speaker IDs to use (one per line); default all")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads per process, >= 1")
    p.add_argument("--init", help="start from a model folder (model.safetensors), e.g. models/speaker_encoder")


def _train(args) -> int:
    from signals.configio import from_args
    from signals.speech.encoder.config import TrainConfig
    from signals.speech.encoder.train import train

    argv = sys.argv[sys.argv.index("train") + 1:] if "train" in sys.argv else sys.argv[1:]
    train(from_args(TrainConfig, args), args.data, args.out, speakers=args.speakers, device=args.device,
          threads=args.threads, init=args.init, command="signals speech encoder train " + shlex.join(argv))
    return 0


def main_train(argv: list[str] | None = None) -> int:
    """``python -m signals.speech.encoder.train``: the options of ``signals speech encoder train``."""
    return standalone(add_train_arguments, _train, "Train the GE2E speaker encoder (rerun to resume).", argv)


def _export(args) -> int:
    from signals.speech.encoder.export import export_checkpoint

    cfg = export_checkpoint(args.checkpoint, args.out)
    print(f"wrote {args.out} (ONNX parity max |diff| {cfg.graphs['encoder'].parity_max_abs_diff:.2e})")
    return 0


def _convert(args) -> int:
    from signals.modelfolder import REPO_MODELS
    from signals.speech.encoder.convert import convert

    cfg = convert(args.weights, args.out)
    out = args.out or REPO_MODELS / "speaker_encoder"
    kept = " (kept the calibrated verification threshold)" if cfg.runtime.get("threshold") else ""
    print(f"wrote {out}: step {cfg.source['step']}, ONNX parity max |diff| "
          f"{cfg.graphs['encoder'].parity_max_abs_diff:.2e}{kept}")
    return 0


def register(group: argparse._SubParsersAction) -> None:
    """Add ``embed``, ``verify`` and the ``encoder`` group to ``signals speech``."""
    p = add_command(group, "embed", "256-d speaker embeddings of audio files", _embed)
    p.add_argument("files", nargs="+", help="audio files (WAV/FLAC/OGG, 4-384 kHz, any channel count), each with at "
                                            "least 1 s of speech")
    p.add_argument("--output", "-o", help="write a float32 [N, 256] .npy (exactly this name, it must end in .npy), "
                                          "rows in argument order")
    p.add_argument("--overwrite", action="store_true", help="allow --output to be one of the input files (replaced "
                                                            "only once the new file is complete)")
    p.add_argument("--json", action="store_true", help="print embeddings as JSON (default when no --output)")
    _model_args(p)

    p = add_command(group, "verify", "same speaker? cosine + S-norm score of two recordings vs a calibrated threshold",
                    _verify)
    p.add_argument("a", help="audio file with at least 1 s of speech (3-30 s works best)")
    p.add_argument("b", help="audio file with at least 1 s of speech")
    p.add_argument("--threshold", type=finite_float, help="decision threshold, any finite number (default: the "
                                                          "model's calibrated one)")
    p.add_argument("--raw", action="store_true",
                   help="decide on the plain cosine at the cosine threshold, even when the model has a cohort")
    p.add_argument("--json", action="store_true")
    _model_args(p)

    enc = add_group(group.add_parser("encoder", help="GE2E speaker encoder: train, evaluate, cohort, export, convert"))

    p = add_command(enc, "train", "train the GE2E encoder (torchrun-ready; rerun to resume)", _train)
    add_train_arguments(p)

    p = add_command(enc, "evaluate", "EER over all same/different-speaker pairs of a folder", _evaluate)
    p.add_argument("dir", help="one sub-folder per speaker, or LibriSpeech <spk>-<chapter>-<utt> files")
    p.add_argument("--split-halves", action="store_true",
                   help="cut each recording into two halves to get same-speaker pairs (one recording per speaker)")
    p.add_argument("--speakers", help="file of speaker IDs to evaluate (e.g. a training run's test_speakers.txt)")
    p.add_argument("--out", help="folder for eer.json, scores.npz and the DET/histogram scores.png")
    p.add_argument("--exclude-speakers", metavar="LIST", help="leave these speakers out (e.g. the test speakers)")
    p.add_argument("--cohort-speakers", metavar="LIST",
                   help="score with S-norm against these speakers' recordings in DIR (disjoint from --speakers)")
    p.add_argument("--model-cohort", action="store_true",
                   help="score with S-norm against the model folder's cohort.npy (the one `verify` uses); trial "
                        "speakers in the cohort are scored leave-own-speaker-out")
    p.add_argument("--calibrate", metavar="MODEL_DIR",
                   help="make the EER threshold MODEL_DIR's verification threshold (the S-norm one with --model-cohort)")
    p.add_argument("--record", metavar="MODEL_DIR", help="add the result to MODEL_DIR's metrics.json and model card")
    _model_args(p)

    p = add_command(enc, "cohort", "embed an impostor cohort into MODEL_DIR/cohort.npy for S-norm in `verify`",
                    _cohort)
    p.add_argument("dir", help="one sub-folder per speaker, or LibriSpeech <spk>-<chapter>-<utt> files")
    p.add_argument("--speakers", required=True, metavar="LIST", help="file of the cohort's speaker IDs")
    p.add_argument("--exclude", metavar="LIST", help="refuse if the cohort shares a speaker with this list (test)")
    p.add_argument("--split-halves", action="store_true", help="cut each recording into two halves, as the trials")
    p.add_argument("--licence", help="licence/attribution of DIR's audio, recorded in config.json")
    _model_args(p)

    p = add_command(enc, "export", "training checkpoint -> model folder (safetensors + ONNX, parity-checked)", _export)
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True)

    p = add_command(enc, "convert", "Resemblyzer's pretrained.pt -> models/speaker_encoder", _convert)
    p.add_argument("--weights", help="path of pretrained.pt (default: the installed resemblyzer package's)")
    p.add_argument("--out", help="model folder (default: models/speaker_encoder)")
