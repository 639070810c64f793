"""Train HiFi-SR (generator + MPD/MSD/MBD) on any folder of wideband audio.

Single process (CPU or one GPU)::

    signals speech sr train --data ../shared/data/vctk-wideband --out runs/sr --config small --steps 20000

Several GPUs (DDP, same entry point)::

    torchrun --nproc_per_node=4 -m signals.speech.sr.train --data /data/VCTK-Corpus-0.92/wav48_silence_trimmed \\
        --out runs/sr_paper --config paper --batch-size 16 --steps 500000

``--data`` is a folder (VCTK layout or plain files, read with soundfile + soxr) or a ``.npz`` written by
``prepare_npz`` (machines without audio libraries). Degradation happens on the fly in DataLoader
workers (see ``data.py``). Mixed precision (bf16 autocast) on CUDA, AdamW, resumable checkpoints
(``--resume``), a JSON-lines log, and validation audio examples in ``<out>/samples/``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from signals.errors import DataError
from signals.speech.features import SR_MEL, mel_torch
from signals.speech.sr.data import (
    SAMPLE_RATE,
    DegradeConfig,
    SRDataset,
    collate,
    degrade,
    load_corpus,
    speaker_id,
    split_corpus,
)
from signals.speech.sr.discriminators import TINY_DISC, DiscriminatorConfig, Discriminators
from signals.speech.sr.losses import (
    LossConfig,
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
    multiscale_mel_loss,
)
from signals.speech.sr.metrics import lsd
from signals.speech.sr.model import CONFIGS, Generator, GeneratorConfig
from signals.speech.sr.train_args import add_arguments
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


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.01
    lr_decay: float = 0.999  # multiplied in every 1000 steps (HiFi-GAN decays 0.999 per epoch)
    batch_size: int = 16
    grad_clip: float = 1000.0
    disc_start: int = 0  # steps of mel-only warm-up before the adversarial terms switch on
    disc_warmup: int = 0  # then this many steps train D only, so fresh discriminators do not jolt a trained G
    seed: int = 1234
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def train(args: argparse.Namespace) -> dict[str, Any]:
    ctx = setup_distributed(args.device)
    device = ctx.device
    out = Path(args.out)
    gcfg = CONFIGS[args.config]
    dcfg = TINY_DISC if args.disc == "tiny" else DiscriminatorConfig()
    dg = DegradeConfig(segment=args.segment)
    cfg = TrainConfig(lr=args.lr, batch_size=args.batch_size, disc_start=args.disc_start,
                      disc_warmup=args.disc_warmup, seed=args.seed,
                      generator=gcfg, discriminator=dcfg, degrade=dg)
    seed_everything(cfg.seed + ctx.rank)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    amp = device.type == "cuda" and not args.no_amp

    corpus = load_corpus(args.data)
    utts = sorted(corpus)
    test = list(args.test)
    if args.test_speakers:  # speaker hold-out; listed utterances still count where present
        spk = set(args.test_speakers)
        test = sorted({u for u in test if u in corpus} | {u for u in utts if speaker_id(u) in spk})
    train_ids, val_ids, test_ids = split_corpus(utts, test, list(args.val))
    if set(val_ids) & set(test_ids):
        raise DataError(f"validation utterances are also held out for the test: {sorted(set(val_ids) & set(test_ids))}")
    if ctx.is_main:
        print(f"data: {len(train_ids)} train / {len(val_ids)} val / {len(test_ids)} test utterances "
              f"({sum(len(corpus[u]) for u in train_ids) / SAMPLE_RATE:.1f} s of training audio)")

    gen = Generator(gcfg).to(device)
    disc = Discriminators(dcfg).to(device)
    opt_g = torch.optim.AdamW(gen.parameters(), cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    opt_d = torch.optim.AdamW(disc.parameters(), cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    step, best = 0, math.inf
    ckpt = load_checkpoint(out / "checkpoint.pt", map_location=device) if args.resume else None
    if ckpt is not None:
        gen.load_state_dict(ckpt["generator"])
        disc.load_state_dict(ckpt["discriminators"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        step, best = int(ckpt["step"]), float(ckpt.get("best", math.inf))
        if ctx.is_main:
            print(f"resumed from {out / 'checkpoint.pt'} at step {step}")
    elif args.init_weights:
        load_safetensors(gen, args.init_weights)
        if ctx.is_main:
            print(f"generator initialised from {args.init_weights}")
    if ctx.distributed:
        gen_ddp = nn.parallel.DistributedDataParallel(gen, device_ids=[device.index] if device.type == "cuda" else None)
        disc_ddp = nn.parallel.DistributedDataParallel(disc, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        gen_ddp, disc_ddp = gen, disc
    if ctx.is_main:
        print(f"generator {count_parameters(gen) / 1e6:.2f} M params ({args.config}), "
              f"discriminators {count_parameters(disc) / 1e6:.2f} M ({args.disc}), device {device}, amp={amp}")

    total = args.steps
    ds = SRDataset([corpus[u] for u in train_ids], dg, length=(total + 1) * cfg.batch_size, seed=cfg.seed + 7919 * ctx.rank)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=cfg.batch_size, sampler=_OffsetSampler(step * cfg.batch_size, len(ds)), collate_fn=collate,
        num_workers=args.workers, pin_memory=device.type == "cuda", drop_last=True,
        persistent_workers=args.workers > 0, prefetch_factor=4 if args.workers > 0 else None,
    )
    val_utts = {u: corpus[u] for u in val_ids}
    lc = cfg.loss
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps({**cfg.to_dict(), "args": vars(args)}, indent=2, default=str))
    log = (out / "train_log.jsonl").open("a") if ctx.is_main else None

    def save(tag: str) -> None:
        if not ctx.is_main:
            return
        meta = {"step": str(step), "config": json.dumps(gcfg.to_dict())}
        save_safetensors(gen, out / f"generator{tag}.safetensors", metadata=meta)

    def checkpoint() -> None:
        if ctx.is_main and not args.no_checkpoint:
            save_checkpoint(out / "checkpoint.pt", {
                "generator": gen.state_dict(), "discriminators": disc.state_dict(), "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(), "step": step, "best": best, "train_config": cfg.to_dict(),
            })

    if ckpt is None and args.init_weights and ctx.is_main and val_utts:
        # Score the starting weights: "_best" is then only written when fine-tuning beats them.
        row = {"step": step, "time_s": 0.0, "init": True,
               **{f"val_{k}": round(v, 4) for k, v in validate(gen, val_utts, device, amp).items()}}
        best = float(np.mean([row[f"val_lsd_{r // 1000}k"] for r in VAL_RATES]))
        print(json.dumps(row), flush=True)
        log.write(json.dumps(row) + "\n")
        log.flush()

    t0 = time.time()
    stats: dict[str, float] = {}
    pbar = None
    if ctx.is_main:
        from tqdm import tqdm

        pbar = tqdm(total=total, initial=step, desc="sr train", mininterval=5.0, disable=args.quiet)
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
        with torch.no_grad():
            mel = mel_torch(low, SR_MEL)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            fake = gen_ddp(mel)[..., : high.shape[-1]]

        loss_d = torch.zeros((), device=device)
        if adversarial:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                real_out = disc_ddp(high)
                fake_out = disc_ddp(fake.detach())
            loss_d = sum(discriminator_loss(real_out[k][0], fake_out[k][0]) for k in real_out)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            nn.utils.clip_grad_norm_(disc.parameters(), cfg.grad_clip)
            opt_d.step()

        loss_mel = multiscale_mel_loss(fake, high, lc)
        loss_g = lc.lambda_mel * loss_mel
        terms = {"mel": loss_mel.detach()}
        if adversarial_g:
            d = unwrap(disc_ddp)  # G step: no all-reduce needed for D's (discarded) gradients
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
        gnorm = nn.utils.clip_grad_norm_(gen.parameters(), cfg.grad_clip)
        opt_g.step()
        step += 1

        for k, v in {**terms, "g": loss_g.detach(), "d": loss_d.detach(), "gnorm": gnorm}.items():
            stats[k] = stats.get(k, 0.0) + float(v)
        stats["n"] = stats.get("n", 0) + 1
        elapsed = time.time() - t0
        if args.max_seconds and elapsed > args.max_seconds:
            stop = True
        if pbar is not None:
            pbar.update(1)
        # rank 0 decides the stop time for everyone under DDP
        if ctx.distributed:
            flag = torch.tensor([1.0 if stop else 0.0], device=device)
            torch.distributed.broadcast(flag, 0)
            stop = bool(flag.item())
        if ctx.is_main and (step % args.log_every == 0 or stop or step == total):
            n = stats.pop("n")
            row = {"step": step, "time_s": round(elapsed, 1), "lr": cfg.lr * _lr_factor(step, cfg),
                   **{k: round(v / n, 4) for k, v in stats.items()}}
            stats = {}
            if step % args.eval_every == 0 or stop or step == total:
                row.update({f"val_{k}": round(v, 4) for k, v in validate(gen, val_utts, device, amp).items()})
                score = np.mean([row[f"val_lsd_{r // 1000}k"] for r in VAL_RATES])
                if score < best:
                    best = float(score)
                    save("_best")
                    row["best"] = True
                save("")
                _write_examples(gen, val_utts, out / "samples", step, device, amp)
                checkpoint()
            print(json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")
            log.flush()
    if pbar is not None:
        pbar.close()
    if ctx.is_main:
        save("")
        checkpoint()
        log.close()
        print(f"done: {step} steps in {time.time() - t0:.0f} s; best val LSD {best:.4f}; weights in {out}")
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


def main(argv: list[str] | None = None) -> None:
    args = add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0])).parse_args(argv)
    train(args)


if __name__ == "__main__":
    main()
