"""Synthesizer training throughput: eager vs ``--compile`` decoder step, at one or more batch sizes, in one run.

    python benchmarks/bench_tts_train.py --data data/tts_pack                                  # CPU, batch 8
    python benchmarks/bench_tts_train.py --data data/tts_gpu --batch-size 192 384 --steps 20 --json out.json  # GPU

Each (mode, batch size) trains a fresh model (``--init`` a folder for real weights; speed does not depend
on them) for ``--warmup`` steps, then times ``--steps`` full training steps (collate, forward, backward,
clip, Adam; bf16 autocast on CUDA as in ``train.py``) on the same length-bucketed batches of the pack's
training split. Printed: warm-up seconds (the compile happens there), seconds per step, steps/s,
utterances/s, decoder steps/s (the sequential loop), the collate time per batch alone, and the peak GPU
memory. The teacher-forced loop runs T/r decoder steps per batch, so a run's speed depends on the
lengths drawn: compare modes within one run, on the same batches, not across runs.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from signals.speech.tts.config import TrainConfig
from signals.speech.tts.data import Pack, length_buckets
from signals.speech.tts.model import Tacotron2
from signals.speech.tts.train import (
    collate,
    compile_decoder_step,
    compute_losses,
    load_weights,
    model_weights,
)
from signals.torchutils import first_line, pick_device


def bench(pack: Pack, batches: list[np.ndarray], cfg: TrainConfig, device: torch.device, compiled: bool,
          warmup: int, init: str | None) -> dict:
    torch.manual_seed(0)
    model = Tacotron2(cfg.model)
    if init:
        tensors, _ = load_weights(init)
        model.load_state_dict(model_weights(tensors))
    else:
        mean, std = pack.mel_stats("train")
        model.mel_mean.copy_(torch.from_numpy(mean))
        model.mel_std.copy_(torch.from_numpy(std))
    model.to(device).train()
    if compiled:
        compile_decoder_step(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    autocast = cfg.bf16 and device.type == "cuda"
    train_idx = pack.indices("train")
    rng = np.random.default_rng(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def one(b: np.ndarray) -> float:
        t = time.perf_counter()
        batch = {k: v.to(device) for k, v in collate(pack, train_idx[b], cfg.model, rng).items()}
        collate_s = time.perf_counter() - t
        losses = compute_losses(model, batch, cfg, autocast)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        return collate_s

    t0 = time.perf_counter()
    for b in batches[:warmup]:
        one(b)
    sync()
    warm_s = time.perf_counter() - t0
    timed = batches[warmup:]
    t0 = time.perf_counter()
    collate_s = sum(one(b) for b in timed)
    sync()
    secs = time.perf_counter() - t0
    frames = sum(int(max(pack.n_frames(i) for i in train_idx[b])) for b in timed)  # padded length per batch
    return {"mode": "compiled" if compiled else "eager", "batch_size": cfg.batch_size, "warmup_s": round(warm_s, 1),
            "s_per_step": round(secs / len(timed), 4), "steps_per_s": round(len(timed) / secs, 3),
            "utterances_per_s": round(sum(len(b) for b in timed) / secs, 1),
            "decoder_steps_per_s": round(frames / cfg.model.reduction / secs, 1),
            "collate_ms": round(1000 * collate_s / len(timed), 1),
            "peak_gpu_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="training pack (signals speech tts prepare)")
    ap.add_argument("--batch-size", type=int, nargs="+", default=[8])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per (mode, batch size)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (the compile happens here)")
    ap.add_argument("--modes", nargs="+", choices=["eager", "compiled"], default=["eager", "compiled"])
    ap.add_argument("--init", help="model folder or checkpoint to load (default: random weights)")
    ap.add_argument("--device", help="cpu, cuda (default: cuda if available)")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    pack = Pack.load(args.data)
    lengths = np.asarray([pack.n_frames(i) for i in pack.indices("train")])
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                f", {torch.get_num_threads()} threads") + f", torch {torch.__version__}")
    rows = []
    for bs in args.batch_size:
        cfg = replace(TrainConfig(), batch_size=bs)
        # the same batches for every mode: one epoch's draw, then its first warmup + steps
        batches = list(length_buckets(lengths, bs, np.random.default_rng(0)))[: args.warmup + args.steps]
        for mode in args.modes:
            try:
                row = bench(pack, batches, cfg, device, mode == "compiled", args.warmup, args.init)
            except Exception as exc:  # noqa: BLE001 - e.g. no compiler for torch.compile: report it, go on
                print(f"{mode}, batch {bs}: failed: {first_line(exc)}", flush=True)
                continue
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'mode':9} {'batch':>5} {'warm-up s':>9} {'s/step':>7} {'steps/s':>7} {'utt/s':>7} {'dec steps/s':>11} "
          f"{'collate ms':>10} {'peak GB':>7}")
    for r in rows:
        print(f"{r['mode']:9} {r['batch_size']:>5} {r['warmup_s']:>9} {r['s_per_step']:>7} {r['steps_per_s']:>7} "
              f"{r['utterances_per_s']:>7} {r['decoder_steps_per_s']:>11} {r['collate_ms']:>10} {r['peak_gpu_gb'] or '-':>7}")
    for bs in args.batch_size:
        by = {r["mode"]: r for r in rows if r["batch_size"] == bs}
        if len(by) == 2:
            print(f"batch {bs}: compiled / eager speed {by['eager']['s_per_step'] / by['compiled']['s_per_step']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
