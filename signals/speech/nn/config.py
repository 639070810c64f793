"""The shared speech layer's config dataclasses, torch-free (the package convention for ``config.py``).

* :class:`HiFiGANConfig` - the HiFi-GAN generator body (:class:`~signals.speech.nn.generator.HiFiGANGenerator`);
  :data:`HIFIGAN_V1` is the universal V1 vocoder's.
* :class:`DiscriminatorConfig` - the MPD / MSD / MBD sizes (:class:`~signals.speech.nn.discriminators.Discriminators`);
  :data:`TINY_DISC` is the narrow set for CPU tests and CPU training.
* :class:`LossConfig` - the weights and mel scales of :mod:`signals.speech.nn.losses`.

The torch modules import them from here, so a command line or a runtime can build, read and validate
these configs (through :mod:`signals.configio`) without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from signals.speech.features import MelConfig

ACTIVATIONS = ("snake", "leaky_relu")  # the generator non-linearities (signals.speech.nn.layers.activation)


@dataclass(frozen=True)
class HiFiGANConfig:
    in_channels: int = 80  # mel bands (or the width of whatever encoder feeds conv_pre)
    upsample_initial_channel: int = 512
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)  # product = hop
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilations: tuple[tuple[int, ...], ...] = field(default=((1, 3, 5), (1, 3, 5), (1, 3, 5)))
    activation: str = "leaky_relu"  # "leaky_relu" (HiFi-GAN) or "snake" (BigVGAN / HiFi-SR)
    lrelu_slope: float = 0.1  # inside the stages and residual blocks
    post_lrelu_slope: float = 0.01  # before conv_post (HiFi-GAN calls F.leaky_relu with its default)
    conv_pre_kernel: int = 7
    conv_post_kernel: int = 7
    weight_norm: bool = False  # weight-normalised convolutions (training); shipped weights are folded

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}: use one of {ACTIVATIONS}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilations):
            raise ValueError("resblock_kernel_sizes and resblock_dilations must have the same length")
        for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes):
            if (k - u) % 2:
                raise ValueError(f"upsample kernel {k} minus rate {u} must be even so the output is exactly T * rate")

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)

    @property
    def context_frames(self) -> int:
        """Input frames on each side that can influence one output frame (for chunked inference)."""
        # At stage i one element spans hop / prod(rates[:i+1]) samples; sum each stage's half receptive
        # field (transposed conv + residual blocks) in frames, rounded up, plus conv_pre's and conv_post's.
        ups, factor = 0.0, 1
        for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes):
            factor *= u
            half = k / u + max(sum(d * (k2 - 1) + (k2 - 1) for d in dil) for k2, dil in
                               zip(self.resblock_kernel_sizes, self.resblock_dilations)) / 2
            ups += half / factor
        return self.conv_pre_kernel // 2 + math.ceil(ups + self.conv_post_kernel / self.hop) + 1


HIFIGAN_V1 = HiFiGANConfig()


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Sizes of the three families (JSON via :mod:`signals.configio`); an empty ``periods``,
    ``msd_scales=0`` or empty ``mbd_windows`` leaves that family out."""

    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    mpd_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)
    msd_scales: int = 3
    msd_width: int = 128
    mbd_windows: tuple[int, ...] = (2048, 1024, 512)
    mbd_bands: tuple[tuple[float, float], ...] = field(
        default=((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))
    )
    mbd_channels: int = 32


# A lighter set for CPU tests and CPU training (same structure, narrower convs).
TINY_DISC = DiscriminatorConfig(mpd_channels=(8, 16, 32, 64, 64), msd_width=16, mbd_channels=8)


@dataclass(frozen=True)
class LossConfig:
    lambda_mel: float = 7.0
    lambda_fm: float = 1.5
    lambda_adv: float = 1.0
    # (n_fft, hop, n_mels) of the multi-scale mel loss at 48 kHz; fine time to fine frequency.
    mel_scales: tuple[tuple[int, int, int], ...] = field(
        default=((256, 64, 32), (512, 128, 64), (1024, 256, 80), (2048, 512, 128))
    )
    sample_rate: int = 48000

    def mel_configs(self) -> list[MelConfig]:
        return [
            MelConfig(sample_rate=self.sample_rate, n_fft=n, hop_length=h, n_mels=m, fmax=self.sample_rate / 2)
            for n, h, m in self.mel_scales
        ]
