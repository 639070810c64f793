"""HiFi-SR generator speed on CPU: real-time factor through ONNX Runtime and PyTorch eager.

    .venv/bin/python benchmarks/bench_sr.py [--model models/super_resolution] [--threads 1] [--repeats 3]

For 1 s and 10 s of input (48 kHz, i.e. the log-mel of 188 / 1876 frames) it times the bare generator
(mel -> waveform) in both engines (ONNX: the encoder graph, then the upsampler graph in the runtime's pieces of
``upsampler_chunk_frames``), the full ``upsample`` path (resample, mel, chunked ONNX, frame comb, learned
envelope, crossover) for 10 s of 16 kHz input (and without the envelope, without the comb), and prints the
parameter count and peak resident memory of each stage. ``--upsampler-chunks 0 128 256 512`` also times the
generator and the full path with each upsampler piece size (0: one piece; the output is the same).
RTF = processing time / audio duration (below 1 = faster than real time).

Memory of ``signals speech upsample`` on long files (each run in a fresh subprocess; peak RSS from
``getrusage``), streamed (``upsample_file``) and, for comparison, whole-file in memory::

    .venv/bin/python benchmarks/bench_sr.py --stream-rss 60 600 [--in-memory] [--threads 1]

The inputs are synthetic 16 kHz speech-like signals (harmonics + noise, band-limited), written block by block.

Two model folders against each other (say the shipped one and a copy made before a change), each run in a
fresh process, alternating, ``--rounds`` times; prints the range over rounds of the generator's RTF (1 s, 10 s)
and of the full path's (10 s of 16 kHz)::

    .venv/bin/python benchmarks/bench_sr.py --compare runs/old_folder [--model models/super_resolution] --rounds 3

``--blocked-convs`` instead times one folder with onnxruntime's blocked (NCHWc) convolution kernels forced on and
off (the runtime uses them on one thread only, where they are faster)::

    .venv/bin/python benchmarks/bench_sr.py --blocked-convs --threads 2 --rounds 3

Size of the compact resumable training state (``out/last``: fp16 weights, bf16 AdamW moments, <= 15.9 MiB
shards) per generator / discriminator preset and ``--state-moments`` choice, written for real::

    .venv/bin/python benchmarks/bench_sr.py --state-sizes
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def write_synthetic(path: Path, seconds: int, sr: int = 16000) -> None:
    """Speech-like 16-bit mono test input, generated and written 10 s at a time (flat memory)."""
    import soundfile as sf
    from scipy.signal import butter, sosfilt

    sos = butter(8, 0.45 * sr, fs=sr, output="sos")
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for k in range(0, seconds, 10):
            n = min(10, seconds - k) * sr
            rng = np.random.default_rng(k)
            t = np.arange(n) / sr
            f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + k)
            phase = 2 * np.pi * np.cumsum(f0) / sr
            voice = sum(np.sin(j * phase) / j for j in range(1, 40)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
            x = 0.1 * voice / np.abs(voice).max() + 0.01 * rng.standard_normal(n)
            f.write(sosfilt(sos, x).astype(np.float32))


_CHILD = """
import resource, sys, time
import numpy as np
from signals.speech.sr.infer import load
src, dst, model, threads, mode = sys.argv[1:6]
sr = load(None if model == "-" else model, threads=int(threads))
t = time.perf_counter()
if mode == "stream":
    info = sr.upsample_file(src, dst)
else:  # the whole-file path: read everything, upsample in memory (chunked generator), write at once
    from signals.speech.audio import load_audio, write_audio
    wav, rate = load_audio(src, mono=False)
    write_audio(dst, sr.upsample(wav, rate), sr.sample_rate)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, time.perf_counter() - t)
