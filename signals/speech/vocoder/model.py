"""The vocoder network: the shared HiFi-GAN generator body fed the :data:`VOCODER_MEL` log-mel.

``Vocoder(cfg)(mel: Tensor[B, 80, F]) -> Tensor[B, 1, F * 256]`` in [-1, 1]. :data:`HIFIGAN_V1` is the
universal V1 generator (13.9 M parameters: 512 channels, rates 8-8-2-2, MRF kernels 3/7/11 with
dilations 1/3/5, LeakyReLU). The network is :class:`~signals.speech.nn.generator.HiFiGANGenerator`
itself, so a vocoder trained here later uses the same code (with ``weight_norm=True`` and the MPD/MSD
discriminators and losses of :mod:`signals.speech.nn`).
"""

from __future__ import annotations

from signals.speech.features import VOCODER_MEL, MelConfig
from signals.speech.nn.generator import HIFIGAN_V1, HiFiGANConfig, HiFiGANGenerator


class Vocoder(HiFiGANGenerator):
    """``forward(mel: Tensor[B, n_mels, F]) -> Tensor[B, 1, F * hop]`` (the VOCODER_MEL of 22.05 kHz speech)."""

    def __init__(self, cfg: HiFiGANConfig = HIFIGAN_V1):
        super().__init__(cfg)


def check_mel_matches(cfg: HiFiGANConfig, mel: MelConfig = VOCODER_MEL) -> None:
    """Refuse a generator whose input width or hop disagrees with the mel it is fed."""
    if cfg.in_channels != mel.n_mels or cfg.hop != mel.hop_length:
        raise ValueError(f"generator takes {cfg.in_channels} bands at hop {cfg.hop}, but the mel has "
                         f"{mel.n_mels} bands at hop {mel.hop_length}")


__all__ = ["HIFIGAN_V1", "HiFiGANConfig", "Vocoder", "check_mel_matches"]
