"""HiFi-SR's losses: the shared GAN / feature-matching / multi-scale mel terms of :mod:`signals.speech.nn`.

:class:`LossConfig`'s defaults are HiFi-SR's (lambda_mel 7, lambda_fm 1.5; mel scales at 48 kHz).
"""

from signals.speech.nn.losses import (
    LossConfig,
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
    multiscale_mel_loss,
)

__all__ = ["LossConfig", "discriminator_loss", "feature_matching_loss", "generator_adv_loss", "multiscale_mel_loss"]
