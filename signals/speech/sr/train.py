"""Train HiFi-SR (generator + MPD/MSD/MBD) on any folder of wideband audio.

Single process (CPU or one GPU)::

    signals speech sr train --data ../shared/data/vctk-wideband --out runs/sr --config small --steps 20000

Several GPUs (DDP, same entry point)::

    torchrun --nproc_per_node=4 -m signals.speech.sr.train --data /data/VCTK-Corpus-0.92/wav48_silence_trimmed \\
        --out runs/sr_paper --config paper --batch-size 16 --steps 500000

``--data`` is a folder (VCTK layout or plain files, read with soundfile + soxr) or a ``.npz`` written by
``prepare_npz`` (machines without audio libraries). Degradation happens on the fly in DataLoader
workers (see ``data.py``). Mixed precision (bf16 autocast) on CUDA, AdamW, resumable checkpoints
(``--resume``), a JSON-lines log (``train_log.jsonl``), and validation audio examples in ``<out>/samples/``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from signals.configio import to_dict
from signals.errors import DataError
from signals.modelfolder import LOG_FILE
from signals.speech.features import SR_MEL, mel_torch
from signals.speech.nn.config import LossConfig
from signals.speech.nn.discriminators import Discriminators
from signals.speech.nn.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
    multiscale_mel_loss,
)
from signals.speech.sr.config import DISCRIMINATORS, GENERATORS, TrainConfig
from signals.speech.sr.data import (
    SAMPLE_RATE,
    SRDataset,
    collate,
    degrade,
    load_corpus,
    speaker_id,
    split_corpus,
)
from signals.speech.sr.metrics import lsd
from signals.speech.sr.model import Generator
from signals.torchutils import (
    cleanup_distributed,
    count_parameters,
    load_checkpoint,
    load_safetensors,
    save_checkpoint,
    save_safetensors,
    seed_everything,
    setup_distributed,
    unwrap,
)

VAL_RATES = (8000, 16000)


log = logging.getLogger(__name__)


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    return cfg.lr_decay ** (step / 1000.0)


@torch.no_grad()
def validate(gen: nn.Module, utts: dict[str, np.ndarray], device: torch.device, amp: bool) -> dict[str, float]:
    """Mean LSD (full band and above the input Nyquist) of the raw generator on held-out utterances."""
    gen.eval()
    out: dict[str, list[float]] = {}
    for wav in utts.values():
        for rate in VAL_RATES:
            low = degrade(wav, rate, "poly", np.random.default_rng(0))
            mel = mel_torch(torch.from_numpy(low).to(device)[None], SR_MEL)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                y = gen(mel)
            y = y.float().squeeze().cpu().numpy()[: len(wav)]
            out.setdefault(f"lsd_{rate // 1000}k", []).append(lsd(wav, y))
            out.setdefault(f"lsd_hf_{rate // 1000}k", []).append(lsd(wav, y, min_hz=rate / 2))
    gen.train()
    return {k: float(np.mean(v)) for k, v in out.items()}


def write_wav(path: Path, wav: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """16-bit WAV via scipy (no soundfile needed on training machines)."""
    from scipy.io import wavfile

    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(str(path), sr, (np.clip(wav, -1, 1) * 32767).astype(np.int16))


class _OffsetSampler(torch.utils.data.Sampler):
    """Indices start, start + 1, ...: resuming continues the random stream instead of repeating it."""

    def __init__(self, start: int, length: int):
        self.start, self.length = start, length

    def __iter__(self):
        return iter(range(self.start, self.length))

    def __len__(self) -> int:
        return self.length - self.start


def gan_step(gen: nn.Module, disc: nn.Module, opt_g, opt_d, low: torch.Tensor, high: torch.Tensor,
             cfg: TrainConfig, lc: LossConfig, adversarial: bool, adversarial_g: bool, amp: bool) -> dict[str, Any]:
    """One HiFi-GAN update: D on real vs fake (when ``adversarial``), then G on the multi-scale mel loss
    (+ adversarial and feature-matching terms when ``adversarial_g``).

    ``gen``/``disc`` may be DDP-wrapped; ``low: Tensor[B, T]`` is the degraded input at 48 kHz, ``high:
    Tensor[B, 1, T]`` the target. Returns the detached loss terms and G's gradient norm, for the log.
    """
    device = low.device
    with torch.no_grad():
        mel = mel_torch(low, SR_MEL)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        fake = gen(mel)[..., : high.shape[-1]]

    loss_d = torch.zeros((), device=device)
    if adversarial:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            real_out = disc(high)
            fake_out = disc(fake.detach())
        loss_d = sum(discriminator_loss(real_out[k][0], fake_out[k][0]) for k in real_out)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        nn.utils.clip_grad_norm_(unwrap(disc).parameters(), cfg.grad_clip)
        opt_d.step()

    loss_mel = multiscale_mel_loss(fake, high, lc)
    loss_g = lc.lambda_mel * loss_mel
    terms = {"mel": loss_mel.detach()}
    if adversarial_g:
        d = unwrap(disc)  # G step: no all-reduce needed for D's (discarded) gradients
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            with torch.no_grad():
                real_out = d(high)
            fake_out = d(fake)
        for k in fake_out:
            adv = generator_adv_loss(fake_out[k][0])
            fm = feature_matching_loss(real_out[k][1], fake_out[k][1])
            loss_g = loss_g + lc.lambda_adv * adv + lc.lambda_fm * fm
            terms[f"adv_{k}"], terms[f"fm_{k}"] = adv.detach(), fm.detach()
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    gnorm = nn.utils.clip_grad_norm_(unwrap(gen).parameters(), cfg.grad_clip)
    opt_g.step()
    return {**terms, "g": loss_g.detach(), "d": loss_d.detach(), "gnorm": gnorm}


def train(config: TrainConfig, data: str | Path, out: str | Path, *, device: str | None = None,
          resume: bool = False, init_weights: str | Path | None = None, workers: int = 2, checkpoint: bool = True,
          amp: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train on ``data`` (a folder of wideband audio or a prepared ``.npz``) into the run folder ``out``.

    ``resume`` continues from ``out/checkpoint.pt``; ``init_weights`` starts the generator from saved
    weights (fine-tuning). Returns the step, the best validation LSD and the utterance split.
    """
    cfg = config
    ctx = setup_distributed(device)
    device = ctx.device
    out = Path(out)
    gcfg = GENERATORS[cfg.generator]
    dcfg = DISCRIMINATORS[cfg.discriminator]
    dg = cfg.degrade
    lc = LossConfig()
    seed_everything(cfg.seed + ctx.rank)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    amp = device.type == "cuda" and amp

    corpus = load_corpus(data)
    utts = sorted(corpus)
    test = list(cfg.test)
    if cfg.test_speakers:  # speaker hold-out; listed utterances still count where present
        spk = set(cfg.test_speakers)
        test = sorted({u for u in test if u in corpus} | {u for u in utts if speaker_id(u) in spk})
    train_ids, val_ids, test_ids = split_corpus(utts, test, list(cfg.val))
    if set(val_ids) & set(test_ids):
        raise DataError(f"validation utterances are also held out for the test: {sorted(set(val_ids) & set(test_ids))}")
    if ctx.is_main:
        log.info("data: %d train / %d val / %d test utterances (%.1f s of training audio)", len(train_ids),
                 len(val_ids), len(test_ids), sum(len(corpus[u]) for u in train_ids) / SAMPLE_RATE)

    gen = Generator(gcfg).to(device)
    disc = Discriminators(dcfg).to(device)
    opt_g = torch.optim.AdamW(gen.parameters(), cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    opt_d = torch.optim.AdamW(disc.parameters(), cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    step, best = 0, math.inf
    ckpt = load_checkpoint(out / "checkpoint.pt", map_location=device) if resume else None
    if ckpt is not None:
        gen.load_state_dict(ckpt["generator"])
        disc.load_state_dict(ckpt["discriminators"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        step, best = int(ckpt["step"]), float(ckpt.get("best", math.inf))
        if ctx.is_main:
            log.info("resumed from %s at step %d", out / "checkpoint.pt", step)
    elif init_weights:
        load_safetensors(gen, init_weights)
        if ctx.is_main:
            log.info("generator initialised from %s", init_weights)
    if ctx.distributed:
        gen_ddp = nn.parallel.DistributedDataParallel(gen, device_ids=[device.index] if device.type == "cuda" else None)
        disc_ddp = nn.parallel.DistributedDataParallel(disc, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        gen_ddp, disc_ddp = gen, disc
    if ctx.is_main:
        log.info("generator %.2f M params (%s), discriminators %.2f M (%s), device %s, amp=%s",
                 count_parameters(gen) / 1e6, cfg.generator, count_parameters(disc) / 1e6, cfg.discriminator,
                 device, amp)

    total = cfg.steps
    ds = SRDataset([corpus[u] for u in train_ids], dg, length=(total + 1) * cfg.batch_size, seed=cfg.seed + 7919 * ctx.rank)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=cfg.batch_size, sampler=_OffsetSampler(step * cfg.batch_size, len(ds)), collate_fn=collate,
        num_workers=workers, pin_memory=device.type == "cuda", drop_last=True,
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
    )
    val_utts = {u: corpus[u] for u in val_ids}
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        # the recipe with the resolved generator / discriminator / loss configs, for the model card
        resolved = {**to_dict(cfg), "generator_config": to_dict(gcfg), "discriminator_config": to_dict(dcfg),
                    "loss": to_dict(lc), "data": str(data)}
        (out / "train_config.json").write_text(json.dumps(resolved, indent=2))
    log_file = (out / LOG_FILE).open("a") if ctx.is_main else None

    def write_row(row: dict[str, Any]) -> None:
        log.info("%s", json.dumps(row))
        log_file.write(json.dumps(row) + "\n")
        log_file.flush()

    def save(tag: str) -> None:
        if not ctx.is_main:
            return
        meta = {"step": str(step), "config": json.dumps(to_dict(gcfg))}
        save_safetensors(gen, out / f"generator{tag}.safetensors", metadata=meta)

    def save_state() -> None:
        if ctx.is_main and checkpoint:
            save_checkpoint(out / "checkpoint.pt", {
                "generator": gen.state_dict(), "discriminators": disc.state_dict(), "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(), "step": step, "best": best, "train_config": to_dict(cfg),
            })

    if ckpt is None and init_weights and ctx.is_main and val_utts:
        # Score the starting weights: "_best" is then only written when fine-tuning beats them.
        row = {"step": step, "time_s": 0.0, "init": True,
               **{f"val_{k}": round(v, 4) for k, v in validate(gen, val_utts, device, amp).items()}}
        best = float(np.mean([row[f"val_lsd_{r // 1000}k"] for r in VAL_RATES]))
        write_row(row)

    t0 = time.time()
    stats: dict[str, float] = {}
    pbar = None
    if ctx.is_main:
        from tqdm import tqdm

        pbar = tqdm(total=total, initial=step, desc="sr train", mininterval=5.0, disable=not progress)
    stop = False
    for low, high in ((lo, hi) for lo, hi, _ in loader):
        if step >= total or stop:
            break
        low = low.to(device, non_blocking=True)
        high = high.to(device, non_blocking=True).unsqueeze(1)
        for group in (*opt_g.param_groups, *opt_d.param_groups):
            group["lr"] = cfg.lr * _lr_factor(step, cfg)
        adversarial = step >= cfg.disc_start
        adversarial_g = step >= cfg.disc_start + cfg.disc_warmup  # D-only warm-up before G sees D
        terms = gan_step(gen_ddp, disc_ddp, opt_g, opt_d, low, high, cfg, lc, adversarial, adversarial_g, amp)
        step += 1

        for k, v in terms.items():
            stats[k] = stats.get(k, 0.0) + float(v)
        stats["n"] = stats.get("n", 0) + 1
        elapsed = time.time() - t0
        if cfg.max_seconds and elapsed > cfg.max_seconds:
            stop = True
        if pbar is not None:
            pbar.update(1)
        # rank 0 decides the stop time for everyone under DDP
        if ctx.distributed:
            flag = torch.tensor([1.0 if stop else 0.0], device=device)
            torch.distributed.broadcast(flag, 0)
            stop = bool(flag.item())
        if ctx.is_main and (step % cfg.log_every == 0 or stop or step == total):
            n = stats.pop("n")
            row = {"step": step, "time_s": round(elapsed, 1), "lr": cfg.lr * _lr_factor(step, cfg),
                   **{k: round(v / n, 4) for k, v in stats.items()}}
            stats = {}
            if step % cfg.eval_every == 0 or stop or step == total:
                row.update({f"val_{k}": round(v, 4) for k, v in validate(gen, val_utts, device, amp).items()})
                score = np.mean([row[f"val_lsd_{r // 1000}k"] for r in VAL_RATES])
                if score < best:
                    best = float(score)
                    save("_best")
                    row["best"] = True
                save("")
                _write_examples(gen, val_utts, out / "samples", step, device, amp)
                save_state()
            write_row(row)
    if pbar is not None:
        pbar.close()
    if ctx.is_main:
        save("")
        save_state()
        log_file.close()
        log.info("done: %d steps in %.0f s; best val LSD %.4f; weights in %s", step, time.time() - t0, best, out)
    cleanup_distributed()
    return {"step": step, "best_val_lsd": best, "out": str(out), "train": train_ids, "val": val_ids, "test": test_ids}


@torch.no_grad()
def _write_examples(gen: nn.Module, utts: dict[str, np.ndarray], folder: Path, step: int,
                    device: torch.device, amp: bool) -> None:
    """One validation utterance at 8 kHz input: degraded input, latest output and target as 16-bit WAVs."""
    if not utts:
        return
    name, wav = next(iter(utts.items()))
    low = degrade(wav, 8000, "poly", np.random.default_rng(0))
    gen.eval()
    mel = mel_torch(torch.from_numpy(low).to(device)[None], SR_MEL)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        y = gen(mel)
    gen.train()
    write_wav(folder / f"{name}_8k_input.wav", low)
    write_wav(folder / f"{name}_target.wav", wav)
    write_wav(folder / f"{name}_8k_output.wav", y.float().squeeze().cpu().numpy()[: len(wav)])


if __name__ == "__main__":  # torchrun -m signals.speech.sr.train ...: the options of `signals speech sr train`
    from signals.speech.sr.cli import main_train

    raise SystemExit(main_train())
