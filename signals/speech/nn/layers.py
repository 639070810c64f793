"""Waveform-generator layers: the Snake activation and HiFi-GAN's multi-receptive-field residual blocks.

``activation(name, channels, slope)`` builds the non-linearity a generator is configured with:
``"snake"`` (BigVGAN / HiFi-SR, a learned per-channel frequency) or ``"leaky_relu"`` (HiFi-GAN V1/V2,
parameter-free, so swapping it changes no parameter names).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from signals.speech.nn.config import ACTIVATIONS


class Snake(nn.Module):
    """Snake activation ``x + sin^2(a x) / a`` with a learned per-channel ``a`` (stored as log a).

    Periodic inductive bias for waveforms (Ziyin et al. 2020; BigVGAN). ``x: Tensor[B, C, T]``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.log_alpha.exp()
        # s * s and a multiply by 1 / a (constants once exported) rather than pow(2) and a divide: the same
        # values, and two of the cheapest elementwise kernels in onnxruntime, where Snake is ~45 % of HiFi-SR's time
        s = torch.sin(alpha * x)
        return x + s * s * (1.0 / (alpha + 1e-9))


def activation(name: str, channels: int, slope: float = 0.1) -> nn.Module:
    """``Snake(channels)`` for ``"snake"``, ``LeakyReLU(slope)`` for ``"leaky_relu"``."""
    if name == "snake":
        return Snake(channels)
    if name == "leaky_relu":
        return nn.LeakyReLU(slope)
    raise ValueError(f"unknown activation {name!r}: use one of {ACTIVATIONS}")


def maybe_weight_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """``module`` with weight normalisation (``weight = g * v / |v|``) when ``enabled``, else unchanged."""
    return _weight_norm(module) if enabled else module


class ResBlock(nn.Module):
    """HiFi-GAN "ResBlock1": per dilation ``x = x + conv2(act(conv1(act(x))))``. ``x: Tensor[B, C, T]``.

    ``conv1`` is dilated, ``conv2`` is not; both keep the length ("same" padding).
    """

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], act: str = "snake",
                 slope: float = 0.1, weight_norm: bool = False):
        super().__init__()
        self.convs1 = nn.ModuleList(
            maybe_weight_norm(nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2),
                              weight_norm)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            maybe_weight_norm(nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2), weight_norm)
            for _ in dilations
        )
        self.acts1 = nn.ModuleList(activation(act, channels, slope) for _ in dilations)
        self.acts2 = nn.ModuleList(activation(act, channels, slope) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.acts1, self.acts2):
            x = x + c2(a2(c1(a1(x))))
        return x


class MRF(nn.ModuleList):
    """Multi-receptive-field fusion: parallel :class:`ResBlock` s (one per kernel size), averaged.

    A ``ModuleList`` so the blocks' parameters are named ``<i>.convs1.<j>.weight`` etc.
    ``x: Tensor[B, C, T]`` -> same shape.
    """

    def __init__(self, channels: int, kernel_sizes: tuple[int, ...], dilations: tuple[tuple[int, ...], ...],
                 act: str = "snake", slope: float = 0.1, weight_norm: bool = False):
        super().__init__(ResBlock(channels, k, d, act, slope, weight_norm) for k, d in zip(kernel_sizes, dilations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(block(x) for block in self) / len(self)
