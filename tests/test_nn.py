"""The shared speech layer (signals.speech.nn): generator body, weight norm, receptive field,
discriminator families, and HiFi-SR built on it with unchanged parameter names."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from signals.paths import REPO_ROOT
from signals.speech.nn.config import HIFIGAN_V1, DiscriminatorConfig, HiFiGANConfig
from signals.speech.nn.discriminators import Discriminators
from signals.speech.nn.generator import HiFiGANGenerator
from signals.speech.nn.layers import MRF, Snake, activation
from signals.speech.nn.losses import generator_adv_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = HiFiGANConfig(in_channels=8, upsample_initial_channel=16, upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4),
                     resblock_kernel_sizes=(3, 5), resblock_dilations=((1, 3), (1, 2)))


@pytest.mark.parametrize("act", ["leaky_relu", "snake"])
def test_generator_shapes_and_range(act):
    torch.manual_seed(0)
    gen = HiFiGANGenerator(replace(TINY, activation=act)).eval()
    y = gen(torch.randn(2, 8, 13))
    assert y.shape == (2, 1, 13 * TINY.hop) and TINY.hop == 8
    assert float(y.detach().abs().max()) <= 1.0
    assert gen.infer(torch.randn(1, 8, 5)).shape == (1, 40)
    has_snake = any(isinstance(m, Snake) for m in gen.modules())
    assert has_snake == (act == "snake")


def test_v1_size_and_parameter_names():
    gen = HiFiGANGenerator(HIFIGAN_V1)
    assert sum(p.numel() for p in gen.parameters()) == 13_926_017  # HiFi-GAN V1 (weight norm folded)
    names = set(gen.state_dict())
    assert {"conv_pre.weight", "ups.3.weight", "resblocks.2.1.convs2.2.weight", "conv_post.bias"} <= names
    assert isinstance(gen.resblocks[0], MRF) and len(gen.resblocks[0]) == 3


def test_weight_norm_folds_to_the_same_function():
    torch.manual_seed(1)
    gen = HiFiGANGenerator(replace(TINY, weight_norm=True)).eval()
    assert any(".parametrizations.weight.original0" in k for k in gen.state_dict())
    x = torch.randn(1, 8, 20)
    with torch.no_grad():
        before = gen(x)
        gen.remove_weight_norm()
        after = gen(x)
    assert not any("parametrizations" in k for k in gen.state_dict())
    assert set(gen.state_dict()) == set(HiFiGANGenerator(TINY).state_dict())
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cfg", [TINY, HIFIGAN_V1], ids=["tiny", "v1"])
def test_context_frames_cover_the_receptive_field(cfg):
    """Changing frames farther than context_frames away leaves an output frame unchanged."""
    torch.manual_seed(2)
    gen = HiFiGANGenerator(replace(cfg, upsample_initial_channel=min(cfg.upsample_initial_channel, 32))).eval()
    ctx, hop, n, i = cfg.context_frames, cfg.hop, 2 * cfg.context_frames + 9, cfg.context_frames + 4
    x = torch.randn(1, cfg.in_channels, n)
    x2 = x.clone()
    x2[..., : i - ctx] += 3.0
    x2[..., i + ctx + 1:] -= 3.0
    with torch.no_grad():
        a, b = gen(x)[..., i * hop:(i + 1) * hop], gen(x2)[..., i * hop:(i + 1) * hop]
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_config_checks():
    with pytest.raises(ValueError, match="activation"):
        HiFiGANConfig(activation="relu")
    with pytest.raises(ValueError, match="even"):
        HiFiGANConfig(upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(15, 16, 4, 4))
    with pytest.raises(ValueError, match="unknown activation"):
        activation("gelu", 4)


def test_discriminator_families_can_be_left_out():
    cfg = DiscriminatorConfig(periods=(2, 3), mpd_channels=(4, 8, 8, 8, 8), msd_scales=2, msd_width=4, mbd_windows=())
    out = Discriminators(cfg)(torch.randn(2, 1, 2048))
    assert set(out) == {"mpd", "msd"}
    logits, feats = out["mpd"]
    assert len(logits) == 2 and len(feats[0]) == 6
    assert generator_adv_loss(out["msd"][0]).ndim == 0


def test_sr_generator_is_the_shared_body_with_its_parameter_names():
    from signals.speech.sr.config import SMALL
    from signals.speech.sr.model import Generator

    gen = Generator(SMALL)
    assert isinstance(gen, HiFiGANGenerator) and gen.upsampler_cfg == SMALL.upsampler
    assert SMALL.context_frames == SMALL.n_layers * (SMALL.attn_window + SMALL.conv_kernel // 2) + 1 + \
        SMALL.upsampler.context_frames
    shipped = REPO_ROOT / "models" / "super_resolution" / "model.safetensors"
    if not shipped.is_file():
        pytest.skip(f"{shipped} not found")
    from safetensors import safe_open

    with safe_open(str(shipped), "pt") as f:
        assert set(f.keys()) == set(gen.state_dict())


def test_sin2_polynomial_error_is_float32_rounding_size():
    """The coefficients' stated errors: 4.4e-7 in float64, 7.3e-7 by float32 Horner (over a period of sin^2)."""
    import numpy as np

    from signals.speech.nn.layers import SIN2_POLY

    f = np.linspace(-0.5, 0.5, 400_001)
    exact = np.sin(np.pi * f) ** 2
    v64 = f * f
    assert np.abs(v64 * np.polyval(SIN2_POLY[::-1], v64) - exact).max() < 5e-7
    v32, acc = v64.astype(np.float32), np.float32(SIN2_POLY[-1])
    for c in SIN2_POLY[-2::-1]:
        acc = acc * v32 + np.float32(c)
    assert np.abs((acc * v32).astype(np.float64) - exact).max() < 8e-7


def test_polynomial_snake_matches_sin_and_leaves_the_original_alone():
    from signals.speech.nn.layers import polynomial_snake

    torch.manual_seed(0)
    gen = HiFiGANGenerator(replace(TINY, activation="snake")).eval()
    with torch.no_grad():
        for m in gen.modules():
            if isinstance(m, Snake):
                m.log_alpha.normal_(0.0, 0.7)  # frequencies away from 1
        snake = next(m for m in gen.modules() if isinstance(m, Snake))
        x = torch.randn(2, snake.log_alpha.shape[1], 999) * 8.0  # many periods, both signs
        fast = polynomial_snake(gen)
        fast_snake = next(m for m in fast.modules() if isinstance(m, Snake))
        alpha = snake.log_alpha.double().exp()
        exact = x.double() + torch.sin(alpha * x.double()) ** 2 / alpha
        assert (fast_snake(x).double() - exact).abs().max() < 6e-6  # float32 rounding of x itself is ~2e-6 here
        assert (snake(x).double() - exact).abs().max() < 6e-6
        assert not any(m.polynomial for m in gen.modules() if isinstance(m, Snake))
        assert all(m.polynomial for m in fast.modules() if isinstance(m, Snake))
        mel = torch.randn(1, 8, 30)
        torch.testing.assert_close(fast(mel), gen(mel), atol=1e-5, rtol=0)
