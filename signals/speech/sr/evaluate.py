"""Evaluate HiFi-SR against wideband originals: LSD, high-band LSD and SI-SDR per input rate.

    signals speech sr evaluate ../shared/data/vctk-wideband --held-out --out runs/sr_eval

For every file (resampled to 48 kHz as the reference) and every input rate (default 4/8/16/24 kHz) the
input is made with soxr (a resampler the model never saw in training) and upsampled by three methods:

* ``unprocessed``: the input sinc-resampled (soxr) back to 48 kHz, nothing above its Nyquist;
* ``spectral_replication``: the top octave of the input spectrum copied upward, 6 dB weaker per
  copy, on an STFT (a classic blind bandwidth-extension baseline);
* ``hifi_sr``: the ONNX model with the band-keeping crossover (what ``signals speech upsample`` does).

``--vocoder`` adds the input the voice-cloning pipeline feeds HiFi-SR: the reference resampled to
22.05 kHz and copy-synthesised by the shipped vocoder (``models/vocoder``), scored as rate ``vocoder``.

Per method and input: LSD, high-band LSD (above the input's Nyquist), SI-SDR, and the tonal-artefact
measure (:func:`signals.speech.sr.metrics.tonal_peak_db`, the peak-to-median ratio of the time-averaged
spectrum in the generated band) as the excess over the reference's in the same band (dB; ~0 = as tonal
as real speech; the unprocessed input has an empty band, so its excess is minus the reference's value).

``dir`` is a folder of wideband audio or a training pack (``signals speech sr prepare``): then the
clips of ``--split`` (default ``test``: held-out languages / voices) are scored, each only up to its
measured bandwidth (above it the reference holds no recorded content).

Torch-free; writes ``results.json``, ``results.txt`` (a table) and ``spectrogram.png`` (reference, input and
output of the first file at a 16 kHz input) to ``--out``. The held-out
utterances are the ones the model folder's ``config.json["source"]["data"]["test_utterances"]`` lists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal as sps

from signals.errors import ConfigError, DataError
from signals.speech.audio import load_audio, resample
from signals.speech.sr.frontend import SAMPLE_RATE as SR
from signals.speech.sr.metrics import lsd, si_sdr, tonal_peak_db

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


KEYS = ("lsd", "lsd_hf", "si_sdr", "tonal_excess_db", "tonal_ref_db")
POSTPROCESS = ("frame_comb_radius", "generated_gain_db", "edge_fade_frames")  # recorded with an evaluation


def vocoder_input(ref48: np.ndarray, vocoder) -> np.ndarray:
    """The voice-cloning pipeline's HiFi-SR input for ``ref48``: 22.05 kHz copy-synthesis by ``vocoder``."""
    x = resample(ref48, SR, 22050)
    y = vocoder(vocoder.mel(x, 22050))[: len(x)]
    return np.pad(y, (0, len(x) - len(y))).astype(np.float32)


def evaluate_items(items: list[tuple[str, np.ndarray, float | None]], model, rates: tuple[int, ...] = RATES,
                   vocoder=None) -> dict[str, Any]:
    """Per-file and mean metrics for every input and method. ``items``: ``(name, reference at 48 kHz,
    top)``: metrics stop at ``top`` Hz (None: the full band)."""
    from tqdm import tqdm

    rows = []
    inputs: list[int | str] = [*rates, *(["vocoder"] if vocoder is not None else [])]
    for name, ref, top in tqdm(items, desc="sr evaluate", mininterval=5.0):
        for rate in inputs:
            if rate == "vocoder":
                low, in_rate = vocoder_input(ref, vocoder), 22050
            else:
                low, in_rate = resample(ref, SR, rate), int(rate)
            nyq = in_rate / 2
            if top is not None and top <= nyq:
                continue  # nothing to generate below this clip's bandwidth
            outs = {
                "unprocessed": resample(low, in_rate, SR),
                "hifi_sr": model.upsample(low, in_rate, name=name),
            }
            outs["spectral_replication"] = spectral_replication(outs["unprocessed"], nyq)
            tonal_ref = tonal_peak_db(ref, SR, nyq, top)
            for method in METHODS:
                est = outs[method][: len(ref)]
                est = np.pad(est, (0, len(ref) - len(est)))
                rows.append({
                    "file": name, "rate": str(rate), "method": method,
                    "lsd": lsd(ref, est, max_hz=top), "lsd_hf": lsd(ref, est, min_hz=nyq, max_hz=top),
                    "si_sdr": si_sdr(ref, est), "tonal_excess_db": tonal_peak_db(est, SR, nyq, top) - tonal_ref,
                    "tonal_ref_db": tonal_ref,
                })
    summary: dict[str, Any] = {}
    used = [str(r) for r in inputs if any(row["rate"] == str(r) for row in rows)]
    for method in METHODS:
        per_rate = {}
        for rate in used:
            sel = [r for r in rows if r["method"] == method and r["rate"] == rate]
            per_rate[rate] = {k: float(np.mean([r[k] for r in sel])) for k in KEYS}
        if per_rate:
            per_rate["mean"] = {k: float(np.mean([v[k] for v in per_rate.values()])) for k in KEYS}
        summary[method] = per_rate
    return {"files": [name for name, _, _ in items], "rates": used, "summary": summary, "rows": rows}


