"""Train the speaker-conditioned Tacotron 2 on a prepared pack (``signals speech tts prepare``).

    signals speech tts train --data data/tts_pack --out runs/tts                  # rerun to resume
    signals speech tts train --data data/tts_pack --out runs/tts --max-seconds 480 --batch-size 96
    signals speech tts train --data data/tts_pack --out runs/tts2 --init models/tts   # continue the shipped model
    torchrun --nproc_per_node=4 -m signals.speech.tts.train --data data/tts_pack --out runs/tts   # DDP

Teacher forcing; loss = mel (MSE + L1, before and after the postnet) + stop-token BCE + a guided
attention loss whose prior is the corpus's true alignment (per-token durations), which makes the
attention lock on in a few hundred steps instead of tens of thousands. bf16 autocast on GPU.

Checkpoints are *compact* so a run can move between machines (a lent GPU returns at most 8 files of
16 MiB, 64 MiB in all): ``out/last/`` and ``out/best/`` hold the weights as fp16 safetensors shards of
<= 15.9 MiB plus ``state.json`` (step, best validation loss, config) - 46 MB for the default model, so
one of the two comes back per call. Adam's moments are saved only with ``--save-optimizer``; without
them a resumed run re-warms the learning rate over ``warmup_steps``. ``out/best/`` is chosen on the
validation split (held-out voices + held-out sentences of training voices), never on test.
``--init models/tts`` starts a new run folder from a shipped model (its weights, step count and training log;
the folder needs only ``config.json``, ``model.safetensors`` and ``train_log.jsonl``, 46 MB, to travel).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from signals.configio import from_dict, to_dict
from signals.errors import ModelError
from signals.modelfolder import ModelFolder, append_log, find_model, read_log
from signals.speech.tts.config import TacotronConfig, TrainConfig
from signals.speech.tts.data import Pack, length_buckets
from signals.speech.tts.model import (
    Tacotron2,
    guided_attention_loss,
    guided_attention_targets,
    masked_mel_loss,
)
from signals.torchutils import (
    first_line,
    load_compact,
    rank0_decides,
    save_compact,
    seed_everything,
    setup_distributed,
    unwrap,
)

log = logging.getLogger(__name__)


def lr_at(step: int, cfg: TrainConfig, warmup_from: int = 0) -> float:
    """Linear warm-up (``warmup_steps`` from step 0, or ``resume_warmup_steps`` from ``warmup_from``, the
    step a run resumed at without Adam's moments), then constant, then exponential decay after ``decay_start``."""
    warm = min(1.0, (step - warmup_from + 1) / max(1, cfg.warmup_steps if warmup_from == 0 else cfg.resume_warmup_steps))
    decay = 0.5 ** (max(0, step - cfg.decay_start) / cfg.decay_half_life)
    return max(cfg.lr_min, cfg.lr * warm * decay)


# --------------------------------------------------------------------------------------------- batches


def collate(pack: Pack, idx: np.ndarray, model_cfg: TacotronConfig, rng: np.random.Generator,
            swap_prob: float = 0.0, by_speaker: dict[int, np.ndarray] | None = None) -> dict[str, torch.Tensor]:
    """Padded CPU tensors for utterances ``idx``: tokens, lengths, durations, speaker, mel (log, un-normalised)."""
    r = model_cfg.reduction
    toks = [pack.token_ids(i) for i in idx]
    n_tok = max(len(t) for t in toks)
    n_fr = [pack.n_frames(i) for i in idx]
    t_max = int(math.ceil(max(n_fr) / r) * r)
    b = len(idx)
    tokens = np.zeros((b, n_tok), np.int64)
    durs = np.zeros((b, n_tok), np.int64)
    mel = np.full((b, t_max, model_cfg.n_mels), np.log(1e-5), np.float32)
    spk = np.zeros((b, pack.embeddings.shape[1]), np.float32)
    for j, i in enumerate(idx):
        tokens[j, : len(toks[j])] = toks[j]
        durs[j, : len(toks[j])] = pack.token_durations(i)
        mel[j, : n_fr[j]] = pack.mel(i)
        src = i
        if swap_prob and by_speaker is not None and rng.random() < swap_prob:
            src = int(rng.choice(by_speaker[int(pack.speakers[i])]))
        spk[j] = pack.embeddings[src]
    return {"tokens": torch.from_numpy(tokens), "token_lengths": torch.tensor([len(t) for t in toks]),
            "durations": torch.from_numpy(durs), "speaker": torch.from_numpy(spk), "mel": torch.from_numpy(mel),
            "frame_lengths": torch.tensor(n_fr)}


def compute_losses(model: torch.nn.Module, batch: dict[str, torch.Tensor], cfg: TrainConfig,
                   autocast: bool, speaker_loss: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    core = unwrap(model)
    r = core.cfg.reduction
    mel = core.normalize(batch["mel"])
    with torch.autocast(device_type=mel.device.type, dtype=torch.bfloat16, enabled=autocast):
        out = model(batch["tokens"], batch["token_lengths"], batch["speaker"], mel)
    t = mel.shape[1]
    frame_mask = torch.arange(t, device=mel.device)[None] < batch["frame_lengths"][:, None]
    n_steps = t // r
    last_step = (batch["frame_lengths"] - 1) // r  # the step holding each utterance's final frame
    steps = torch.arange(n_steps, device=mel.device)[None]
    stop_target = (steps >= last_step[:, None]).float()
    step_mask = (steps <= last_step[:, None]).float()
    pos_weight = torch.tensor(cfg.stop_pos_weight, device=mel.device)
    losses = {
        "mel": masked_mel_loss(out["mel"], mel, frame_mask),
        "post": masked_mel_loss(out["mel_post"], mel, frame_mask),
        # padded steps after the end count too: they teach "stay stopped"
        "stop": F.binary_cross_entropy_with_logits(out["stop"].float(), stop_target, pos_weight=pos_weight),
        "guided": guided_attention_loss(
            out["alignments"], guided_attention_targets(batch["durations"], n_steps, r, cfg.guided_sigma), step_mask),
    }
    losses["total"] = (cfg.mel_weight * losses["mel"] + cfg.post_weight * losses["post"]
                       + cfg.stop_weight * losses["stop"] + cfg.guided_weight * losses["guided"])
    if speaker_loss is not None:
        # the post-net mel in the vocoder's units (what is spoken), against the target mel of the same utterance
        losses["speaker"] = speaker_loss(core.denormalize(out["mel_post"].float()), batch["mel"],
                                         batch["frame_lengths"])
        if cfg.speaker_weight > 0:  # else a validation metric only
            losses["total"] = losses["total"] + cfg.speaker_weight * losses["speaker"]
    # how sharp the attention is (mean max weight per valid step): a convergence signal for the log
    focus = (out["alignments"].float().max(-1).values * step_mask).sum() / step_mask.sum()
    losses["focus"] = focus.detach()
    return losses


def prefetched(make: Callable[[np.ndarray], dict], items: Iterable[np.ndarray], depth: int = 2) -> Iterator[dict]:
    """``make(item)`` for each item, in order, computed ``depth`` items ahead in one background thread.

    Collating a batch of 192 utterances takes ~17 ms of numpy; done in the loop, the GPU idles for it at
    every step. One worker keeps the order (and the draws of a shared ``rng``) deterministic.
    """
    items = iter(items)
    with ThreadPoolExecutor(1, thread_name_prefix="collate") as pool:
        pending = deque(pool.submit(make, it) for it in islice(items, depth))
        while pending:
            batch = pending.popleft().result()
            nxt = next(items, None)
            if nxt is not None:
                pending.append(pool.submit(make, nxt))
            yield batch


def compile_decoder_step(model: Tacotron2) -> None:
    """Replace ``model.step`` (this instance only) by its ``torch.compile``-d version.

    The teacher-forced loop calls the decoder step T/r times per batch (about 120 on this corpus, up to
    ~490) on small tensors, forward and backward: on a GPU the time goes to launching dozens of small
    kernels per call, not to arithmetic (on an H200 a step at batch 192 took only 1.22x as long as at
    batch 96). Compiling fuses the step's pointwise work (LSTM gates, attention energies, mask + softmax,
    dropout) into a few kernels and replaces the eager dispatcher with one wrapper call.

    Shapes are dynamic (batch and token count change every batch), which needs the location features
    as one matmul over unfolded windows: inductor's conv-backward lowering would fix the token count and
    recompile for every new length. So a run compiles twice: the first step of the loop (its zero state
    needs no gradient) and the other steps; validation runs eager. If a compiled step ever fails, the
    training loop warns and goes on in eager mode. Numerics: outputs and gradients agree
    with the eager step to ~1e-5 relative (float32, CPU). The exported graphs never see this: export
    builds a fresh model.
    """
    model.attention.location_mode = "unfold"
    dynamo = torch._dynamo.config  # room for a few size-threshold recompiles before dynamo gives up on the step
    if hasattr(dynamo, "recompile_limit"):
        dynamo.recompile_limit = max(dynamo.recompile_limit, 16)
    model.step = torch.compile(model.step, dynamic=True)


def uncompile_decoder_step(model: Tacotron2) -> None:
    """Undo :func:`compile_decoder_step`: the class's eager method and the conv location features again."""
    vars(model).pop("step", None)
    model.attention.location_mode = "conv"


@contextmanager
def eager_decoder_step(model: Tacotron2) -> Iterator[None]:
    """Within: the model's eager decoder step, even if :func:`compile_decoder_step` compiled it; after: as before."""
    compiled, mode = vars(model).get("step"), model.attention.location_mode
    if compiled is None:
        yield
        return
    uncompile_decoder_step(model)
    try:
        yield
    finally:
        model.step, model.attention.location_mode = compiled, mode


def model_config_from_dict(d: dict, where: str = "state.json") -> TacotronConfig:
    return from_dict(TacotronConfig, d, where=where, path="model")


# --------------------------------------------------------------------------------------------- training


@torch.no_grad()
def validate(model: torch.nn.Module, pack: Pack, idx: np.ndarray, cfg: TrainConfig, device: torch.device,
             autocast: bool, speaker_loss: torch.nn.Module | None = None) -> dict[str, float]:
    """Mean losses over utterances ``idx`` (eval mode, no gradients). Runs the eager decoder step even when
    training compiled it: a few batches, not worth two more compiles, and no compile failure mid-run."""
    with eager_decoder_step(unwrap(model)):
        return _validate(model, pack, idx, cfg, device, autocast, speaker_loss)


def _validate(model: torch.nn.Module, pack: Pack, idx: np.ndarray, cfg: TrainConfig, device: torch.device,
              autocast: bool, speaker_loss: torch.nn.Module | None = None) -> dict[str, float]:
    model.eval()
    rng = np.random.default_rng(0)
    order = idx[np.argsort([pack.n_frames(i) for i in idx])]
    sums: dict[str, float] = {}
    n = 0
    for s in range(0, len(order), cfg.batch_size):
        part = order[s: s + cfg.batch_size]
        batch = {k: v.to(device) for k, v in collate(pack, part, unwrap(model).cfg, rng).items()}
        losses = compute_losses(model, batch, cfg, autocast, speaker_loss)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(part)
        n += len(part)
    model.train()
    return {k: v / n for k, v in sums.items()}


def model_weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors as the model's state dict: float32, without Adam's moments (``optim.*``)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items() if not k.startswith("optim.")}


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state dict, state)`` of a compact checkpoint folder (``runs/tts/best``) or a TTS model folder
    (``models/tts``: ``model.safetensors`` + ``config.json``, the step count in its ``source``)."""
    path = Path(path)
    compact = load_compact(path)
    if compact is not None:
        return compact
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is neither a checkpoint folder (state.json) nor a model folder (config.json)")
    from safetensors.torch import load_file

    folder = ModelFolder.load(path, kind="tts")
    weights = folder.file(folder.config.weights or "model.safetensors")
    try:
        tensors = load_file(str(weights))
    except Exception as exc:  # safetensors' own error types: a truncated or foreign file
        raise ModelError(f"{weights} is damaged (not a safetensors file): {first_line(exc)}") from None
    source = folder.config.source
    # what export_checkpoint records from a checkpoint's state, so re-exporting a folder keeps it
    return tensors, {"step": int(source.get("step", 0)), "model": folder.config.model,
                     **{k: source[s] for k, s in (("val", "validation"), ("train", "training"),
                                                   ("checkpoint", "checkpoint")) if s in source}}


def load_model(path: str | Path) -> tuple[Tacotron2, dict]:
    """``(model in eval mode, float32; state)`` of a compact checkpoint folder or a TTS model folder."""
    tensors, state = load_weights(path)
    model = Tacotron2(model_config_from_dict(state["model"], where=str(path)))
    model.load_state_dict(model_weights(tensors))  # float16 weights are copied into the float32 parameters
    return model.eval(), state


def check_pack_fits(cfg: TacotronConfig, pack: Pack) -> None:
    """The pack's symbol table must be the model's (token IDs index its embedding)."""
    if cfg.n_symbols != len(pack.manifest["symbols"]):
        raise ValueError(f"pack has {len(pack.manifest['symbols'])} symbols, model {cfg.n_symbols}")


def inherit_log(init: str | Path, log_file: Path, step: int) -> None:
    """Start a new run's ``train_log.jsonl`` with the history of the weights it starts from (rows up to
    their ``step``), so the exported folder's log and curve cover every run. The history is the folder's
    ``train_log.jsonl`` (a model folder), or the run folder's beside a compact checkpoint
    (``runs/tts/best``). Nothing happens when the run already has a log or no history is found."""
    init = Path(init)
    candidates = [init / "train_log.jsonl"]
    if (init / "state.json").is_file():
        candidates.append(init.parent / "train_log.jsonl")
    source = next((f for f in candidates if f.is_file()), None)
    if source is None or log_file.exists():
        return
    rows = [r for r in read_log(source, skip_torn=True)  # the history is informative, not load-bearing
            if isinstance(r, dict) and isinstance(r.get("step"), int) and r["step"] <= step]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("".join(json.dumps(r) + "\n" for r in rows))


def train(cfg: TrainConfig, data: str | Path, out: str | Path, *, device: str | None = None,
          init: str | Path | None = None, progress: bool = True) -> dict:
    """Train on pack ``data`` into run folder ``out`` (resumed when ``out/last`` exists); returns a summary.

    ``out/last`` and ``out/best`` (lowest validation post-net loss) are compact checkpoints
    (:func:`save_compact`); ``out/train_log.jsonl`` is the history.
    """
    from tqdm import tqdm

    ctx = setup_distributed(device)
    out = Path(out)
    pack = Pack.load(data)
    seed_everything(cfg.seed + ctx.rank)
    resume = load_compact(out / "last")
    started_from = "last checkpoint" if resume is not None else None
    if resume is None and init is not None:
        resume, started_from = load_weights(init), str(init)
        resume[1]["best_val"] = math.inf  # a new run's validation history starts here
        if ctx.is_main:
            inherit_log(init, out / "train_log.jsonl", resume[1]["step"])
    model_cfg = cfg.model
    if resume is not None:
        # Safetensors + JSON (nothing in it runs), but the state may be another model's or damaged.
        where = out / "last" if started_from == "last checkpoint" else Path(str(started_from))
        if not isinstance(resume[1].get("model"), dict) or not isinstance(resume[1].get("step"), int):
            raise ModelError(f"{where} cannot be resumed: its state has no 'model' config or 'step'")
        model_cfg = model_config_from_dict(resume[1]["model"], where=str(started_from))
        log.info("resuming from %s at step %d", started_from, resume[1]["step"])
    model = Tacotron2(model_cfg)
    check_pack_fits(model_cfg, pack)
    step, best, warmup_from = 0, math.inf, 0
    if resume is not None:
        tensors, state = resume
        try:
            model.load_state_dict(model_weights(tensors))
        except RuntimeError as exc:
            raise ModelError(f"{where} cannot be resumed: its weights do not fit its model config "
                             f"({first_line(exc)})") from None
        step, best = state["step"], state.get("best_val", math.inf)
        warmup_from = step if not any(k.startswith("optim.") for k in tensors) else 0
    else:
        mean, std = pack.mel_stats("train")
        model.mel_mean.copy_(torch.from_numpy(mean))
        model.mel_std.copy_(torch.from_numpy(std))
    model.to(ctx.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-6,
                           weight_decay=cfg.weight_decay)
    if resume is not None and warmup_from == 0:
        opt_state = opt.state_dict()
        try:
            for i in range(len(list(model.parameters()))):
                opt_state["state"][i] = {"step": torch.tensor(float(step)),
                                         "exp_avg": resume[0][f"optim.{i}.exp_avg"].float().to(ctx.device),
                                         "exp_avg_sq": resume[0][f"optim.{i}.exp_avg_sq"].float().to(ctx.device)}
            opt.load_state_dict(opt_state)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{where} cannot be resumed: its optimiser moments do not fit the model "
                             f"({first_line(exc)})") from None
    train_model = model
    if ctx.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
    autocast = cfg.bf16 and ctx.device.type == "cuda"
    # The speaker-consistency term: trained on with --speaker-weight > 0; otherwise, when the encoder folder
    # is there, still measured at validation (it tracks what cloning needs better than the mel loss does).
    speaker_loss = None
    try:
        encoder_dir = find_model("speaker_encoder", cfg.speaker_encoder or None)
    except ModelError:
        if cfg.speaker_weight > 0:
            raise
        encoder_dir = None
        log.info("no speaker-encoder folder: validation runs without the speaker metric")
    if encoder_dir is not None:
        from signals.speech.tts.speaker_loss import load_speaker_loss

        speaker_loss = load_speaker_loss(str(encoder_dir), ctx.device)
    train_speaker_loss = speaker_loss if cfg.speaker_weight > 0 else None
    if cfg.compile:
        compile_decoder_step(model)
    if ctx.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    train_idx, val_idx = pack.indices("train"), pack.indices("val")
    by_speaker: dict[int, np.ndarray] = {}
    for i in train_idx:
        by_speaker.setdefault(int(pack.speakers[i]), []).append(int(i))
    by_speaker = {k: np.asarray(v) for k, v in by_speaker.items()}
    lengths = np.asarray([pack.n_frames(i) for i in train_idx])
    rng = np.random.default_rng(cfg.seed * 1000 + step)  # a resumed run draws new batches

    def save(folder: str, extra: dict) -> None:
        tensors = dict(model.state_dict())
        if cfg.save_optimizer:
            for i, st in opt.state_dict()["state"].items():
                tensors[f"optim.{i}.exp_avg"] = st["exp_avg"].to(torch.bfloat16)
                tensors[f"optim.{i}.exp_avg_sq"] = st["exp_avg_sq"].to(torch.bfloat16)
        tensors = {k: v.detach().cpu().to(torch.float16) if v.is_floating_point() and not k.startswith("optim.")
                   else v.detach().cpu() for k, v in tensors.items()}
        state = {"step": step, "best_val": best, "model": to_dict(model_cfg),
                 "train": to_dict(replace(cfg, model=model_cfg)), **extra}
        save_compact(out / folder, tensors, state, prefix="weights")

    def make_batch(b: np.ndarray) -> dict[str, torch.Tensor]:
        batch = collate(pack, train_idx[b], model_cfg, rng, cfg.embed_swap_prob, by_speaker)
        return {k: v.pin_memory() for k, v in batch.items()} if ctx.device.type == "cuda" else batch

    def forward_backward(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        losses = compute_losses(train_model, batch, cfg, autocast, train_speaker_loss)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        return losses

    t0 = time.time()
    bar = tqdm(total=cfg.max_steps, initial=step, desc="tts train", unit="step", disable=not (progress and ctx.is_main))
    running: dict[str, float] = {}
    n_running = 0
    done = False
    model.train()
    while not done:
        batches = list(length_buckets(lengths, cfg.batch_size, rng))
        # every rank takes the same number of steps per epoch (DDP all-reduces each step's gradients)
        batches = batches[: len(batches) // ctx.world_size * ctx.world_size]
        for batch in prefetched(make_batch, batches[ctx.rank:: ctx.world_size]):
            batch = {k: v.to(ctx.device, non_blocking=True) for k, v in batch.items()}
            lr = lr_at(step, cfg, warmup_from)
            for g in opt.param_groups:
                g["lr"] = lr
            try:
                losses = forward_backward(batch)
            except Exception as exc:  # noqa: BLE001 - retried once in eager mode, where a real error raises again
                if "step" not in vars(model):
                    raise
                # No working compiler toolchain (e.g. no triton / C++ compiler), or a failed recompile for a
                # new shape: train on, in eager mode, rather than lose the run.
                log.warning("--compile: the compiled decoder step failed at step %d (%s); continuing without "
                            "torch.compile", step, first_line(exc))
                uncompile_decoder_step(model)
                losses = forward_backward(batch)
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if not torch.isfinite(gnorm):
                opt.zero_grad(set_to_none=True)  # skip a non-finite step rather than poison the weights
            else:
                opt.step()
            step += 1
            for k, v in losses.items():
                running[k] = running.get(k, 0.0) + float(v.detach())
            n_running += 1
            bar.update(1)
            timeout = rank0_decides(ctx, cfg.max_seconds > 0 and time.time() - t0 > cfg.max_seconds)
            done = step >= cfg.max_steps or timeout
            # a row averages the steps since the last one: fewer than log_every after a resume mid-window
            # or at the end of a run, which would otherwise go unlogged
            if (step % cfg.log_every == 0 or done) and ctx.is_main:
                row = {"step": step, "lr": lr, "seconds": round(time.time() - t0, 1),
                       **{k: round(v / n_running, 4) for k, v in running.items()}}
                append_log(out / "train_log.jsonl", row)
                if not progress:
                    log.info(json.dumps(row))
                bar.set_postfix(loss=row["total"], post=row["post"], guided=row["guided"], focus=row["focus"])
                running, n_running = {}, 0
            if (step % cfg.val_every == 0 or done) and ctx.is_main:
                val = validate(model, pack, val_idx, cfg, ctx.device, autocast, speaker_loss)
                row = {"step": step, "val": {k: round(v, 4) for k, v in val.items()}}
                append_log(out / "train_log.jsonl", row)
                log.info(json.dumps(row))
                if val["post"] < best:
                    best = val["post"]
                    save("best", {"val": val})
                save("last", {"val": val})
            if done:
                break
    bar.close()
    return {"step": step, "best_val_post": best, "seconds": round(time.time() - t0, 1)}


if __name__ == "__main__":  # torchrun / python -m entry point; cli.py owns the options
    from signals.speech.tts.cli import main_train

    raise SystemExit(main_train())
