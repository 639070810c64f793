"""FusionActNet: shapes, the fusion rule [w p_static, (1-w) p_dynamic], class order, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from signals.configio import from_dict, to_dict
from signals.har.config import FusionActNetConfig
from signals.har.model import BranchNet, FusionActNet, FusionActNetEnsemble, GuidanceNet

TINY = dict(branch_widths=(8, 16), guide_stem=4, guide_widths=(8,), guide_depths=(1,))


def test_paper_architecture_shapes():
    cfg = FusionActNetConfig()  # the paper's widths
    net = FusionActNet(cfg).eval()
    assert [b.conv1.out_channels for b in net.static.blocks] == [64, 128, 256, 512, 512]
    assert net.static.blocks[0].conv1.in_channels == 9 and net.static.blocks[0].conv1.kernel_size == (3,)
    assert all(b.skip.kernel_size == (1,) for b in net.static.blocks)
    # guidance: stem 32 then depthwise-separable stages ending at 256 channels and one logit
    assert net.guide.stem[0].out_channels == 32 and net.guide.head.in_features == 256
    assert all(b.dw.groups == b.dw.in_channels for b in net.guide.blocks)
    x = torch.randn(3, 9, 128)
    with torch.inference_mode():
        feats = net.static.blocks(x)
        assert feats.shape == (3, 512, 4)  # five /2 max-pools: 128 -> 4
        assert net.static(x).shape == (3, 3) and net.dynamic(x).shape == (3, 3)
        assert net.guide(x).shape == (3,)
        lp = net(x)
    assert lp.shape == (3, 6)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3), atol=1e-5)


def test_blocks_shapes():
    assert BranchNet(6, 2, (8, 16, 32))(torch.randn(2, 6, 64)).shape == (2, 2)
    assert GuidanceNet(6, 4, (8, 16), (1, 2))(torch.randn(2, 6, 64)).shape == (2,)


def _fixed_net(static, dynamic, guide_logit, static_logits, dynamic_logits):
    cfg = FusionActNetConfig(static_classes=static, dynamic_classes=dynamic, **TINY)
    net = FusionActNet(cfg).eval()
    b = lambda t: (lambda z: t.expand(len(z), -1))  # noqa: E731 - constant outputs, whatever the input
    net.static.forward = b(torch.tensor([static_logits]))
    net.dynamic.forward = b(torch.tensor([dynamic_logits]))
    net.guide.forward = lambda z: torch.full((len(z),), guide_logit)
    return net


def test_fusion_weights_and_class_order():
    # an unusual split so a wrong concatenation order cannot pass by accident
    static, dynamic = (4, 1), (0, 3, 2)
    sl, dl, g = [2.0, -1.0], [0.5, 0.0, -3.0], 0.7
    net = _fixed_net(static, dynamic, g, sl, dl)
    p = net.log_probs(torch.randn(2, 9, 32)).exp()[0].numpy()
    w = 1 / (1 + np.exp(-g))
    ps, pd = np.exp(sl) / np.exp(sl).sum(), np.exp(dl) / np.exp(dl).sum()
    want = np.zeros(5)
    want[list(static)] = w * ps
    want[list(dynamic)] = (1 - w) * pd
    np.testing.assert_allclose(p, want, rtol=1e-5, atol=1e-6)
    assert p[list(static)].sum() == pytest.approx(w, rel=1e-5)  # the static weight is P(static)
    assert float(net.static_weight(torch.randn(1, 9, 32))[0]) == pytest.approx(w, rel=1e-6)


def test_fusion_is_stable_for_extreme_logits():
    net = _fixed_net((1,), (0, 2), 80.0, [0.0], [400.0, -400.0])
    lp = net.log_probs(torch.randn(1, 9, 32))
    assert torch.isfinite(lp).all()
    assert int(lp.argmax()) == 1  # static, certainly
    assert torch.allclose(lp.exp().sum(-1), torch.ones(1))


def test_normalisation_is_inside_the_model():
    cfg = FusionActNetConfig(**TINY)
    torch.manual_seed(0)
    net = FusionActNet(cfg).eval()
    x = torch.randn(4, 9, 32)
    mean, std = torch.linspace(-2, 2, 9), torch.linspace(0.5, 3, 9)
    ref = net(x)
    net.set_normalization(mean, std)
    raw = x * std[:, None] + mean[:, None]  # the same windows in "raw units"
    assert torch.allclose(net(raw), ref, atol=1e-5)
    assert "mean" in net.state_dict() and "std" in net.state_dict()  # saved with the weights


def test_ensemble_averages_member_probabilities():
    cfg = FusionActNetConfig(members=2, **TINY)
    torch.manual_seed(1)
    ens = FusionActNetEnsemble(cfg).eval()
    x = torch.randn(5, 9, 32)
    with torch.inference_mode():
        p = ens(x).exp()
        want = (ens.members[0](x).exp() + ens.members[1](x).exp()) / 2
    assert torch.allclose(p, want, atol=1e-6)
    assert torch.allclose(ens.predict_proba(x, batch_size=2), want, atol=1e-6)


def test_config_round_trip_and_validation():
    cfg = FusionActNetConfig(static_classes=(4, 5), dynamic_classes=(0, 1, 2, 3), branch_widths=(8, 8))
    d = to_dict(cfg)
    assert d["branch_widths"] == [8, 8] and cfg.n_classes == 6
    assert from_dict(FusionActNetConfig, d) == cfg
    assert FusionActNetEnsemble(cfg).config == cfg
    with pytest.raises(ValueError, match="partition"):
        FusionActNetConfig(static_classes=(0, 1), dynamic_classes=(1, 2))
    with pytest.raises(ValueError, match="partition"):
        FusionActNetConfig(static_classes=(0,), dynamic_classes=(2,))


def test_decimate_pools_the_normalised_input_and_is_validated():
    cfg = FusionActNetConfig(decimate=2, **TINY)
    net = FusionActNet(cfg).eval()
    net.set_normalization(np.arange(9) * 0.1, np.linspace(0.5, 2, 9))
    x = torch.randn(3, 9, 128)
    z = (x - net.mean) / net.std
    want = 0.5 * (z[..., 0::2] + z[..., 1::2])  # 50 Hz -> 25 Hz, pairwise means
    assert torch.allclose(net.inputs(x), want, atol=1e-6)
    with torch.inference_mode():
        assert net.static.blocks(net.inputs(x)).shape == (3, 16, 16)  # 64 samples, two /2 pools
        assert torch.allclose(net(x), net.fuse(net.static(want), net.dynamic(want), net.guide(want)), atol=1e-5)
    # no weights of its own: a decimating model loads the state dict of an undecimated one
    assert set(net.state_dict()) == set(FusionActNet(FusionActNetConfig(**TINY)).state_dict())
    assert from_dict(FusionActNetConfig, to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="decimate 64 leaves 2 of the 128 samples, fewer than the 4"):
        FusionActNetConfig(decimate=64, **TINY)
    with pytest.raises(ValueError, match="decimate 0"):
        FusionActNetConfig(decimate=0, **TINY)