def evaluate_files(files: list[Path], model, rates: tuple[int, ...] = RATES, vocoder=None) -> dict[str, Any]:
    """:func:`evaluate_items` on audio files (full band: references recorded at >= 44.1 kHz)."""
    items = [(p.stem, load_audio(p, sample_rate=SR)[0], None) for p in files]
    return evaluate_items(items, model, rates, vocoder)


def format_table(result: dict[str, Any]) -> str:
    rates = [str(r) for r in result["rates"]] + ["mean"]

    def label(r: str) -> str:
        return r if r in ("mean", "vocoder") else f"{int(r) // 1000}k"

    head = f"{'method':<22}" + "".join(f"{label(r):>29}" for r in rates)
    sub = f"{'':<22}" + "".join(f"{'LSD / LSD-HF / SI-SDR / TON':>29}" for _ in rates)
    title = (f"HiFi-SR evaluation on {result['label']} (48 kHz reference; LSD in log10 units, SI-SDR in dB, "
             "TON = tonal peak-to-median excess over the reference in the generated band, dB)"
             if result.get("label") else "")
    lines = [title, head, sub] if title else [head, sub]
    for method, per_rate in result["summary"].items():
        cells = "".join(
            f"{per_rate[r]['lsd']:>8.3f}/{per_rate[r]['lsd_hf']:>6.3f}/{per_rate[r]['si_sdr']:>6.1f}"
            f"/{per_rate[r]['tonal_excess_db']:>+6.1f}" for r in rates if r in per_rate
        )
        lines.append(f"{method:<22}{cells}")
    ref = result["summary"].get("hifi_sr", {})
    lines.append(f"{'(reference TON, dB)':<22}" + "".join(f"{ref[r]['tonal_ref_db']:>29.1f}" for r in rates if r in ref))
    lines.append(f"({len(result['files'])} files: {', '.join(result['files'][:20])}"
                 f"{', ...' if len(result['files']) > 20 else ''})")
    return "\n".join(lines)


def reference_items(data: str | Path, wanted: set[str] | None = None, split: str = "test",
                    limit: int | None = None) -> tuple[list[tuple[str, np.ndarray, float | None]], str]:
    """The references to score in ``data`` as :func:`evaluate_items` takes them, and what they are.

    A training pack (``signals speech sr prepare``): the clips of ``split``, each scored up to its measured
    bandwidth; else a folder of wideband audio (full band). ``wanted``: only these ids (none found: a
    :class:`DataError`); ``limit``: at most that many, evenly spaced over the sorted ids.
    """
    from signals.speech.sr.data import find_audio, is_pack, load_pack, utterance_id

    wanted = wanted or set()

    def spread(seq: list) -> list:
        if limit and len(seq) > limit:
            return [seq[int(i)] for i in np.linspace(0, len(seq) - 1, limit).round()]
        return seq

    if Path(data).is_dir() and is_pack(data):
        corpus = load_pack(data, (split,))
        names = sorted(n for n in corpus.wavs if not wanted or n in wanted)
        if not names:
            raise DataError(f"none of {sorted(wanted)} in split {split!r} of {data}")
        names = spread(names)
        items = [(n, corpus.wavs[n], corpus.bandwidth[n] if corpus.bandwidth[n] < SR / 2 else None) for n in names]
        return items, (f"the {split} split of {data} ({len(set(corpus.groups[n] for n in names))} held-out groups; "
                       "each clip scored up to its measured bandwidth)")
    paths = find_audio(data)
    if wanted:
        paths = [p for p in paths if utterance_id(p) in wanted]
        if not paths:
            raise DataError(f"none of {sorted(wanted)} found under {data}")
    return [(p.stem, load_audio(p, sample_rate=SR)[0], None) for p in spread(paths)], "all files given"


