"""Train FusionActNet in the paper's three stages: static branch, dynamic branch, fusion (guidance net).

Launch (single process, CPU or one GPU):

    signals har train --dataset uci-har --out runs/har/fusionactnet --seeds 0
    python -m signals.har.train --dataset uci-har --out runs/har/fusionactnet --seeds 0

Multi-GPU / multi-process (DDP, same entry point; Gloo on CPU, NCCL on GPUs):

    torchrun --nproc_per_node=2 -m signals.har.train --dataset uci-har --out runs/har/ddp --seeds 0

Protocol (honest by construction): a few *training* subjects are held out as validation; every
checkpoint choice and early stop looks at validation only. The test split is touched once, after
training, to report metrics. ``--resume`` continues from ``OUT/checkpoint.pt`` (written atomically
after every epoch). The result is ``OUT/config.json`` + ``OUT/model.safetensors``; export it with
``signals har export --model OUT``. Measured results go to ``OUT/metrics.json``, the per-epoch
history to ``OUT/train_log.jsonl``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from signals.configio import to_dict
from signals.errors import DataError, ModelError, SignalsError
from signals.har.config import STAGES, TrainConfig
from signals.har.data import HARDataset
from signals.har.metrics import classification_metrics
from signals.har.model import FusionActNetEnsemble
from signals.modelfolder import LOG_FILE, METRICS_FILE, ModelConfig, update_metrics, write_config
from signals.torchutils import (
    DistContext,
    cleanup_distributed,
    first_line,
    load_checkpoint,
    save_checkpoint,
    save_safetensors,
    seed_everything,
    setup_distributed,
)

LICENCE = "Apache-2.0 (weights and code); training data licence: see source.dataset"
log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# data helpers


def split_validation(subjects: np.ndarray, n_val: int, seed: int) -> np.ndarray:
    """Boolean mask [N] of windows whose subject is one of ``n_val`` held-out training subjects."""
    uniq = np.unique(subjects)
    if n_val <= 0:
        return np.zeros(len(subjects), bool)
    if n_val >= len(uniq):
        raise DataError(f"cannot hold out {n_val} validation subjects: training split has only {len(uniq)}")
    chosen = np.random.default_rng(seed).choice(uniq, size=n_val, replace=False)
    return np.isin(subjects, chosen)


def xyz_groups(channel_names: list[str]) -> list[list[int]]:
    """Channel index triplets [x, y, z] of each 3-axis sensor, found from names ending in x/y/z."""
    groups: dict[str, dict[str, int]] = {}
    for i, name in enumerate(channel_names):
        low = name.lower()
        if len(low) >= 2 and low[-1] in "xyz" and low[-2] in "_-. ":
            groups.setdefault(low[:-2], {})[low[-1]] = i
    return [[g["x"], g["y"], g["z"]] for g in groups.values() if len(g) == 3]


def random_rotations(n: int, max_deg: float, gen: torch.Generator, device) -> torch.Tensor:
    """[n, 3, 3] rotations about a random axis by an angle uniform in [-max_deg, max_deg]."""
    axis = torch.randn(n, 3, generator=gen, device=device)
    axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-8)
    angle = (torch.rand(n, generator=gen, device=device) * 2 - 1) * math.radians(max_deg)
    k = torch.zeros(n, 3, 3, device=device)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(1, 2)
    s, c = angle.sin()[:, None, None], angle.cos()[:, None, None]
    return torch.eye(3, device=device) + s * k + (1 - c) * (k @ k)  # Rodrigues


def time_scale(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Resample each window about its centre: out[t] = x[c + (t - c) * factor] (linear, edge padded).

    x: Tensor[B, C, T]; factor: Tensor[B, 1] (> 1: the motion plays faster) -> Tensor[B, C, T]
    """
    b, c, t = x.shape
    centre = (t - 1) / 2
    pos = (centre + (torch.arange(t, device=x.device, dtype=x.dtype)[None] - centre) * factor).clamp(0, t - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=t - 1)
    frac = (pos - lo.to(x.dtype))[:, None, :]

    def take(i: torch.Tensor) -> torch.Tensor:  # x at integer positions i [B, T], every channel
        return torch.gather(x, 2, i[:, None, :].expand(b, c, t))

    return take(lo) * (1 - frac) + take(hi) * frac


