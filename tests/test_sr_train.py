"""HiFi-SR training for issue 9: bandwidth-aware losses, the vocoder-like degradation, the tonal-artefact
measure, the compact resumable state (sizes and round trip), the learning-rate schedule and a short run
on a training pack that resumes from its state."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from signals.speech.nn.config import DiscriminatorConfig, LossConfig
from signals.speech.nn.discriminators import Discriminators
from signals.speech.sr import checkpoint as ck
from signals.speech.sr import data as srdata
from signals.speech.sr.config import COMPACT_DISC, SMALL, GeneratorConfig, TrainConfig
from signals.speech.sr.metrics import tonal_excess_db, tonal_peak_db
from signals.speech.sr.model import Generator
from signals.torchutils import load_compact, save_compact

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 48000
TEST_CFG = GeneratorConfig(d_model=32, n_layers=2, n_heads=2, conv_kernel=5, attn_window=8,
                           upsample_initial_channel=32, resblock_kernel_sizes=(3, 5), resblock_dilations=((1, 3), (1, 3)))
TEST_DISC = DiscriminatorConfig(mpd_channels=(4, 8, 8, 8, 8), msd_width=4, mbd_channels=4)


def wideband(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 2 * t)) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 40))
    return (0.1 * voice / np.abs(voice).max() + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def band_db(x: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float(10 * np.log10(spec[(f >= lo) & (f < hi)].sum() / spec.sum() + 1e-30))


# ---------------------------------------------------------------------------------------------- bands


def test_band_limit_is_per_example():
    from signals.speech.sr.train import band_limit

    x = torch.from_numpy(np.stack([wideband(0.3, 0), wideband(0.3, 1)]))[:, None]
    y = band_limit(x, torch.tensor([12000.0, 24000.0])).numpy()[:, 0]
    assert band_db(y[0], 12100, 24000) < -80 and band_db(x[0, 0].numpy(), 12100, 24000) > -20
    np.testing.assert_allclose(y[1], x[1, 0].numpy(), atol=1e-6)  # full band: unchanged
    lo = np.fft.rfft(y[0])[: int(11000 / SR * y.shape[-1])]
    np.testing.assert_allclose(lo, np.fft.rfft(x[0, 0].numpy())[: len(lo)], rtol=1e-4, atol=1e-3)


def test_generated_band_above_the_clip_bandwidth_is_masked():
    """With above_band_weight 0 neither the mel loss nor the discriminators see what G writes above the
    target's bandwidth (up to the FFT's leakage); with 0.1 the mel loss sees it weakly, with 1 fully."""
    from signals.speech.sr.train import gan_step

    torch.manual_seed(0)
    x = wideband(0.2, 0)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    high = torch.from_numpy(np.fft.irfft(np.fft.rfft(x) * (f < 14000), n=len(x)).astype(np.float32))[None, None]
    tone = 0.05 * torch.sin(2 * torch.pi * 19000 * torch.arange(high.shape[-1]) / SR)

    class Fixed(torch.nn.Module):  # a "generator" that returns the target (+ a tone above its bandwidth)
        def __init__(self, extra):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))
            self.extra = extra

        def forward(self, mel):
            return high + self.extra + 0 * self.p

    disc = Discriminators(TEST_DISC)
    change = {}
    for weight in (0.0, 0.1, 1.0):
        terms = []
        for extra in (0.0, tone):
            g = Fixed(extra)
            opt_g, opt_d = torch.optim.SGD(g.parameters(), 0.0), torch.optim.SGD(disc.parameters(), 0.0)
            t = gan_step(g, disc, opt_g, opt_d, high[:, 0], high, TrainConfig(above_band_weight=weight), LossConfig(),
                         True, True, False, torch.tensor([14000.0]))
            terms.append(np.array([float(t["mel"]), float(t["fm_mbd"]) + float(t["fm_mpd"]) + float(t["fm_msd"])]))
        change[weight] = np.abs(terms[1] - terms[0])
    assert change[0.0][0] < 0.02 * change[1.0][0] and change[0.0][1] < 0.1 * change[1.0][1]
    assert change[0.1][0] == pytest.approx(0.1 * change[1.0][0], rel=0.2)  # weighted, not dropped
    assert change[0.1][1] < 0.1 * change[1.0][1]  # discriminators masked whenever the weight is below 1


def test_dataset_draws_rates_below_each_clip_bandwidth_and_carries_it():
    cfg = srdata.DegradeConfig(segment=4096, speed=(1.0, 1.0), vocoder_prob=0.0)
    ds = srdata.SRDataset([wideband(0.5, 0), wideband(0.5, 1)], cfg, length=200, seed=1, bandwidths=[9000.0, 20000.0])
    items = [ds[i] for i in range(120)]
    for _, _, rate, bw in items:
        assert bw in (9000.0, 20000.0) and rate / 2 <= bw - cfg.band_margin_hz
    assert max(r for _, _, r, bw in items if bw == 9000.0) <= 16000
    assert max(r for _, _, r, bw in items if bw == 20000.0) > 30000
    fast = srdata.SRDataset([wideband(0.5, 0)], replace(cfg, speed=(1.05, 1.05)), length=5, bandwidths=[16000.0])
    assert fast[0][3] == pytest.approx(16800.0)  # speeding up moves the band edge up
    voc = srdata.SRDataset([wideband(0.5, 0)], replace(cfg, vocoder_prob=1.0), length=5, bandwidths=[20000.0])
    assert {voc[i][2] for i in range(5)} == {srdata.VOCODER_RATE}
    low = srdata.SRDataset([wideband(0.5, 0)], replace(cfg, vocoder_prob=1.0), length=5, bandwidths=[11500.0])
    assert srdata.VOCODER_RATE not in {low[i][2] for i in range(5)}  # no room above 11 kHz: ordinary rates


def test_vocoder_like_input():
    x = wideband(1.0, 3)
    y = srdata.vocoder_like(x, np.random.default_rng(0), cutoff=(9000.0, 9000.0), plain=0.0)
    assert y.shape == x.shape and y.dtype == np.float32
    assert band_db(y, 11500, 24000) < band_db(x, 11500, 24000) - 50  # nothing above the 22.05 kHz Nyquist
    assert band_db(y, 9500, 11000) < band_db(x, 9500, 11000) - 6  # rolled off above the cutoff
    y = srdata.vocoder_like(x, np.random.default_rng(0), plain=1.0)  # only the 22.05 kHz resampler's edge
    assert band_db(y, 12500, 24000) < band_db(x, 12500, 24000) - 40  # (the polyphase images, as in degrade)
    from scipy.signal import butter, sosfiltfilt

    def band(s, lo, hi):
        return sosfiltfilt(butter(6, (lo, hi), btype="band", fs=SR, output="sos"), s)

    assert np.corrcoef(band(x, 300, 5000), band(y, 300, 5000))[0, 1] > 0.98  # below the mel's 8 kHz: kept
    hx, hy = band(x, 8800, 9600), band(y, 8800, 9600)
    assert abs(np.corrcoef(hx, hy)[0, 1]) < 0.5  # above it: invented (envelope kept, fine structure not)
    assert abs(10 * np.log10(np.mean(hy**2) / np.mean(hx**2))) < 12


# ---------------------------------------------------------------------------------------------- metrics


def test_tonal_measure_finds_steady_lines():
    x = wideband(2.0, 0)
    t = np.arange(len(x)) / SR
    tonal = x + 0.01 * np.sin(2 * np.pi * 15000 * t).astype(np.float32)
    assert tonal_peak_db(x, SR, 8000, 20000) < 6
    assert tonal_peak_db(tonal, SR, 8000, 20000) > 15
    assert tonal_excess_db(x, tonal, SR, 8000, 20000) > 10
    assert tonal_peak_db(x, SR, 8000, 8000) == 0.0  # empty band
    assert tonal_peak_db(np.zeros(48000, np.float32), SR, 8000, 20000) == 0.0
    assert tonal_peak_db(tonal, SR, 16000, 20000) < 6  # outside the band


# ---------------------------------------------------------------------------------------------- state


def _filled(gen, disc):
    opts = []
    for m in (gen, disc):
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        for q in m.parameters():
            q.grad = torch.randn_like(q)
        opt.step()
        opts.append(opt)
    return opts


@pytest.mark.parametrize("moments", ck.MOMENTS)
def test_compact_state_round_trip(tmp_path, moments):
    torch.manual_seed(0)
    gen, disc = Generator(TEST_CFG), Discriminators(TEST_DISC)
    opt_g, opt_d = _filled(gen, disc)
    tensors, info = ck.state_tensors(gen, disc, opt_g, opt_d, moments)
    files = save_compact(tmp_path / "last", tensors, {"step": 7, **info}, shard_bytes=64 * 1024)  # several shards
    assert len(files) > 3 and all(f.stat().st_size <= 64 * 1024 for f in files)
    loaded, state = load_compact(tmp_path / "last")
    assert state["step"] == 7 and set(loaded) == set(tensors)
    gen2, disc2 = Generator(TEST_CFG), Discriminators(TEST_DISC)
    o2 = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in (gen2, disc2)]
    done = ck.restore(loaded, state, gen2, disc2, *o2)
    for a, b in ((gen, gen2), (disc, disc2)):
        for (k, v), v2 in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(v2, v.to(torch.float16).to(v.dtype), msg=k)
    assert ("g moments" in done) == (moments != "none") and ("d moments" in done) == (moments == "all")
    if moments != "none":
        s1, s2 = opt_g.state_dict()["state"][0], o2[0].state_dict()["state"][0]
        torch.testing.assert_close(s2["exp_avg"], s1["exp_avg"], rtol=1e-2, atol=1e-6)
        assert float(s2["step"]) == float(s1["step"]) == 1.0
    assert load_compact(tmp_path / "nothing") is None


def test_small_generator_with_compact_discriminators_fits_the_return_limit(tmp_path):
    gen, disc = Generator(SMALL), Discriminators(COMPACT_DISC)
    opts = _filled(gen, disc)
    sizes = {}
    for moments in ("all", "generator"):
        tensors, info = ck.state_tensors(gen, disc, *opts, moments)
        files = save_compact(tmp_path / moments, tensors, {"step": 0, **info})
        assert max(f.stat().st_size for f in files) <= int(15.9 * 2**20)
        sizes[moments] = sum(f.stat().st_size for f in files)
    assert sizes["all"] < 64 * 2**20 and sizes["generator"] < 24e6 < sizes["all"]


def test_lr_schedule():
    from signals.speech.sr.train import _lr_factor

    cfg = TrainConfig(steps=1000, warmup_steps=100, lr_min=0.1)
    assert _lr_factor(0, cfg) == pytest.approx(0.01)
    assert _lr_factor(99, cfg) == pytest.approx(1.0)
    assert _lr_factor(550, cfg) == pytest.approx(0.55)
    assert _lr_factor(1000, cfg) == pytest.approx(0.1) and _lr_factor(5000, cfg) == pytest.approx(0.1)
    exp = TrainConfig(lr_schedule="exp", warmup_steps=0)
    assert _lr_factor(2000, exp) == pytest.approx(0.999**2)
    with pytest.raises(ValueError, match="lr schedule"):
        TrainConfig(lr_schedule="linear")


# ---------------------------------------------------------------------------------------------- a run on a pack


def test_training_on_a_pack_selects_on_val_lsd_and_resumes(tmp_path, monkeypatch):
    import soundfile as sf

    import signals.speech.sr.train as tr
    from signals.speech.sr.cli import add_train_arguments, train_config
    from signals.speech.sr.corpus import write_pack

    rows = []
    for i, (group, split, bw) in enumerate([("a/x", "train", 20000.0), ("a/x", "train", 16000.0),
                                            ("a/y", "train", 22050.0), ("a/v", "val", 18000.0),
                                            ("a/t", "test", 19000.0)]):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, wideband(0.4, i)[::1], SR)
        rows.append({"id": f"a:{i}", "path": str(path), "rate": SR, "start": 0, "stop": int(0.4 * SR), "gain_db": 0.0,
                     "seconds": 0.4, "bandwidth_hz": bw, "group": group, "language": "xx", "package": "a",
                     "split": split})
    write_pack(tmp_path / "pack", rows, "source", meta={"packages": {"a": {"version": "1.0", "licence": "GPL-2"}},
                                                        "val_groups": ["a/v"], "test_groups": ["a/t"]})
    monkeypatch.setitem(tr.GENERATORS, "small", TEST_CFG)
    monkeypatch.setitem(tr.DISCRIMINATORS, "tiny", TEST_DISC)

    def run(extra: list[str], **kw) -> dict:
        argv = ["--data", str(tmp_path / "pack"), "--out", str(tmp_path / "run"), "--disc", "tiny", "--batch-size", "2",
                "--segment", "2048", "--workers", "0", "--log-every", "1", "--eval-every", "2", "--quiet",
                "--device", "cpu", "--state-moments", "generator", *extra]
        args = add_train_arguments(argparse.ArgumentParser()).parse_args(argv)
        return tr.train(train_config(args), args.data, args.out, device="cpu", workers=0, progress=False, **kw)

    result = run(["--steps", "2"])
    assert result["step"] == 2 and result["val"] == ["a:3"] and result["test"] == []  # test clips stay out
    assert len(result["train"]) == 3
    rows_log = [json.loads(r) for r in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    last = rows_log[-1]
    assert {"val_lsd_8k", "val_lsd_16k", "val_lsd_voc", "val_tonal_16k", "val_lsd_hf_8k"} <= set(last)
    assert last["best"] and (tmp_path / "run" / "generator_best.safetensors").is_file()
    state = json.loads((tmp_path / "run" / "last" / "state.json").read_text())
    assert state["step"] == 2 and state["best"] == pytest.approx(np.mean([last["val_lsd_8k"], last["val_lsd_16k"]]),
                                                                  abs=1e-3)
    assert "opt_step_g" in state and "opt_step_d" not in state  # D moments not kept ("generator")
    assert run(["--steps", "3"], resume=True)["step"] == 3
    assert json.loads((tmp_path / "run" / "last" / "state.json").read_text())["step"] == 3
    # `sr export`'s provenance names the Debian package, its licence and the held-out groups
    from signals.speech.sr.export import run_provenance

    source, licence = run_provenance(tmp_path / "run" / "generator_best.safetensors")
    assert source["training"]["selected_by"].startswith("best validation LSD") and source["training"]["step"] in (2, 3)
    assert source["training"]["validation"]["val_lsd_8k"] > 0
    assert source["data"]["test_groups"] == ["a/t"] and source["data"]["packages"]["a"]["licence"] == "GPL-2"
    assert "Debian a 1.0 (GPL-2)" in licence and "init" not in source
    from signals.errors import DataError

    with pytest.raises(DataError, match="holds a 'tiny' discriminator"):
        run(["--steps", "4", "--disc", "compact"], resume=True)
