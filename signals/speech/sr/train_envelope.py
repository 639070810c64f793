"""Train the envelope net of a HiFi-SR model folder (:class:`signals.speech.sr.model.EnvelopeNet`) on CPU.

    signals speech sr train-envelope --data ../shared/data/vctk-wideband data/sr_debian/full --data-share 1 1 \\
        --model models/super_resolution --out runs/sr_env --steps 3000 --threads 1 --workers 0
    signals speech sr export-envelope --weights runs/sr_env/envelope_best.safetensors --model models/super_resolution

What it learns: from the log-mel of a degraded input (the generator's input), the log10 power of the
*target* in each 500 Hz band and frame (:func:`signals.speech.sr.postprocess.band_log_power`). The
generator is not trained or even run here, except for validation: its output is what the runtime then
rescales to these powers. So the net trains in minutes on a CPU, on the same random degradations as the
generator (rates 4-32 kHz, seven filter families, vocoder-like 22.05 kHz crops, level changes), except the
speed perturbation (see :class:`~signals.speech.sr.config.EnvelopeTrainConfig`). ``--data-share`` sets how
many crops each corpus gives (a 44 s VCTK excerpt beside 85 min of other speech would otherwise be 1 %).

The loss is the mean squared error in log10 power (the units of LSD) over the bands that matter and are
known: from 1 kHz below the input's Nyquist (the crossover's region and up) to the clip's measured
bandwidth (above it the recording holds no content to learn from) and below ``max_hz``, which the run
lowers to the training clips' highest bandwidth: bands no clip teaches are silenced by the runtime.

Data: training packs (``signals speech sr prepare``) bring their own split by language / voice group; an
audio folder is split by the ``--model`` folder's ``source.data`` lists (``val_utterances`` for validation;
``test_utterances`` are never read), anything unlisted trains. Validation runs the real runtime of
``--model`` (generator outputs computed once and cached, then frame comb, envelope, crossover) on every
validation clip at 4/8/16/24 kHz (scipy polyphase inputs) and vocoder-like input, and scores LSD up to
each clip's bandwidth. The score is the mean over corpora of each corpus's mean LSD (a 2-utterance VCTK
validation set counts as much as 24 pack clips); the checkpoint with the lowest score
(``envelope_best.safetensors``) is the one to export.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from signals.configio import to_dict
from signals.errors import DataError
from signals.modelfolder import LOG_FILE, ModelFolder, append_log
from signals.speech.audio import load_audio
from signals.speech.features import SR_MEL, mel_numpy
from signals.speech.sr.config import EnvelopeConfig, EnvelopeTrainConfig
from signals.speech.sr.data import (
    SAMPLE_RATE,
    VOCODER_RATE,
    SRDataset,
    find_audio,
    is_pack,
    load_pack,
    read_pack_index,
    resample_poly,
    utterance_id,
    vocoder_like,
)
from signals.speech.sr.metrics import lsd, tonal_excess_db
from signals.speech.sr.model import EnvelopeNet
from signals.speech.sr.postprocess import band_edges, band_log_power, detect_bandwidth
from signals.torchutils import TorchSession, save_safetensors, seed_everything

log = logging.getLogger(__name__)

RUN_CONFIG = "envelope_config.json"
BEST, LATEST = "envelope_best.safetensors", "envelope.safetensors"
VAL_RATES = (4000, 8000, 16000, 24000)
VAL_MARGIN_HZ = 1000.0  # a condition is scored on a clip only when its bandwidth exceeds the input's Nyquist by this
LOSS_BELOW_NYQUIST_HZ = 1000.0  # the loss starts this far below the input's Nyquist (the crossover's region)


@dataclass(frozen=True)
class Split:
    """Clips keyed ``<corpus tag>/<id>`` (the tag: the data path's folder name)."""

    train: dict[str, np.ndarray]
    train_bw: dict[str, float]
    val: dict[str, np.ndarray]
    val_bw: dict[str, float]


def corpus_of(key: str) -> str:
    return key.split("/", 1)[0]


def load_split(paths: list[str | Path], model: ModelFolder, val_clips: int) -> Split:
    """Training and validation clips of every path in ``paths`` (see the module docstring)."""
    data = model.config.source.get("data") or {}
    val_ids, test_ids = set(data.get("val_utterances") or []), set(data.get("test_utterances") or [])
    train, train_bw, val, val_bw = {}, {}, {}, {}
    tags = [Path(p).name for p in paths]
    if len(set(tags)) != len(tags):
        raise DataError(f"two --data paths share a folder name ({', '.join(sorted(t for t in set(tags) if tags.count(t) > 1))}):"
                        " clips are told apart by it; link or rename one")
    for path in paths:
        if not Path(path).exists():
            raise DataError(f"training data not found: {path}")
        tag = Path(path).name
        if is_pack(path):
            clips = read_pack_index(path)["clips"]
            vids = sorted(e["id"] for e in clips if e["split"] == "val")
            if val_clips and len(vids) > val_clips:
                vids = [vids[int(i)] for i in np.linspace(0, len(vids) - 1, val_clips).round()]
            # only the validation clips that are scored get decoded
            corpus = load_pack(path, ("train", "val"), ids={e["id"] for e in clips if e["split"] == "train"} | set(vids))
            for u, w in corpus.wavs.items():
                if corpus.split[u] == "train":
                    train[f"{tag}/{u}"], train_bw[f"{tag}/{u}"] = w, corpus.bandwidth[u]
                elif u in vids:
                    val[f"{tag}/{u}"], val_bw[f"{tag}/{u}"] = w, corpus.bandwidth[u]
        else:  # a folder: the model's test utterances are not even opened
            for f in find_audio(path):
                u = utterance_id(f)
                if u in test_ids:
                    continue
                w = load_audio(f, sample_rate=SAMPLE_RATE)[0]
                dst, bw = (val, val_bw) if u in val_ids else (train, train_bw)
                dst[f"{tag}/{u}"], bw[f"{tag}/{u}"] = w, min(detect_bandwidth(w, SAMPLE_RATE), SAMPLE_RATE / 2)
    if not train:
        raise DataError(f"no training clips in {', '.join(map(str, paths))}")
    if not val:
        raise DataError(f"no validation clips in {', '.join(map(str, paths))} (packs bring a val split; folders need "
                        f"the model folder's source.data.val_utterances)")
    return Split(train, train_bw, val, val_bw)


class EnvelopeItems(torch.utils.data.Dataset):
    """Item ``i`` -> ``(mel: float32 [n_mels, F], target: float32 [n_bands, F], weight: float32 [n_bands])``:
    the degraded crop's log-mel, the clean crop's log10 band powers and which bands the loss counts."""

    def __init__(self, crops: SRDataset, cfg: EnvelopeConfig):
        self.crops, self.cfg = crops, cfg
        edges = band_edges(cfg)
        self.lo, self.hi = edges[:-1], edges[1:]

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int):
        low, high, rate, bandwidth = self.crops[i]
        nyq = rate / 2  # VOCODER_RATE for vocoder-like crops
        mel = mel_numpy(low, SR_MEL)
        target = band_log_power(high, self.cfg)
        weight = (self.hi > nyq - LOSS_BELOW_NYQUIST_HZ) & (self.hi <= bandwidth) & (self.lo < self.cfg.max_hz)
        n = min(mel.shape[1], target.shape[1])
        return mel[:, :n], target[:, :n], weight.astype(np.float32)


