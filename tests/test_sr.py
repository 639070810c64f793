"""HiFi-SR: degradation, model/discriminator shapes, losses, a training step, export parity,
chunked inference, post-processing, metrics, bad inputs and the CLI."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from signals.configio import from_dict, to_dict
from signals.errors import AudioError, DataError
from signals.speech.features import SR_MEL, mel_torch
from signals.speech.nn.config import TINY_DISC, DiscriminatorConfig, LossConfig
from signals.speech.nn.discriminators import Discriminators
from signals.speech.nn.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
    multiscale_mel_loss,
)
from signals.speech.sr import data as srdata
from signals.speech.sr.config import PAPER, SMALL, GeneratorConfig
from signals.speech.sr.metrics import lsd, si_sdr
from signals.speech.sr.model import Generator
from signals.speech.sr.postprocess import crossover, crossover_cutoff, crossover_filter, detect_bandwidth

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 48000
# A very small generator so that export and chunked inference run in a second on busy CPUs.
TEST_CFG = GeneratorConfig(d_model=32, n_layers=2, n_heads=2, conv_kernel=5, attn_window=8,
                           upsample_initial_channel=32, resblock_kernel_sizes=(3, 5), resblock_dilations=((1, 3), (1, 3)))


def band_energy_db(x: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float(10 * np.log10(spec[(f >= lo) & (f < hi)].sum() / spec.sum() + 1e-30))


def wideband(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Speech-like test signal: harmonic 'voice' plus white noise, energy up to 24 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 30 * np.sin(2 * np.pi * 2 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 40))
    return (0.1 * voice / np.abs(voice).max() + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


# ---------------------------------------------------------------------------------------------- data


@pytest.mark.parametrize("kind", srdata.FILTERS)
@pytest.mark.parametrize("rate", [4000, 11025, 16000, 32000])
def test_degrade_removes_band_above_nyquist_and_keeps_below(kind, rate):
    x = wideband(0.5)
    y = srdata.degrade(x, rate, kind, np.random.default_rng(1))
    assert y.shape == x.shape and y.dtype == np.float32
    assert band_energy_db(y, rate / 2 * 1.15, SR / 2) < band_energy_db(x, rate / 2 * 1.15, SR / 2) - 35
    # well inside the pass band the degraded signal is the original (zero phase, no delay)
    h = crossover_filter(rate / 2 * 0.5)
    from scipy.signal import oaconvolve

    lx = oaconvolve(x, h, mode="same")[2000:-2000]
    ly = oaconvolve(y, h, mode="same")[2000:-2000]
    assert np.corrcoef(lx, ly)[0, 1] > 0.99


def test_dataset_items_are_deterministic_crops_with_random_rates():
    cfg = srdata.DegradeConfig(segment=4096)
    ds = srdata.SRDataset([wideband(1.0, 0), wideband(0.7, 1)], cfg, length=100, seed=3)
    low, high, rate, bw = ds[5]
    assert low.shape == high.shape == (4096,) and cfg.min_rate <= rate <= cfg.max_rate and bw == SR / 2
    low2, high2, rate2, _ = ds[5]
    np.testing.assert_array_equal(low, low2)
    assert rate == rate2
    assert len({ds[i][2] for i in range(20)}) > 5
    batch = srdata.collate([ds[i] for i in range(3)])
    assert batch[0].shape == (3, 4096) and batch[2].shape == (3,) and batch[3].dtype == torch.float32


def test_split_and_npz_roundtrip(tmp_path):
    arrays = {"a_1": wideband(0.3, 0), "a_2": wideband(0.3, 1), "b_1": wideband(0.3, 2)}
    path = tmp_path / "c.npz"
    np.savez(path, **arrays)
    corpus = srdata.load_corpus(path)
    assert set(corpus) == set(arrays)
    train, val, test = srdata.split_corpus(sorted(corpus), ["b_1"], ["a_2"])
    assert train == ["a_1"] and val == ["a_2"] and test == ["b_1"]
    with pytest.raises(DataError, match="nope"):
        srdata.split_corpus(sorted(corpus), ["nope"], [])
    with pytest.raises(DataError, match="not found"):
        srdata.load_corpus(tmp_path / "missing.npz")


# ---------------------------------------------------------------------------------------------- model


def test_generator_shapes_and_paper_size():
    gen = Generator(TEST_CFG)
    mel = torch.randn(2, 80, 13)
    assert gen(mel).shape == (2, 1, 13 * 256)
    assert gen.infer(mel).shape == (2, 13 * 256)
    n_small = sum(p.numel() for p in Generator(SMALL).parameters())
    assert 1e6 < n_small < 5e6
    with torch.device("meta"):
        paper = Generator(PAPER)
    n_paper = sum(p.numel() for p in paper.parameters())
    assert 95e6 < n_paper < 108e6, n_paper
    assert from_dict(GeneratorConfig, json.loads(json.dumps(to_dict(PAPER)))) == PAPER


def test_discriminator_shapes():
    disc = Discriminators(TINY_DISC)
    out = disc(torch.randn(2, 1, 8192))
    assert [len(out[k][0]) for k in ("mpd", "msd", "mbd")] == [5, 3, 3]
    for logits, feats in out.values():
        for lg, fm in zip(logits, feats):
            assert lg.shape[0] == 2 and lg.ndim == 2 and len(fm) >= 5
    # the MBD has 5 bands x 5 convs + the output conv per resolution
    assert len(out["mbd"][1][0]) == 26


def test_loss_terms():
    ones, zeros = [torch.ones(2, 5)], [torch.zeros(2, 5)]
    assert discriminator_loss(ones, zeros).item() == 0
    assert discriminator_loss(zeros, ones).item() == pytest.approx(2.0)
    assert generator_adv_loss(ones).item() == 0 and generator_adv_loss(zeros).item() == pytest.approx(1.0)
    f = [[torch.randn(2, 3, 4), torch.randn(2, 5)]]
    assert feature_matching_loss(f, f).item() == 0
    assert feature_matching_loss(f, [[x + 1 for x in f[0]]]).item() == pytest.approx(2.0)
    x = torch.from_numpy(wideband(0.2))[None, None]
    cfg = LossConfig()
    assert multiscale_mel_loss(x, x, cfg).item() == pytest.approx(0.0, abs=1e-6)
    assert multiscale_mel_loss(0.5 * x, x, cfg).item() == pytest.approx(np.log(2), rel=0.05)


def test_untrained_generator_gets_mel_gradient():
    """A fresh generator must be loud enough for the floored log-mel loss to have a gradient."""
    torch.manual_seed(0)
    gen = Generator(TEST_CFG)
    x = torch.from_numpy(wideband(0.2))[None]
    y = gen(mel_torch(x, SR_MEL))[..., : x.shape[-1]]
    multiscale_mel_loss(y, x[:, None], LossConfig()).backward()
    assert sum(float(p.grad.abs().sum()) for p in gen.parameters() if p.grad is not None) > 0


def test_one_training_step_updates_weights(tmp_path, monkeypatch, model_folder):
    from safetensors.torch import load_file

    import signals.speech.sr.train as tr
    from signals.speech.sr.cli import add_train_arguments, train_config
    from signals.torchutils import seed_everything

    def run(argv: list[str], **kw) -> dict:
        args = add_train_arguments(argparse.ArgumentParser()).parse_args(argv)
        return tr.train(train_config(args), args.data, args.out, device=args.device, workers=0, progress=False,
                        init_weights=args.init_weights, **kw)

    monkeypatch.setitem(tr.GENERATORS, "small", TEST_CFG)
    monkeypatch.setitem(tr.DISCRIMINATORS, "tiny", DiscriminatorConfig(mpd_channels=(4, 8, 8, 8, 8), msd_width=4,
                                                                        mbd_channels=4))
    corpus = tmp_path / "c.npz"
    np.savez(corpus, a_1=wideband(0.4, 0), a_2=wideband(0.4, 1), a_3=wideband(0.2, 2), b_1=wideband(0.2, 3))
    argv = ["--data", str(corpus), "--out", str(tmp_path / "run"), "--disc", "tiny", "--batch-size", "2",
            "--segment", "2048", "--disc-start", "1", "--workers", "0", "--log-every", "1", "--eval-every", "2",
            "--test", "--test-speakers", "b", "--val", "a_3", "--quiet", "--device", "cpu"]
    result = run([*argv, "--steps", "2"])
    assert result["step"] == 2
    assert (result["train"], result["val"], result["test"]) == (["a_1", "a_2"], ["a_3"], ["b_1"])
    seed_everything(1234)
    init = Generator(TEST_CFG).state_dict()
    trained = load_file(str(tmp_path / "run" / "generator.safetensors"))
    changed = [k for k in init if not torch.equal(init[k], trained[k])]
    assert len(changed) > len(init) // 2
    assert (tmp_path / "run" / "last" / "state.json").is_file()
    log = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert "adv_mbd" in log[-1] and "val_lsd_8k" in log[-1]
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["degrade"]["segment"] == 2048
    # resuming continues from the saved step
    assert run([*argv, "--steps", "3"], resume=True)["step"] == 3
    # fine-tuning: --init-weights starts G from saved weights (here a model folder's), scores them first
    # (step-0 row, the bar "_best" must beat), and --disc-warmup keeps the first adversarial step D-only
    run(["--data", str(corpus), "--out", str(tmp_path / "ft"), "--disc", "tiny", "--steps", "2", "--batch-size", "2",
         "--segment", "2048", "--disc-start", "0", "--disc-warmup", "1", "--workers", "0", "--log-every", "1",
         "--eval-every", "2", "--test", "--val", "a_3", "--quiet", "--device", "cpu",
         "--init-weights", str(model_folder / "model.safetensors")])
    rows = [json.loads(r) for r in (tmp_path / "ft" / "train_log.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[0]["init"] and "val_lsd_8k" in rows[0]
    assert rows[1]["d"] > 0 and "adv_mbd" not in rows[1]  # step 1: D trains, G is mel-only
    assert "adv_mbd" in rows[2] and "fm_mpd" in rows[2] and "adv_msd" in rows[2]

    # provenance for `sr export`: the run's recipe, step and validation row; a fine-tune inherits the held-out
    # test utterances of the folder it started from (none of its own here) and names that folder
    from signals.speech.sr.export import run_provenance

    source, licence = run_provenance(tmp_path / "ft" / "generator.safetensors")
    assert source["training"]["step"] == 2 and source["training"]["selected_by"] == "latest step"
    assert source["training"]["validation"]["val_lsd_8k"] == rows[2]["val_lsd_8k"]
    assert source["data"]["test_utterances"] == ["p360_001"] and source["init"]["folder"] == str(model_folder)
    assert licence.startswith("Apache-2.0") and str(model_folder) in licence
    assert run_provenance(tmp_path / "run" / "generator.safetensors")[0]["data"]["test_utterances"] == ["b_1"]
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["init_weights"] is None
    assert run_provenance(model_folder / "model.safetensors") == ({}, "unknown")  # not a run folder
    # the CLI writes them into the folder, with the post-processing chosen for it
    from signals.cli import main
    from signals.modelfolder import ModelFolder

    assert main(["speech", "sr", "export", "--weights", str(tmp_path / "ft" / "generator.safetensors"),
                 "--out", str(tmp_path / "folder"), "--frame-comb", "2", "--generated-gain", "4.5"]) == 0
    written = ModelFolder.load(tmp_path / "folder").config
    assert written.source == source and written.licence == licence and written.frontend["frame_comb_radius"] == 2
    assert written.frontend["generated_gain_db"] == 4.5
    # a damaged training record is one clear error naming it, and the folder is not written
    (tmp_path / "ft" / "train_config.json").write_text("{not json")
    from signals.errors import ModelError

    with pytest.raises(ModelError, match=r"cannot read the training record .*train_config\.json"):
        run_provenance(tmp_path / "ft" / "generator.safetensors")
    assert main(["speech", "sr", "export", "--weights", str(tmp_path / "ft" / "generator.safetensors"),
                 "--out", str(tmp_path / "folder2")]) == 2
    assert not (tmp_path / "folder2").exists()


def test_validation_through_the_runtime_post_processing(tmp_path, monkeypatch, model_folder, model):
    """--val-postprocess FOLDER: the torch generator inside the folder's runtime gives the runtime's own
    output; validation and the step-0 row score that; a resume with another choice is refused (the kept
    best score would not compare)."""
    import signals.speech.sr.train as tr
    from signals.errors import DataError
    from signals.speech.audio import resample
    from signals.speech.sr.cli import add_train_arguments, train_config
    from signals.speech.sr.export import load_model

    gen = load_model(model_folder)
    post = tr.shipped_runtime(gen, tr.load_postprocess(model_folder), torch.device("cpu"), False)
    x8 = resample(wideband(0.8, 5), SR, 8000)
    np.testing.assert_allclose(post.upsample(x8, 8000), model.upsample(x8, 8000), atol=1e-4)
    clips = tr.make_val_set({"a_3": wideband(0.5, 2)}, {}, 4)
    raw, shipped = (tr.validate(gen, clips, torch.device("cpu"), False, p) for p in (None, post))
    assert raw.keys() == shipped.keys() and raw["lsd_8k"] != shipped["lsd_8k"]

    monkeypatch.setitem(tr.GENERATORS, "small", TEST_CFG)
    monkeypatch.setitem(tr.DISCRIMINATORS, "tiny", DiscriminatorConfig(mpd_channels=(4, 8, 8, 8, 8), msd_width=4,
                                                                        mbd_channels=4))
    corpus = tmp_path / "c.npz"
    np.savez(corpus, a_1=wideband(0.4, 0), a_2=wideband(0.4, 1), a_3=wideband(0.5, 2))
    argv = ["--data", str(corpus), "--out", str(tmp_path / "run"), "--disc", "tiny", "--batch-size", "2",
            "--segment", "2048", "--workers", "0", "--log-every", "1", "--eval-every", "1", "--test", "--val", "a_3",
            "--quiet", "--device", "cpu", "--init-weights", str(model_folder / "model.safetensors")]

    def run(extra: list[str], **kw) -> dict:
        args = add_train_arguments(argparse.ArgumentParser()).parse_args([*argv, *extra])
        return tr.train(train_config(args), args.data, args.out, device="cpu", workers=0, progress=False,
                        init_weights=args.init_weights, val_postprocess=args.val_postprocess, **kw)

    slim = tmp_path / "slim"  # what a training machine gets: no generator graphs, no weights
    slim.mkdir()
    (slim / "config.json").write_bytes((model_folder / "config.json").read_bytes())
    np.testing.assert_array_equal(tr.shipped_runtime(gen, tr.load_postprocess(slim), torch.device("cpu"), False).upsample(x8, 8000),
                                  post.upsample(x8, 8000))
    run(["--steps", "1", "--val-postprocess", str(model_folder)])
    rows = [json.loads(r) for r in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert rows[0]["init"] and rows[0]["val_lsd_8k"] == round(shipped["lsd_8k"], 4)  # the starting weights, shipped
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["val_postprocess"] == str(model_folder)
    from signals.errors import ModelError

    with pytest.raises(ModelError, match=r"model folder not found: .*missing \(given with --val-postprocess\)"):
        run(["--steps", "1", "--val-postprocess", str(tmp_path / "missing")])
    with pytest.raises(DataError, match="resume with the same --val-postprocess"):
        run(["--steps", "2"], resume=True)
    assert run(["--steps", "2", "--val-postprocess", str(model_folder)], resume=True)["step"] == 2


# ---------------------------------------------------------------------------------------------- export + runtime


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    from signals.speech.sr.export import export
    from signals.torchutils import save_safetensors

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("sr_model")
    save_safetensors(Generator(TEST_CFG), folder / "w.safetensors")
    cfg = export(folder / "w.safetensors", folder, gcfg=TEST_CFG, source={"data": {"test_utterances": ["p360_001"]}})
    assert max(g.parity_max_abs_diff for g in cfg.graphs.values()) < 1e-4
    assert cfg.graphs["encoder"].inputs == {"mel": ("batch", 80, "frames")}
    assert cfg.graphs["upsampler"].inputs == {"latent": ("batch", TEST_CFG.upsample_initial_channel, "frames")}
    assert cfg.runtime["upsampler_context_frames"] == TEST_CFG.upsampler.context_frames < cfg.runtime["context_frames"]
    return folder


@pytest.mark.parametrize("frames", [1, 5, 8, 9, 16, 17, 40])
def test_banded_attention_equals_masked_full_attention(frames):
    """The blocked O(T * window) attention is the full attention under the band mask |i - j| <= window, for
    lengths below, at and between multiples of the window, and gradients flow through it."""
    import torch.nn.functional as F

    from signals.speech.sr.model import banded_attention

    torch.manual_seed(frames)
    window = 4
    q, k, v = (torch.randn(2, 3, frames, 5, requires_grad=True) for _ in range(3))
    i = torch.arange(frames)
    mask = (i[None, :] - i[:, None]).abs() <= window
    full = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    banded = banded_attention(q, k, v, window)
    torch.testing.assert_close(banded, full, atol=1e-6, rtol=1e-5)
    banded.square().sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.fixture(scope="module")
def model(model_folder):
    from signals.speech.sr.infer import load

    return load(model_folder, threads=1)


def test_export_parity_on_dynamic_lengths(model_folder, model):
    """Each graph matches its torch half; together, run as the runtime runs them (the upsampler in pieces
    with its receptive field as context, any piece size), they match the whole torch generator."""
    import onnx

    from signals.export import compare
    from signals.speech.sr.export import (
        Exported,
        ExportedEncoder,
        ExportedUpsampler,
        load_model,
        parity_cases,
    )

    gen = load_model(model_folder)
    assert gen.cfg == TEST_CFG
    cases = parity_cases(80, lengths=(7, 31, 150))
    assert compare(ExportedEncoder(gen), model_folder / "encoder.onnx", ["mel"], ["latent"], cases) < 1e-4
    with torch.inference_mode():
        latents = [[gen.encode(torch.from_numpy(m)).numpy()] for (m,) in cases]
        whole = [Exported(gen)(torch.from_numpy(m)).numpy()[0] for (m,) in cases]
    assert compare(ExportedUpsampler(gen), model_folder / "upsampler.onnx", ["latent"], ["audio"], latents) < 1e-4
    for piece in (0, 1, 5, 64):
        pieced = replace(model, chunking=replace(model.chunking, upsampler_chunk_frames=piece))
        for (m,), ref in zip(cases, whole):
            np.testing.assert_allclose(pieced._run(m[0]), ref, atol=1e-4)
    for name in ("config.json", "model.safetensors", "encoder.onnx", "upsampler.onnx"):
        assert (model_folder / name).is_file()
    # the 1-D convolutions are stored as 2-D ones (onnxruntime's faster CPU kernels)
    for name in ("encoder.onnx", "upsampler.onnx"):
        g = onnx.load(str(model_folder / name)).graph
        dims = {i.name: len(i.dims) for i in g.initializer}
        assert {dims[n.input[1]] for n in g.node if n.op_type == "Conv"} == {4}
    # Snake's sin^2 is a polynomial there (onnxruntime's Sin is scalar); compared above with the sin model
    assert not any(n.op_type == "Sin" for n in onnx.load(str(model_folder / "upsampler.onnx")).graph.node)


def test_runtime_reads_the_typed_model_section(model_folder, tmp_path):
    """The runtime reads ``model`` as a GeneratorConfig: unknown keys and a hop or n_mels that disagree
    with the front end are refused, naming config.json."""
    import shutil

    from signals.errors import ModelError
    from signals.speech.sr.infer import load

    assert load(model_folder).folder.section("model", GeneratorConfig) == TEST_CFG
    for change, error, words in [({"stride": 2}, ModelError, ["unknown key 'model.stride'"]),
                                 ({"upsample_rates": [8, 8, 2]}, ModelError, ["does not match", "hop 128"]),
                                 ({"n_mels": 64}, ModelError, ["does not match", "n_mels 64"])]:
        folder = tmp_path / "bad"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(model_folder, folder)
        data = json.loads((folder / "config.json").read_text())
        data["model"].update(change)
        if "upsample_rates" in change:
            data["model"]["upsample_kernel_sizes"] = [16, 16, 4]
        (folder / "config.json").write_text(json.dumps(data))
        with pytest.raises(error) as info:
            load(folder)
        assert all(w in str(info.value) for w in [*words, "config.json"]), info.value


def test_runtime_refuses_a_chunking_that_would_change_the_output(model_folder, tmp_path):
    """runtime.upsampler_context_frames below the upsampler's receptive field (chunked output would differ
    from whole-file output) or outside 1 ... context_frames is refused, naming config.json."""
    import shutil

    from signals.errors import ModelError
    from signals.speech.sr.infer import load

    for value, words in [(TEST_CFG.upsampler.context_frames - 1, "below the upsampler's receptive field"),
                         (0, "upsampler_context_frames must be within 1"),
                         (10**4, "upsampler_context_frames must be within 1")]:
        folder = tmp_path / f"bad{value}"
        shutil.copytree(model_folder, folder)
        data = json.loads((folder / "config.json").read_text())
        data["runtime"]["upsampler_context_frames"] = value
        (folder / "config.json").write_text(json.dumps(data))
        with pytest.raises(ModelError, match=words) as info:
            load(folder)
        assert "config.json" in str(info.value)


def test_a_folder_with_one_generator_graph_is_named_and_migrated(model_folder, model, tmp_path):
    """The layout before the encoder/upsampler split (one ``generator`` graph, no upsampler context): the
    runtime names the migration; ``scripts/migrate_model_folders.py`` exports the pair from the folder's own
    weights, keeps the other sections and removes generator.onnx; the output is the same."""
    import runpy
    import shutil

    from signals.errors import ModelError
    from signals.export import export_graph
    from signals.modelfolder import ModelFolder, write_config
    from signals.speech.sr.export import Exported, load_model, parity_cases
    from signals.speech.sr.infer import load

    old = tmp_path / "old"
    shutil.copytree(model_folder, old)
    for name in ("encoder.onnx", "upsampler.onnx"):
        (old / name).unlink()
    graph = export_graph(Exported(load_model(old)), old / "generator.onnx", inputs={"mel": ("batch", 80, "frames")},
                         outputs={"audio": ("batch", "samples")}, example=[torch.randn(1, 80, 64)],
                         cases=parity_cases(80))
    config = ModelFolder.load(old, "super_resolution").config
    runtime = {k: v for k, v in config.runtime.items() if k not in ("upsampler_context_frames", "upsampler_chunk_frames")}
    write_config(old, replace(config, graphs={"generator": graph}, runtime=runtime))
    with pytest.raises(ModelError, match="migrate_model_folders.py"):
        load(old)
    migrate = runpy.run_path("scripts/migrate_model_folders.py")["migrate"]
    assert "split into encoder.onnx + upsampler.onnx" in migrate(old)
    assert not (old / "generator.onnx").exists()
    new = ModelFolder.load(old, "super_resolution").config
    assert sorted(new.graphs) == ["encoder", "upsampler"] and new.source == config.source
    assert new.runtime["upsampler_context_frames"] == TEST_CFG.upsampler.context_frames
    x8 = wideband(0.6)[::6].copy()
    np.testing.assert_allclose(load(old, threads=1).upsample(x8, 8000), model.upsample(x8, 8000), atol=1e-5)
    assert "already format" in migrate(old)


def test_a_folder_whose_upsampler_uses_sin_is_exported_again(model_folder, model, tmp_path):
    """Folders exported before Snake's polynomial still run (the same output, slower); the migration script
    exports their pair again from their own weights and leaves the rest."""
    import runpy
    import shutil

    import onnx

    from signals.export import export_graph
    from signals.modelfolder import ModelFolder, write_config
    from signals.speech.sr.export import ExportedUpsampler, load_model
    from signals.speech.sr.infer import load

    old = tmp_path / "old"
    shutil.copytree(model_folder, old)
    graph = export_graph(ExportedUpsampler(load_model(old)), old / "upsampler.onnx",
                         inputs={"latent": ("batch", TEST_CFG.upsample_initial_channel, "frames")},
                         outputs={"audio": ("batch", "samples")}, example=[torch.randn(1, TEST_CFG.upsample_initial_channel, 20)],
                         conv2d=True)
    config = ModelFolder.load(old, "super_resolution").config
    write_config(old, replace(config, graphs={**config.graphs, "upsampler": graph}))
    assert any(n.op_type == "Sin" for n in onnx.load(str(old / "upsampler.onnx")).graph.node)
    x8 = wideband(0.6)[::6].copy()
    np.testing.assert_allclose(load(old, threads=1).upsample(x8, 8000), model.upsample(x8, 8000), atol=1e-5)
    migrate = runpy.run_path("scripts/migrate_model_folders.py")["migrate"]
    assert "exported again" in migrate(old)
    assert not any(n.op_type == "Sin" for n in onnx.load(str(old / "upsampler.onnx")).graph.node)
    new = ModelFolder.load(old, "super_resolution").config
    assert new.source == config.source and new.frontend == config.frontend and new.runtime == config.runtime
    np.testing.assert_allclose(load(old, threads=1).upsample(x8, 8000), model.upsample(x8, 8000), atol=1e-5)
    assert "already format" in migrate(old)


def test_blocked_convolutions_only_on_one_thread(model_folder, model, monkeypatch):
    """Sessions use onnxruntime's blocked (NCHWc) convolutions on one thread only (for our few-channel 2-D
    convolutions they are slower on several); either way the output is the same."""
    import onnxruntime as ort

    from signals import runtime
    from signals.speech.sr.infer import load

    seen = []
    real = ort.InferenceSession

    def spy(*args, **kwargs):
        seen.append(kwargs.get("disabled_optimizers", []))
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    onnx_path = model_folder / "upsampler.onnx"
    for threads, cores, blocked in [(1, 8, True), (2, 1, False), (None, 1, True), (None, 4, False)]:
        monkeypatch.setattr(runtime.os, "cpu_count", lambda cores=cores: cores)
        runtime.create_session(onnx_path, threads=threads)
        assert ("NchwcTransformer" not in seen[-1]) == blocked, (threads, cores)
    runtime.create_session(onnx_path, threads=4, blocked_convs=True)
    assert seen[-1] == []
    two = load(model_folder, threads=2)
    assert seen[-2:] == [["NchwcTransformer"]] * 2  # encoder, upsampler
    x8 = wideband(0.6)[::6].copy()
    np.testing.assert_allclose(two.upsample(x8, 8000), model.upsample(x8, 8000), atol=1e-5)


def test_config_and_runtime_are_torch_free():
    import subprocess
    import sys

    code = ("import sys; import signals.speech.sr.config, signals.speech.sr.infer, signals.speech.nn.config; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_train_config_presets():
    from signals.errors import ConfigError
    from signals.speech.sr.config import DISCRIMINATORS, GENERATORS, TrainConfig

    assert GENERATORS == {"small": SMALL, "paper": PAPER} and DISCRIMINATORS["tiny"] == TINY_DISC
    assert DISCRIMINATORS["full"] == DiscriminatorConfig()
    with pytest.raises(ValueError, match="unknown generator 'huge'"):
        TrainConfig(generator="huge")
    with pytest.raises(ConfigError, match="unknown discriminator 'wide'"):
        from_dict(TrainConfig, {"discriminator": "wide"}, "run.json")


def test_chunked_inference_equals_whole_file(model):
    x = wideband(1.5)
    from signals.speech.audio import resample

    x48 = resample(resample(x, SR, 8000), 8000, SR)
    h = crossover_filter(3800.0)
    # also with the frame comb on (it reads frames up to its radius around each kept frame)
    combed = replace(model, front=replace(model.front, frame_comb_radius=3))
    assert model.chunking.context_frames >= 3
    for runtime in (model, combed):
        whole = runtime.generate(x48, chunk_frames=10**6, h=h)
        for chunk in (17, 64, 140):  # 140: the last chunk is shorter than the crossfade
            chunked = runtime.generate(x48, chunk_frames=chunk, h=h)
            assert chunked.shape == whole.shape == x48.shape
            np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert not np.allclose(combed.generate(x48, h=h), model.generate(x48, h=h), atol=1e-4)
    np.testing.assert_array_equal(combed.generate(x48), model.generate(x48))  # no crossover: raw output


def test_frame_comb_removes_a_frame_locked_pattern_and_keeps_the_rest(model_folder):
    """A pattern repeating every hop samples (with a slow level change) is removed; unlocked noise keeps
    ~(1 - 1/(2r+1)) of its power; radius 0 is the identity; a radius past the chunk context is refused."""
    from signals.errors import ModelError
    from signals.speech.sr.infer import load
    from signals.speech.sr.postprocess import remove_frame_periodic

    rng = np.random.default_rng(0)
    hop, r, n = 256, 8, 400
    noise = rng.standard_normal(n * hop).astype(np.float32)
    level = np.repeat(1.0 + 0.3 * np.sin(np.linspace(0, np.pi, n)), hop)
    pattern = np.tile(rng.standard_normal(hop), n) * level
    out = remove_frame_periodic(noise + pattern, hop, r)
    # linear, so the two parts can be scored apart
    np.testing.assert_allclose(out, remove_frame_periodic(noise, hop, r) + remove_frame_periodic(pattern, hop, r),
                               atol=1e-4)
    assert np.mean(remove_frame_periodic(pattern, hop, r) ** 2) < 0.01 * np.mean(pattern**2)  # lines 20 dB down
    kept = np.mean(remove_frame_periodic(noise, hop, r) ** 2) / np.mean(noise**2)
    assert kept == pytest.approx(1 - 1 / (2 * r + 1), abs=0.02)
    np.testing.assert_array_equal(remove_frame_periodic(noise, hop, 0), noise)
    assert remove_frame_periodic(noise[:100], hop, r).shape == (100,)  # shorter than a frame: unchanged
    with pytest.raises(ModelError, match="frame_comb_radius must be within 0"):
        load(model_folder, threads=1, frame_comb_radius=10**6)


def test_generated_gain_scales_only_the_generated_band(model, model_folder):
    """frontend.generated_gain_db multiplies what the crossover keeps of the generator (above the input's
    band) and leaves the input's band, the raw output (no postprocessing) and chunking alone."""
    from signals.errors import ModelError
    from signals.speech.audio import resample
    from signals.speech.sr.infer import load

    x8 = resample(wideband(1.5), SR, 8000)
    louder = replace(model, front=replace(model.front, generated_gain_db=6.0))
    a, b = model.upsample(x8, 8000), louder.upsample(x8, 8000)
    f = np.fft.rfftfreq(len(a), 1 / SR)

    def energy(x, lo, hi):
        return float((np.abs(np.fft.rfft(x)) ** 2)[(f >= lo) & (f < hi)].sum())

    assert energy(b, 0, 3000) == pytest.approx(energy(a, 0, 3000), rel=1e-3)  # the input's band
    assert energy(b, 4500, 20000) == pytest.approx(10 ** 0.6 * energy(a, 4500, 20000), rel=1e-3)  # +6 dB
    np.testing.assert_array_equal(louder.upsample(x8, 8000, postprocess=False), model.upsample(x8, 8000, postprocess=False))
    np.testing.assert_allclose(louder.upsample(x8, 8000, chunk_frames=23), b, atol=1e-5)
    assert load(model_folder, threads=1, generated_gain_db=-3.0).front.generated_gain_db == -3.0
    for bad in (100.0, float("nan")):
        with pytest.raises(ModelError, match="generated_gain_db must be a finite gain"):
            load(model_folder, threads=1, generated_gain_db=bad)