def augment(x: torch.Tensor, cfg: TrainConfig, groups: list[list[int]], std: torch.Tensor, gen: torch.Generator,
            cadence: bool = False):
    """Random rotation (shared by all xyz groups), sensor gain, jitter, time scaling (``cadence``) and shift.

    x: Tensor[B, C, T] raw units; std: Tensor[C, 1] -> Tensor[B, C, T]
    """
    b, c, t = x.shape
    dev = x.device
    x = x.clone()
    if cfg.aug_rotate_deg > 0 and groups:
        rot = random_rotations(b, cfg.aug_rotate_deg, gen, dev)
        for g in groups:  # same rotation for every sensor: they share the phone's frame
            x[:, g] = rot @ x[:, g]
    if cfg.aug_scale > 0:
        if groups:
            for g in groups:
                x[:, g] = x[:, g] * (1 + cfg.aug_scale * torch.randn(b, 1, 1, generator=gen, device=dev))
        else:
            x = x * (1 + cfg.aug_scale * torch.randn(b, c, 1, generator=gen, device=dev))
    if cfg.aug_jitter > 0:
        x = x + cfg.aug_jitter * std * torch.randn(x.shape, generator=gen, device=dev)
    if cadence and cfg.aug_time_scale > 0:
        x = time_scale(x, 1 + cfg.aug_time_scale * (2 * torch.rand(b, 1, generator=gen, device=dev) - 1))
    if cfg.aug_shift > 0:
        shift = torch.randint(-cfg.aug_shift, cfg.aug_shift + 1, (b, 1), generator=gen, device=dev)
        idx = (torch.arange(t, device=dev)[None] + shift).clamp(0, t - 1)  # edge padding
        x = torch.gather(x, 2, idx[:, None, :].expand(b, c, t))
    return x


# ----------------------------------------------------------------------------------------------
# evaluation helpers (validation only during training)


@torch.inference_mode()
def predict_log_probs(fn, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(-1) == y).float().mean()) if len(y) else float("nan")


# ----------------------------------------------------------------------------------------------
# one stage of one member