@dataclass(frozen=True)
class ValCase:
    clip: str
    condition: str
    ref: np.ndarray  # 48 kHz
    bandwidth: float
    rate: int  # of ``low``
    low: np.ndarray


def make_val_cases(val: dict[str, np.ndarray], bandwidths: dict[str, float]) -> list[ValCase]:
    """Each clip at :data:`VAL_RATES` (scipy polyphase, not the test's soxr) and vocoder-like 48 kHz input."""
    cases = []
    for name in sorted(val):
        ref, bw = val[name], bandwidths[name]
        for rate in VAL_RATES:
            if rate / 2 + VAL_MARGIN_HZ <= bw:
                cases.append(ValCase(name, f"{rate // 1000}k", ref, bw, rate, resample_poly(ref, SAMPLE_RATE, rate)))
        if VOCODER_RATE / 2 + VAL_MARGIN_HZ <= bw:
            cases.append(ValCase(name, "voc", ref, bw, SAMPLE_RATE, vocoder_like(ref, np.random.default_rng(0))))
    return cases


class _CachedSession:
    """An onnxruntime session whose results are kept per input (validation reruns the same generator inputs)."""

    def __init__(self, session):
        self.session, self.cache = session, {}

    def run(self, names, feeds):
        key = tuple((k, v.shape, hash(v.tobytes())) for k, v in sorted(feeds.items()))
        if key not in self.cache:
            self.cache[key] = self.session.run(names, feeds)
        return self.cache[key]


