"""Train HiFi-SR (generator + MPD/MSD/MBD) on any folder of wideband audio.

Single process (CPU or one GPU)::

    signals speech sr train --data ../shared/data/vctk-wideband --out runs/sr --config small --steps 20000

Several GPUs (DDP, same entry point)::

    torchrun --nproc_per_node=4 -m signals.speech.sr.train --data /data/VCTK-Corpus-0.92/wav48_silence_trimmed \\
        --out runs/sr_paper --config paper --batch-size 16 --steps 500000

``--data`` is a training pack (``signals speech sr prepare``: its own train/val split by speaker or
language group and each clip's measured bandwidth), a folder (VCTK layout or plain files, read with
soundfile + soxr) or a ``.npz`` written by ``prepare_npz``. Degradation happens on the fly in DataLoader
workers (see ``data.py``). Mixed precision (bf16 autocast) on CUDA, AdamW with a warm-up + cosine
learning-rate schedule over ``--steps``, a JSON-lines log (``train_log.jsonl``) and validation audio
examples in ``<out>/samples/``.

The band above a clip's measured bandwidth: the mel loss weighs it by ``above_band_weight`` and, when that
is below 1, both discriminator inputs are low-passed at the clip's bandwidth (:func:`band_limit`), so the
adversarial and feature-matching terms only see where the target has content (see ``TrainConfig``).

Resumable across machines: ``out/last/`` is a compact state (:mod:`signals.speech.sr.checkpoint`: fp16
weights + bf16 AdamW moments of G and D in <= 15.9 MiB shards), written at every evaluation and at the
end; ``--resume`` continues from it (same step, schedule, best score and data stream). Checkpoints are
chosen on validation LSD only (mean over 8 and 16 kHz inputs, each clip scored up to its own
bandwidth): ``generator_best.safetensors``; ``generator.safetensors`` is the latest. The LSD is of the raw
generator, or with ``--val-postprocess FOLDER`` of its output as that HiFi-SR folder's runtime post-processes
it (frame comb, learned envelope, crossover: what users of the exported model hear; see
:func:`shipped_runtime`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from signals.configio import to_dict
from signals.errors import DataError, ModelError
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
from signals.speech.sr.checkpoint import restore, state_tensors
from signals.speech.sr.config import DISCRIMINATORS, GENERATORS, RUN_CONFIG, TrainConfig
from signals.speech.sr.data import (
    SAMPLE_RATE,
    VOCODER_RATE,
    SRDataset,
    collate,
    degrade,
    load_training_data,
    speaker_id,
    split_corpus,
    vocoder_like,
)
from signals.speech.sr.metrics import lsd, tonal_excess_db
from signals.speech.sr.model import Generator
from signals.torchutils import (
    TorchSession,
    cleanup_distributed,
    count_parameters,
    first_line,
    load_compact,
    load_safetensors,
    rank0_decides,
    save_compact,
    save_safetensors,
    seed_everything,
    setup_distributed,
    unwrap,
)

VAL_RATES = (8000, 16000)  # the checkpoint score: mean validation LSD over these input rates
VAL_MARGIN_HZ = 1000.0  # a condition is scored on a clip only when its bandwidth exceeds the input's Nyquist by this
LAST, BEST = "last", "generator_best.safetensors"


log = logging.getLogger(__name__)


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then cosine to ``lr_min`` at ``steps`` (or exp)."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.lr_schedule == "exp":
        return warm * cfg.lr_decay ** (step / 1000.0)
    t = min(max(step - cfg.warmup_steps, 0) / max(cfg.steps - cfg.warmup_steps, 1), 1.0)
    return warm * (cfg.lr_min + (1.0 - cfg.lr_min) * 0.5 * (1.0 + math.cos(math.pi * t)))


def band_limit(x: torch.Tensor, bandwidth: torch.Tensor, sr: int = SAMPLE_RATE, taper_hz: float = 500.0) -> torch.Tensor:
    """Low-pass every example of ``x: Tensor[B, 1, T]`` at its own ``bandwidth: Tensor[B]`` (Hz): zero-phase
    FFT mask, a raised-cosine ``taper_hz`` wide ending at the bandwidth. Float32 (FFTs have no bf16);
    examples at or above Nyquist come back unchanged."""
    if bool((bandwidth >= sr / 2).all()):
        return x
    with torch.autocast(device_type=x.device.type, enabled=False):
        n = x.shape[-1]
        spec = torch.fft.rfft(x.float(), dim=-1)
        freqs = torch.fft.rfftfreq(n, 1.0 / sr, device=x.device)
        edge = bandwidth.to(x.device, torch.float32).view(-1, 1, 1)
        t = ((freqs - (edge - taper_hz)) / taper_hz).clamp(0.0, 1.0)
        mask = torch.where(edge >= sr / 2, torch.ones_like(t), 0.5 * (1.0 + torch.cos(math.pi * t)))
        return torch.fft.irfft(spec * mask, n=n, dim=-1)


@dataclass
class ValClip:
    name: str
    wav: np.ndarray
    bandwidth: float
    inputs: dict[str, tuple[float, np.ndarray]]  # condition -> (input Nyquist in Hz, degraded input at 48 kHz)


def make_val_set(wavs: dict[str, np.ndarray], bandwidths: dict[str, float], max_clips: int) -> list[ValClip]:
    """Fixed validation inputs (degraded once, seed 0): 8 and 16 kHz polyphase, and vocoder-like 22.05 kHz;
    at most ``max_clips`` clips, evenly spaced in id order."""
    names = sorted(wavs)
    if max_clips and len(names) > max_clips:
        names = [names[int(i)] for i in np.linspace(0, len(names) - 1, max_clips).round()]
    out = []
    for name in names:
        wav, bw = wavs[name], float(bandwidths.get(name, SAMPLE_RATE / 2))
        inputs = {}
        for rate in VAL_RATES:
            if rate / 2 + VAL_MARGIN_HZ <= bw:
                inputs[f"{rate // 1000}k"] = (rate / 2, degrade(wav, rate, "poly", np.random.default_rng(0)))
        if VOCODER_RATE / 2 + VAL_MARGIN_HZ <= bw:
            inputs["voc"] = (VOCODER_RATE / 2, vocoder_like(wav, np.random.default_rng(0)))
        if inputs:
            out.append(ValClip(name, wav, bw, inputs))
    return out


def load_postprocess(model_dir: str | Path):
    """The runtime of the HiFi-SR folder ``model_dir`` (``--val-postprocess``) without its encoder and upsampler
    graphs (a training machine needs only the folder's ``config.json`` and ``envelope.onnx``); the envelope
    graph on one CPU thread, beside training."""
    from signals.modelfolder import find_model
    from signals.speech.sr.infer import KIND, SRRuntime

    path = find_model(KIND, model_dir, option="--val-postprocess")
    return SRRuntime.load(path, providers=["CPUExecutionProvider"], threads=1, generator=False)


def shipped_runtime(gen: Generator, rt, device: torch.device, amp: bool):
    """``rt`` (a runtime from :func:`load_postprocess`: its front end, frame comb, learned envelope and
    crossover) with ``gen`` in place of its encoder and upsampler graphs.

    Why: the runtime rescales every 500 Hz band of every frame of the generated band to the envelope's
    prediction, so the raw generator's LSD is mostly the level error the envelope replaces; scored through
    the runtime, validation sees what a user of the exported folder hears (fine structure, lines, crossover).
    """
    from dataclasses import replace

    gcfg = gen.cfg
    if (gcfg.n_mels, gcfg.hop) != (rt.front.mel.n_mels, rt.front.mel.hop_length):
        raise ModelError(f"--val-postprocess {rt.folder.path}: its front end reads {rt.front.mel.n_mels} mels at hop "
                         f"{rt.front.mel.hop_length}, this generator {gcfg.n_mels} at hop {gcfg.hop}")
    chunking = replace(rt.chunking, context_frames=gcfg.context_frames,
                       upsampler_context_frames=gcfg.upsampler.context_frames, upsampler_chunk_frames=0)
    return replace(rt, chunking=chunking, encoder=TorchSession(gen.encode, device, amp),
                   upsampler=TorchSession(lambda z: gen.upsample(z).squeeze(1), device, amp))


@torch.no_grad()
def validate(gen: nn.Module, clips: list[ValClip], device: torch.device, amp: bool, post=None) -> dict[str, float]:
    """Mean LSD (up to each clip's bandwidth), high-band LSD (input Nyquist to bandwidth) and tonal excess
    (dB, generated band, vs the target) per condition (``8k``, ``16k``, ``voc``): of the raw generator, or
    with ``post`` (:func:`shipped_runtime`) of its output as the runtime post-processes it."""
    gen.eval()
    out: dict[str, list[float]] = {}
    for clip in clips:
        top = clip.bandwidth if clip.bandwidth < SAMPLE_RATE / 2 else None
        for cond, (nyq, low) in clip.inputs.items():
            if post is not None:
                y = post.upsample(low, SAMPLE_RATE)[: len(clip.wav)]
            else:
                mel = mel_torch(torch.from_numpy(low).to(device)[None], SR_MEL)
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                    y = gen(mel)
                y = y.float().squeeze().cpu().numpy()[: len(clip.wav)]
            out.setdefault(f"lsd_{cond}", []).append(lsd(clip.wav, y, max_hz=top))
            out.setdefault(f"lsd_hf_{cond}", []).append(lsd(clip.wav, y, min_hz=nyq, max_hz=top))
            out.setdefault(f"tonal_{cond}", []).append(tonal_excess_db(clip.wav, y, min_hz=nyq, max_hz=top))
    gen.train()
    return {k: float(np.mean(v)) for k, v in out.items()}


def _val_mode(val_postprocess: str | Path | None) -> str:
    return f"LSD through {val_postprocess}'s post-processing" if val_postprocess else "LSD of the raw generator"


def val_score(row: dict[str, Any]) -> float:
    """The checkpoint-selection score: mean validation LSD over :data:`VAL_RATES` (those present)."""
    vals = [row[f"val_lsd_{r // 1000}k"] for r in VAL_RATES if f"val_lsd_{r // 1000}k" in row]
    return float(np.mean(vals)) if vals else math.inf


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
             cfg: TrainConfig, lc: LossConfig, adversarial: bool, adversarial_g: bool, amp: bool,
             bandwidth: torch.Tensor | None = None) -> dict[str, Any]:
    """One HiFi-GAN update: D on real vs fake (when ``adversarial``), then G on the multi-scale mel loss
    (+ adversarial and feature-matching terms when ``adversarial_g``).

    ``gen``/``disc`` may be DDP-wrapped; ``low: Tensor[B, T]`` is the degraded input at 48 kHz, ``high:
    Tensor[B, 1, T]`` the target, ``bandwidth: Tensor[B]`` the target's content bandwidth (Hz; None: full
    band). Above it the mel loss counts with ``cfg.above_band_weight`` and the discriminators see both
    signals low-passed at it (:func:`band_limit`). Returns the detached loss terms and G's gradient norm.
    """
    device = low.device
    with torch.no_grad():
        mel = mel_torch(low, SR_MEL)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        fake = gen(mel)[..., : high.shape[-1]]
    w = cfg.above_band_weight
    masked = bandwidth is not None and w < 1.0 and bool((bandwidth < SAMPLE_RATE / 2).any())
    real_in = band_limit(high, bandwidth) if masked else high
    fake_in = band_limit(fake, bandwidth) if masked else fake

    loss_d = torch.zeros((), device=device)
    if adversarial:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            real_out = disc(real_in)
            fake_out = disc(fake_in.detach())
        loss_d = sum(discriminator_loss(real_out[k][0], fake_out[k][0]) for k in real_out)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        nn.utils.clip_grad_norm_(unwrap(disc).parameters(), cfg.grad_clip)
        opt_d.step()

    if masked:  # weight 1 below the bandwidth, w above it (the low-passed pair differs only below it)
        loss_mel = (1.0 - w) * multiscale_mel_loss(fake_in, real_in, lc)
        if w > 0:
            loss_mel = loss_mel + w * multiscale_mel_loss(fake, high, lc)
    else:
        loss_mel = multiscale_mel_loss(fake, high, lc)
    loss_g = lc.lambda_mel * loss_mel
    terms = {"mel": loss_mel.detach()}
    if adversarial_g:
        d = unwrap(disc)  # G step: no all-reduce needed for D's (discarded) gradients
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            with torch.no_grad():
                real_out = d(real_in)
            fake_out = d(fake_in)
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
          amp: bool = True, progress: bool = True, val_postprocess: str | Path | None = None) -> dict[str, Any]:
    """Train on ``data`` (a training pack, a folder of wideband audio or a prepared ``.npz``) into ``out``.

    ``resume`` continues from the compact state ``out/last`` (if there is one); ``init_weights`` starts the
    generator from saved weights (fine-tuning); ``val_postprocess``: a HiFi-SR folder whose runtime
    post-processing validation scores the generator through (:func:`shipped_runtime`; None: the raw
    generator). Returns the step, the best validation LSD and the split.
    """
    cfg = config
    val_mode = str(val_postprocess) if val_postprocess else None  # recorded in the run and its state
    post_base = load_postprocess(val_postprocess) if val_postprocess else None  # before the data: fails fast
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

    t_load = time.time()
    corpus = load_training_data(data, workers=max(workers, 1) if ctx.is_main else 0)
    utts = sorted(corpus.wavs)
    if corpus.split:  # a pack: its own split by speaker / language group (the --test/--val ids do not apply)
        train_ids = [u for u in utts if corpus.split[u] == "train"]
        val_ids = [u for u in utts if corpus.split[u] == "val"]
        test_ids = [u for u in utts if corpus.split[u] == "test"]
        if not train_ids:
            raise DataError(f"{data} holds no training clips")
    else:
        test = list(cfg.test)
        if cfg.test_speakers:  # speaker hold-out; listed utterances still count where present
            spk = set(cfg.test_speakers)
            test = sorted({u for u in test if u in corpus.wavs} | {u for u in utts if speaker_id(u) in spk})
        train_ids, val_ids, test_ids = split_corpus(utts, test, list(cfg.val))
        if set(val_ids) & set(test_ids):
            raise DataError(f"validation utterances are also held out for the test: "
                            f"{sorted(set(val_ids) & set(test_ids))}")
    if ctx.is_main:
        bws = np.array([corpus.bandwidth[u] for u in train_ids])
        log.info("data: %d train / %d val / %d test clips (%.1f min of training audio, bandwidth median %.0f Hz, "
                 "%.0f%% below 24 kHz), loaded in %.1f s", len(train_ids), len(val_ids), len(test_ids),
                 sum(len(corpus.wavs[u]) for u in train_ids) / SAMPLE_RATE / 60, float(np.median(bws)),
                 100 * float(np.mean(bws < SAMPLE_RATE / 2)), time.time() - t_load)

    gen = Generator(gcfg).to(device)
    disc = Discriminators(dcfg).to(device)
    opt_g = torch.optim.AdamW(gen.parameters(), cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    opt_d = torch.optim.AdamW(disc.parameters(), cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    step, best = 0, math.inf
    d_warm_from = 0  # D's own warm-up restarts here when its optimiser moments were not saved
    state = load_compact(out / LAST) if resume else None
    if state is not None:
        tensors, meta = state
        for key, want in (("generator", cfg.generator), ("discriminator", cfg.discriminator)):
            if meta.get(key, want) != want:
                raise DataError(f"{out / LAST} holds a {meta[key]!r} {key}, this run builds {want!r}: resume with "
                                f"the same --{'config' if key == 'generator' else 'disc'} or use another --out")
        try:  # safetensors + JSON (nothing runs), but possibly another model's or a damaged state
            restored = restore(tensors, meta, gen, disc, opt_g, opt_d)
            step, best = int(meta["step"]), float(meta.get("best", math.inf))
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise ModelError(f"{out / LAST} cannot be resumed: it is not a state of this generator and these "
                             f"discriminators ({first_line(exc)}); use another --out to start afresh") from None
        gen.to(device)
        disc.to(device)
        if meta.get("val_postprocess") != val_mode:
            raise DataError(f"{out / LAST} chose its best checkpoint on validation "
                            f"{_val_mode(meta.get('val_postprocess'))}, this call on {_val_mode(val_postprocess)}: "
                            f"resume with the same --val-postprocess (the scores would not compare)")
        if "d moments" not in restored:
            d_warm_from = step
        if ctx.is_main:
            log.info("resumed from %s at step %d (best val LSD %.4f; %s)", out / LAST, step, best, ", ".join(restored))
            if meta.get("steps") not in (None, cfg.steps):
                log.warning("--steps changed from %s to %d: the learning-rate schedule jumps", meta["steps"], cfg.steps)
    elif init_weights:
        load_safetensors(gen, init_weights)
        if ctx.is_main:
            log.info("generator initialised from %s", init_weights)
    if ctx.distributed:
        gen_ddp = nn.parallel.DistributedDataParallel(gen, device_ids=[device.index] if device.type == "cuda" else None)
        disc_ddp = nn.parallel.DistributedDataParallel(disc, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        gen_ddp, disc_ddp = gen, disc
    post = shipped_runtime(gen, post_base, device, amp) if post_base is not None and ctx.is_main else None
    if ctx.is_main:
        log.info("generator %.2f M params (%s), discriminators %.2f M (%s), device %s, amp=%s",
                 count_parameters(gen) / 1e6, cfg.generator, count_parameters(disc) / 1e6, cfg.discriminator,
                 device, amp)

    total = cfg.steps
    ds = SRDataset([corpus.wavs[u] for u in train_ids], dg, length=(total + 1) * cfg.batch_size,
                   seed=cfg.seed + 7919 * ctx.rank, bandwidths=[corpus.bandwidth[u] for u in train_ids])
    loader = torch.utils.data.DataLoader(
        ds, batch_size=cfg.batch_size, sampler=_OffsetSampler(step * cfg.batch_size, len(ds)), collate_fn=collate,
        num_workers=workers, pin_memory=device.type == "cuda", drop_last=True,
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
    )
    val_utts = {u: corpus.wavs[u] for u in val_ids}
    val_set = make_val_set(val_utts, corpus.bandwidth, cfg.val_clips) if ctx.is_main else []
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        # the recipe with the resolved generator / discriminator / loss configs and the starting weights (a
        # resumed run keeps the ones it began from): `sr export` turns it into the model folder's provenance
        config_file = out / RUN_CONFIG
        previous = json.loads(config_file.read_text()) if state is not None and config_file.is_file() else {}
        resolved = {**to_dict(cfg), "generator_config": to_dict(gcfg), "discriminator_config": to_dict(dcfg),
                    "loss": to_dict(lc), "data": str(data), "split": {"train": len(train_ids), "val": val_ids,
                                                                      "test": test_ids},
                    "init_weights": str(init_weights) if init_weights and state is None
                    else previous.get("init_weights"),
                    "val_postprocess": val_mode}
        config_file.write_text(json.dumps(resolved, indent=2))
    log_file = (out / LOG_FILE).open("a") if ctx.is_main else None

    def write_row(row: dict[str, Any]) -> None:
        log.info("%s", json.dumps(row))
        log_file.write(json.dumps(row) + "\n")
        log_file.flush()

    def save(name: str) -> None:
        if not ctx.is_main:
            return
        meta = {"step": str(step), "config": json.dumps(to_dict(gcfg))}
        save_safetensors(gen, out / name, metadata=meta)

    def save_state() -> None:
        if ctx.is_main and checkpoint:
            tensors, info = state_tensors(gen, disc, opt_g, opt_d, cfg.state_moments)
            save_compact(out / LAST, tensors, {"step": step, "best": best, "steps": cfg.steps, **info,
                                               "val_postprocess": val_mode,
                                               "generator": cfg.generator, "discriminator": cfg.discriminator,
                                               "train_config": to_dict(cfg)})

    if state is None and init_weights and ctx.is_main and val_set:
        # Score the starting weights: "_best" is then only written when fine-tuning beats them.
        row = {"step": step, "time_s": 0.0, "init": True,
               **{f"val_{k}": round(v, 4) for k, v in validate(gen, val_set, device, amp, post).items()}}
        best = val_score(row)
        write_row(row)

    t0 = time.time()
    stats: dict[str, float] = {}
    pbar = None
    if ctx.is_main:
        from tqdm import tqdm

        pbar = tqdm(total=total, initial=step, desc="sr train", mininterval=5.0, disable=not progress)
    stop = step >= total
    for low, high, _, bandwidth in loader:
        if step >= total or stop:
            break
        low = low.to(device, non_blocking=True)
        high = high.to(device, non_blocking=True).unsqueeze(1)
        bandwidth = bandwidth.to(device, non_blocking=True)
        lr = cfg.lr * _lr_factor(step, cfg)
        for group in opt_g.param_groups:
            group["lr"] = lr
        d_warm = min(1.0, (step - d_warm_from + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
        for group in opt_d.param_groups:  # fresh D moments after a resume: warm up again (G is unaffected)
            group["lr"] = lr * (d_warm if d_warm_from else 1.0)
        adversarial = step >= cfg.disc_start
        adversarial_g = step >= cfg.disc_start + cfg.disc_warmup  # D-only warm-up before G sees D
        terms = gan_step(gen_ddp, disc_ddp, opt_g, opt_d, low, high, cfg, lc, adversarial, adversarial_g, amp,
                         bandwidth)
        step += 1

        for k, v in terms.items():
            stats[k] = stats.get(k, 0.0) + float(v)
        stats["n"] = stats.get("n", 0) + 1
        elapsed = time.time() - t0
        if cfg.max_seconds and elapsed > cfg.max_seconds:
            stop = True
        if pbar is not None:
            pbar.update(1)
        stop = rank0_decides(ctx, stop)
        if ctx.is_main and (step % cfg.log_every == 0 or stop or step == total):
            n = stats.pop("n")
            row = {"step": step, "time_s": round(elapsed, 1), "lr": lr,
                   **{k: round(v / n, 4) for k, v in stats.items()}}
            stats = {}
            if step % cfg.eval_every == 0 or stop or step == total:
                if val_set:
                    row.update({f"val_{k}": round(v, 4) for k, v in validate(gen, val_set, device, amp, post).items()})
                score = val_score(row)
                if score < best:
                    best = score
                    save(BEST)
                    row["best"] = True
                save("generator.safetensors")
                _write_examples(gen, val_utts, out / "samples", step, device, amp)
                save_state()
            write_row(row)
    if pbar is not None:
        pbar.close()
    if ctx.is_main:
        save("generator.safetensors")
        save_state()
        log_file.close()
        log.info("done: step %d after %.0f s; best val LSD %.4f; weights in %s", step, time.time() - t0, best, out)
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
