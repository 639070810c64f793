"""Waveform-generator layers: the Snake activation and HiFi-GAN's multi-receptive-field residual blocks.

``activation(name, channels, slope)`` builds the non-linearity a generator is configured with:
``"snake"`` (BigVGAN / HiFi-SR, a learned per-channel frequency) or ``"leaky_relu"`` (HiFi-GAN V1/V2,
parameter-free, so swapping it changes no parameter names).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from signals.speech.nn.config import ACTIVATIONS

# sin^2(pi f) = v * (c1 + c2 v + c3 v^2 + c4 v^3 + c5 v^4), v = f^2, |f| <= 1/2: a near-minimax fit (iteratively
# reweighted least squares) with max error 4.4e-7 in float64 and 7.3e-7 evaluated in float32 by Horner's rule, the
# size of float32 sin's own rounding once squared (tests/test_nn.py checks both).
SIN2_POLY = (9.869524892516838, -32.46514307156096, 42.643473937491116, -29.42652575689612, 10.581751436013574)


def sin2_over_alpha_poly(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``sin^2(alpha x) / alpha`` without ``sin``: range reduction to ``f = t - round(t)``, ``t = alpha x / pi``,
    then :data:`SIN2_POLY` in ``f^2`` with ``1 / alpha`` folded into its coefficients.

    Why: onnxruntime's CPU ``Sin`` is scalar (~2 ns per element, 9x its ``Mul``), and it was a third of the
    HiFi-SR upsampler's time; these 13 cheap vectorised kernels take less. ``round`` has zero gradient almost
    everywhere, so this is for inference graphs only (:func:`polynomial_snake`).
    """
    t = x * (alpha / torch.pi)
    f = t - torch.round(t)
    v = f * f
    inv = 1.0 / (alpha + 1e-9)
    acc = SIN2_POLY[-1] * inv
    for c in SIN2_POLY[-2::-1]:
        acc = acc * v + c * inv
    return acc * v


class Snake(nn.Module):
    """Snake activation ``x + sin^2(a x) / a`` with a learned per-channel ``a`` (stored as log a).

    Periodic inductive bias for waveforms (Ziyin et al. 2020; BigVGAN). ``x: Tensor[B, C, T]``.
    ``polynomial=True`` computes ``sin^2`` by :func:`sin2_over_alpha_poly` (for exported graphs; see
    :func:`polynomial_snake`); the parameters are the same either way.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.zeros(1, channels, 1))
        self.polynomial = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.log_alpha.exp()
        if self.polynomial:
            return x + sin2_over_alpha_poly(x, alpha)
        # s * s and a multiply by 1 / a (constants once exported) rather than pow(2) and a divide: the same
        # values, and two of the cheapest elementwise kernels in onnxruntime
        s = torch.sin(alpha * x)
        return x + s * s * (1.0 / (alpha + 1e-9))


def polynomial_snake(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose every :class:`Snake` computes ``sin^2`` by polynomial (for tracing an ONNX graph
    that onnxruntime runs faster on CPU: HiFi-SR's upsampler ~8 % less time, its output within 2e-7 of the
    ``sin`` graph's). ``module`` itself is left as it is, so it can serve as the parity reference."""
    fast = copy.deepcopy(module)
    for m in fast.modules():
        if isinstance(m, Snake):
            m.polynomial = True
    return fast


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
