"""Train the GE2E speaker encoder on speaker-labelled audio folders (LibriSpeech, VoxCeleb, your own).

    signals speech encoder train DATA_DIR --out runs/encoder --steps 20000
    torchrun --nproc_per_node=4 --no-python signals speech encoder train DATA_DIR --out runs/encoder

One process, or N under torchrun (DDP; each rank draws its own batches, gradients are averaged).
Rerunning the same command resumes from ``OUT/checkpoint.pt``. Outputs in ``OUT``:
``split.json`` + ``{train,val,test}_speakers.txt`` (test speakers are never seen: evaluate on them
with ``--speakers OUT/test_speakers.txt``), ``log.csv`` (step, loss, w, b, grad norm, validation loss
and EER), ``checkpoint.pt``, ``mel_cache/`` (mels of the preprocessed utterances, memory-mapped).

Recipe (Wan et al. 2018; Real-Time-Voice-Cloning): Adam, lr 1e-4, S=64 speakers x U=10 utterances
of 1.6 s, GE2E softmax loss with learnable w/b at 0.01 x the learning rate, gradient-norm clipping
at 3. (b cannot learn under the softmax loss: a shift common to all logits has zero gradient.)
Small CPU runs: 16 speakers x 5 utterances at lr 4e-4 learn (held-out EER 39 % -> 13 % in 150 steps on
librispeech-mini); at lr 1e-3 the final ReLU died after ~100 steps (all embeddings equal: loss stuck at
ln(S), grad norm ~0.01 in log.csv), so raise the learning rate with care.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from signals.configio import to_dict
from signals.errors import DataError, ModelError
from signals.speech.encoder.config import TrainConfig
from signals.speech.encoder.data import (
    GE2ESampler,
    find_utterances,
    load_preprocessed,
    read_speaker_list,
    split_halves,
    split_speakers,
)
from signals.speech.encoder.frontend import FrontEnd, mean_embedding, partial_mels
from signals.speech.encoder.metrics import equal_error_rate, pair_scores
from signals.speech.encoder.model import SpeakerEncoder
from signals.speech.features import mel_numpy
from signals.torchutils import (
    cleanup_distributed,
    first_line,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    setup_distributed,
    unwrap,
)

log = logging.getLogger(__name__)


def _cached_mels(utts, cache: Path, front: FrontEnd, rank: int, world: int) -> list[np.ndarray]:
    """Mels of all utterances, computed once (split over ranks) and memory-mapped from ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(json.dumps(to_dict(front), sort_keys=True).encode()).hexdigest()[:8]
    files = [cache / f"{hashlib.sha1(str(u.path.resolve()).encode()).hexdigest()[:16]}-{key}.npy" for u in utts]
    todo = [i for i in range(rank, len(utts), world) if not files[i].is_file()]
    for i, wav in zip(todo, load_preprocessed([utts[i] for i in todo], front, progress=rank == 0)):
        tmp = files[i].with_suffix(".tmp.npy")
        np.save(tmp, mel_numpy(wav, front.mel).T.astype(np.float32))
        tmp.replace(files[i])
    if world > 1:
        torch.distributed.barrier()
    return [np.load(f, mmap_mode="r") for f in files]


@torch.inference_mode()
def validate(model: SpeakerEncoder, val_batches: list[np.ndarray], val_wavs: list[np.ndarray],
             val_speakers: list[str], front: FrontEnd, device: torch.device) -> dict[str, float]:
    """Validation GE2E loss on fixed batches and split-halves EER of the validation speakers."""
    model.eval()
    losses = []
    for b in val_batches:
        s, u = b.shape[:2]
        e = model(torch.from_numpy(b).to(device).flatten(0, 1)).view(s, u, -1)
        losses.append(float(model.loss(e)))
    out = {"val_loss": float(np.mean(losses)) if losses else float("nan"), "val_eer": float("nan")}
    if val_wavs:
        wavs, spk = split_halves(val_wavs, val_speakers)
        embeds = [mean_embedding(model.embed_partials(torch.from_numpy(partial_mels(w, front)).to(device))
                                 .cpu().numpy()) for w in wavs]
        out["val_eer"] = equal_error_rate(*pair_scores(np.stack(embeds), spk)).eer
    model.train()
    return out


