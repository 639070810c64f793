"""The voice-cloning synthesizer: model shapes, alignment prior, training, export parity, the numpy
decoder loop, the clone pipeline in-process, and bad input. Tiny models, seconds in all."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from signals.errors import AudioError, DataError, ModelError, SignalsError, TextError  # noqa: E402
from signals.speech.tts.config import TINY, SynthesisConfig, TrainConfig  # noqa: E402
from signals.speech.tts.data import Pack, length_buckets, quantize_mel, token_frames, write_pack  # noqa: E402
from signals.speech.tts.model import (  # noqa: E402
    Tacotron2,
    guided_attention_loss,
    guided_attention_targets,
)
from signals.speech.tts.text import DEFAULT_SYMBOLS  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
EXAMPLE_VOICE = REPO / "examples" / "speech" / "voice_a_1.wav"
MODEL_CFG = replace(TINY, n_mels=80, speaker_dim=256)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Pack:
    """A synthetic pack with learnable structure: each token has its own mel frame (plus noise)."""
    rng = np.random.default_rng(0)
    table = rng.uniform(-9.0, 1.0, size=(len(DEFAULT_SYMBOLS), 80))
    mels, tokens, durs, speakers, split = [], [], [], [], []
    for i in range(16):
        ids = np.concatenate([[1], rng.integers(2, len(DEFAULT_SYMBOLS), size=rng.integers(5, 12)), [1]])
        d = rng.integers(1, 5, size=len(ids))
        frames = np.repeat(table[ids], d, axis=0) + rng.normal(0, 0.1, size=(int(d.sum()), 80))
        mels.append(quantize_mel(frames))
        tokens.append(ids)
        durs.append(d)
        speakers.append(i % 4)
        split.append("val" if i % 8 == 7 else "train")
    emb = rng.standard_normal((16, 256))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    folder = tmp_path_factory.mktemp("pack") / "pack"
    return Pack.load(write_pack(folder, mels, tokens, durs, emb, speakers, split))


def test_model_shapes():
    model = Tacotron2(TINY)
    b, n, t = 3, 9, 14
    tokens = torch.randint(2, TINY.n_symbols, (b, n))
    lengths = torch.tensor([9, 7, 5])
    out = model(tokens, lengths, torch.randn(b, TINY.speaker_dim), torch.randn(b, t, TINY.n_mels))
    assert out["mel"].shape == out["mel_post"].shape == (b, t, TINY.n_mels)
    assert out["stop"].shape == (b, t // TINY.reduction)
    assert out["alignments"].shape == (b, t // TINY.reduction, n)
    # attention never lands on padding, and each step's weights sum to one
    al = out["alignments"]
    assert float(al[1, :, 7:].detach().abs().max()) < 1e-6 and float(al[2, :, 5:].detach().abs().max()) < 1e-6
    assert torch.allclose(al.sum(-1), torch.ones(b, t // TINY.reduction), atol=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        model(tokens, lengths, torch.randn(b, TINY.speaker_dim), torch.randn(b, t + 1, TINY.n_mels))


def test_token_frames_follow_the_corpus_durations():
    # tokens of 25 ms, 50 ms, 100 ms: mel frames (11.6 ms) centred inside each token's span
    d = token_frames([1, 2, 4], n_frames=15)
    assert d.sum() == 15 and list(d) == [3, 4, 8]


def test_guided_attention_prior_is_zero_on_the_true_path():
    durations = torch.tensor([[2, 2, 4, 0]])  # 8 frames; r = 2 -> 4 steps on tokens 0, 1, 2, 2
    w = guided_attention_targets(durations, n_steps=4, reduction=2, sigma=1.0)
    assert w.shape == (1, 4, 4)
    assert [int(w[0, s].argmin()) for s in range(4)] == [0, 1, 2, 2]
    on_path = torch.zeros(1, 4, 4)
    for s, k in enumerate([0, 1, 2, 2]):
        on_path[0, s, k] = 1.0
    mask = torch.ones(1, 4)
    assert float(guided_attention_loss(on_path, w, mask)) == 0.0
    off = torch.roll(on_path, 2, dims=2)
    assert float(guided_attention_loss(off, w, mask)) > 0.8


def test_length_buckets_cover_every_index_once():
    lengths = np.random.default_rng(0).integers(10, 500, size=101)
    batches = list(length_buckets(lengths, 8, np.random.default_rng(1)))
    assert sorted(np.concatenate(batches).tolist()) == list(range(101))
    assert max(len(b) for b in batches) == 8


def _cfg(**kw) -> TrainConfig:
    base = TrainConfig(model=MODEL_CFG, batch_size=4, lr=3e-3, warmup_steps=1, val_every=1000, log_every=5,
                       embed_swap_prob=0.5)
    return replace(base, **kw)


def test_training_lowers_the_loss_and_resumes(pack, tmp_path):
    from signals.speech.tts.train import train

    out = tmp_path / "run"
    summary = train(_cfg(max_steps=42), pack.folder, out, progress=False)
    assert summary["step"] == 42
    rows = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    # full 5-step log windows only: the last row (steps 41-42) is a mean of 2 steps, too noisy to compare
    losses = [r["total"] for r in rows if "total" in r and r["step"] % 5 == 0]
    # 40 steps from random: the mel and stop terms fall first (about 11 % on the development machines; a
    # model that does not learn stays within ~1 % of its first window)
    assert losses[-1] < 0.93 * losses[0], losses
    assert (out / "best" / "state.json").is_file()
    # rerunning resumes from out/last (step 42) instead of starting over
    summary = train(_cfg(max_steps=45), pack.folder, out, progress=False)
    assert summary["step"] == 45
    assert json.loads((out / "last" / "state.json").read_text())["step"] == 45
    # the partial windows (the end of run 1, the start of run 2) are logged as means of their 2 and 3 steps,
    # not as sums over log_every (which read as a loss ~half as large)
    train_rows = {r["step"]: r["total"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())
                  if "total" in r}
    assert sorted(train_rows) == [5, 10, 15, 20, 25, 30, 35, 40, 42, 45]
    assert 0.7 < train_rows[42] / train_rows[40] < 1.4 and 0.7 < train_rows[45] / train_rows[40] < 1.4, train_rows


def test_compressed_pack_loads_and_unpacks(pack, tmp_path):
    """The device's transport form: Pack.load reads mels.u8.xz as is, and unpack_pack turns it back into
    mels.npy once (the same array), leaving a pack that loads without decompressing."""
    from signals.speech.tts.data import compress_pack, unpack_pack

    packed = compress_pack(pack.folder, tmp_path / "gpu")
    assert (packed / "mels.u8.xz").is_file() and not (packed / "mels.npy").exists()
    assert np.array_equal(Pack.load(packed).mels, pack.mels)
    unpack_pack(packed)
    assert (packed / "mels.npy").is_file() and not (packed / "mels.u8.xz").exists()
    assert np.array_equal(Pack.load(packed).mels, pack.mels)
    unpack_pack(packed)  # a second call (call 1 run again) changes nothing
    assert np.array_equal(Pack.load(packed).mels, pack.mels)


def test_prefetched_keeps_order_and_errors():
    from signals.speech.tts.train import prefetched

    rng = np.random.default_rng(0)
    draws = list(prefetched(lambda n: rng.integers(0, 1000, n), [1, 2, 3, 4, 5]))
    rng = np.random.default_rng(0)  # one worker: the shared generator is drawn in the same order as inline
    assert [d.tolist() for d in draws] == [rng.integers(0, 1000, n).tolist() for n in [1, 2, 3, 4, 5]]

    def bad(i):
        if i == 3:
            raise ValueError("utterance 3 is damaged")
        return i

    got = []
    with pytest.raises(ValueError, match="utterance 3"):
        for x in prefetched(bad, range(6)):
            got.append(x)
    assert got == [0, 1, 2]


def test_compiled_decoder_step_matches_eager():
    """--compile: the compiled step gives the eager step's outputs and gradients (inductor's CPU backend here)."""
    from signals.speech.tts.train import compile_decoder_step

    torch.manual_seed(0)
    model = Tacotron2(replace(MODEL_CFG, rnn_dropout=0.0, encoder_dropout=0.0, postnet_dropout=0.0))
    tokens = torch.randint(2, len(DEFAULT_SYMBOLS), (2, 20))
    lengths, speaker, mel = torch.tensor([20, 15]), torch.randn(2, 256), torch.randn(2, 12, 80)

    def run(tokens=tokens, lengths=lengths):
        torch.manual_seed(1)  # the prenet's dropout masks (drawn outside the step)
        model.zero_grad()
        out = model(tokens, lengths, speaker, mel)
        (out["mel_post"].pow(2).mean() + out["alignments"].pow(2).sum()).backward()
        return out, {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    (eager, g_eager), _ = run(), compile_decoder_step(model)
    compiled, g_compiled = run()
    assert "step" in vars(model)
    for k in ("mel_post", "stop", "alignments"):
        torch.testing.assert_close(compiled[k], eager[k], rtol=1e-4, atol=1e-5)
    for k in ("attention.query.weight", "attention.location_conv.weight", "attention.location_dense.weight",
              "attention_rnn.weight_hh", "decoder_rnn.weight_ih"):
        torch.testing.assert_close(g_compiled[k], g_eager[k], rtol=1e-3, atol=1e-6, msg=k)
    # a batch with another token count runs on the same dynamic-shape graphs (no recompile per length)
    with torch._dynamo.config.patch(error_on_recompile=True):
        run(torch.randint(2, len(DEFAULT_SYMBOLS), (2, 27)), torch.tensor([27, 22]))


def test_compiled_training_validates_in_eager_mode(pack, tmp_path, monkeypatch, caplog):
    """Validation never runs the compiled step (no extra compiles, no compile failure mid-run), and training
    goes back to it afterwards."""
    from signals.speech.tts import train as train_module

    calls = {"train": 0}

    def fake_compile(fn, **kwargs):
        def compiled(*args, **kw):
            assert torch.is_grad_enabled(), "validation used the compiled step"
            calls["train"] += 1
            return fn(*args, **kw)
        return compiled

    at_validation = []
    validate = train_module.validate

    def counting_validate(*args, **kwargs):
        at_validation.append(calls["train"])
        return validate(*args, **kwargs)

    monkeypatch.setattr(train_module.torch, "compile", fake_compile)
    monkeypatch.setattr(train_module, "validate", counting_validate)
    with caplog.at_level("WARNING", logger=train_module.__name__):
        summary = train_module.train(_cfg(max_steps=4, val_every=2, compile=True), pack.folder, tmp_path / "run",
                                     progress=False)
    assert summary["step"] == 4 and "continuing without torch.compile" not in caplog.text
    # validations after steps 2 and 4; steps 3 and 4 ran the compiled step again after the first one
    assert len(at_validation) == 2 and 0 < at_validation[0] < at_validation[1]


def test_location_features_unfold_equals_conv():
    """The compiled step's location features (one matmul over windows) are the conv + dense of the graphs."""
    torch.manual_seed(0)
    att = Tacotron2(MODEL_CFG).attention
    w = torch.softmax(torch.randn(3, 2, 13), -1)
    conv = att.location_features(w)
    att.location_mode = "unfold"
    torch.testing.assert_close(att.location_features(w), conv, rtol=1e-5, atol=1e-6)