def validate(runtime, net: EnvelopeNet | None, cases: list[ValCase]) -> dict[str, float]:
    """Mean LSD (up to each clip's bandwidth) and tonal excess per condition, and the per-corpus means, of
    ``runtime`` with ``net`` as its envelope (None: the runtime as it is, the baseline)."""
    rt = runtime
    if net is not None:
        net.eval()
        rt = replace(runtime, envelope=TorchSession(net), front=replace(runtime.front, envelope=net.cfg))
    out: dict[str, list[float]] = {}
    per_case = []
    for case in cases:
        y = rt.upsample(case.low, case.rate)
        n = min(len(y), len(case.ref))
        top = case.bandwidth if case.bandwidth < SAMPLE_RATE / 2 else None
        nyq = VOCODER_RATE / 2 if case.condition == "voc" else case.rate / 2
        per_case.append(lsd(case.ref[:n], y[:n], max_hz=top))
        out.setdefault(f"lsd_{case.condition}", []).append(per_case[-1])
        out.setdefault(f"tonal_{case.condition}", []).append(
            tonal_excess_db(case.ref[:n], y[:n], min_hz=nyq, max_hz=top))
    if net is not None:
        net.train()
    return {k: float(np.mean(v)) for k, v in out.items()} | _corpus_means(cases, per_case)


def _corpus_means(cases: list[ValCase], per_case: list[float]) -> dict[str, float]:
    """``lsd_<corpus>``: each corpus's mean over its conditions' means; ``lsd_mean`` (the selection score): the
    mean of those, so a corpus with few validation clips counts as much as one with many."""
    row = {}
    for tag in sorted({corpus_of(c.clip) for c in cases}):
        by_cond: dict[str, list[float]] = {}
        for c, v in zip(cases, per_case):
            if corpus_of(c.clip) == tag:
                by_cond.setdefault(c.condition, []).append(v)
        row[f"lsd_{tag}"] = float(np.mean([np.mean(v) for v in by_cond.values()]))
    row["lsd_mean"] = float(np.mean(list(row.values())))
    return row


def _lr(step: int, cfg: EnvelopeTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(1.0, t))))