def _run_stage(
    model: FusionActNetEnsemble,
    member: int,
    stage: str,
    data: dict,
    cfg: TrainConfig,
    ctx: DistContext,
    ckpt_path: Path,
    resume_state: dict | None,
    history: list,
    task_index: int,
) -> None:
    """Train one stage of one member in place, keeping the weights with the best validation accuracy."""
    net = model.members[member]
    dev = ctx.device
    seed = cfg.seeds[member]
    static_set = torch.tensor(net.config.static_classes, device=dev)
    dynamic_set = torch.tensor(net.config.dynamic_classes, device=dev)

    def subset(x, y, classes):
        keep = torch.isin(y, classes)
        # class index inside the branch = position in the branch's class list
        remap = torch.full((net.config.n_classes,), -1, dtype=torch.long, device=dev)
        remap[classes] = torch.arange(len(classes), device=dev)
        return x[keep], remap[y[keep]]

    xtr, ytr, xva, yva = data["xtr"], data["ytr"], data["xva"], data["yva"]
    if stage == "static":
        module, (xtr, ytr), (xva, yva) = net.static, subset(xtr, ytr, static_set), subset(xva, yva, static_set)
        epochs, lr = cfg.epochs, cfg.lr
    elif stage == "dynamic":
        module, (xtr, ytr), (xva, yva) = net.dynamic, subset(xtr, ytr, dynamic_set), subset(xva, yva, dynamic_set)
        epochs, lr = cfg.dynamic_epochs, cfg.lr
    else:
        module, epochs, lr = net.guide, cfg.fusion_epochs, cfg.fusion_lr
    if len(xtr) == 0:
        raise DataError(f"stage {stage!r}: the training split has no windows of these classes")

    # Only the stage's own module learns; the others (trained branches in the fusion stage) are frozen.
    for p in net.parameters():
        p.requires_grad_(False)
    for p in module.parameters():
        p.requires_grad_(True)
    train_module = DDP(module) if ctx.distributed else module

    def forward(xb: torch.Tensor) -> torch.Tensor:
        if stage == "fusion":
            z = net.inputs(xb)
            with torch.no_grad():  # frozen branches, eval-mode BN
                s, d = net.static(z), net.dynamic(z)
            return net.fuse(s, d, train_module(z))
        return train_module(net.inputs(xb))

    teacher = data.get("teacher")

    def soft_targets(xb: torch.Tensor) -> torch.Tensor:
        """The teacher's log-probabilities at temperature T for this stage's output (members averaged)."""
        outs = []
        with torch.no_grad():
            for t in teacher.members:
                z = t.inputs(xb)
                logits = t.static(z) if stage == "static" else t.dynamic(z) if stage == "dynamic" else t.log_probs(xb)
                outs.append(F.log_softmax(logits / cfg.kd_temperature, -1))
        return torch.logsumexp(torch.stack(outs), 0) - math.log(len(outs))

    def val_logits() -> torch.Tensor:
        net.eval()
        out = predict_log_probs(net.log_probs if stage == "fusion" else lambda b: module(net.inputs(b)), xva)
        return out

    steps_per_epoch = max(1, math.ceil(len(xtr) / (cfg.batch_size * ctx.world_size)))
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.2 if stage != "fusion" else 0.3
    )
    start_epoch, best_acc, best_state, best_epoch, bad = 0, -1.0, None, -1, 0
    # exponential moving average of the stage's weights (and BN statistics); it is what gets validated and kept
    ema = {k: v.detach().clone() for k, v in module.state_dict().items()} if cfg.ema_decay > 0 else None
    steps_done = 0
    if resume_state is not None:
        try:
            opt.load_state_dict(resume_state["opt"])
            sched.load_state_dict(resume_state["sched"])
            start_epoch = int(resume_state["epoch"]) + 1
            best_acc, best_state = float(resume_state["best_acc"]), resume_state["best_state"]
            best_epoch, bad = int(resume_state["best_epoch"]), int(resume_state["bad"])
            if resume_state.get("stopped"):
                start_epoch = epochs
            if ema is not None and resume_state.get("ema") is not None:
                ema, steps_done = resume_state["ema"], int(resume_state["ema_steps"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
            raise ModelError(f"{ckpt_path} cannot be resumed: its state of {stage} stage of member {member} does "
                             f"not fit this run ({first_line(exc)}); move it away to start afresh") from None
    groups = data["groups"]
    std = net.std
    gen = torch.Generator(device=dev)
    has_val = len(xva) > 0

    bar = tqdm(
        range(start_epoch, epochs), desc=f"member {member} {stage}", disable=not ctx.is_main, leave=True,
        initial=start_epoch, total=epochs,
    )
    for epoch in bar:
        t0 = time.time()
        gen.manual_seed(seed * 1000003 + task_index * 1009 + epoch)
        # every rank draws the same permutation and takes its own slice of it (DDP sharding)
        perm = torch.randperm(len(xtr), generator=gen, device=dev)[ctx.rank :: ctx.world_size]
        gen.manual_seed(seed * 1000003 + task_index * 1009 + epoch + 7919 * (ctx.rank + 1))
        net.eval()  # frozen parts keep eval-mode BatchNorm statistics
        module.train()
        total, n = 0.0, 0
        for i in range(steps_per_epoch):
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            if len(idx) == 0:  # uneven shards: keep every rank stepping the same number of times
                idx = perm[: cfg.batch_size]
            xb = augment(xtr[idx], cfg, groups, std, gen, cadence=stage == "dynamic")
            out = forward(xb)
            if stage == "fusion":  # `out` is already log-probabilities of the fused distribution
                loss = F.nll_loss(out, ytr[idx]) * (1 - cfg.label_smoothing) - cfg.label_smoothing * out.mean()
            else:
                loss = F.cross_entropy(out, ytr[idx], label_smoothing=cfg.label_smoothing)
            if teacher is not None and cfg.kd_weight > 0 and stage in cfg.kd_stages:
                t_T = cfg.kd_temperature
                kd = F.kl_div(F.log_softmax(out / t_T, -1), soft_targets(xb), reduction="batchmean", log_target=True)
                loss = (1 - cfg.kd_weight) * loss + cfg.kd_weight * t_T * t_T * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                steps_done += 1
                decay = min(cfg.ema_decay, (1 + steps_done) / (10 + steps_done))  # short warm-up
                with torch.no_grad():
                    for k, v in module.state_dict().items():
                        if v.is_floating_point():
                            ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
                        else:
                            ema[k].copy_(v)
            total, n = total + float(loss.detach()) * len(idx), n + len(idx)
        train_loss = total / max(n, 1)
        if ema is not None:  # validate (and keep) the averaged weights; training goes on from the live ones
            live = {k: v.detach().clone() for k, v in module.state_dict().items()}
            module.load_state_dict(ema)
        val_acc = accuracy(val_logits(), yva) if has_val else float("nan")
        # no validation subjects: keep the last epoch (nothing to select on)
        improved = (val_acc > best_acc) if has_val else True
        if improved:
            best_acc = val_acc if has_val else best_acc
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            best_epoch, bad = epoch, 0
        else:
            bad += 1
        if ema is not None:
            module.load_state_dict(live)
        stopped = has_val and bad >= cfg.patience
        rec = dict(member=member, stage=stage, epoch=epoch, train_loss=round(train_loss, 5),
                   val_acc=round(val_acc, 5), lr=sched.get_last_lr()[0], seconds=round(time.time() - t0, 2))
        history.append(rec)
        bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{val_acc:.4f}", best=f"{best_acc:.4f}@{best_epoch}")
        if ctx.is_main:
            log.info("%s", rec)
            save_checkpoint(ckpt_path, dict(
                model=model.state_dict(), task_index=task_index,
                stage_state=dict(epoch=epoch, opt=opt.state_dict(), sched=sched.state_dict(), best_acc=best_acc,
                                 best_state=best_state, best_epoch=best_epoch, bad=bad, stopped=stopped,
                                 ema=ema, ema_steps=steps_done),
                history=history,
            ))
        if stopped:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    history.append(dict(member=member, stage=stage, best_epoch=best_epoch, best_val_acc=round(best_acc, 5)))
    for p in net.parameters():
        p.requires_grad_(True)


# ----------------------------------------------------------------------------------------------
# whole recipe


def init_model(cfg: TrainConfig, dataset: HARDataset, x_fit: np.ndarray, device) -> FusionActNetEnsemble:
    """Fresh FusionActNet members for ``dataset``, one per seed, each from its own seed's initial weights,
    with the per-channel normalisation of ``x_fit`` (float32 [N, C, T], the windows it will train on)."""
    try:
        mc = replace(
            cfg.model, in_channels=x_fit.shape[1], window=x_fit.shape[2], members=len(cfg.seeds),
            static_classes=tuple(int(c) for c in dataset.static_classes),
            dynamic_classes=tuple(int(c) for c in dataset.dynamic_classes),
        )
    except ValueError as exc:  # the model config does not fit this dataset's windows or classes
        raise DataError(f"dataset {dataset.name!r} ({x_fit.shape[2]}-sample windows): {exc}") from None
    if mc.n_classes != len(dataset.class_names):
        raise DataError(
            f"dataset {dataset.name!r}: static {mc.static_classes} + dynamic {mc.dynamic_classes} classes "
            f"do not cover its {len(dataset.class_names)} classes"
        )
    x_fit = np.ascontiguousarray(x_fit, np.float32)  # float32 reductions round by memory layout: fix it
    mean, std = x_fit.mean(axis=(0, 2)), x_fit.std(axis=(0, 2))
    model = FusionActNetEnsemble(mc).to(device)
    for i, m in enumerate(model.members):
        seed_everything(cfg.seeds[i])  # each member's initial weights come from its own seed
        fresh = type(m)(mc).to(device)
        m.load_state_dict(fresh.state_dict())
        m.set_normalization(mean, std)
    return model


def train(
    config: TrainConfig,
    data: HARDataset,
    out: str | Path,
    *,
    device: str | None = None,
    resume: bool = False,
    evaluate_test: bool = True,
) -> tuple[ModelConfig, dict]:
    """Train all members and stages on ``data``; write the model folder ``out``.

    ``out`` gets ``config.json`` (no graphs yet: ``signals har export`` adds them),
    ``model.safetensors``, ``metrics.json`` (validation and test metrics), ``train_log.jsonl`` and
    the resumable ``checkpoint.pt``. Returns ``(model config, metrics)``.
    """
    cfg, dataset = config, data
    ctx = setup_distributed(device)
    torch.set_num_threads(max(1, cfg.threads))
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    ck = None
    if resume:  # read before any work: a missing, damaged or crafted checkpoint fails at once
        ck = load_checkpoint(ckpt_path, map_location=ctx.device, what="a HAR training checkpoint")
        if ck is None:
            raise SignalsError(f"--resume: no checkpoint at {ckpt_path}")
    t_start, cpu_start = time.time(), time.process_time()

    tr = dataset.train
    x = np.asarray(tr.x, np.float32)
    if x.ndim != 3 or len(x) == 0:
        raise DataError(f"dataset {dataset.name!r}: training windows must be a non-empty [N, C, T] array")
    if not np.isfinite(x).all():
        raise DataError(f"dataset {dataset.name!r}: training windows contain NaN or infinite values")
    val_mask = split_validation(np.asarray(tr.subjects), cfg.val_subjects, cfg.val_seed)
    val_subjects = sorted(int(s) for s in np.unique(np.asarray(tr.subjects)[val_mask]))
    model = init_model(cfg, dataset, x[~val_mask], ctx.device)
    mc = model.config

    dev = ctx.device
    y = np.asarray(tr.y, np.int64)
    data = dict(
        xtr=torch.from_numpy(x[~val_mask]).to(dev), ytr=torch.from_numpy(y[~val_mask]).to(dev),
        xva=torch.from_numpy(x[val_mask]).to(dev), yva=torch.from_numpy(y[val_mask]).to(dev),
        groups=xyz_groups(list(dataset.channel_names)),
    )
    if cfg.teacher:
        data["teacher"] = load_teacher(cfg.teacher, mc, dev)
    tasks = [(m, s) for m in range(len(cfg.seeds)) for s in STAGES]
    history: list = []
    first_task, resume_state = 0, None
    if resume:
        # The file is data only (weights_only), but it may be another run's or a damaged one.
        try:
            model.load_state_dict(ck["model"])
            first_task, resume_state, history = int(ck["task_index"]), dict(ck["stage_state"]), list(ck["history"])
            if not 0 <= first_task < len(tasks):  # a checkpoint of a recipe with other members or stages
                raise IndexError(f"task {first_task}, this recipe has {len(tasks)}")
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise ModelError(f"{ckpt_path} cannot be resumed: it is not a checkpoint of this model and recipe "
                             f"({first_line(exc)}); move it away to start afresh") from None
        if ctx.is_main:
            log.info("resuming task %d (%s) after epoch %d", first_task, tasks[first_task], resume_state["epoch"])

    for ti in range(first_task, len(tasks)):
        member, stage = tasks[ti]
        seed_everything(cfg.seeds[member] + 17 * ti)
        _run_stage(model, member, stage, data, cfg, ctx, ckpt_path, resume_state if ti == first_task else None,
                   history, ti)

    wall, cpu_seconds = time.time() - t_start, time.process_time() - cpu_start
    model.eval()
    metrics: dict = {}
    yva_np = y[val_mask]
    if len(yva_np):
        p = model.predict_proba(data["xva"]).cpu().numpy()
        metrics["val"] = classification_metrics(yva_np, p.argmax(1), dataset.class_names)
        metrics["val"]["subjects"] = val_subjects
    if evaluate_test and dataset.test is not None and len(dataset.test.y):
        # the test split is seen exactly once, after every choice was made on validation
        p = model.predict_proba(torch.from_numpy(np.asarray(dataset.test.x, np.float32)).to(dev)).cpu().numpy()
        metrics["test"] = classification_metrics(np.asarray(dataset.test.y), p.argmax(1), dataset.class_names)

    config = ModelConfig(
        kind="har",
        description="FusionActNet: static and dynamic residual 1-D CNN branches fused by a guidance net"
        + (f" (distilled from {cfg.teacher})" if cfg.teacher else ""),
        model=to_dict(mc),
        frontend=to_dict(dataset.preprocess) if getattr(dataset, "preprocess", None) is not None else {},
        runtime=dict(classes=list(dataset.class_names), channels=list(dataset.channel_names),
                     sample_rate=float(dataset.sample_rate)),
        source=dict(
            dataset=dict(name=dataset.name, n_train=int((~val_mask).sum()), n_val=int(val_mask.sum()),
                         val_subjects=val_subjects,
                         n_test=int(len(dataset.test.y)) if dataset.test is not None else 0),
            training=dict(config=to_dict(replace(cfg, model=mc)), wall_seconds=round(wall, 1),
                          cpu_seconds=round(cpu_seconds, 1), world_size=ctx.world_size, device=str(dev),
                          torch=torch.__version__),
        ),
        licence=LICENCE,
    )
    if ctx.is_main:
        save_safetensors(model, out / "model.safetensors", metadata={"format": "pt", "arch": "FusionActNetEnsemble"})
        write_config(out, config)
        (out / METRICS_FILE).unlink(missing_ok=True)  # results of an earlier run in this folder are void
        update_metrics(out, **metrics)
        (out / LOG_FILE).write_text("".join(f"{json.dumps(row)}\n" for row in history))
        summary = {k: {m: v[m] for m in ("accuracy", "macro_f1")} for k, v in metrics.items()}
        log.info("done in %.1f min -> %s: %s", wall / 60, out, summary)
    if ctx.distributed:
        dist.barrier()
    cleanup_distributed()
    return config, metrics


def load_teacher(path: str | Path, mc, device) -> FusionActNetEnsemble:
    """The distillation teacher: a HAR model folder whose classes, class split and input match the student's."""
    from signals.har.export import load_model
    from signals.modelfolder import find_model

    teacher = load_model(find_model("har", path)).to(device).eval()
    tc = teacher.config
    mismatch = [f"{k}: teacher {getattr(tc, k)} vs student {getattr(mc, k)}"
                for k in ("in_channels", "static_classes", "dynamic_classes") if getattr(tc, k) != getattr(mc, k)]
    if mismatch:
        raise DataError(f"teacher {path} does not fit this dataset: " + "; ".join(mismatch))
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def limit_dataset(ds: HARDataset, n: int) -> HARDataset:
    """The first ``n`` windows of train and test (smoke runs; keeps the dataset type)."""
    def cut(split):
        return replace(split, x=split.x[:n], y=split.y[:n], subjects=split.subjects[:n])
    return replace(ds, train=cut(ds.train), test=cut(ds.test) if ds.test is not None else None)


if __name__ == "__main__":  # torchrun -m signals.har.train ...: the same options as `signals har train`
    from signals.har.cli import main_train

    raise SystemExit(main_train())