def train(config: TrainConfig, data: str | Path, out: str | Path, *, speakers: str | Path | None = None,
          device: str | None = None, threads: int | None = None, init: str | Path | None = None,
          command: str = "") -> Path:
    """Train on the speaker-labelled audio folder ``data`` into the run folder ``out``; rerun to resume.

    ``speakers``: a file of speaker IDs to use (default all); ``init``: a model folder to start from;
    ``command``: the command line, stored in the checkpoint for the model card. Returns the checkpoint.
    """
    cfg = config
    if cfg.utterances_per_speaker < 2:
        raise DataError("GE2E needs at least 2 utterances per speaker (--utterances-per-speaker)")
    ctx = setup_distributed(device)
    if threads:
        torch.set_num_threads(threads)
    seed_everything(cfg.seed + ctx.rank)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    front = FrontEnd()
    # Read before any work (a damaged or crafted checkpoint fails at once, not after the mel cache is built);
    # applied to the model and optimiser below.
    ckpt_path = out / "checkpoint.pt"
    ckpt = load_checkpoint(ckpt_path, map_location=ctx.device, what="a speaker-encoder training checkpoint")

    wanted = read_speaker_list(speakers) if speakers else None
    utts = find_utterances(data, wanted)
    split = split_speakers([u.speaker for u in utts], cfg.holdout_speakers, cfg.val_speakers, seed=cfg.seed)
    if ctx.is_main:
        (out / "split.json").write_text(json.dumps(split, indent=1) + "\n")
        for name, ids in split.items():
            (out / f"{name}_speakers.txt").write_text("".join(f"{s}\n" for s in ids))
    train_set = set(split["train"])
    train_utts = [u for u in utts if u.speaker in train_set]
    mels = _cached_mels(train_utts, out / "mel_cache", front, ctx.rank, ctx.world_size)
    by_spk: dict[str, list[np.ndarray]] = {}
    for u, m in zip(train_utts, mels):
        by_spk.setdefault(u.speaker, []).append(m)
    sampler = GE2ESampler(by_spk, cfg.speakers_per_batch, cfg.utterances_per_speaker, front.partial_frames,
                          seed=cfg.seed + 1000 * ctx.rank)

    val_wavs, val_spk, val_batches = [], [], []
    if ctx.is_main and split["val"]:
        val_utts = [u for u in utts if u.speaker in set(split["val"])]
        val_wavs, val_spk = load_preprocessed(val_utts, front), [u.speaker for u in val_utts]
        vm: dict[str, list[np.ndarray]] = {}
        for u, w in zip(val_utts, val_wavs):
            vm.setdefault(u.speaker, []).append(mel_numpy(w, front.mel).T)
        n_val = min(len(vm), cfg.speakers_per_batch)
        if n_val >= 2:
            vs = GE2ESampler(vm, n_val, cfg.utterances_per_speaker, front.partial_frames, seed=12345)
            val_batches = [vs.batch() for _ in range(4)]  # fixed: comparable across steps

    model = SpeakerEncoder(cfg.model).to(ctx.device)
    if init:
        from signals.speech.encoder.export import load_model

        model.load_state_dict(load_model(init).state_dict())
    wb = [model.similarity_weight, model.similarity_bias]
    net_params = [p for n, p in model.named_parameters() if not n.startswith("similarity_")]
    opt = torch.optim.Adam([{"params": net_params, "lr": cfg.lr},
                            {"params": wb, "lr": cfg.lr * cfg.wb_lr_scale}])
    step = 0
    if ckpt is not None:
        # The file is data only (weights_only), but it may still be another run's or a damaged one: every
        # entry that does not fit is one error naming the file, not a KeyError half-way through the resume.
        try:
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            step = int(ckpt["step"])
            if ckpt.get("sampler_rng") and ctx.rank < len(ckpt["sampler_rng"]):
                sampler.rng.bit_generator.state = ckpt["sampler_rng"][ctx.rank]
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
            raise ModelError(f"{ckpt_path} cannot be resumed: it is not a checkpoint of this model "
                             f"({first_line(exc)}); move it away to start afresh") from None
        if ctx.is_main:
            log.info("resumed from %s at step %d", out / "checkpoint.pt", step)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if ctx.distributed else model

    def save() -> None:
        rng_states = [sampler.rng.bit_generator.state]
        if ctx.distributed:
            gathered: list = [None] * ctx.world_size
            torch.distributed.all_gather_object(gathered, rng_states[0])
            rng_states = gathered
        if ctx.is_main:
            save_checkpoint(out / "checkpoint.pt", {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "config": to_dict(cfg.model), "train_config": to_dict(cfg), "frontend": to_dict(front),
                "data": str(data), "command": command, "sampler_rng": rng_states,
            })

    log_path = out / "log.csv"
    fields = ["step", "loss", "w", "b", "grad_norm", "val_loss", "val_eer", "seconds"]
    if ctx.is_main:
        # On resume, rows logged after the checkpoint's step are replayed, so drop them.
        rows = list(csv.reader(log_path.open())) if log_path.exists() else []
        kept = [r for r in rows[1:] if r and int(r[0]) <= step]
        with log_path.open("w", newline="") as f:
            csv.writer(f).writerows([fields, *kept])
    from tqdm import tqdm

    t0, recent = time.time(), []
    model.train()
    bar = tqdm(range(step, cfg.steps), initial=step, total=cfg.steps, desc="train", disable=not ctx.is_main)
    for step in bar:
        batch = torch.from_numpy(sampler.batch()).to(ctx.device)
        s, u = batch.shape[:2]
        embeds = ddp(batch.flatten(0, 1)).view(s, u, -1)
        loss = model.loss(embeds)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm))
        opt.step()
        recent.append(loss.item())
        done = step + 1
        bar.set_postfix(loss=f"{np.mean(recent[-20:]):.3f}", w=f"{model.similarity_weight.item():.2f}")
        last = done == cfg.steps
        val = {}
        if ctx.is_main and (done % cfg.val_every == 0 or last) and (val_batches or val_wavs):
            val = validate(unwrap(model), val_batches, val_wavs, val_spk, front, ctx.device)
        if ctx.is_main and (done % 10 == 0 or val or last):
            with log_path.open("a", newline="") as f:
                csv.writer(f).writerow([done, f"{np.mean(recent[-10:]):.5f}", f"{model.similarity_weight.item():.4f}",
                                        f"{model.similarity_bias.item():.4f}", f"{gnorm:.4f}",
                                        f"{val.get('val_loss', float('nan')):.5f}",
                                        f"{val.get('val_eer', float('nan')):.5f}", f"{time.time() - t0:.1f}"])
            if val:
                log.info("step %d: train loss %.4f  val loss %.4f  val EER %.2f %%", done, np.mean(recent[-50:]),
                         val["val_loss"], 100 * val["val_eer"])
        step = done
        if done % cfg.save_every == 0 or last:
            save()
    if ctx.is_main:
        log.info("done: %d steps in %.0f s, checkpoint %s", step, time.time() - t0, out / "checkpoint.pt")
    cleanup_distributed()
    return out / "checkpoint.pt"


if __name__ == "__main__":  # python -m signals.speech.encoder.train ...: the options of `signals speech encoder train`
    from signals.speech.encoder.cli import main_train

    sys.exit(main_train())