def train_envelope(cfg: EnvelopeTrainConfig, data: list[str | Path], model_dir: str | Path, out: str | Path,
                   workers: int = 1, threads: int | None = None, progress: bool = True,
                   data_share: list[float] | None = None) -> dict[str, Any]:
    """Train into ``out`` (log, ``envelope.safetensors`` latest, ``envelope_best.safetensors`` by validation).
    ``data_share``: the share of training crops drawn from each ``data`` path (default: by length)."""
    from signals.speech.sr.infer import SRRuntime

    if data_share is not None and len(data_share) != len(data):
        raise DataError(f"--data-share needs one share per --data path ({len(data)}), got {len(data_share)}")
    seed_everything(cfg.seed)
    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runtime = SRRuntime.load(model_dir, threads=threads, envelope=False)
    runtime = replace(runtime, encoder=_CachedSession(runtime.encoder), upsampler=_CachedSession(runtime.upsampler))
    t_load = time.time()
    split = load_split(list(data), runtime.folder, cfg.val_clips)
    cases = make_val_cases(split.val, split.val_bw)
    log.info("data: %d train clips (%.1f min), %d validation clips (%d cases), loaded in %.1f s", len(split.train),
             sum(len(w) for w in split.train.values()) / SAMPLE_RATE / 60, len(split.val), len(cases),
             time.time() - t_load)
    names = sorted(split.train)
    clip_weights = None
    if data_share is not None:  # each corpus gets this share of the crops, its clips in proportion to length
        tags = [Path(d).name for d in data]
        share = dict(zip(tags, data_share))
        total = {t: sum(len(split.train[u]) for u in names if corpus_of(u) == t) for t in tags}
        clip_weights = [share[corpus_of(u)] / total[corpus_of(u)] for u in names]
    # Bands above every training clip's bandwidth are never in the loss: the runtime silences them (max_hz).
    top = max(split.train_bw[u] for k, u in enumerate(names) if clip_weights is None or clip_weights[k] > 0)
    cfg = replace(cfg, net=replace(cfg.net, max_hz=min(cfg.net.max_hz, (top // cfg.net.band_hz) * cfg.net.band_hz)))
    log.info("bands above %.0f Hz (the training clips' highest bandwidth, %.0f Hz) will be silenced", cfg.net.max_hz,
             top)
    crops = SRDataset([split.train[u] for u in names], replace(cfg.degrade, segment=cfg.segment),
                      length=cfg.steps * cfg.batch_size, seed=cfg.seed, bandwidths=[split.train_bw[u] for u in names],
                      clip_weights=clip_weights)
    loader = torch.utils.data.DataLoader(EnvelopeItems(crops, cfg.net), batch_size=cfg.batch_size,
                                         num_workers=workers, persistent_workers=workers > 0,
                                         prefetch_factor=4 if workers > 0 else None)
    net = EnvelopeNet(cfg.net)
    opt = torch.optim.AdamW(net.parameters(), cfg.lr, weight_decay=cfg.weight_decay)
    (out / RUN_CONFIG).write_text(json.dumps({**to_dict(cfg), "data": [str(d) for d in data], "model": str(model_dir),
                                              "data_share": list(data_share) if data_share is not None else None,
                                              "train_clips": len(names), "val_clips": sorted(split.val)}, indent=2))
    log_path = out / LOG_FILE
    log_path.unlink(missing_ok=True)
    meta = {"config": json.dumps(to_dict(cfg.net))}

    def evaluate(step: int, t: float, extra: dict[str, Any]) -> dict[str, Any]:
        row = {"step": step, "time_s": round(t, 1), **extra,
               **{f"val_{k}": round(v, 4) for k, v in validate(runtime, net, cases).items()}}
        save_safetensors(net, out / LATEST, metadata={**meta, "step": str(step)})
        return row

    t0 = time.time()
    # first row: the folder's runtime as it is (no envelope; its fixed gain), on the same cases
    append_log(log_path, {"step": 0, "baseline": True,
                          **{f"val_{k}": round(v, 4) for k, v in validate(runtime, None, cases).items()}})
    best = np.inf
    step, acc, acc_n, skipped = 0, 0.0, 0, 0
    from tqdm import tqdm

    pbar = tqdm(total=cfg.steps, desc="sr envelope", mininterval=5.0, disable=not progress)
    for mel, target, weight in loader:
        lr = _lr(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        ok = torch.isfinite(mel).flatten(1).all(1) & torch.isfinite(target).flatten(1).all(1)
        skipped += int((~ok).sum())  # a crop the degradation broke (never seen since the vocoder_like fix) is dropped
        pred = net(mel[ok])
        w = weight[ok][:, :, None].expand_as(pred)
        loss = ((pred - target[ok]) ** 2 * w).sum() / w.sum().clamp_min(1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        acc, acc_n = acc + float(loss.detach()), acc_n + 1
        pbar.update(1)
        elapsed = time.time() - t0
        stop = step >= cfg.steps or (cfg.max_seconds and elapsed > cfg.max_seconds)
        if step % cfg.log_every == 0 or stop:
            row: dict[str, Any] = {"step": step, "time_s": round(elapsed, 1), "lr": lr, "loss": round(acc / acc_n, 4),
                                   **({"skipped_crops": skipped} if skipped else {})}
            acc, acc_n = 0.0, 0
            if step % cfg.eval_every == 0 or stop:
                row = evaluate(step, elapsed, row)
                if row["val_lsd_mean"] < best:
                    best = row["val_lsd_mean"]
                    row["best"] = True
                    save_safetensors(net, out / BEST, metadata={**meta, "step": str(step)})
                pbar.write(f"step {step}: val LSD {row['val_lsd_mean']:.4f}" + (" (best)" if row.get("best") else ""))
            append_log(log_path, row)
        if stop:
            break
    pbar.close()
    return {"step": step, "best_val_lsd": best, "out": str(out)}
