"""GAN discriminators for waveforms: multi-period (MPD), multi-scale (MSD), multi-band STFT (MBD).

MPD and MSD are HiFi-GAN's (Kong et al. 2020); the MBD follows the DAC multi-band complex-STFT
discriminator (Kumar et al. 2023) that HiFi-SR adopts: STFT windows 2048/1024/512, each spectrum split
into 5 frequency bands with their own conv stacks. Every discriminator returns ``(logits,
feature_maps)``: lists over its sub-discriminators, for the adversarial and feature-matching terms of
:mod:`signals.speech.nn.losses`. :class:`Discriminators` bundles the three (HiFi-SR uses all three in
its generator loss; HiFi-GAN V1 uses MPD + MSD: ``DiscriminatorConfig(mbd_windows=())``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from signals.speech.nn.config import DiscriminatorConfig

LRELU = 0.1

# --------------------------------------------------------------------------------------------------
# blocks


def _conv_stack(x: torch.Tensor, convs: nn.ModuleList, post: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv stack + linear head: (flattened logits, every layer's output for feature matching)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class PeriodDiscriminator(nn.Module):
    """Folds ``x: Tensor[B, 1, T]`` into ``[B, 1, T / p, p]`` and runs 2-D convs along time."""

    def __init__(self, period: int, channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)):
        super().__init__()
        self.period = period
        chans = (1, *channels)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3 if i < len(channels) - 1 else 1, 1), padding=(2, 0)))
            for i in range(len(channels))
        )
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        x = x.view(b, c, -1, self.period)
        return _conv_stack(x, self.convs, self.post)


class ScaleDiscriminator(nn.Module):
    """Grouped strided 1-D convs on ``x: Tensor[B, 1, T]`` (HiFi-GAN MSD sub-discriminator)."""

    def __init__(self, width: int = 128, use_spectral_norm: bool = False):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        w = width
        spec = [  # (in, out, kernel, stride, groups)
            (1, w, 15, 1, 1), (w, w, 41, 2, 4), (w, 2 * w, 41, 2, 16), (2 * w, 4 * w, 41, 4, 16),
            (4 * w, 8 * w, 41, 4, 16), (8 * w, 8 * w, 41, 1, 16), (8 * w, 8 * w, 5, 1, 1),
        ]
        self.convs = nn.ModuleList(
            norm(nn.Conv1d(i, o, k, s, groups=min(g, i), padding=k // 2)) for i, o, k, s, g in spec
        )
        self.post = norm(nn.Conv1d(8 * w, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(x, self.convs, self.post)


class BandSTFTDiscriminator(nn.Module):
    """One STFT resolution of the MBD: complex spectrogram split into frequency bands.

    ``x: Tensor[B, 1, T]`` -> STFT ``[B, 2 (re, im), frames, bins]``; each band has its own 2-D conv
    stack (strided along frequency), the bands are concatenated along frequency for the output conv.
    """

    def __init__(self, window: int, bands: tuple[tuple[float, float], ...], channels: int = 32):
        super().__init__()
        self.window = window
        self.hop = window // 4
        n_bins = window // 2 + 1
        self.band_bins = [(int(lo * n_bins), int(hi * n_bins)) for lo, hi in bands]
        ch = channels

        def stack() -> nn.ModuleList:
            return nn.ModuleList([
                weight_norm(nn.Conv2d(2, ch, (3, 9), padding=(1, 4))),
                weight_norm(nn.Conv2d(ch, ch, (3, 9), (1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(ch, ch, (3, 9), (1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(ch, ch, (3, 9), (1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(ch, ch, (3, 3), padding=(1, 1))),
            ])

        self.band_convs = nn.ModuleList(stack() for _ in bands)
        self.post = weight_norm(nn.Conv2d(ch, 1, (3, 3), padding=(1, 1)))
        self.register_buffer("win", torch.hann_window(window), persistent=False)

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        # FFTs run in float32 even under bf16/fp16 autocast (cuFFT has no bf16).
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float().squeeze(1)
            # DAC normalises each example: remove DC, peak 0.8, so loudness is not a cue.
            x = x - x.mean(dim=-1, keepdim=True)
            x = 0.8 * x / (x.abs().amax(dim=-1, keepdim=True) + 1e-9)
            spec = torch.stft(x, self.window, self.hop, window=self.win.float(), return_complex=True)
        return torch.view_as_real(spec).permute(0, 3, 2, 1)  # [B, 2, frames, bins]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = self.spectrogram(x)
        feats, outs = [], []
        for (lo, hi), convs in zip(self.band_bins, self.band_convs):
            h = spec[..., lo:hi]
            for conv in convs:
                h = F.leaky_relu(conv(h), LRELU)
                feats.append(h)
            outs.append(h)
        h = self.post(torch.cat(outs, dim=-1))
        feats.append(h)
        return h.flatten(1), feats


# --------------------------------------------------------------------------------------------------
# the three discriminators


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.discs = nn.ModuleList(PeriodDiscriminator(p, cfg.mpd_channels) for p in cfg.periods)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        outs = [d(x) for d in self.discs]
        return [o for o, _ in outs], [f for _, f in outs]


class MultiScaleDiscriminator(nn.Module):
    """Scale 0 sees the raw waveform (spectral norm as in HiFi-GAN), scale i the i-times 2x-pooled one."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.discs = nn.ModuleList(
            ScaleDiscriminator(cfg.msd_width, use_spectral_norm=(i == 0)) for i in range(cfg.msd_scales)
        )

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, feats = [], []
        for i, d in enumerate(self.discs):
            if i:
                x = F.avg_pool1d(x, 4, 2, padding=2)
            o, f = d(x)
            logits.append(o)
            feats.append(f)
        return logits, feats


class MultiBandDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.discs = nn.ModuleList(BandSTFTDiscriminator(w, cfg.mbd_bands, cfg.mbd_channels) for w in cfg.mbd_windows)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        outs = [d(x) for d in self.discs]
        return [o for o, _ in outs], [f for _, f in outs]


class Discriminators(nn.Module):
    """MPD + MSD + MBD in one module (one optimizer, one DDP wrapper).

    ``forward(x: Tensor[B, 1, T])`` -> ``{name: (logits, feature_maps)}`` for "mpd", "msd", "mbd";
    a family configured with no sub-discriminators (e.g. ``mbd_windows=()``) is left out of the dict.
    """

    def __init__(self, cfg: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.cfg = cfg
        self.mpd = MultiPeriodDiscriminator(cfg)
        self.msd = MultiScaleDiscriminator(cfg)
        self.mbd = MultiBandDiscriminator(cfg)

    def forward(self, x: torch.Tensor) -> dict[str, tuple[list[torch.Tensor], list[list[torch.Tensor]]]]:
        families = (("mpd", self.mpd), ("msd", self.msd), ("mbd", self.mbd))
        return {name: d(x) for name, d in families if len(d.discs)}