"""


def stream_rss(lengths: list[int], model: str | None, threads: int, in_memory: bool) -> None:
    modes = ["stream", "memory"] if in_memory else ["stream"]
    rows = []
    with tempfile.TemporaryDirectory(dir="runs" if Path("runs").is_dir() else None) as tmp:
        for seconds in lengths:
            src = Path(tmp) / f"in_{seconds}s_16k.wav"
            write_synthetic(src, seconds)
            for mode in modes:
                r = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(Path(tmp) / "out.wav"), model or "-",
                                    str(threads), mode], capture_output=True, text=True, check=True)
                rss, wall = map(float, r.stdout.split()[-2:])
                rows.append({"input_s": seconds, "mode": mode, "peak_rss_mib": round(rss, 1), "wall_s": round(wall, 1)})
                print(json.dumps(rows[-1]), flush=True)
    print(f"{'input':>8}{'mode':>8}{'peak RSS (MiB)':>16}{'time (s)':>10}{'RTF':>7}")
    for r in rows:
        print(f"{r['input_s']:>6} s{r['mode']:>8}{r['peak_rss_mib']:>16.0f}{r['wall_s']:>10.1f}"
              f"{r['wall_s'] / r['input_s']:>7.2f}")


def state_sizes() -> None:
    """Write the compact state of every preset pair once (optimiser moments filled by one step) and list sizes."""
    import torch

    from signals.speech.nn.discriminators import Discriminators
    from signals.speech.sr.checkpoint import MOMENTS, state_tensors
    from signals.speech.sr.config import DISCRIMINATORS, GENERATORS
    from signals.speech.sr.model import Generator
    from signals.torchutils import SHARD_BYTES, save_compact

    limit = 64 * 2**20
    print(f"{'generator':<10}{'discriminators':<16}{'params (M)':>11}" + "".join(f"{m + ' (MB / shards)':>24}" for m in MOMENTS)
          + "   fits 64 MiB back")
    with tempfile.TemporaryDirectory(dir="runs" if Path("runs").is_dir() else None) as tmp:
        for g in GENERATORS:
            for d in DISCRIMINATORS:
                gen, disc = Generator(GENERATORS[g]), Discriminators(DISCRIMINATORS[d])
                opts = []
                for m in (gen, disc):
                    opt = torch.optim.AdamW(m.parameters(), lr=0.0)
                    for q in m.parameters():
                        q.grad = torch.zeros_like(q)
                    opt.step()
                    opts.append(opt)
                n = sum(q.numel() for q in gen.parameters()) + sum(q.numel() for q in disc.parameters())
                cells, fits = [], []
                for moments in MOMENTS:
                    tensors, info = state_tensors(gen, disc, *opts, moments)
                    files = save_compact(Path(tmp) / "last", tensors, {"step": 0, **info})
                    total = sum(f.stat().st_size for f in files)
                    largest = max(f.stat().st_size for f in files)
                    assert largest <= SHARD_BYTES, (g, d, moments, largest)
                    cells.append(f"{total / 1e6:>8.1f} / {len(files) - 1:>2} (max {largest / 2**20:.2f} MiB)")
                    fits.append(moments if total <= limit else "-")
                print(f"{g:<10}{d:<16}{n / 1e6:>11.2f}" + "".join(f"{c:>24}" for c in cells) + "   " + ", ".join(fits),
                      flush=True)
                del gen, disc, opts, tensors


def random_mel(rng: np.random.Generator, sr, seconds: int) -> np.ndarray:
    """A log-mel of ``seconds`` of 48 kHz output for runtime ``sr``: ``float32 [n_mels, frames]`` around -6."""
    return (rng.standard_normal((sr.front.mel.n_mels, 1 + seconds * sr.sample_rate // sr.hop)) - 6).astype(np.float32)


def band_limited_noise(rng: np.random.Generator, seconds: int = 10, rate: int = 16000) -> np.ndarray:
    """The full path's input: noise low-passed at 7 kHz, ``float32 [seconds * rate]``."""
    from scipy.signal import butter, sosfilt

    wav = (0.1 * rng.standard_normal(seconds * rate)).astype(np.float32)
    return sosfilt(butter(8, 7000, fs=rate, output="sos"), wav).astype(np.float32)