def test_compile_failure_falls_back_to_eager(pack, tmp_path, monkeypatch, caplog):
    """A compiled step that fails (no working compiler, a failed recompile): the run says so once and trains on."""
    from signals.speech.tts import train as train_module

    def broken_compile(fn, **kwargs):
        calls = []

        def compiled(*args, **kw):
            calls.append(1)
            if len(calls) > 30:  # works for the first batches, then a "recompile" fails mid-run
                raise RuntimeError("BackendCompilerFailed: no C++ compiler\nlong traceback")
            return fn(*args, **kw)
        return compiled

    monkeypatch.setattr(train_module.torch, "compile", broken_compile)
    with caplog.at_level("WARNING", logger=train_module.__name__):
        summary = train_module.train(_cfg(max_steps=4, log_every=2, compile=True), pack.folder, tmp_path / "run", progress=False)
    assert summary["step"] == 4
    assert "continuing without torch.compile" in caplog.text and "no C++ compiler" in caplog.text
    assert "failed at step 0 " not in caplog.text and caplog.text.count("failed at step") == 1
    rows = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "total" in r] == [2, 4] and all(np.isfinite(r["total"]) for r in rows if "total" in r)


def test_init_from_a_folder_inherits_its_log(pack, tmp_path):
    """A run's best checkpoint exports with its step, validation row, log and curve; --init from that folder
    continues the step count and the history: the new run's log starts with the rows up to the init step
    (not a killed run's torn last line), so the next export's curve covers every run."""
    from signals.speech.tts.export import export_checkpoint
    from signals.speech.tts.train import train

    train(_cfg(max_steps=6, val_every=3), pack.folder, tmp_path / "run1", progress=False)
    with (tmp_path / "run1" / "train_log.jsonl").open("a") as f:  # a run killed mid-write
        f.write('{"step": 2, "tot')
    folder = tmp_path / "folder"
    export_checkpoint(tmp_path / "run1" / "best", folder)  # best = step 3 or 6; the curve skips the torn line
    source = json.loads((folder / "config.json").read_text())["source"]
    step0 = source["step"]
    assert step0 in (3, 6) and set(source["validation"]) >= {"post", "guided"}
    assert (folder / "train_log.jsonl").read_text() == (tmp_path / "run1" / "train_log.jsonl").read_text()
    assert (folder / "training_curve.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("encoder.onnx", "decoder.onnx", "postnet.onnx"):  # what travels to a GPU: weights + config + log
        (folder / name).unlink()
    summary = train(_cfg(max_steps=step0 + 5), pack.folder, tmp_path / "run2", init=folder, progress=False)
    assert summary["step"] == step0 + 5
    steps = [json.loads(x)["step"] for x in (tmp_path / "run2" / "train_log.jsonl").read_text().splitlines()]
    inherited = [s for s in steps if s <= step0]
    assert inherited and steps[:len(inherited)] == inherited == sorted(inherited)
    assert steps[len(inherited):] and all(s > step0 for s in steps[len(inherited):]) and steps[-1] == step0 + 5


def test_compact_checkpoint_shards_fit_the_limit(tmp_path):
    from signals.torchutils import load_compact, save_compact

    tensors = {f"w{i}": torch.randn(300, 300).half() for i in range(10)}  # 10 x 180 kB
    files = save_compact(tmp_path / "ck", tensors, {"step": 7}, prefix="weights", shard_bytes=400_000)
    state = json.loads((tmp_path / "ck" / "state.json").read_text())
    assert len(state["shards"]) == 5 and all(f.stat().st_size <= 400_000 for f in files)
    loaded, st = load_compact(tmp_path / "ck")
    assert st["step"] == 7 and torch.equal(loaded["w3"], tensors["w3"])


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """A tiny synthesizer exported as a model folder (prenet dropout off so torch and numpy loops match)."""
    from signals.speech.tts.export import export

    torch.manual_seed(0)
    model = Tacotron2(replace(MODEL_CFG, prenet_dropout=0.0)).eval()
    out = tmp_path_factory.mktemp("tts") / "tts"
    export(model, out, list(DEFAULT_SYMBOLS), source={"step": 0}, licence="Apache-2.0",
           synthesis=SynthesisConfig(max_steps_per_token=3.0, min_steps=4))
    return out


def test_export_parity_and_folder(tiny_folder):
    cfg = json.loads((tiny_folder / "config.json").read_text())
    assert cfg["kind"] == "tts" and set(cfg["graphs"]) == {"encoder", "decoder", "decoder_int8", "postnet"}
    for name, g in cfg["graphs"].items():
        assert (tiny_folder / g["file"]).is_file()
        if name == "decoder_int8":  # quantisation error, recorded: not rounding, not a broken graph
            assert 1e-4 < g["parity_max_abs_diff"] <= 1.0 and g["inputs"] == cfg["graphs"]["decoder"]["inputs"]
        else:
            assert g["parity_max_abs_diff"] <= 1e-4
    assert cfg["frontend"]["symbols"] == list(DEFAULT_SYMBOLS)


def test_int8_decoder_is_the_default_and_optional(tiny_folder, tmp_path):
    import shutil

    from signals.speech.tts.infer import SynthesizerRuntime

    assert SynthesizerRuntime.load(tiny_folder, threads=1).decoder_graph == "decoder_int8"
    assert SynthesizerRuntime.load(tiny_folder, threads=1, providers=["CPUExecutionProvider"]).decoder_graph \
        == "decoder_int8"
    rt32 = SynthesizerRuntime.load(tiny_folder, threads=1, int8=False)
    assert rt32.decoder_graph == "decoder"
    rt8 = SynthesizerRuntime.load(tiny_folder, threads=1, int8=True)
    ids, emb = rt8.ids("ðə kˈæt sˈæt."), np.random.default_rng(3).standard_normal(256).astype(np.float32)
    a, b = rt32.synthesize(ids, emb).mel, rt8.synthesize(ids, emb).mel
    n = min(a.shape[1], b.shape[1])
    assert n > 0 and 0 < np.mean(np.abs(a[:, :n] - b[:, :n])) < 0.5  # int8 rounding, not another model
    # a folder exported before the int8 graph existed: float decoder by default, a clear error when asked
    old = tmp_path / "old"
    shutil.copytree(tiny_folder, old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["graphs"]["decoder_int8"]
    (old / "config.json").write_text(json.dumps(cfg))
    (old / "decoder_int8.onnx").unlink()
    assert SynthesizerRuntime.load(old, threads=1).decoder_graph == "decoder"
    with pytest.raises(ModelError, match="no int8 decoder"):
        SynthesizerRuntime.load(old, threads=1, int8=True)


def test_numpy_decoder_loop_matches_torch(tiny_folder):
    from safetensors.torch import load_file

    from signals.speech.tts.export import fold_batchnorm
    from signals.speech.tts.infer import SynthesizerRuntime

    rt = SynthesizerRuntime.load(tiny_folder, threads=1, int8=False)
    model = Tacotron2(rt.model)
    model.load_state_dict({k: v.float() for k, v in load_file(str(tiny_folder / "model.safetensors")).items()})
    model = fold_batchnorm(model.eval())
    ids = rt.ids("ðə kˈæt sˈæt.")
    emb = np.random.default_rng(3).standard_normal(256).astype(np.float32)
    got = rt.synthesize(ids, emb)
    ref, align = model.infer(torch.tensor([ids]), torch.from_numpy(emb)[None], min_steps=rt.synthesis.min_steps,
                             max_steps=rt.synthesis.min_steps + int(rt.synthesis.max_steps_per_token * len(ids)))
    assert got.mel.shape == (80, ref.shape[1])
    assert np.max(np.abs(got.mel - ref[0].numpy().T)) < 1e-3
    assert got.alignment.shape == tuple(align.shape)


@pytest.fixture(scope="module")
def clone(tiny_folder):
    from signals.speech.tts.infer import load

    for name in ("speaker_encoder", "vocoder"):
        if not (MODELS / name / "config.json").is_file():
            pytest.skip(f"models/{name} is not in this checkout")
    return load(tiny_folder, threads=1)


def test_clone_in_process_writes_audio(clone, tiny_folder, tmp_path):
    import soundfile as sf

    from signals.cli import main

    out = tmp_path / "clone.wav"
    rc = main(["speech", "clone", "--model", str(tiny_folder), "--reference", str(EXAMPLE_VOICE),
               "--text", "Hello world. Good morning.", "--output", str(out), "--threads", "1", "--quiet"])
    assert rc == 0
    wav, sr = sf.read(out)
    assert sr == 22050 and len(wav) > 0 and np.all(np.isfinite(wav))
    emb = clone.embed([EXAMPLE_VOICE])
    result = clone.synthesize("Hello world. Good morning.", emb)
    assert [p.text for p in result.pieces] == ["Hello world.", "Good morning."]
    assert result.wav.dtype == np.float32 and result.sample_rate == 22050
    np.save(tmp_path / "emb.npy", emb)
    rc = main(["speech", "clone", "--model", str(tiny_folder), "--embedding", str(tmp_path / "emb.npy"),
               "--text", "Hi.", "--output", str(tmp_path / "e.flac"), "--quiet"])
    assert rc == 0 and (tmp_path / "e.flac").is_file()


@pytest.mark.parametrize("text, match", [("", "empty"), ("... !? --", "nothing to pronounce"),
                                         ("Привет мир", "Cyrillic")])
def test_bad_text_is_a_clear_error_and_nothing_is_written(clone, tmp_path, text, match):
    out = tmp_path / "x.wav"
    with pytest.raises(TextError, match=match):
        clone.write(text, clone.embed([EXAMPLE_VOICE]), out)
    assert list(tmp_path.iterdir()) == []


def test_long_text_is_split_and_an_interrupted_run_leaves_nothing(clone, tmp_path):
    text = " ".join(["The quick brown fox jumps over the lazy dog, and then it runs away."] * 300)
    assert len(text) > 20_000
    plan = clone.plan(text)
    assert len(plan) >= 100 and all(len(s) <= 200 for s, _ in plan)
    out = tmp_path / "long.wav"
    seen = []

    def stop_after_two(piece):
        seen.append(piece)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        clone.write(text, clone.embed([EXAMPLE_VOICE]), out, on_piece=stop_after_two)
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file


def test_bad_references_and_outputs(clone, tmp_path):
    import soundfile as sf

    from signals.cli import main

    sf.write(tmp_path / "short.wav", np.random.default_rng(0).normal(0, 0.1, 3200).astype(np.float32), 16000)
    sf.write(tmp_path / "silent.wav", np.zeros(48000, np.float32), 16000)
    with pytest.raises(AudioError, match="too short"):
        clone.embed([tmp_path / "short.wav"])
    with pytest.raises(AudioError, match="silent"):
        clone.embed([tmp_path / "silent.wav"])
    with pytest.raises(DataError, match="embedding"):
        clone.synthesize("Hello.", np.zeros(256))
    with pytest.raises(DataError, match="256"):
        clone.synthesize("Hello.", np.ones(40))
    base = ["speech", "clone", "--reference", str(EXAMPLE_VOICE), "--text", "Hi."]
    assert main([*base, "--output", str(tmp_path / "x.mp4")]) == 2
    assert main([*base, "--output", str(EXAMPLE_VOICE)]) == 2  # would overwrite the reference
    assert main([*base, "--output", str(EXAMPLE_VOICE / "x.wav")]) == 2  # the parent is a file
    assert main([*base, "--output", str(tmp_path / "x.opus")]) == 2  # Opus cannot store 22050 Hz
    assert main([*base, "--output", str(tmp_path / "x.flac"), "--float"]) == 2
    assert main([*base, "--output", str(tmp_path / "x.wav"), "--model", str(tmp_path / "missing")]) == 2
    assert main(["speech", "clone", "--text", "Hi.", "--output", str(tmp_path / "x.wav")]) == 2
    assert not (tmp_path / "x.wav").exists()


def test_references_need_speech_and_outputs_are_atomic(clone, tiny_folder, tmp_path, capsys):
    """Noise or too little speech is no voice to clone; --overwrite replaces an input only when complete."""
    import soundfile as sf

    from signals.cli import main
    from signals.errors import OutputError
    from signals.speech.tts.infer import check_output_path

    rng = np.random.default_rng(0)
    sf.write(tmp_path / "noise.wav", (0.1 * rng.standard_normal(64000)).astype(np.float32), 16000)
    with pytest.raises(AudioError, match=r"noise\.wav: only .* s of speech"):
        clone.embed([tmp_path / "noise.wav"])
    wav, sr = sf.read(EXAMPLE_VOICE, dtype="float32")
    with pytest.raises(AudioError, match="s of speech"):
        clone.embed_audio(wav[: int(0.6 * sr)], sr, name="short")
    sf.write(tmp_path / "short.wav", wav[: int(1.5 * sr)], sr)
    _, warnings = clone.embed_info([tmp_path / "short.wav"])
    assert len(warnings) == 1 and "low confidence" in warnings[0]
    with pytest.raises(OutputError, match="also an input"):
        check_output_path(EXAMPLE_VOICE, [EXAMPLE_VOICE])
    # an existing output survives a failed run untouched
    out = tmp_path / "keep.wav"
    out.write_bytes(b"old")
    with pytest.raises(TextError):
        clone.write("", clone.embed([EXAMPLE_VOICE]), out)
    assert out.read_bytes() == b"old"
    # the CLI: output = reference only with --overwrite, then the reference becomes the clone
    ref = tmp_path / "ref.wav"
    ref.write_bytes(EXAMPLE_VOICE.read_bytes())
    base = ["speech", "clone", "--model", str(tiny_folder), "--reference", str(ref), "--text", "Hi.", "--quiet",
            "--threads", "1", "--output", str(ref)]
    assert main(base) == 2 and ref.read_bytes() == EXAMPLE_VOICE.read_bytes()
    capsys.readouterr()
    assert main([*base, "--overwrite"]) == 0
    assert sf.info(str(ref)).samplerate == 22050
    assert sorted(x.name for x in tmp_path.iterdir()) == ["keep.wav", "noise.wav", "ref.wav", "short.wav"]
    assert main(["speech", "clone", "--model", str(tiny_folder), "--reference", str(tmp_path / "short.wav"),
                 "--text", "Hi.", "--quiet", "--output", str(tmp_path / "s.wav")]) == 0
    assert "signals: warning:" in capsys.readouterr().err


def test_missing_or_wrong_model_folder(tmp_path, tiny_folder):
    from signals.speech.tts.infer import SynthesizerRuntime

    with pytest.raises(ModelError):
        SynthesizerRuntime.load(tmp_path / "nowhere")
    if (MODELS / "vocoder" / "config.json").is_file():
        with pytest.raises(SignalsError):
            SynthesizerRuntime.load(MODELS / "vocoder")  # another kind of model


@pytest.mark.slow
def test_torchrun_ddp_two_processes(pack, tmp_path):
    """``torchrun --nproc_per_node=2 -m signals.speech.tts.train`` (Gloo on CPU) through the same entry point."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29519",
           "-m", "signals.speech.tts.train", "--data", str(pack.folder), "--out", str(out), "--tiny",
           "--max-steps", "4", "--batch-size", "2", "--val-every", "100", "--device", "cpu", "--quiet"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    state = json.loads((out / "last" / "state.json").read_text())
    assert state["step"] == 4


def test_device_script_brings_back_best_and_last_in_eight_files(pack, tmp_path):
    """scripts/device_tts.sh train: what a lent GPU call returns (at most 8 files) - best/ and, when it is a
    different step, last/ (weight shards, byte for byte), with both state.json files, the log and the console
    output in one logs.tar.gz; the package is found without being installed (PYTHONPATH)."""
    import os
    import subprocess
    import sys
    import tarfile

    from signals.speech.tts.train import train

    run = tmp_path / "run"
    train(_cfg(max_steps=4, val_every=4), pack.folder, run, progress=False)  # best = last = step 4
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
        "OUT": str(out), "TTS_DATA": str(pack.folder), "TTS_RUN": str(run), "TTS_BATCH": "4",
        "PYTHON": sys.executable}
    # two steps at a learning rate of 5 make the validation loss worse: best stays at 4, last moves to 6
    proc = subprocess.run(["bash", str(REPO / "scripts" / "device_tts.sh"), "train", "60", "--tiny", "--max-steps",
                           "6", "--val-every", "1000", "--lr", "5", "--device", "cpu"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(files) <= 8 and "logs.tar.gz" in files, files
    with tarfile.open(out / "logs.tar.gz") as tar:
        tar.extractall(out, filter="data")
    assert {"train.out", "train_log.jsonl", "best/state.json"} <= {
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    steps = {ck: json.loads((run / ck / "state.json").read_text())["step"] for ck in ("best", "last")}
    assert steps["last"] == 6
    returned = ["best", "last"] if steps["best"] != steps["last"] else ["best"]
    assert sorted({f.split("/")[0] for f in files if "/" in f}) == returned
    for ck in returned:
        assert json.loads((out / ck / "state.json").read_text())["step"] == steps[ck]
        for shard in (run / ck).glob("*.safetensors"):
            assert (out / ck / shard.name).read_bytes() == shard.read_bytes()


def test_int8_export_keeps_the_quantiser_quiet(tiny_folder, tmp_path, caplog):
    """onnxruntime's quantiser logs one root-logger INFO line per unquantised tensor (~40 for the real
    decoder step); under a CLI logging at INFO they buried the export's report. Errors would still show."""
    import logging

    from signals.export import quantize_dynamic_int8

    caplog.set_level(logging.INFO)
    quantize_dynamic_int8(tiny_folder / "decoder.onnx", tmp_path / "decoder_int8.onnx")
    assert (tmp_path / "decoder_int8.onnx").stat().st_size > 0
    assert not [r for r in caplog.records if r.name == "root"], [r.getMessage() for r in caplog.records][:3]
    assert logging.getLogger().level == logging.INFO  # restored


def test_speaker_consistency_loss_tells_voices_apart_and_has_gradients():
    """The frozen GE2E encoder reads the synthesizer's mel through a fixed conversion: the same mel scores ~0,
    another voice's mel scores higher, and the prediction gets a gradient (the encoder's weights none)."""
    from signals.speech.audio import load_audio
    from signals.speech.features import VOCODER_MEL, mel_numpy
    from signals.speech.tts.speaker_loss import load_speaker_loss

    loss = load_speaker_loss(str(MODELS / "speaker_encoder"), torch.device("cpu"))
    examples = REPO / "examples" / "speech"
    mels = [mel_numpy(load_audio(examples / f"{name}.wav", sample_rate=22050)[0], VOCODER_MEL).T
            for name in ("voice_a_1", "voice_a_2", "voice_b_1", "voice_b_2")]
    t = max(len(m) for m in mels)
    batch = torch.full((4, t, 80), float(np.log(1e-5)))
    for i, m in enumerate(mels):
        batch[i, : len(m)] = torch.from_numpy(m)
    lengths = torch.tensor([len(m) for m in mels])
    assert float(loss(batch, batch, lengths)) < 1e-4
    swapped = [2, 3, 0, 1]  # each prediction in the other voice
    other = float(loss(batch[swapped], batch, torch.minimum(lengths, lengths[swapped])))
    same_voice = float(loss(batch[[1, 0, 3, 2]], batch, torch.minimum(lengths, lengths[[1, 0, 3, 2]])))
    assert other > same_voice + 0.05, (other, same_voice)
    pred = batch.clone().requires_grad_(True)
    loss(pred + 0.3 * torch.randn_like(pred), batch, lengths).backward()
    assert pred.grad is not None and float(pred.grad.norm()) > 0
    assert all(p.grad is None for p in loss.encoder.parameters())
    # the encoder input the conversion makes: 40 bands at 10 ms, from 80 bands at 11.6 ms
    conv = loss.convert(batch[:1, :100])
    assert conv.shape == (1, int(loss.convert.n_frames(torch.tensor(100))), 40) and conv.shape[1] == 115  # 99 hops of 11.6 ms = 114.9 hops of 10 ms
    assert float(conv.min()) >= 0


def test_training_with_the_speaker_loss_logs_it(pack, tmp_path):
    from signals.speech.tts.train import train

    out = tmp_path / "run"
    cfg = _cfg(max_steps=4, val_every=4, log_every=2, speaker_weight=0.5,
               speaker_encoder=str(MODELS / "speaker_encoder"))
    train(cfg, pack.folder, out, progress=False)
    rows = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "total" in r]
    val_rows = [r["val"] for r in rows if "val" in r]
    assert train_rows and all(0 <= r["speaker"] <= 2 for r in train_rows)
    assert val_rows and "speaker" in val_rows[-1]
    state = json.loads((out / "last" / "state.json").read_text())
    assert state["train"]["speaker_weight"] == 0.5
    # a missing encoder folder is a clear error when the loss is asked for, and no error when it is not
    with pytest.raises(ModelError, match="not found"):
        train(replace(cfg, speaker_encoder=str(tmp_path / "nowhere")), pack.folder, tmp_path / "run2", progress=False)
    assert not (tmp_path / "run2" / "last").exists()