def test_edge_fade_only_touches_the_generated_band_at_the_edges(model):
    from signals.speech.audio import resample
    from signals.speech.sr.postprocess import edge_fade

    w = edge_fade(np.ones(1000), 0, 1000, 100)
    assert w[0] == 0 and w[-1] == 0 and 0 < w[50] < 1 and np.all(w[100:900] == 1)
    np.testing.assert_allclose(w, w[::-1], atol=1e-6)  # the same ramp in and out
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    parts = [edge_fade(x[a:b], a, 1000, 100) for a, b in ((0, 130), (130, 700), (700, 1000))]
    np.testing.assert_array_equal(np.concatenate(parts), edge_fade(x, 0, 1000, 100))  # pieces = whole
    np.testing.assert_array_equal(edge_fade(x[:300], 0, None, 100)[100:], x[100:300])  # end unknown: no fade-out
    np.testing.assert_array_equal(edge_fade(x, 0, 1000, 0), x)
    # in the runtime: the output differs from the unfaded one only within the fade (+ the crossover's FIR)
    x8 = resample(wideband(1.5), SR, 8000)
    plain = replace(model, front=replace(model.front, edge_fade_frames=0))
    assert model.front.edge_fade_frames == 4
    d = np.abs(model.upsample(x8, 8000) - plain.upsample(x8, 8000))
    hop = model.hop
    assert d[: 4 * hop].max() > 1e-4 and d[-4 * hop:].max() > 1e-4
    assert d[6 * hop: -6 * hop].max() == 0.0
    np.testing.assert_allclose(model.upsample(x8, 8000, chunk_frames=19), model.upsample(x8, 8000), atol=1e-5)