def time_runtime(folder: str, threads: int, repeats: int, blocked: str) -> dict[str, float]:
    """RTF of the generator (1 s, 10 s) and of the full path (10 s of 16 kHz) of ``folder``; ``blocked``:
    "auto" (the runtime's choice) or "on" / "off" to force onnxruntime's blocked (NCHWc) convolutions."""
    from dataclasses import replace

    from signals.speech.sr.infer import load

    sr = load(folder, providers=["CPUExecutionProvider"], threads=threads)
    if blocked != "auto":
        sr = replace(sr, **{role: sr.folder.session(role, ["CPUExecutionProvider"], threads, blocked == "on")
                            for role in ("encoder", "upsampler")})
    rng = np.random.default_rng(0)
    out = {}
    for seconds in (1, 10):
        mel = random_mel(rng, sr, seconds)
        out[f"generator {seconds} s"] = best_time(lambda mel=mel: sr._run(mel), repeats) / seconds
    wav = band_limited_noise(rng)
    out["full path 10 s"] = best_time(lambda: sr.upsample(wav, 16000), 2) / 10
    return out


# a fresh interpreter per timed run (no shared allocator, cache or thread-pool state), running time_runtime above
_COMPARE_CHILD = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
                  "from bench_sr import time_runtime; "
                  "print(json.dumps(time_runtime(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))")