def test_validation_reports_the_speaker_metric_without_training_on_it(pack, tmp_path, monkeypatch):
    from signals.speech.tts.train import train

    train(_cfg(max_steps=2, val_every=2), pack.folder, tmp_path / "run", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert "speaker" in rows[-1]["val"] and not any("speaker" in r for r in rows if "total" in r)
    monkeypatch.setenv("SIGNALS_MODELS", str(tmp_path / "none"))
    monkeypatch.setattr("signals.modelfolder.REPO_MODELS", tmp_path / "none")
    train(_cfg(max_steps=2, val_every=2), pack.folder, tmp_path / "run2", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run2" / "train_log.jsonl").read_text().splitlines()]
    assert "speaker" not in rows[-1]["val"]


def test_streamed_audio_is_the_same_signal_and_starts_early(clone):
    """stream_audio vocodes decoder frames as they arrive (postnet and vocoder each with their receptive field
    of context): the chunks join into synthesize()'s signal, and the first one comes before the decoder is done."""
    import dataclasses

    class Counting:
        def __init__(self, session):
            self.session, self.calls = session, 0

        def run(self, *args, **kwargs):
            self.calls += 1
            return self.session.run(*args, **kwargs)

    emb = clone.embed([EXAMPLE_VOICE])
    text = "Hello world, this is a test. Good morning."
    whole = clone.synthesize(text, emb)
    chunks = list(clone.stream_audio(text, emb, first_chunk_frames=4))
    assert len(chunks) > 3 and all(c.dtype == np.float32 for c in chunks)
    joined = np.concatenate(chunks)
    assert joined.shape == whole.wav.shape and float(np.max(np.abs(joined - whole.wav))) < 1e-4
    counting = Counting(clone.synthesizer.decoder)
    rt = dataclasses.replace(clone, synthesizer=dataclasses.replace(clone.synthesizer, decoder=counting))
    stream = rt.stream_audio(text, emb, first_chunk_frames=4)
    first = next(stream)
    steps_before_first = counting.calls
    rest = list(stream)
    assert len(first) == 4 * clone.vocoder.hop and steps_before_first < counting.calls, (steps_before_first, counting.calls)
    assert np.array_equal(np.concatenate([first, *rest]), joined)
    with pytest.raises(ValueError, match="first_chunk_frames"):
        next(clone.stream_audio(text, emb, first_chunk_frames=0))


def test_clone_output_raw_streams_pcm_to_stdout(clone, tiny_folder, capsysbinary, monkeypatch):
    """--output-raw: headerless 16-bit PCM on stdout (what a player reads), the same samples as synthesize;
    the summary on stderr; without a destination, or with both, a clear error."""
    from signals.cli import main

    text = "Hello world. Good morning."
    rc = main(["speech", "clone", "--model", str(tiny_folder), "--reference", str(EXAMPLE_VOICE), "--text", text,
               "--output-raw", "--threads", "1", "--quiet"])
    out, err = capsysbinary.readouterr()
    assert rc == 0 and b"streamed" in err and b"16-bit PCM" in err
    got = np.frombuffer(out, dtype="<i2")
    want = clone.synthesize(text, clone.embed([EXAMPLE_VOICE])).wav
    assert len(got) == len(want)
    assert np.max(np.abs(got.astype(np.int32) - np.round(np.clip(want, -1, 1) * 32767).astype(np.int32))) <= 1
    for extra in ([], ["--output-raw", "--output", "x.wav"]):
        rc = main(["speech", "clone", "--model", str(tiny_folder), "--reference", str(EXAMPLE_VOICE), "--text", text,
                   "--quiet", *extra])
        _, err = capsysbinary.readouterr()
        assert rc != 0 and b"exactly one of --output FILE or --output-raw" in err
    # binary audio is never written to a terminal
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    rc = main(["speech", "clone", "--model", str(tiny_folder), "--reference", str(EXAMPLE_VOICE), "--text", text,
               "--output-raw", "--quiet"])
    out, err = capsysbinary.readouterr()
    assert rc != 0 and out == b"" and b"pipe it into a player" in err


def test_postfilter_trains_exports_and_runs_in_the_loop_and_the_stream(tiny_folder, pack, tmp_path):
    """The speaker-conditioned post-filter: trained on the frozen synthesizer's teacher-forced output, exported
    into (a copy of) the folder, applied by the runtime after the post-net (also when streaming: the chunks
    still join into synthesize()'s signal), skippable, and a clear error when asked for and absent."""
    import shutil

    from signals.speech.tts.infer import SynthesizerRuntime, load
    from signals.speech.tts.postfilter import PostFilterTrainConfig, export_postfilter, train_postfilter

    for name in ("speaker_encoder", "vocoder"):
        if not (MODELS / name / "config.json").is_file():
            pytest.skip(f"models/{name} is not in this checkout")
    folder = tmp_path / "tts"
    shutil.copytree(tiny_folder, folder)
    plain = PostFilterTrainConfig(utterances=8, seconds=3, batch_size=4, crop_frames=16, adversarial_weight=0.0,
                                  feature_matching_weight=0.0)  # L1 + MSE only (the GAN term: the next test)
    pf, info = train_postfilter(folder, pack.folder, plain, progress=False)
    assert info["steps"] > 5 and info["loss_last_200"] < info["unfiltered_last_200"]  # it fits the target better
    graph = export_postfilter(pf, folder, info)
    assert graph.parity_max_abs_diff is not None and graph.parity_max_abs_diff < 1e-4
    cfg = json.loads((folder / "config.json").read_text())
    assert "postfilter" in cfg["graphs"] and cfg["source"]["postfilter"]["receptive_field"] == pf.receptive_field

    with_pf = SynthesizerRuntime.load(folder, threads=1, int8=False)
    without = SynthesizerRuntime.load(folder, threads=1, int8=False, postfilter=False)
    assert with_pf.postnet_context == without.postnet_context + pf.receptive_field
    ids = with_pf.ids("ðə kˈæt sˈæt.")
    emb = np.random.default_rng(3).standard_normal(256).astype(np.float32)
    a, b = with_pf.synthesize(ids, emb), without.synthesize(ids, emb)
    assert a.mel.shape == b.mel.shape and float(np.max(np.abs(a.mel - b.mel))) > 1e-4
    with torch.no_grad():
        want = pf(torch.from_numpy(b.mel.T)[None], torch.from_numpy(emb)[None])[0].numpy().T
    assert float(np.max(np.abs(a.mel - want))) < 1e-3
    with pytest.raises(ModelError, match="no post-filter"):
        SynthesizerRuntime.load(tiny_folder, threads=1, postfilter=True)

    clone = load(folder, threads=1)
    voice = clone.embed([EXAMPLE_VOICE])
    text = "Hello world, this is a test. Good morning."
    whole = clone.synthesize(text, voice).wav
    joined = np.concatenate(list(clone.stream_audio(text, voice, first_chunk_frames=4)))
    assert joined.shape == whole.shape and float(np.max(np.abs(joined - whole))) < 1e-4


def test_postfilter_adversarial_term_and_teacher_forced_cache(tiny_folder, pack, tmp_path, monkeypatch):
    """The GAN option trains a discriminator beside the filter (its losses are reported, the filter still fits
    the target better than the synthesizer alone), and the teacher-forced cache is reused for the same
    synthesizer and subset, recomputed (not used) for another subset."""
    import signals.speech.tts.postfilter as pfmod
    from signals.speech.tts.postfilter import PostFilterTrainConfig, train_postfilter

    calls = []
    real = pfmod.teacher_forced_outputs
    monkeypatch.setattr(pfmod, "teacher_forced_outputs", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = tmp_path / "cache.npz"
    cfg = PostFilterTrainConfig(utterances=8, seconds=3, batch_size=4, crop_frames=16, adversarial_weight=0.2,
                                feature_matching_weight=0.2, disc_channels=4)
    _, info = train_postfilter(tiny_folder, pack.folder, cfg, progress=False, cache=cache)
    assert cache.is_file() and len(calls) == 1
    assert info["steps"] > 3 and info["loss_last_200"] < info["unfiltered_last_200"]
    assert info["generator_adversarial_last_200"] > 0 and info["discriminator_last_200"] > 0

    _, again = train_postfilter(tiny_folder, pack.folder, replace(cfg, seconds=1), progress=False, cache=cache)
    assert len(calls) == 1 and again["cache_seconds"] < info["cache_seconds"] + 1  # read back, not recomputed
    train_postfilter(tiny_folder, pack.folder, replace(cfg, seconds=1, utterances=6), progress=False, cache=cache)
    assert len(calls) == 2  # another subset: recomputed
    cache.write_bytes(b"not an npz")  # a corrupt cache is recomputed and rewritten, not a crash
    train_postfilter(tiny_folder, pack.folder, replace(cfg, seconds=1), progress=False, cache=cache)
    assert len(calls) == 3 and np.load(cache)["lengths"].shape == (8,)
