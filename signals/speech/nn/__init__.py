"""The shared speech layer: building blocks of every waveform generator and its GAN training.

* :mod:`~signals.speech.nn.layers` - :class:`Snake`, HiFi-GAN's :class:`ResBlock` and :class:`MRF`.
* :mod:`~signals.speech.nn.generator` - :class:`HiFiGANConfig`, :class:`HiFiGANGenerator` (the body:
  ``conv_pre``, transposed-conv upsampling + MRF stages, ``conv_post``; LeakyReLU or Snake).
* :mod:`~signals.speech.nn.discriminators` - MPD, MSD, multi-band STFT discriminators.
* :mod:`~signals.speech.nn.losses` - LSGAN, feature matching, multi-scale mel L1.

Used by HiFi-SR (:mod:`signals.speech.sr`) and the TTS vocoder (:mod:`signals.speech.vocoder`). Needs torch.
"""

from signals.speech.nn.discriminators import DiscriminatorConfig, Discriminators
from signals.speech.nn.generator import HIFIGAN_V1, HiFiGANConfig, HiFiGANGenerator
from signals.speech.nn.layers import MRF, ResBlock, Snake, activation
from signals.speech.nn.losses import (
    LossConfig,
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
    multiscale_mel_loss,
)

__all__ = [
    "DiscriminatorConfig", "Discriminators", "HIFIGAN_V1", "HiFiGANConfig", "HiFiGANGenerator", "MRF", "ResBlock",
    "Snake", "activation", "LossConfig", "discriminator_loss", "feature_matching_loss", "generator_adv_loss",
    "multiscale_mel_loss",
]
