"""HAR inference speed on CPU: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8, several models in one run.

    python benchmarks/bench_har.py --threads 1                       # models/har and models/har-lite (if present)
    python benchmarks/bench_har.py --model models/har --model models/har-lite --model models/har-hapt --threads 1
    python benchmarks/bench_har.py --model models/har-lite --model models/har-hapt-lite --threads 1   # the device pair

Prints, per model and back end, for a single window (batch 1) and for batches of 256, the median (p50)
and p99 latency per call and the throughput in windows/s, so the models and back ends can be compared
within one run on one machine state. Then the device targets of FusionActNet-Lite (issue 10) are
checked for every model: int8 ONNX <= 1 MB, >= 10,000 windows/s at batch 256 and single-window p50
<= 0.2 ms with ONNX Runtime. Inputs are real UCI HAR test windows when the dataset is present, else
random windows in the model's raw units. Numbers depend on the machine and its load: quote them with both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

TARGETS = dict(int8_mb=1.0, wps_256=10_000.0, p50_1_ms=0.2)  # FusionActNet-Lite's device targets


def windows(folder, model, n: int) -> tuple[np.ndarray, str]:
    try:
        from signals.har.data import load_dataset

        x = load_dataset(folder.config.source["dataset"]["name"]).test.x
        reps = int(np.ceil(n / len(x)))
        return np.ascontiguousarray(np.concatenate([x] * reps)[:n], np.float32), "UCI HAR test windows"
    except Exception:
        net = model.members[0]  # raw units from the normalisation buffers inside the model
        shape = (n, model.config.in_channels, model.config.window)
        x = np.random.default_rng(0).normal(size=shape) * net.std.numpy() + net.mean.numpy()
        return x.astype(np.float32), "random windows (dataset not found)"


def timeit(fn, x: np.ndarray, batch: int, iters: int, warmup: int, budget_s: float = 15.0) -> dict:
    """p50 / p99 latency per call and windows/s (batch / p50) over ``iters`` timed calls, fewer (at least 5)
    when they would take longer than ``budget_s`` (the full model at batch 256 needs about a second a call)."""
    n = len(x) - batch + 1
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    fn(x[:batch])
    iters = max(5, min(iters, int(budget_s / max(time.perf_counter() - t0, 1e-9))))
    for _ in range(min(warmup, iters)):
        fn(x[:batch])
    times = []
    for _ in range(iters):
        i = int(rng.integers(0, n))
        xb = x[i : i + batch]
        t0 = time.perf_counter()
        fn(xb)
        times.append(time.perf_counter() - t0)
    t = np.asarray(times)
    return dict(p50_ms=1e3 * np.median(t), p99_ms=1e3 * np.percentile(t, 99), wps=batch / np.median(t), iters=len(t))


def bench_model(path: str, args) -> dict:
    import torch

    from signals.har.export import load_model
    from signals.modelfolder import ModelFolder

    folder = ModelFolder.load(path, "har")
    model = load_model(folder)
    x, source = windows(folder, model, 1024)
    params = sum(p.numel() for p in model.parameters())

    def eager(xb):
        with torch.inference_mode():
            return model.log_probs(torch.from_numpy(xb)).exp().numpy()

    backends = {} if args.no_torch else {"torch eager fp32": eager}
    sizes = {}
    for kind, graph in folder.config.graphs.items():  # fp32, int8
        sess = folder.session(kind, providers=["CPUExecutionProvider"], threads=args.threads)
        backends[f"onnxruntime {kind}"] = lambda xb, s=sess: s.run(["probs"], {"x": xb})[0]
        sizes[kind] = folder.file(graph.file).stat().st_size
    print(f"\n{path}: {params / 1e6:.3f} M parameters, {model.config.members} member(s), "
          f"ONNX " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items()) + f"; {source}", flush=True)
    print(f"{'backend':<20}{'batch':>6}{'p50 ms':>10}{'p99 ms':>10}{'windows/s':>12}{'calls':>7}")
    rows = {}
    for name, fn in backends.items():
        for batch, iters in ((1, args.iters1), (256, args.iters256)):
            r = timeit(fn, x, batch, iters, warmup=max(3, iters // 10), budget_s=args.budget)
            rows[f"{name} @{batch}"] = r
            print(f"{name:<20}{batch:>6}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['wps']:>12.1f}{r['iters']:>7d}",
                  flush=True)
    return dict(model=path, parameters=params, onnx_bytes=sizes, rows=rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=None,
                   help="model folder (repeat for several; default: models/har and models/har-lite)")
    p.add_argument("--threads", type=int, default=1, help="threads for torch and onnxruntime")
    p.add_argument("--iters1", type=int, default=2000, help="timed calls at batch 1")
    p.add_argument("--iters256", type=int, default=200, help="timed calls at batch 256")
    p.add_argument("--budget", type=float, default=15.0,
                   help="seconds per row: fewer timed calls (at least 5) where the model is slow")
    p.add_argument("--no-torch", action="store_true", help="time the ONNX graphs only")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    models = args.model or [m for m in ("models/har", "models/har-lite") if Path(m, "config.json").is_file()]
    print(f"threads={args.threads}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; load average "
          f"{os.getloadavg()[0]:.2f} (shared machine); p50/p99 per call, windows/s = batch / p50")
    results = [bench_model(m, args) for m in models]

    print("\ndevice targets (FusionActNet-Lite): int8 ONNX <= 1 MB, >= 10,000 windows/s at batch 256, "
          "p50 <= 0.2 ms at batch 1, one thread")
    for r in results:
        for kind in r["onnx_bytes"]:
            b1, b256 = r["rows"][f"onnxruntime {kind} @1"], r["rows"][f"onnxruntime {kind} @256"]
            ok = dict(size=r["onnx_bytes"][kind] <= TARGETS["int8_mb"] * 1e6, wps=b256["wps"] >= TARGETS["wps_256"],
                      p50=b1["p50_ms"] <= TARGETS["p50_1_ms"])
            print(f"  {r['model']} {kind}: {r['onnx_bytes'][kind] / 1e6:.3f} MB {'ok' if ok['size'] else 'NO'}, "
                  f"{b256['wps']:,.0f} windows/s {'ok' if ok['wps'] else 'NO'}, "
                  f"p50 {b1['p50_ms']:.3f} ms {'ok' if ok['p50'] else 'NO'}")
    if len(results) > 1:
        base = results[0]
        for r in results[1:]:
            for kind in r["onnx_bytes"]:
                key = f"onnxruntime {kind} @256"
                if key in base["rows"]:
                    print(f"  {r['model']} / {base['model']} throughput at batch 256 ({kind}): "
                          f"{r['rows'][key]['wps'] / base['rows'][key]['wps']:.1f}x")
    if args.json:
        meta = dict(threads=args.threads, load_average=os.getloadavg()[0], torch=torch.__version__,
                    onnxruntime=onnxruntime.__version__, cpu=platform.processor() or platform.machine())
        Path(args.json).write_text(json.dumps(dict(meta=meta, results=results), indent=2, default=float) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