def test_streamed_file_equals_in_memory_upsample(model, tmp_path):
    """upsample_file streams (blocked reads, soxr.ResampleStream, chunked generator, incremental writes):
    its output must equal the in-memory ``upsample`` of the whole signal, over many chunks and blocks."""
    from signals.speech.audio import load_audio, resample

    x = wideband(2.0, seed=3)
    stereo = np.stack([resample(x, SR, 16000), 0.5 * resample(wideband(2.0, seed=4), SR, 16000)], 1)
    src = _write(tmp_path / "in16k.wav", stereo, 16000, "FLOAT")
    wav, sr = load_audio(src, mono=False)
    for chunk, block in ((40, 1000), (97, 4096), (None, 333)):  # ~9 and 4 chunks; default: one chunk
        ref = model.upsample(wav, sr, chunk_frames=chunk)
        info = model.upsample_file(src, tmp_path / "out.wav", subtype="FLOAT", chunk_frames=chunk, block_frames=block)
        out, sr_out = sf.read(str(tmp_path / "out.wav"), dtype="float32", always_2d=True)
        assert sr_out == SR and info["channels"] == 2 and out.T.shape == ref.shape
        np.testing.assert_allclose(out.T, ref, atol=1e-5)
    # full-band input (48 kHz, energy to 24 kHz) is passed through unchanged by both paths
    src48 = _write(tmp_path / "in48k.wav", x, SR, "FLOAT")
    model.upsample_file(src48, tmp_path / "out48.wav", subtype="FLOAT", block_frames=5000)
    out48, _ = sf.read(str(tmp_path / "out48.wav"), dtype="float32")
    np.testing.assert_allclose(out48, model.upsample(x, SR), atol=1e-6)