def compare_runs(runs: dict[str, tuple[str, str]], threads: int, repeats: int, rounds: int) -> None:
    """RTF of each run (name -> (folder, blocked convolutions "auto" / "on" / "off")), a fresh process per run and
    round (:func:`time_runtime` in a fresh interpreter)."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for r in range(rounds):
        for name, (folder, blocked) in runs.items():
            proc = subprocess.run([sys.executable, "-c", _COMPARE_CHILD, folder, str(threads), str(repeats), blocked],
                                  capture_output=True, text=True)
            if proc.returncode != 0:  # e.g. no model folder there: the child's own last line names it
                raise SystemExit(f"{name}: {(proc.stderr.strip().splitlines() or ['failed'])[-1]}")
            results[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}: {name}: " + ", ".join(f"{k} RTF {v:.3f}" for k, v in results[name][-1].items()),
                  flush=True)
    print(f"RTF over {rounds} rounds (best of {repeats} within each), {threads} thread(s):")
    for name, rows in results.items():
        print(f"  {name}: " + ", ".join(f"{k} {min(r[k] for r in rows):.3f}-{max(r[k] for r in rows):.3f}"
                                        for k in rows[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (default: models/super_resolution)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for both engines")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stream-rss", nargs="+", type=int, metavar="SECONDS",
                    help="only measure peak RSS of `upsample` on synthetic 16 kHz files of these lengths")
    ap.add_argument("--in-memory", action="store_true", help="with --stream-rss: also the whole-file path")
    ap.add_argument("--state-sizes", action="store_true", help="only measure the compact training state per preset")
    ap.add_argument("--upsampler-chunks", nargs="+", type=int, metavar="FRAMES",
                    help="also time the generator and the full path with these upsampler piece sizes (0: one piece)")
    ap.add_argument("--compare", metavar="FOLDER", help="only time FOLDER against --model, alternating fresh processes")
    ap.add_argument("--blocked-convs", action="store_true",
                    help="only time --model with onnxruntime's blocked (NCHWc) convolutions on and off, alternating "
                         "fresh processes (the runtime uses them on one thread only)")
    ap.add_argument("--rounds", type=int, default=3, help="with --compare / --blocked-convs: rounds")
    args = ap.parse_args()
    if args.compare or args.blocked_convs:
        from signals.paths import REPO_ROOT

        model = args.model or str(REPO_ROOT / "models" / "super_resolution")
        runs = ({args.compare: (args.compare, "auto"), model: (model, "auto")} if args.compare else
                {"blocked convolutions": (model, "on"), "im2col convolutions": (model, "off")})
        compare_runs(runs, args.threads, args.repeats, args.rounds)
        return
    if args.state_sizes:
        state_sizes()
        return
    if args.stream_rss:
        stream_rss(args.stream_rss, args.model, args.threads, args.in_memory)
        return

    from signals.speech.sr.infer import load

    sr = load(args.model, providers=["CPUExecutionProvider"], threads=args.threads)
    hop, n_mels = sr.hop, sr.front.mel.n_mels
    print(f"model folder: {sr.folder.path}  threads: {args.threads}")
    rng = np.random.default_rng(0)
    rows = []
    for seconds in (1, 10):
        mel = random_mel(rng, sr, seconds)
        t = best_time(lambda mel=mel: sr._run(mel), args.repeats)
        rows.append(("onnxruntime", seconds, t))
    rss_ort = peak_rss_mb()

    import torch

    from signals.speech.sr.export import load_model
    from signals.torchutils import count_parameters

    torch.set_num_threads(args.threads)
    gen = load_model(sr.folder)
    for seconds in (1, 10):
        frames = 1 + seconds * sr.sample_rate // hop
        mel = torch.from_numpy((rng.standard_normal((1, n_mels, frames)) - 6).astype(np.float32))
        t = best_time(lambda mel=mel: gen.infer(mel), args.repeats)
        rows.append(("torch eager", seconds, t))
    rss_torch = peak_rss_mb()

    print(f"generator parameters: {count_parameters(gen):,} ({count_parameters(gen) * 4 / 2**20:.1f} MiB fp32)")
    print(f"{'engine':<14}{'input':>8}{'time (s)':>12}{'RTF':>10}")
    for engine, seconds, t in rows:
        print(f"{engine:<14}{seconds:>6} s{t:>12.3f}{t / seconds:>10.3f}")

    wav = band_limited_noise(rng)
    t = best_time(lambda: sr.upsample(wav, 16000), 1)
    envelope = "learned envelope" if sr.envelope is not None else f"gain {sr.front.generated_gain_db:+g} dB"
    print(f"full upsample path (10 s of 16 kHz input, chunked ONNX + frame comb (radius "
          f"{sr.front.frame_comb_radius}) + {envelope} + crossover): {t:.3f} s, RTF {t / 10:.3f}")
    if sr.envelope is not None:
        from dataclasses import replace

        fixed = replace(sr, envelope=None, front=replace(sr.front, envelope=None))
        t1 = best_time(lambda: fixed.upsample(wav, 16000), 1)
        print(f"  the same without the learned envelope (its net + STFT rescaling): {t1:.3f} s, RTF {t1 / 10:.3f}")
    if sr.front.frame_comb_radius:
        from dataclasses import replace

        plain = replace(sr, front=replace(sr.front, frame_comb_radius=0))
        t0 = best_time(lambda: plain.upsample(wav, 16000), 1)
        print(f"  the same without the frame comb: {t0:.3f} s, RTF {t0 / 10:.3f}")
    print(f"peak RSS: after ONNX runs {rss_ort:.0f} MiB, after torch runs {rss_torch:.0f} MiB, "
          f"end {peak_rss_mb():.0f} MiB")
    for piece in args.upsampler_chunks or []:
        from dataclasses import replace

        other = replace(sr, chunking=replace(sr.chunking, upsampler_chunk_frames=piece))
        times = []
        for seconds in (1, 10):
            mel = random_mel(rng, sr, seconds)
            times.append(best_time(lambda mel=mel, rt=other: rt._run(mel), args.repeats) / seconds)
        t = best_time(lambda rt=other: rt.upsample(wav, 16000), 1)
        print(f"upsampler pieces of {piece:>4} frames: generator RTF {times[0]:.3f} (1 s) / {times[1]:.3f} (10 s), "
              f"full path RTF {t / 10:.3f}")


if __name__ == "__main__":
    main()
