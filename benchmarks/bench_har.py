"""FusionActNet inference speed on CPU: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8.

    python benchmarks/bench_har.py --model models/har --threads 2

Prints, for a single window (batch 1) and for batches of 256, the median (p50) and p99 latency per
call and the throughput in windows/s, so the ratios between the three back ends are visible in one
run. Inputs are real UCI HAR test windows when the dataset is present, else random windows in the
model's raw units. Numbers depend on the machine and its load: quote them with both.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


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


def timeit(fn, x: np.ndarray, batch: int, iters: int, warmup: int) -> dict:
    n = len(x) - batch + 1
    rng = np.random.default_rng(0)
    for _ in range(warmup):
        fn(x[:batch])
    times = []
    for _ in range(iters):
        i = int(rng.integers(0, n))
        xb = x[i : i + batch]
        t0 = time.perf_counter()
        fn(xb)
        times.append(time.perf_counter() - t0)
    t = np.asarray(times)
    return dict(p50_ms=1e3 * np.median(t), p99_ms=1e3 * np.percentile(t, 99), wps=batch * len(t) / t.sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/har")
    p.add_argument("--threads", type=int, default=2, help="threads for torch and onnxruntime")
    p.add_argument("--iters1", type=int, default=300, help="timed calls at batch 1")
    p.add_argument("--iters256", type=int, default=20, help="timed calls at batch 256")
    args = p.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from signals.har.export import load_model
    from signals.modelfolder import ModelFolder

    torch.set_num_threads(args.threads)
    folder = ModelFolder.load(args.model, "har")
    model = load_model(folder)
    x, source = windows(folder, model, 1024)

    def eager(xb):
        with torch.inference_mode():
            return model.log_probs(torch.from_numpy(xb)).exp().numpy()

    backends = {"torch eager fp32": eager}
    for kind in folder.config.graphs:  # fp32, int8
        sess = folder.session(kind, providers=["CPUExecutionProvider"], threads=args.threads)
        backends[f"onnxruntime {kind}"] = lambda xb, s=sess: s.run(["probs"], {"x": xb})[0]

    print(f"model {args.model} ({model.config.members} member(s)), {source}, threads={args.threads}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}; load average {os.getloadavg()[0]:.2f} (shared machine)")
    print(f"{'backend':<20}{'batch':>6}{'p50 ms':>10}{'p99 ms':>10}{'windows/s':>12}")
    rows = {}
    for name, fn in backends.items():
        for batch, iters in ((1, args.iters1), (256, args.iters256)):
            r = timeit(fn, x, batch, iters, warmup=max(3, iters // 10))
            rows[(name, batch)] = r
            print(f"{name:<20}{batch:>6}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{r['wps']:>12.1f}", flush=True)
    base = rows[("torch eager fp32", 256)]["wps"]
    print("throughput at batch 256 relative to torch eager: " + ", ".join(
        f"{n} {rows[(n, 256)]['wps'] / base:.2f}x" for n in backends))
    base1 = rows[("torch eager fp32", 1)]["p50_ms"]
    print("p50 latency at batch 1 relative to torch eager: " + ", ".join(
        f"{n} {rows[(n, 1)]['p50_ms'] / base1:.2f}x" for n in backends))


if __name__ == "__main__":
    main()
