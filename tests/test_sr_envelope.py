"""HiFi-SR's learned envelope of the generated band: band powers and rescaling, the net, its training data,
`sr train-envelope` -> `sr export-envelope` -> the runtime (chunked = whole file), and its errors."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from test_sr import SR, TEST_CFG, wideband

from signals.errors import DataError, ModelError
from signals.speech.sr.config import EnvelopeConfig
from signals.speech.sr.data import SRDataset, vocoder_like
from signals.speech.sr.postprocess import apply_envelope, band_edges, band_log_power

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = EnvelopeConfig()
FULL = replace(CFG, max_hz=24000.0)  # nothing silenced
TINY_NET = replace(CFG, channels=8, dilations=(1, 2))


def noise(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    return (0.05 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def test_band_powers_and_rescaling():
    x = noise()
    bands = band_log_power(x, CFG)
    assert bands.shape == (CFG.n_bands, 1 + len(x) // CFG.hop) and CFG.n_bands == 48
    assert np.allclose(band_edges(CFG)[[0, -1]], [0.0, 24000.0])
    # its own band powers as the target: the signal comes back (weighted overlap-add is exact)
    np.testing.assert_allclose(apply_envelope(x, bands, FULL), x, atol=1e-6)
    # +1 (log10 power, +10 dB) on band 20: that band rises by most of it, far bands do not move
    raised = bands.copy()
    raised[20] += 1.0
    got = band_log_power(apply_envelope(x, raised, FULL), CFG) - bands
    assert 0.7 < float(np.median(got[20, 4:-4])) <= 1.05
    assert abs(float(np.median(got[10, 4:-4]))) < 0.01 and abs(float(np.median(got[30, 4:-4]))) < 0.01
    # above max_hz (22.05 kHz) the band is silenced, down to the gain limit; below it nothing changes
    y = apply_envelope(x, bands, CFG)
    drop = band_log_power(y, CFG) - bands
    assert float(np.median(drop[45:, 4:-4])) < -5.0
    assert abs(float(np.median(drop[:40, 4:-4]))) < 0.01
    # the gain is clipped: an absurd target moves the band by at most max_gain_db
    huge = bands.copy()
    huge[20] += 20.0
    up = band_log_power(apply_envelope(x, huge, FULL), CFG)[20, 4:-4] - bands[20, 4:-4]
    assert float(np.max(up)) <= FULL.max_gain_db / 10 + 0.01
    # fewer target frames than signal frames: the last one repeats (only the end changes); a signal under half
    # a frame is left alone
    cut = apply_envelope(x, bands[:, :-3], FULL)
    keep = len(x) - 6 * CFG.hop
    np.testing.assert_allclose(cut[:keep], x[:keep], atol=1e-6)
    assert not np.allclose(cut[keep:], x[keep:], atol=1e-3)
    short = x[:300]
    np.testing.assert_array_equal(apply_envelope(short, bands, CFG), short)


def test_envelope_net_shapes_and_level_equivariance():
    from signals.speech.sr.model import EnvelopeNet

    torch.manual_seed(0)
    net = EnvelopeNet(TINY_NET).eval()
    mel = torch.randn(2, 80, 40) - 5.0
    out = net(mel)
    assert out.shape == (2, 48, 40)
    # 6 dB louder input (magnitude x2: log-mel + ln 2) -> every band +0.602 in log10 power
    torch.testing.assert_close(net(mel + np.log(2.0)), out + 2 * np.log10(2.0), atol=1e-4, rtol=0)
    assert TINY_NET.context_frames == 2 * (1 + 1 + 2)


def test_training_items_weight_only_the_band_to_generate():
    from signals.speech.sr.train_envelope import EnvelopeItems

    crops = SRDataset([wideband(1.0, 0)], replace(SRDataset([wideband(0.5)]).cfg, segment=8192), length=50,
                      bandwidths=[18000.0])
    items = EnvelopeItems(crops, CFG)
    hi = band_edges(CFG)[1:]
    for i in range(20):
        mel, target, weight = items[i]
        _, _, rate, bw = crops[i]
        assert mel.shape == (80, target.shape[1]) and target.shape[0] == 48
        assert np.all(weight[hi <= rate / 2 - 1000] == 0) and np.all(weight[hi > bw] == 0)
        assert np.all(weight[(hi > rate / 2 - 1000) & (hi <= bw)] == 1)
        assert np.isfinite(mel).all() and np.isfinite(target).all()


def test_vocoder_like_stays_finite_where_loud_meets_quiet():
    """float32 smoothing of the STFT power went slightly negative there (NaN after the square root)."""
    from scipy import signal as sps

    rng = np.random.default_rng(0)
    for seed in range(6):
        x = sps.sosfiltfilt(sps.butter(8, 3000, fs=SR, output="sos"), rng.standard_normal(24576))
        x = (0.9 * x / np.abs(x).max()).astype(np.float32)
        x[12000:] *= 1e-4
        assert np.isfinite(vocoder_like(x, np.random.default_rng(seed))).all()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny generator folder, a tiny audio corpus (VCTK-like names) and a 4-step envelope run on it."""
    from signals.cli import main
    from signals.speech.sr.export import export
    from signals.speech.sr.model import Generator
    from signals.torchutils import save_safetensors

    root = tmp_path_factory.mktemp("sr_env")
    torch.manual_seed(0)
    save_safetensors(Generator(TEST_CFG), root / "w.safetensors")
    folder = root / "model"
    export(root / "w.safetensors", folder, gcfg=TEST_CFG, frame_comb_radius=1, generated_gain_db=6.0,
           source={"data": {"val_utterances": ["p1_003"], "test_utterances": ["p1_004"]}})
    corpus = root / "wav"
    corpus.mkdir()
    from signals.speech.audio import resample

    for k in range(1, 4):  # recorded at 32 kHz: content to ~16 kHz, so the envelope silences the bands above
        sf.write(corpus / f"p1_00{k}.wav", resample(wideband(0.6, k), SR, 32000), 32000)
    sf.write(corpus / "p1_004.wav", np.full(SR // 2, np.nan, dtype=np.float32), SR, subtype="FLOAT")  # never read
    # and a small training pack (its own split; a Debian package's licence in its index)
    from signals.speech.sr.corpus import write_pack

    rows = []
    for i, split in enumerate(["train", "train", "val", "test"]):
        path = root / f"c{i}.wav"
        sf.write(path, wideband(0.5, 10 + i), SR)
        rows.append({"id": f"q:{i}", "path": str(path), "rate": SR, "start": 0, "stop": SR // 2, "gain_db": 0.0,
                     "seconds": 0.5, "bandwidth_hz": 18000.0, "group": f"q/{i}", "language": "xx", "package": "q",
                     "split": split})
    write_pack(root / "pack", rows, meta={"packages": {"q-data": {"version": "1.0-1", "licence": "GPL-2"}}})
    run = root / "run"
    assert main(["speech", "sr", "train-envelope", "--data", str(corpus), str(root / "pack"), "--data-share", "1", "3",
                 "--model", str(folder), "--out", str(run),
                 "--steps", "4", "--batch-size", "2", "--segment", "4096", "--eval-every", "2", "--log-every", "1",
                 "--channels", "8", "--dilations", "1", "2", "--workers", "0", "--threads", "1", "--quiet"]) == 0
    return folder, run


def test_train_envelope_records_a_baseline_and_chooses_on_validation(trained):
    folder, run = trained
    rows = [json.loads(r) for r in (run / "train_log.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[0]["baseline"] and "val_lsd_8k" in rows[0]
    scored = [r for r in rows[1:] if "val_lsd_mean" in r]
    assert [r["step"] for r in scored] == [2, 4] and all(np.isfinite(r["loss"]) for r in rows[1:])
    assert {"val_lsd_4k", "val_lsd_16k", "val_lsd_voc", "val_tonal_16k"} <= set(scored[0])
    best = min(scored, key=lambda r: r["val_lsd_mean"])
    assert best.get("best") and (run / "envelope_best.safetensors").is_file()
    assert {"val_lsd_wav", "val_lsd_pack"} <= set(scored[0])  # each corpus's mean; the score is their mean
    assert scored[0]["val_lsd_mean"] == pytest.approx((scored[0]["val_lsd_wav"] + scored[0]["val_lsd_pack"]) / 2,
                                                      abs=2e-4)
    recipe = json.loads((run / "envelope_config.json").read_text())
    # p1_004 (the model's test utterance) is never read, nor the pack's test clip
    assert recipe["val_clips"] == ["pack/q:2", "wav/p1_003"] and recipe["train_clips"] == 4
    assert recipe["data_share"] == [1.0, 3.0]


def test_export_envelope_and_run_it(trained, tmp_path):
    import shutil

    from signals.cli import main
    from signals.modelfolder import ModelFolder
    from signals.speech.audio import resample
    from signals.speech.sr.infer import load

    src, run = trained
    folder = tmp_path / "m"
    shutil.copytree(src, folder)
    plain = load(folder, threads=1)
    assert plain.envelope is None and plain.front.generated_gain_db == 6.0
    assert main(["speech", "sr", "export-envelope", "--weights", str(run / "envelope_best.safetensors"),
                 "--model", str(folder)]) == 0
    config = ModelFolder.load(folder).config
    assert config.frontend["generated_gain_db"] == 6.0 and config.frontend["envelope"]["channels"] == 8
    assert config.frontend["envelope"]["max_hz"] == 18000.0  # the training clips' highest bandwidth (the pack's)
    assert config.frontend["envelope"]["max_hz"] % 500 == 0
    assert config.graphs["envelope"].parity_max_abs_diff < 1e-4
    record = config.source["envelope"]
    assert record["validation"]["best"] and record["baseline"]["baseline"] and record["training"]["steps"] == 4
    assert config.source["data"]["test_utterances"] == ["p1_004"]  # the rest of the provenance is kept
    assert "envelope net trained on Debian q-data 1.0-1 (GPL-2)" in config.licence

    model = load(folder, threads=1)
    assert model.envelope is not None
    x48 = resample(resample(wideband(1.5, 7), SR, 8000), 8000, SR)
    from signals.speech.sr.postprocess import crossover_filter

    h = crossover_filter(3800.0)
    whole = model.generate(x48, chunk_frames=10**6, h=h)
    for chunk in (17, 64):
        # float32 rounding of the generator, scaled by the envelope's gains (up to 60 dB on this untrained one)
        np.testing.assert_allclose(model.generate(x48, chunk_frames=chunk, h=h), whole, atol=1e-4)
    # the envelope acts on the generated band only, and only with the crossover
    without = load(folder, threads=1, envelope=False)  # the folder's fixed gain (6 dB) instead
    assert without.envelope is None and without.front.envelope is None and without.front.generated_gain_db == 6.0
    # with the envelope the fixed gain is not applied: the envelope sets the band's level
    regained = load(folder, threads=1, generated_gain_db=-12.0)
    np.testing.assert_array_equal(regained.generate(x48, chunk_frames=10**6, h=h), whole)
    assert not np.allclose(whole, without.generate(x48, h=h), atol=1e-4)
    np.testing.assert_array_equal(model.generate(x48), without.generate(x48))
    out = model.upsample(resample(wideband(1.0, 8), SR, 16000), 16000)
    assert out.shape == (SR,) and np.isfinite(out).all()
    # the streamed file path (what `signals speech upsample` runs) gives the in-memory output, envelope included
    src = tmp_path / "in.wav"
    sf.write(src, resample(wideband(1.5, 9), SR, 16000), 16000, subtype="FLOAT")
    model.upsample_file(src, tmp_path / "out.wav", subtype="FLOAT", chunk_frames=40, block_frames=1000)
    streamed, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    np.testing.assert_allclose(streamed, model.upsample(sf.read(str(src), dtype="float32")[0], 16000, chunk_frames=40),
                               atol=1e-5)
    # a config whose envelope disagrees with its graph is refused by name
    cfg = json.loads((folder / "config.json").read_text())
    cfg["frontend"]["envelope"]["band_hz"] = 1000.0
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="envelope graph writes 48 bands"):
        load(folder, threads=1)


def test_envelope_errors(trained, tmp_path):
    from signals.cli import main
    from signals.modelfolder import ModelFolder
    from signals.speech.sr.train_envelope import load_split

    folder, run = trained
    assert main(["speech", "sr", "export-envelope", "--weights", str(tmp_path / "none.safetensors"),
                 "--model", str(folder)]) == 2
    with pytest.raises(DataError, match="share a folder name"):
        load_split([tmp_path / "a" / "wav", tmp_path / "b" / "wav"], ModelFolder.load(folder), 4)
    with pytest.raises(DataError, match="training data not found"):
        load_split([tmp_path / "missing"], ModelFolder.load(folder), 4)
    empty = tmp_path / "e"
    empty.mkdir()
    sf.write(empty / "p9_001.wav", wideband(0.5), SR)
    with pytest.raises(DataError, match="no validation clips"):
        load_split([empty], ModelFolder.load(folder), 4)


def test_clip_weights_steer_which_clips_are_cropped():
    a, b = np.full(8192, 0.1, dtype=np.float32), np.full(8192, -0.1, dtype=np.float32)
    cfg = replace(SRDataset([a]).cfg, segment=2048)
    only_a = SRDataset([a, b], cfg, length=30, augment=False, clip_weights=[1.0, 0.0])
    assert all(float(only_a[i][1].mean()) > 0 for i in range(30))
    with pytest.raises(DataError, match="clip_weights"):
        SRDataset([a, b], cfg, clip_weights=[1.0])
    with pytest.raises(DataError, match="weight 0"):
        SRDataset([a, b], cfg, clip_weights=[0.0, 0.0])


def test_shipped_envelope_lowers_lsd_on_a_held_out_vctk_utterance(vctk_root):
    """models/super_resolution with and without its learned envelope, p360_001 (a test utterance) at 16 kHz."""
    from signals.modelfolder import REPO_MODELS
    from signals.speech.audio import load_audio, resample
    from signals.speech.sr.infer import load
    from signals.speech.sr.metrics import lsd

    folder = REPO_MODELS / "super_resolution"
    if not (folder / "envelope.onnx").is_file():
        pytest.skip(f"no shipped envelope in {folder}")
    ref, _ = load_audio(vctk_root / "wav" / "p360_001.wav", sample_rate=SR)
    low = resample(ref, SR, 16000)
    shaped = load(folder, threads=1).upsample(low, 16000)
    fixed = load(folder, threads=1, envelope=False).upsample(low, 16000)
    assert lsd(ref, shaped) < lsd(ref, fixed) - 0.2
    assert lsd(ref, shaped, max_hz=22050) < lsd(ref, fixed, max_hz=22050)  # not only the silenced top band


def test_a_broken_crop_is_dropped_not_trained_on(trained, tmp_path, monkeypatch):
    """A non-finite crop (what vocoder_like used to return) is skipped and counted; the loss stays finite."""
    import signals.speech.sr.train_envelope as te
    from signals.cli import main

    folder, run = trained
    original = te.EnvelopeItems.__getitem__

    def broken(self, i):
        mel, target, weight = original(self, i)
        if i % 2 == 0:
            mel = mel.copy()
            mel[0, 0] = np.nan
        return mel, target, weight

    monkeypatch.setattr(te.EnvelopeItems, "__getitem__", broken)
    corpus = json.loads((run / "envelope_config.json").read_text())["data"]
    out = tmp_path / "r"
    assert main(["speech", "sr", "train-envelope", "--data", *corpus, "--model", str(folder), "--out", str(out),
                 "--steps", "2", "--batch-size", "2", "--segment", "4096", "--eval-every", "2", "--log-every", "1",
                 "--channels", "8", "--dilations", "1", "--workers", "0", "--threads", "1", "--quiet"]) == 0
    rows = [json.loads(r) for r in (out / "train_log.jsonl").read_text().splitlines()][1:]
    assert [r["skipped_crops"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
