"""Speaker-encoder speed: PyTorch eager vs ONNX Runtime on CPU, 1 thread and all threads, 3 s and 30 s speech.

    .venv/bin/python benchmarks/bench_encoder.py [--model models/speaker_encoder] [--seconds 2]

For each engine x threads x utterance length it times the whole utterance embedding from a 16 kHz
waveform (levelling, VAD trim, mel, partials, network, mean) and prints embeddings per second and
the real-time factor (compute time / audio duration; below 1 is faster than real time). The front
end is the same numpy code for both engines; "net ms" is the network alone. Audio is real
LibriSpeech speech (concatenated to length) when the shared data is present, else noise bursts.
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial

import numpy as np


def speech(seconds: float, sr: int = 16000) -> tuple[np.ndarray, str]:
    from signals.paths import data_root
    from signals.speech.audio import load_audio

    files = sorted((data_root() / "librispeech-mini" / "train-clean-100").glob("*.flac"))
    if files:
        parts, n = [], 0
        for f in files:
            w, _ = load_audio(f, sample_rate=sr)
            parts.append(w)
            n += len(w)
            if n >= seconds * sr:
                break
        return np.concatenate(parts)[: int(seconds * sr)], "LibriSpeech speech"
    rng = np.random.default_rng(0)
    env = (np.sin(np.arange(int(seconds * sr)) / sr * 2 * np.pi * 3) > 0).astype(np.float32)
    return (0.1 * rng.standard_normal(int(seconds * sr)) * env).astype(np.float32), "synthetic noise bursts"


def timeit(fn, min_seconds: float) -> float:
    """Mean seconds per call after one warm-up, over at least 3 calls and ``min_seconds``."""
    fn()
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def torch_net(net, mels: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return net(torch.from_numpy(mels)).numpy()


def torch_full(net, rt, wav: np.ndarray) -> np.ndarray:
    """The runtime's numpy front end with the PyTorch network in place of onnxruntime."""
    from signals.speech.encoder.frontend import mean_embedding, partial_mels

    return mean_embedding(torch_net(net, partial_mels(rt.preprocess(wav, 16000), rt.front)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder (default models/speaker_encoder)")
    p.add_argument("--seconds", type=float, default=2.0, help="minimum timing per measurement")
    args = p.parse_args()

    import torch

    from signals.speech.encoder.export import load_model
    from signals.speech.encoder.frontend import partial_mels
    from signals.speech.encoder.infer import EncoderRuntime as Runtime

    all_threads = os.cpu_count() or 1
    rt_all = Runtime.load(args.model, providers=["CPUExecutionProvider"])
    net = load_model(rt_all.folder)
    runtimes = {1: Runtime.load(args.model, providers=["CPUExecutionProvider"], threads=1), all_threads: rt_all}

    print(f"torch {torch.__version__}, onnxruntime {__import__('onnxruntime').__version__}, {all_threads} CPU threads")
    print(f"{'engine':<12} {'threads':>7} {'audio':>6} {'partials':>8} {'net ms':>8} {'total ms':>9} "
          f"{'emb/s':>7} {'RTF':>7}")
    for seconds in (3.0, 30.0):
        wav, what = speech(seconds)
        rt = runtimes[1]
        pre = rt.preprocess(wav, 16000)
        mels = partial_mels(pre, rt.front)
        for threads in sorted(runtimes):
            torch.set_num_threads(threads)
            ort = runtimes[threads]
            rows = [("torch eager", timeit(partial(torch_net, net, mels), args.seconds),
                     timeit(partial(torch_full, net, rt, wav), args.seconds)),
                    ("onnxruntime", timeit(partial(ort.run, mels), args.seconds),
                     timeit(partial(ort.embed_utterance, wav, 16000), args.seconds))]
            for name, t_net, t_full in rows:
                print(f"{name:<12} {threads:>7} {seconds:>5.0f}s {len(mels):>8} {1e3 * t_net:>8.1f} "
                      f"{1e3 * t_full:>9.1f} {1 / t_full:>7.1f} {t_full / seconds:>7.4f}")
    print(f"audio: {what}; RTF = total time / audio duration")


if __name__ == "__main__":
    main()