def test_upsample_any_rate_mono_and_stereo(model):
    x = wideband(0.5)
    from signals.speech.audio import resample

    for rate in (4000, 8000, 22050, 32000):
        low = resample(x, SR, rate)
        y = model.upsample(low, rate)
        assert y.shape == (int(round(len(low) * SR / rate)),) and np.all(np.isfinite(y))
        # below the detected bandwidth the output is the input (the crossover keeps it)
        ref = resample(low, rate, SR)
        assert band_energy_db(y - ref, 0, rate * 0.35) < band_energy_db(ref, 0, rate * 0.35) - 30
    stereo = np.stack([resample(x, SR, 16000), 0.5 * resample(x, SR, 16000)])
    y = model.upsample(stereo, 16000)
    assert y.shape == (2, len(x))


def test_postprocess_bandwidth_and_crossover():
    x = wideband(1.0)
    from signals.speech.audio import resample

    for rate in (8000, 16000, 32000):
        up = resample(resample(x, SR, rate), rate, SR)
        bw = detect_bandwidth(up, SR)
        assert 0.85 * rate / 2 < bw <= rate / 2 * 1.02, (rate, bw)
    t = np.arange(SR) / SR
    low_tone, high_tone = np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 9000 * t)
    h = crossover_filter(crossover_cutoff(4000.0))
    out = crossover(low_tone, high_tone, h)  # keeps the input's 1 kHz and the generated 9 kHz
    np.testing.assert_allclose(out[2000:-2000], (low_tone + high_tone)[2000:-2000], atol=2e-3)
    np.testing.assert_allclose(crossover(x, x, h), x, atol=1e-6)


