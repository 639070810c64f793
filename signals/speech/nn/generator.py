"""The HiFi-GAN generator body (Kong et al. 2020, arXiv 2010.05646): frames -> waveform.

``conv_pre`` (kernel 7) -> per stage: activation, ``ConvTranspose1d`` upsampling by ``rate`` (channels
halved), :class:`~signals.speech.nn.layers.MRF` -> activation -> ``conv_post`` (kernel 7, 1 channel)
-> tanh. The rates multiply to the hop, so ``F`` frames give ``F * hop`` samples.

One class serves every waveform generator of the package:

* the HiFi-GAN V1 vocoder (:data:`HIFIGAN_V1`: 512 channels, LeakyReLU 0.1 inside, 0.01 before
  ``conv_post`` as in the original code) - :mod:`signals.speech.vocoder`;
* HiFi-SR's upsampler (Snake activations, 128 channels) - :class:`signals.speech.sr.model.Generator`
  subclasses :class:`HiFiGANGenerator` and overrides :meth:`~HiFiGANGenerator.encode` to put its
  transformer in front of ``conv_pre``, so both keep the same parameter names.

Parameter names: ``conv_pre``, ``ups.<i>``, ``up_acts.<i>``, ``resblocks.<i>.<j>.{convs1,convs2,acts1,acts2}.<k>``,
``act_post``, ``conv_post`` (LeakyReLU activations have no parameters). With ``weight_norm=True`` every
convolution is weight-normalised for training; :meth:`~HiFiGANGenerator.remove_weight_norm` folds it.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from signals.speech.nn.config import HIFIGAN_V1, HiFiGANConfig
from signals.speech.nn.layers import MRF, activation, maybe_weight_norm


class HiFiGANGenerator(nn.Module):
    """``forward(x: Tensor[B, in_channels, F]) -> Tensor[B, 1, F * hop]`` in [-1, 1]."""

    def __init__(self, cfg: HiFiGANConfig = HIFIGAN_V1):
        super().__init__()
        self.cfg = cfg
        self.build_upsampler(cfg)
        self.reset_parameters()

    def build_upsampler(self, cfg: HiFiGANConfig) -> None:
        """Create ``conv_pre`` ... ``conv_post`` on this module (subclasses call it after their own layers)."""
        self.upsampler_cfg = cfg
        wn, act, slope = cfg.weight_norm, cfg.activation, cfg.lrelu_slope
        ch = cfg.upsample_initial_channel
        self.conv_pre = maybe_weight_norm(
            nn.Conv1d(cfg.in_channels, ch, cfg.conv_pre_kernel, padding=cfg.conv_pre_kernel // 2), wn)
        self.ups = nn.ModuleList()
        self.up_acts = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for u, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes):
            self.up_acts.append(activation(act, ch, slope))
            self.ups.append(maybe_weight_norm(nn.ConvTranspose1d(ch, ch // 2, k, u, padding=(k - u) // 2), wn))
            ch //= 2
            self.resblocks.append(MRF(ch, cfg.resblock_kernel_sizes, cfg.resblock_dilations, act, slope, wn))
        self.act_post = activation(act, ch, cfg.post_lrelu_slope)
        self.conv_post = maybe_weight_norm(
            nn.Conv1d(ch, 1, cfg.conv_post_kernel, padding=cfg.conv_post_kernel // 2), wn)

    def reset_parameters(self) -> None:
        """The upsampler's initialisation: HiFi-GAN's with LeakyReLU, zero biases with Snake.

        HiFi-GAN draws plain convolution weights from N(0, 0.01) (under weight norm its init is a no-op:
        the original code overwrites the computed weight, not ``v``, so PyTorch's default stays). With
        Snake residual stacks N(0, 0.01) leaves the untrained output near 1e-6, below the log-mel floor
        where the mel loss has no gradient, so Snake generators keep PyTorch's default with zero biases.
        """
        cfg = self.upsampler_cfg
        for name, m in self.named_modules():
            if not isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)) or not name.startswith(("ups", "resblocks", "conv_post")):
                continue
            if cfg.activation == "snake":
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif not cfg.weight_norm:
                nn.init.normal_(m.weight, 0.0, 0.01)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``x: Tensor[B, in_channels, F]`` -> ``Tensor[B, upsample_initial_channel, F]``."""
        return self.conv_pre(x)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """``conv_pre`` output ``Tensor[B, C0, F]`` -> waveform ``Tensor[B, 1, F * hop]``."""
        for act, up, mrf in zip(self.up_acts, self.ups, self.resblocks):
            x = mrf(up(act(x)))
        return torch.tanh(self.conv_post(self.act_post(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.encode(x))

    @torch.inference_mode()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """``x: Tensor[B, in_channels, F]`` -> ``Tensor[B, F * hop]``."""
        return self.forward(x).squeeze(1)

    def remove_weight_norm(self) -> HiFiGANGenerator:
        """Fold weight normalisation into plain ``weight`` tensors (same outputs, plain parameter names)."""
        from torch.nn.utils import parametrize

        for m in self.modules():
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        return self
