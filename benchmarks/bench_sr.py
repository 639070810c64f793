"""HiFi-SR generator speed on CPU: real-time factor through ONNX Runtime and PyTorch eager.

    .venv/bin/python benchmarks/bench_sr.py [--model models/super_resolution] [--threads 1] [--repeats 3]

For 1 s and 10 s of input (48 kHz, i.e. the log-mel of 188 / 1876 frames) it times the bare generator
(mel -> waveform) in both engines, the full ``upsample`` path (resample, mel, chunked ONNX, crossover)
for 10 s of 16 kHz input, and prints the parameter count and peak resident memory of each stage.
RTF = processing time / audio duration (below 1 = faster than real time).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (graph optimisation, allocator)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (default: models/super_resolution)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for both engines")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from signals.speech.sr.infer import load

    sr = load(args.model, providers=["CPUExecutionProvider"], threads=args.threads)
    hop, n_mels = sr.hop, sr.mel_cfg.n_mels
    print(f"model folder: {sr.folder}  threads: {args.threads}")
    rng = np.random.default_rng(0)
    rows = []
    for seconds in (1, 10):
        frames = 1 + seconds * 48000 // hop
        mel = (rng.standard_normal((n_mels, frames)) - 6).astype(np.float32)
        t = best_time(lambda mel=mel: sr._run(mel), args.repeats)
        rows.append(("onnxruntime", seconds, t))
    rss_ort = peak_rss_mb()

    import torch

    from signals.speech.sr.model import Generator, GeneratorConfig
    from signals.torchutils import count_parameters, load_safetensors

    torch.set_num_threads(args.threads)
    gen = load_safetensors(Generator(GeneratorConfig.from_dict(sr.config["generator"])),
                           sr.folder / "model.safetensors").eval()
    for seconds in (1, 10):
        frames = 1 + seconds * 48000 // hop
        mel = torch.from_numpy((rng.standard_normal((1, n_mels, frames)) - 6).astype(np.float32))
        t = best_time(lambda mel=mel: gen.infer(mel), args.repeats)
        rows.append(("torch eager", seconds, t))
    rss_torch = peak_rss_mb()

    print(f"generator parameters: {count_parameters(gen):,} ({count_parameters(gen) * 4 / 2**20:.1f} MiB fp32)")
    print(f"{'engine':<14}{'input':>8}{'time (s)':>12}{'RTF':>10}")
    for engine, seconds, t in rows:
        print(f"{engine:<14}{seconds:>6} s{t:>12.3f}{t / seconds:>10.3f}")

    wav = (0.1 * rng.standard_normal(10 * 16000)).astype(np.float32)
    from scipy.signal import butter, sosfilt

    wav = sosfilt(butter(8, 7000, fs=16000, output="sos"), wav).astype(np.float32)
    t = best_time(lambda: sr.upsample(wav, 16000), 1)
    print(f"full upsample path (10 s of 16 kHz input, chunked ONNX + crossover): {t:.3f} s, RTF {t / 10:.3f}")
    print(f"peak RSS: after ONNX runs {rss_ort:.0f} MiB, after torch runs {rss_torch:.0f} MiB, "
          f"end {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
