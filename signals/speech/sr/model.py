"""HiFi-SR generator: a transformer encoder over log-mel frames feeding a HiFi-GAN upsampler.

After Zhao et al., "HiFi-SR: A Unified Generative Transformer-Convolutional Adversarial Network for
High-Fidelity Speech Super-Resolution" (arXiv 2501.10045). The paper's encoder is MossFormer2; we use a
standard conformer-style stack (self-attention + depthwise convolution + feed-forward) with *banded*
(local) self-attention: every frame attends to +-``attn_window`` frames. That choice keeps the receptive
field finite, so overlapped chunked inference is exactly whole-file inference (up to float rounding)
and memory stays flat on long files; the depthwise convolutions carry relative position, so no
absolute position embedding is needed (which would also break chunking).

The upsampler is the shared HiFi-GAN body (:class:`signals.speech.nn.generator.HiFiGANGenerator`, which
:class:`Generator` subclasses, so parameter names are the body's): transposed convolutions whose rates
multiply to the mel hop (8*8*2*2 = 256), multi-receptive-field residual blocks, Snake activations
(BigVGAN) and a tanh output.
Sizes live in the torch-free :class:`~signals.speech.sr.config.GeneratorConfig`: ``SMALL`` (~2 M
parameters, what we ship, faster than real time on one CPU core) and ``PAPER`` (~101 M, the paper's size)
are the same class.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from signals.speech.nn.generator import HiFiGANGenerator
from signals.speech.sr.config import SMALL, EnvelopeConfig, GeneratorConfig

# --------------------------------------------------------------------------------------------------
# blocks


def banded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int,
                     dropout: float = 0.0) -> torch.Tensor:
    """Scaled dot-product attention where query ``i`` sees keys ``|i - j| <= window`` only, in O(T * window).

    ``q, k, v: Tensor[B, H, T, Dh]`` -> ``Tensor[B, H, T, Dh]``. The frames are cut into blocks of ``window``;
    a block's queries score the keys of the block and its two neighbours (``3 * window`` of them, which hold
    every allowed key) under a fixed band mask, so the scores take ``T * 3 * window`` entries instead of the
    ``T * T`` of a full masked matrix: the same result up to float rounding, and ~3x less encoder time at the
    runtime's 1,366-frame chunks (onnxruntime, 1 thread). Every query keeps at least itself, so no row is empty.
    """
    b, h, t, dh = q.shape
    n = (t + window - 1) // window  # blocks (the last one padded)
    pad = n * window - t
    qb = F.pad(q, (0, 0, 0, pad)).reshape(b, h, n, window, dh)
    # one zero block before and after, so every block has two neighbours
    kb = F.pad(k, (0, 0, window, pad + window)).reshape(b, h, n + 2, window, dh)
    vb = F.pad(v, (0, 0, window, pad + window)).reshape(b, h, n + 2, window, dh)
    kw = torch.cat([kb[:, :, :-2], kb[:, :, 1:-1], kb[:, :, 2:]], dim=3)  # [B, H, n, 3w, Dh]
    vw = torch.cat([vb[:, :, :-2], vb[:, :, 1:-1], vb[:, :, 2:]], dim=3)
    scores = torch.matmul(qb, kw.transpose(-1, -2)) * (1.0 / math.sqrt(dh))  # [B, H, n, w, 3w]
    a = torch.arange(window, device=q.device)
    c = torch.arange(3 * window, device=q.device)
    key = (torch.arange(n, device=q.device)[:, None] - 1) * window + c[None, :]  # [n, 3w] frame of each key
    allowed = ((c[None, :] - window - a[:, None]).abs() <= window)[None] & ((key >= 0) & (key < t))[:, None, :]
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    if dropout > 0.0:
        weights = F.dropout(weights, dropout)
    return torch.matmul(weights, vw).reshape(b, h, n * window, dh)[:, :, :t]


class LocalSelfAttention(nn.Module):
    """Multi-head self-attention restricted to ``+-window`` frames (:func:`banded_attention`).
    ``x: Tensor[B, T, D]``."""

    def __init__(self, d_model: int, n_heads: int, window: int, dropout: float = 0.0):
        super().__init__()
        assert d_model % n_heads == 0, "d_model must be divisible by n_heads"
        if window < 1:
            raise ValueError(f"attn_window must be at least 1 frame, got {window}")
        self.n_heads = n_heads
        self.window = window
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4).unbind(0)
        y = banded_attention(q, k, v, self.window, self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class ConvModule(nn.Module):
    """Conformer convolution: pointwise -> GLU -> depthwise -> LayerNorm -> SiLU -> pointwise.

    LayerNorm (not BatchNorm) so a frame's output never depends on the rest of the batch or chunk.
    ``x: Tensor[B, T, D]``.
    """

    def __init__(self, d_model: int, kernel_size: int, dropout: float = 0.0):
        super().__init__()
        self.pw1 = nn.Conv1d(d_model, 2 * d_model, 1)
        self.dw = nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size // 2, groups=d_model)
        self.norm = nn.LayerNorm(d_model)
        self.pw2 = nn.Conv1d(d_model, d_model, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.glu(self.pw1(x.transpose(1, 2)), dim=1)
        y = self.norm(self.dw(y).transpose(1, 2))
        y = self.pw2(F.silu(y).transpose(1, 2)).transpose(1, 2)
        return self.drop(y)


class ConformerBlock(nn.Module):
    """Pre-norm residual: local attention, convolution, feed-forward. ``x: Tensor[B, T, D]``."""

    def __init__(self, d_model: int, n_heads: int, ff_mult: int, conv_kernel: int, attn_window: int,
                 dropout: float = 0.0):
        super().__init__()
        self.ln_attn = nn.LayerNorm(d_model)
        self.attn = LocalSelfAttention(d_model, n_heads, attn_window, dropout)
        self.ln_conv = nn.LayerNorm(d_model)
        self.conv = ConvModule(d_model, conv_kernel, dropout)
        self.ln_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff_mult * d_model), nn.SiLU(), nn.Dropout(dropout), nn.Linear(ff_mult * d_model, d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_attn(x))
        x = x + self.conv(self.ln_conv(x))
        return x + self.ff(self.ln_ff(x))


# --------------------------------------------------------------------------------------------------
# model


class Generator(HiFiGANGenerator):
    """Log-mel of the (resampled-to-48 kHz) low-resolution input -> 48 kHz waveform.

    ``forward(mel: Tensor[B, n_mels, F]) -> Tensor[B, 1, F * hop]`` in [-1, 1]: :meth:`encode` (the
    conformer, then the body's ``conv_pre``) and the shared :meth:`~HiFiGANGenerator.upsample`.
    """

    def __init__(self, cfg: GeneratorConfig = SMALL):
        # Built in the order the encoder comes first (so a seed gives the same initial weights as ever),
        # hence nn.Module.__init__ and build_upsampler rather than HiFiGANGenerator.__init__.
        nn.Module.__init__(self)
        self.cfg = cfg
        self.pre = nn.Conv1d(cfg.n_mels, cfg.d_model, 3, padding=1)
        self.blocks = nn.ModuleList(
            ConformerBlock(cfg.d_model, cfg.n_heads, cfg.ff_mult, cfg.conv_kernel, cfg.attn_window, cfg.dropout)
            for _ in range(cfg.n_layers)
        )
        self.ln_out = nn.LayerNorm(cfg.d_model)
        self.build_upsampler(cfg.upsampler)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        # PyTorch's default (Kaiming-uniform) init with zero biases everywhere, not HiFi-GAN's N(0, 0.01):
        # see HiFiGANGenerator.reset_parameters.
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel: Tensor[B, n_mels, F]`` -> latent ``Tensor[B, C0, F]`` (C0 = upsample_initial_channel)."""
        x = self.pre(mel).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.conv_pre(self.ln_out(x).transpose(1, 2))


# --------------------------------------------------------------------------------------------------
# the envelope of the generated band


class DilatedResidual(nn.Module):
    """``x + conv1x1(gelu(conv_k,d(gelu(x))))`` over frames. ``x: Tensor[B, C, F]``."""

    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.gelu(self.conv(F.gelu(x))))