def evaluate(data: str | Path, model_dir: str | Path | None = None, out: str | Path | None = None,
             held_out: bool = False, files: list[str] | None = None, rates: tuple[int, ...] = RATES,
             threads: int | None = None, split: str = "test", vocoder: bool = False,
             limit: int | None = None, frame_comb_radius: int | None = None,
             generated_gain_db: float | None = None, envelope: bool = True, record: str | None = None,
             command: str | None = None) -> dict[str, Any]:
    """Evaluate the model folder on ``data`` (audio folder or training pack); writes ``results.json`` /
    ``results.txt`` / ``spectrogram.png`` into ``out`` if given. ``limit``: at most that many files (evenly
    spaced); ``frame_comb_radius``, ``generated_gain_db``: override the model's (None: keep them);
    ``envelope=False``: without the model's learned envelope.
    ``record``: also store the summary in the model folder's ``metrics.json["evaluations"][record]`` (with
    ``command``), only for the folder as it is (no overrides)."""
    from signals.speech.sr.data import is_pack
    from signals.speech.sr.infer import load

    if record is not None and (frame_comb_radius is not None or generated_gain_db is not None or not envelope):
        raise ConfigError("--record stores what the model folder does as it is: leave out --frame-comb, "
                          "--generated-gain and --no-envelope (or evaluate them without --record)")
    model = load(model_dir, threads=threads, frame_comb_radius=frame_comb_radius, generated_gain_db=generated_gain_db,
                 envelope=envelope)
    voc = None
    if vocoder:
        from signals.speech.vocoder.infer import load as load_vocoder

        voc = load_vocoder(threads=threads)
    wanted = set(files or [])
    pack = Path(data).is_dir() and is_pack(data)
    if held_out and not pack:
        test = (model.folder.config.source.get("data") or {}).get("test_utterances")
        if not test:
            raise DataError(f"{model.folder.config_path} lists no held-out test utterances "
                            "(source.data.test_utterances)")
        wanted |= set(test)
    items, label = reference_items(data, wanted, split, limit)
    if held_out and not pack:
        label = "held-out test utterances"
    result = evaluate_items(items, model, tuple(rates), voc)
    result["label"] = label
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (folder / "results.txt").write_text(format_table(result) + "\n")
        plot_example(items, model, rates, folder / "spectrogram.png")
    if record is not None:
        from signals.modelfolder import read_metrics, update_metrics

        evaluations = read_metrics(model.folder.path).get("evaluations", {})
        evaluations[record] = {"command": command, "label": label, "files": result["files"], "rates": result["rates"],
                               "postprocess": {**{k: getattr(model.front, k) for k in POSTPROCESS},
                                               "envelope": model.envelope is not None},
                               "summary": result["summary"]}
        update_metrics(model.folder.path, evaluations=evaluations)
    return result


def plot_example(items: list[tuple[str, np.ndarray, float | None]], model, rates: tuple[int, ...], path: Path) -> None:
    """Reference, input and HiFi-SR output of the first file with a band to generate, at a 16 kHz input
    (else the lowest rate evaluated): where the generated band, its hiss or steady lines show at a glance."""
    from signals.plotting import plot_spectrograms

    rate = 16000 if 16000 in rates else min(rates)
    name, ref, top = next(((n, r, t) for n, r, t in items if t is None or t > rate / 2), (None, None, None))
    if name is None:
        return
    low = resample(ref, SR, rate)
    title = f"HiFi-SR output, 48 kHz ({model.folder.path.name}, frame comb radius {model.front.frame_comb_radius})"
    plot_spectrograms([(ref, SR, f"reference {name}, 48 kHz"), (low, rate, f"input, {rate / 1000:g} kHz (soxr)"),
                       (model.upsample(low, rate, name=name), SR, title)], path)
