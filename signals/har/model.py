"""FusionActNet (Saha et al., arXiv 2310.02011 v2): two residual 1-D CNN branches, one trained on the
static activities and one on the dynamic ones, fused by a small guidance network that weighs them.

    p(class) = [ w * p_static(class | static), (1 - w) * p_dynamic(class | dynamic) ]   (dataset order)

``w = sigmoid(guidance(x))`` is the probability that the window is static, so the fused vector is a
proper distribution over all classes. Which classes are static / dynamic comes from the dataset
definition (``HARDataset.static_classes``), so one model serves UCI HAR, HAPT and MotionSense.

Differences from the authors' notebooks, on purpose:
- the branches emit *logits*; softmax happens once (the reference feeds probabilities into
  ``CrossEntropyLoss``, a double softmax);
- fusion is computed in log space and trained with the NLL of the fused distribution;
- the fused vector is permuted back into the dataset's class order (the reference concatenates
  static-then-dynamic and compares with labels in dataset order);
- pretrained branch heads are never re-initialised when the fusion model is built;
- per-channel normalisation lives inside the model (buffers), so the exported graph takes raw units.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from signals.har.config import FusionActNetConfig

# ----------------------------------------------------------------------------------------------
# blocks


def time_mean(h: Tensor) -> Tensor:
    """Global average over time: Tensor[B, C, T] (or the export layout [B, C, 1, T]) -> Tensor[B, C]."""
    return h.mean(dim=tuple(range(2, h.dim())))


class ResBlock(nn.Module):
    """conv-BN-ReLU-conv-BN + 1x1 projected skip, ReLU, then max-pool /2 (the paper's branch block).

    x: Tensor[B, C_in, T] -> Tensor[B, C_out, T // 2]
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, pool: int = 2) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel_size, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        # 1x1 skip: the channel count changes in (almost) every block, so the identity is projected.
        self.skip = nn.Conv1d(c_in, c_out, 1)
        self.pool = nn.MaxPool1d(pool) if pool > 1 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return self.pool(F.relu(h + self.skip(x)))


class DSBlock(nn.Module):
    """Residual depthwise-separable block of the guidance net (MobileNet-style, stride 1).

    x: Tensor[B, C_in, T] -> Tensor[B, C_out, T]
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.dw = nn.Conv1d(c_in, c_in, kernel_size, padding=kernel_size // 2, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm1d(c_in)
        self.pw = nn.Conv1d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.dw(x)))
        return self.bn2(self.pw(h)) + self.skip(x)


class BranchNet(nn.Module):
    """One branch: stacked ResBlocks, global average pool, linear head over this branch's classes.

    x: Tensor[B, C, T] (normalised) -> logits Tensor[B, n_classes]
    """

    def __init__(
        self,
        in_channels: int = 9,
        n_classes: int = 3,
        widths: tuple[int, ...] = (64, 128, 256, 512, 512),
        kernel_size: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        chans = (in_channels, *widths)
        self.blocks = nn.Sequential(*[ResBlock(a, b, kernel_size) for a, b in zip(chans[:-1], chans[1:])])
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], n_classes)

    def features(self, x: Tensor) -> Tensor:
        """x: Tensor[B, C, T] -> Tensor[B, widths[-1]] (global average pool)."""
        return time_mean(self.blocks(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.drop(self.features(x)))


class GuidanceNet(nn.Module):
    """Stem conv + residual depthwise-separable stages, GAP, one logit g with w = sigmoid(g) = P(static).

    x: Tensor[B, C, T] (normalised) -> Tensor[B] (logit)
    """

    def __init__(
        self,
        in_channels: int = 9,
        stem: int = 32,
        widths: tuple[int, ...] = (64, 128, 256),
        depths: tuple[int, ...] = (2, 3, 3),
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, stem, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm1d(stem),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        c = stem
        for width, depth in zip(widths, depths):
            for _ in range(depth):
                layers.append(DSBlock(c, width, kernel_size))
                c = width
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(c, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(time_mean(self.blocks(self.stem(x)))).squeeze(-1)


# ----------------------------------------------------------------------------------------------
# model


class FusionActNet(nn.Module):
    """Static branch + dynamic branch + guidance net, with per-channel normalisation inside.

    Input  x: Tensor[B, C, T] in raw units (normalised here with the TRAIN statistics buffers).
    Output of :meth:`log_probs`: Tensor[B, K] log-probabilities in the dataset's class order.
    """

    def __init__(self, config: FusionActNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or FusionActNetConfig()
        self.register_buffer("mean", torch.zeros(cfg.in_channels, 1))
        self.register_buffer("std", torch.ones(cfg.in_channels, 1))
        self.static = BranchNet(
            cfg.in_channels, len(cfg.static_classes), cfg.branch_widths, cfg.kernel_size, cfg.dropout
        )
        self.dynamic = BranchNet(
            cfg.in_channels, len(cfg.dynamic_classes), cfg.branch_widths, cfg.kernel_size, cfg.dropout
        )
        self.guide = GuidanceNet(cfg.in_channels, cfg.guide_stem, cfg.guide_widths, cfg.guide_depths, cfg.kernel_size)
        # applied to the normalised input before the three nets: the decimation (a module, so the export can
        # swap it together with the convolutions for the 2-D layout, see signals.har.export.conv2d_layout)
        self.entry = nn.AvgPool1d(cfg.decimate) if cfg.decimate > 1 else nn.Identity()
        # fused vector is [static..., dynamic...]; `inverse` gathers it back into dataset order.
        order = torch.tensor([*cfg.static_classes, *cfg.dynamic_classes])
        self.register_buffer("inverse", torch.argsort(order), persistent=False)

    def set_normalization(self, mean, std) -> None:
        """mean, std: array-like [C] from the training windows (std floored to avoid blow-ups)."""
        m = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1)
        s = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1).clamp_min(1e-6)
        self.mean.copy_(m)
        self.std.copy_(s)

    def normalize(self, x: Tensor) -> Tensor:
        """Per-channel standardisation: Tensor[B, C, T] raw -> Tensor[B, C, T]."""
        return (x - self.mean) / self.std

    def inputs(self, x: Tensor) -> Tensor:
        """What the branches and the guidance net read: x normalised, then average-pooled by
        ``config.decimate``: Tensor[B, C, T] raw -> Tensor[B, C, T // decimate]."""
        return self.entry(self.normalize(x))

    def fuse(self, static_logits: Tensor, dynamic_logits: Tensor, guide_logit: Tensor) -> Tensor:
        """Log of [w p_s, (1-w) p_d] in dataset order: Tensor[B, Ks], [B, Kd], [B] -> Tensor[B, K]."""
        log_w = F.logsigmoid(guide_logit).unsqueeze(-1)
        log_1mw = F.logsigmoid(-guide_logit).unsqueeze(-1)
        fused = torch.cat(
            [log_w + F.log_softmax(static_logits, -1), log_1mw + F.log_softmax(dynamic_logits, -1)], dim=-1
        )
        return fused.index_select(-1, self.inverse)

    def log_probs(self, x: Tensor) -> Tensor:
        """x: Tensor[B, C, T] raw -> Tensor[B, K] log-probabilities (dataset class order)."""
        z = self.inputs(x)
        return self.fuse(self.static(z), self.dynamic(z), self.guide(z))

    def static_weight(self, x: Tensor) -> Tensor:
        """w = P(static) from the guidance net: Tensor[B, C, T] -> Tensor[B]."""
        return torch.sigmoid(self.guide(self.inputs(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.log_probs(x)


class FusionActNetEnsemble(nn.Module):
    """``members`` FusionActNets (different seeds) whose probabilities are averaged.

    x: Tensor[B, C, T] raw -> log_probs Tensor[B, K]. With one member it is exactly that member.
    """

    def __init__(self, config: FusionActNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or FusionActNetConfig()
        self.members = nn.ModuleList([FusionActNet(cfg) for _ in range(cfg.members)])

    def log_probs(self, x: Tensor) -> Tensor:
        if len(self.members) == 1:
            return self.members[0].log_probs(x)
        stacked = torch.stack([m.log_probs(x) for m in self.members])  # [M, B, K]
        return torch.logsumexp(stacked, dim=0) - math.log(len(self.members))

    def forward(self, x: Tensor) -> Tensor:
        return self.log_probs(x)

    @torch.inference_mode()
    def predict_proba(self, x: Tensor, batch_size: int = 512) -> Tensor:
        """Probabilities, batched, in eval mode: Tensor[N, C, T] -> Tensor[N, K]."""
        was_training = self.training
        self.eval()
        out = torch.cat([self.log_probs(x[i : i + batch_size]).exp() for i in range(0, len(x), batch_size)])
        self.train(was_training)
        return out