class EnvelopeNet(nn.Module):
    """Input log-mel -> the target's log10 power per band and frame (what the runtime rescales the generated
    band to, :func:`signals.speech.sr.postprocess.apply_envelope`).

    ``forward(mel: Tensor[B, n_mels, F]) -> Tensor[B, n_bands, F]``. The net sees the mel relative to each
    frame's level (log-sum-exp over bands) and adds that level back to its output, so a louder input gives
    the same envelope shifted by the same amount: the prediction does not depend on the recording level
    (training crops span -32 to -14 dBFS; users' files need not). Receptive field +-``cfg.context_frames``.
    """

    def __init__(self, cfg: EnvelopeConfig = EnvelopeConfig()):
        super().__init__()
        self.cfg = cfg
        self.pre = nn.Conv1d(cfg.n_mels, cfg.channels, cfg.kernel, padding=(cfg.kernel - 1) // 2)
        self.blocks = nn.Sequential(*(DilatedResidual(cfg.channels, cfg.kernel, d) for d in cfg.dilations))
        self.post = nn.Conv1d(cfg.channels, cfg.n_bands, 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        level = torch.logsumexp(mel, dim=1, keepdim=True)  # natural log of the frame's summed mel magnitude
        x = self.blocks(self.pre(mel - level))
        # log10 power = 2 log10 magnitude = (2 / ln 10) ln magnitude
        return self.post(F.gelu(x)) + level * (2.0 / math.log(10.0))
