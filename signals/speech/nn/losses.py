"""GAN losses for waveform generators: LSGAN adversarial terms, feature matching, multi-scale mel L1.

Generator:      L_G = sum_d w_adv * L_adv(G; d) + lambda_fm * sum_d L_fm(G; d) + lambda_mel * L_mel
Discriminators: L_D = sum_d L_adv(D; d),   d in {MPD, MSD, MBD}
The defaults of :class:`LossConfig` are HiFi-SR's (lambda_mel = 7, lambda_fm = 1.5, its Eq. 4; mel
scales at 48 kHz); a 22.05 kHz vocoder sets ``sample_rate`` and ``mel_scales`` for its rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from signals.speech.features import mel_torch
from signals.speech.nn.config import LossConfig


def multiscale_mel_loss(fake: torch.Tensor, real: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """Mean over scales of L1 between log-mels. ``fake, real: Tensor[B, 1, T]`` -> scalar."""
    with torch.autocast(device_type=fake.device.type, enabled=False):
        fake, real = fake.float().squeeze(1), real.float().squeeze(1)
        losses = [F.l1_loss(mel_torch(fake, m), mel_torch(real, m)) for m in cfg.mel_configs()]
    return torch.stack(losses).mean()


def discriminator_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: sum over sub-discriminators of mean((1 - D(real))^2) + mean(D(fake)^2)."""
    loss = real_logits[0].new_zeros(())
    for dr, dg in zip(real_logits, fake_logits):
        loss = loss + torch.mean((1 - dr.float()) ** 2) + torch.mean(dg.float() ** 2)
    return loss


def generator_adv_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: sum over sub-discriminators of mean((1 - D(G(x)))^2)."""
    loss = fake_logits[0].new_zeros(())
    for dg in fake_logits:
        loss = loss + torch.mean((1 - dg.float()) ** 2)
    return loss


def feature_matching_loss(real_feats: list[list[torch.Tensor]], fake_feats: list[list[torch.Tensor]]) -> torch.Tensor:
    """Sum over sub-discriminators and layers of L1(feature(real), feature(fake)); real is detached."""
    loss = real_feats[0][0].new_zeros((), dtype=torch.float32)
    for fr_list, fg_list in zip(real_feats, fake_feats):
        for fr, fg in zip(fr_list, fg_list):
            loss = loss + F.l1_loss(fg.float(), fr.detach().float())
    return loss
