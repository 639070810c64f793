"""Evaluate HiFi-SR against wideband originals: LSD, high-band LSD and SI-SDR per input rate.

    signals speech sr evaluate ../shared/data/vctk-wideband --held-out --out runs/sr_eval

For every file (resampled to 48 kHz as the reference) and every input rate (default 4/8/16/24 kHz) the
input is made with soxr (a resampler the model never saw in training) and upsampled by three methods:

* ``unprocessed``: the input sinc-resampled (soxr) back to 48 kHz, nothing above its Nyquist;
* ``spectral_replication``: the top octave of the input spectrum copied upward, 6 dB weaker per
  copy, on an STFT (a classic blind bandwidth-extension baseline);
* ``hifi_sr``: the ONNX model with the band-keeping crossover (what ``signals speech upsample`` does).

Torch-free; writes ``results.json`` and ``results.txt`` (a table) to ``--out``. The held-out
utterances are the ones the model folder's ``config.json["source"]["data"]["test_utterances"]`` lists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal as sps

from signals.errors import DataError
from signals.speech.audio import load_audio, resample
from signals.speech.sr.frontend import SAMPLE_RATE as SR
from signals.speech.sr.metrics import lsd, si_sdr

RATES = (4000, 8000, 16000, 24000)
METHODS = ("unprocessed", "spectral_replication", "hifi_sr")


def spectral_replication(wav48: np.ndarray, cutoff_hz: float, sr: int = SR, n_fft: int = 1024) -> np.ndarray:
    """Fill bins above ``cutoff_hz`` with copies of the octave just below it (complex STFT bins,
    so phase comes along), each copy 6 dB below the previous one. ``wav48: [T]`` -> ``[T]``."""
    _, _, z = sps.stft(wav48, fs=sr, nperseg=n_fft, noverlap=3 * n_fft // 4)
    n_bins = z.shape[0]
    kc = int(cutoff_hz / (sr / 2) * (n_bins - 1))
    width = max(1, kc // 2)
    out = z.copy()
    for k in range(kc, n_bins):
        copy = (k - kc) // width + 1
        src = kc - width + (k - kc) % width
        out[k] = z[src] * 10 ** (-6.0 * copy / 20)
    _, y = sps.istft(out, fs=sr, nperseg=n_fft, noverlap=3 * n_fft // 4)
    y = y[: len(wav48)]
    return np.pad(y, (0, len(wav48) - len(y))).astype(np.float32)


def evaluate_files(files: list[Path], model, rates: tuple[int, ...] = RATES) -> dict[str, Any]:
    """Per-file and mean metrics for every rate and method."""
    from tqdm import tqdm

    rows = []
    for path in tqdm(files, desc="sr evaluate", mininterval=5.0):
        ref, _ = load_audio(path, sample_rate=SR)
        for rate in rates:
            low = resample(ref, SR, rate)
            outs = {
                "unprocessed": resample(low, rate, SR),
                "hifi_sr": model.upsample(low, rate, name=str(path)),
            }
            outs["spectral_replication"] = spectral_replication(outs["unprocessed"], rate / 2)
            for method in METHODS:
                est = outs[method][: len(ref)]
                rows.append({
                    "file": path.stem, "rate": rate, "method": method,
                    "lsd": lsd(ref, est), "lsd_hf": lsd(ref, est, min_hz=rate / 2), "si_sdr": si_sdr(ref, est),
                })
    summary: dict[str, Any] = {}
    for method in METHODS:
        per_rate = {}
        for rate in rates:
            sel = [r for r in rows if r["method"] == method and r["rate"] == rate]
            per_rate[str(rate)] = {k: float(np.mean([r[k] for r in sel])) for k in ("lsd", "lsd_hf", "si_sdr")}
        per_rate["mean"] = {k: float(np.mean([v[k] for v in per_rate.values()])) for k in ("lsd", "lsd_hf", "si_sdr")}
        summary[method] = per_rate
    return {"files": [p.stem for p in files], "rates": list(rates), "summary": summary, "rows": rows}


def format_table(result: dict[str, Any]) -> str:
    rates = [str(r) for r in result["rates"]] + ["mean"]
    head = f"{'method':<22}" + "".join(f"{(r if r == 'mean' else f'{int(r) // 1000}k'):>22}" for r in rates)
    sub = f"{'':<22}" + "".join(f"{'LSD / LSD-HF / SI-SDR':>22}" for _ in rates)
    title = (f"HiFi-SR evaluation on {result['label']} (48 kHz reference; LSD in log10 units, SI-SDR in dB)"
             if result.get("label") else "")
    lines = [title, head, sub] if title else [head, sub]
    for method, per_rate in result["summary"].items():
        cells = "".join(
            f"{per_rate[r]['lsd']:>8.3f}/{per_rate[r]['lsd_hf']:>6.3f}/{per_rate[r]['si_sdr']:>6.1f}" for r in rates
        )
        lines.append(f"{method:<22}{cells}")
    lines.append(f"({len(result['files'])} files: {', '.join(result['files'])})")
    return "\n".join(lines)


def evaluate(data: str | Path, model_dir: str | Path | None = None, out: str | Path | None = None,
             held_out: bool = False, files: list[str] | None = None, rates: tuple[int, ...] = RATES,
             threads: int | None = None) -> dict[str, Any]:
    """Evaluate the model folder on ``data``; writes ``results.json`` / ``results.txt`` into ``out`` if given."""
    from signals.speech.sr.data import find_audio, utterance_id
    from signals.speech.sr.infer import load

    model = load(model_dir, threads=threads)
    paths = find_audio(data)
    wanted = set(files or [])
    if held_out:
        test = (model.folder.config.source.get("data") or {}).get("test_utterances")
        if not test:
            raise DataError(f"{model.folder.config_path} lists no held-out test utterances "
                            "(source.data.test_utterances)")
        wanted |= set(test)
    if wanted:
        paths = [p for p in paths if utterance_id(p) in wanted]
        if not paths:
            raise DataError(f"none of {sorted(wanted)} found under {data}")
    result = evaluate_files(paths, model, tuple(rates))
    result["label"] = "held-out test utterances" if held_out else "all files given"
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (folder / "results.txt").write_text(format_table(result) + "\n")
    return result