def test_metrics():
    x = wideband(0.5)
    assert lsd(x, x) == pytest.approx(0.0, abs=1e-9)
    assert si_sdr(x, 3 * x) > 100
    noisy = x + 0.05 * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    assert lsd(x, noisy) > 0.1 and 0 < si_sdr(x, noisy) < 30
    from signals.speech.audio import resample

    low = resample(resample(x, SR, 8000), 8000, SR)
    assert lsd(x, low, min_hz=4000) > lsd(x, low)


def test_spectral_replication_fills_the_high_band():
    from signals.speech.audio import resample
    from signals.speech.sr.evaluate import spectral_replication

    x = wideband(0.5)
    up = resample(resample(x, SR, 8000), 8000, SR)
    rep = spectral_replication(up, 4000)
    assert rep.shape == up.shape
    assert band_energy_db(rep, 5000, 20000) > band_energy_db(up, 5000, 20000) + 20
    assert lsd(x, rep, min_hz=4000) < lsd(x, up, min_hz=4000)


def test_evaluate_on_real_vctk(vctk_root, model_folder, tmp_path):
    from signals.speech.sr.evaluate import evaluate

    res = evaluate(vctk_root / "wav", model_folder, out=tmp_path, held_out=True, rates=(8000, 16000), threads=1)
    assert res["files"] == ["p360_001"]
    s = res["summary"]
    assert set(s) == {"unprocessed", "spectral_replication", "hifi_sr"}
    assert s["unprocessed"]["8000"]["lsd_hf"] > s["unprocessed"]["8000"]["lsd"]
    assert (tmp_path / "results.json").is_file() and "hifi_sr" in (tmp_path / "results.txt").read_text()
    assert "TON" in (tmp_path / "results.txt").read_text() and "tonal_excess_db" in s["hifi_sr"]["8000"]
    assert (tmp_path / "spectrogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # reference / input / output
    # the unprocessed input leaves the generated band empty: its tonal excess is minus the reference's value
    assert s["unprocessed"]["8000"]["tonal_excess_db"] == pytest.approx(-s["unprocessed"]["8000"]["tonal_ref_db"], abs=0.5)
    # --record: the summary into the evaluated folder's metrics.json, beside other records
    import shutil

    from signals.errors import ConfigError

    folder = shutil.copytree(model_folder, tmp_path / "folder")
    for name in ("vctk_held_out", "again"):
        rec = evaluate(vctk_root / "wav", folder, held_out=True, rates=(8000,), threads=1, record=name, command="t")
    saved = json.loads((folder / "metrics.json").read_text())["evaluations"]
    assert set(saved) == {"vctk_held_out", "again"} and saved["again"]["command"] == "t"
    assert saved["again"]["summary"]["hifi_sr"]["8000"]["lsd"] == pytest.approx(rec["summary"]["hifi_sr"]["8000"]["lsd"])
    assert saved["again"]["postprocess"] == {"frame_comb_radius": 0, "generated_gain_db": 0.0, "edge_fade_frames": 4,
                                             "envelope": False}
    with pytest.raises(ConfigError, match="--record stores what the model folder does as it is"):
        evaluate(vctk_root / "wav", folder, held_out=True, rates=(8000,), threads=1, record="x", generated_gain_db=3.0)
    with pytest.raises(ConfigError, match="--no-envelope"):
        evaluate(vctk_root / "wav", folder, held_out=True, rates=(8000,), threads=1, record="x", envelope=False)


def test_evaluate_on_a_pack_split_up_to_each_clip_bandwidth(model_folder, tmp_path):
    from signals.speech.sr.corpus import write_pack
    from signals.speech.sr.evaluate import evaluate, format_table

    rows = []
    for i, (split, bw) in enumerate([("test", 15000.0), ("test", 24000.0), ("train", 20000.0)]):
        path = _write(tmp_path / f"c{i}.wav", wideband(0.5, i), SR)
        rows.append({"id": f"p:{i}", "path": str(path), "rate": SR, "start": 0, "stop": SR // 2, "gain_db": 0.0,
                     "seconds": 0.5, "bandwidth_hz": bw, "group": f"p/{i}", "language": "xx", "package": "p",
                     "split": split})
    write_pack(tmp_path / "pack", rows)
    res = evaluate(tmp_path / "pack", model_folder, rates=(8000, 16000, 32000), threads=1)
    assert res["files"] == ["p:0", "p:1"] and "test split" in res["label"]
    # 32 kHz input (16 kHz Nyquist) leaves nothing to generate below p:0's 15 kHz: only p:1 is scored there
    assert sum(r["rate"] == "32000" and r["method"] == "hifi_sr" for r in res["rows"]) == 1
    assert sum(r["rate"] == "8000" and r["method"] == "hifi_sr" for r in res["rows"]) == 2
    assert "32k" in format_table(res)


# ---------------------------------------------------------------------------------------------- bad input + CLI


def _write(path, data, sr, subtype="PCM_16"):
    sf.write(str(path), data, sr, subtype=subtype)
    return path


def test_bad_inputs(model, tmp_path):
    good = wideband(0.3)
    with pytest.raises(AudioError, match="silent"):
        model.upsample_file(_write(tmp_path / "silence.wav", np.zeros(8000), 16000), tmp_path / "o.wav")
    nan = good.copy()
    nan[100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        model.upsample_file(_write(tmp_path / "nan.wav", nan, 48000, "FLOAT"), tmp_path / "o.wav")
    with pytest.raises(AudioError, match="too short"):
        model.upsample_file(_write(tmp_path / "one.wav", good[:1], 16000), tmp_path / "o.wav")
    with pytest.raises(AudioError, match="6 channels"):
        model.upsample_file(_write(tmp_path / "six.wav", np.stack([good] * 6, 1), 48000), tmp_path / "o.wav")
    with pytest.raises(AudioError, match="lowest supported"):
        model.upsample(good[:3000], 2000)
    # 8-bit unsigned PCM (old telephone recordings) is valid input
    from signals.speech.audio import resample

    eight = _write(tmp_path / "u8.wav", resample(good, SR, 8000), 8000, "PCM_U8")
    info = model.upsample_file(eight, tmp_path / "u8_48k.wav")
    out, sr = sf.read(str(tmp_path / "u8_48k.wav"))
    assert sr == 48000 and len(out) == len(good) and info["input_rate"] == 8000


@pytest.mark.parametrize("where", ["generator", "writer"])
def test_interrupted_upsample_keeps_the_old_output_and_leaves_no_temp_file(model, tmp_path, monkeypatch, where):
    """Ctrl-C / SIGTERM (KeyboardInterrupt via cliutil.run_handler) half-way: the existing output stays
    byte-identical and no temporary file is left, whether it hits the generator or the writer."""
    import soundfile

    from signals.speech.audio import resample
    from signals.speech.sr import infer

    src = _write(tmp_path / "in.wav", resample(wideband(1.0), SR, 16000), 16000)
    dst = tmp_path / "out.wav"
    model.upsample_file(src, dst)
    before = dst.read_bytes()
    calls = {"n": 0}

    def interrupt_on_second_call(original):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:  # after some output has been written
                raise KeyboardInterrupt
            return original(*args, **kwargs)
        return wrapped

    if where == "generator":
        monkeypatch.setattr(infer._ChunkStream, "push", interrupt_on_second_call(infer._ChunkStream.push))
    else:
        monkeypatch.setattr(soundfile.SoundFile, "write", interrupt_on_second_call(soundfile.SoundFile.write))
    with pytest.raises(KeyboardInterrupt):
        model.upsample_file(src, dst, chunk_frames=16, block_frames=2000)
    assert calls["n"] == 2
    assert dst.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.wav", "out.wav"]


def test_upsample_output_checks_and_overwrite(model, tmp_path):
    from signals.errors import OutputError
    from signals.speech.audio import resample

    src = _write(tmp_path / "in.wav", resample(wideband(0.4), SR, 16000), 16000)
    original = src.read_bytes()
    for dst, subtype, match in [(src, "PCM_16", "also an input"), (tmp_path, "PCM_16", "is a folder"),
                                (tmp_path / "x.flac", "FLOAT", "--float"), (tmp_path / "x.xyz", "PCM_16", "unsupported"),
                                (src / "x.wav", "PCM_16", "is a file, not a folder")]:
        with pytest.raises(OutputError, match=match):
            model.upsample_file(src, dst, subtype=subtype)
    assert src.read_bytes() == original
    # --overwrite: the input is read to the end, then replaced by the complete 48 kHz output
    info = model.upsample_file(src, src, overwrite=True)
    assert sf.info(str(src)).samplerate == 48000 and info["output"] == str(src)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.wav"]


def test_upsample_warns_when_it_clips(model, tmp_path):
    loud = _write(tmp_path / "loud.wav", 1.5 * wideband(0.4) / np.abs(wideband(0.4)).max(), SR, "FLOAT")
    info = model.upsample_file(loud, tmp_path / "o.wav")
    assert any("above full scale" in w and "loud.wav" in w for w in info["warnings"])
    assert model.upsample_file(loud, tmp_path / "f.wav", subtype="FLOAT")["warnings"] == []  # float keeps them


def test_cli_upsample_and_errors(model_folder, tmp_path, capsys):
    from signals.cli import main
    from signals.speech.audio import resample

    src = _write(tmp_path / "in.wav", np.stack([resample(wideband(0.4), SR, 16000)] * 2, 1), 16000)
    assert main(["speech", "upsample", str(src), "-o", str(tmp_path / "out.wav"), "--model", str(model_folder),
                 "--float", "--threads", "1"]) == 0
    info = sf.info(str(tmp_path / "out.wav"))
    assert info.samplerate == 48000 and info.channels == 2 and info.subtype == "FLOAT"
    silent = _write(tmp_path / "s.wav", np.zeros(4000), 16000)
    assert main(["speech", "upsample", str(silent), "-o", str(tmp_path / "x.wav"), "--model", str(model_folder),
                 "--threads", "1"]) == 2
    assert "silent" in capsys.readouterr().err


def test_shipped_model_beats_resampling_on_held_out_vctk(vctk_root):
    """The model in models/super_resolution on a held-out utterance: far lower LSD than soxr alone."""
    from signals.modelfolder import REPO_MODELS
    from signals.speech.audio import load_audio, resample
    from signals.speech.sr.infer import load

    folder = REPO_MODELS / "super_resolution"
    if not (folder / "config.json").is_file():
        pytest.skip(f"no shipped model at {folder}")
    model = load(folder, threads=1)
    assert "p360_001" in model.folder.config.source["data"]["test_utterances"]
    ref, _ = load_audio(vctk_root / "wav" / "p360_001.wav", sample_rate=SR)
    low = resample(ref, SR, 8000)
    out = model.upsample(low, 8000)
    plain = resample(low, 8000, SR)
    assert out.shape == plain.shape
    assert lsd(ref, out) < lsd(ref, plain) - 1.0
    assert lsd(ref, out, min_hz=4000) < lsd(ref, plain, min_hz=4000) - 1.0
