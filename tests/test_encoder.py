"""GE2E speaker encoder: EER, GE2E loss, partials, export parity, torch-free runtime, data, train/resume."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from signals.errors import DataError
from signals.modelfolder import REPO_MODELS
from signals.speech.encoder.data import GE2ESampler, find_utterances, split_halves, split_speakers
from signals.speech.encoder.frontend import FrontEnd, mean_embedding, partial_mels, partial_slices
from signals.speech.encoder.metrics import equal_error_rate, pair_scores, plot_scores, roc

SHIPPED = REPO_MODELS / "speaker_encoder"

# --- EER on known score sets ---------------------------------------------------------------------------


def test_eer_hand_computed():
    # Accepting at >= 0.7 admits 0.9, 0.8 (targets) and 0.7 (non-target): FAR 1/3, and rejects
    # 0.3 (target): FRR 1/3. Both rates are equal exactly there.
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    r = equal_error_rate(scores, labels)
    assert r.eer == pytest.approx(1 / 3) and r.threshold == pytest.approx(0.7)


def test_eer_interpolates_between_roc_points():
    # 2 targets, 2 non-targets interleaved: the ROC steps FAR 0 -> 0.5 while FRR is 0.5, so the
    # curves cross halfway along the segment from (FAR 0, FRR .5) to (FAR .5, FRR .5)?  No: the
    # crossing is where FAR = FRR = 0.5, reached exactly at threshold 0.6.
    r = equal_error_rate(np.array([0.8, 0.4, 0.6, 0.2]), np.array([1, 1, 0, 0], bool))
    assert r.eer == pytest.approx(0.5) and r.threshold == pytest.approx(0.6)
    # Interpolation proper: FRR-FAR goes from +1/3 to -1/3 across one step; the EER is the midpoint.
    s = np.array([3.0, 2.0, 1.0, 2.5, 0.5, 0.0])  # targets 3, 2, 1; non-targets 2.5, 0.5, 0
    y = np.array([1, 1, 1, 0, 0, 0], bool)
    far, frr, thr = roc(s, y)
    assert far[0] == 0 and frr[0] == 1 and far[-1] == 1 and frr[-1] == 0
    r = equal_error_rate(s, y)
    assert r.eer == pytest.approx(1 / 3)


def test_eer_gaussian_scores_match_theory():
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    n = 200_000
    scores = np.r_[rng.normal(1.0, 1.0, n), rng.normal(-1.0, 1.0, n)]
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    r = equal_error_rate(scores, labels)
    assert r.eer == pytest.approx(norm.cdf(-1.0), abs=3e-3)  # 15.87 %
    assert r.threshold == pytest.approx(0.0, abs=0.02)


def test_eer_perfect_and_inverted_and_ties():
    y = np.array([1, 1, 0, 0], bool)
    assert equal_error_rate(np.array([0.9, 0.8, 0.2, 0.1]), y).eer == pytest.approx(0.0)
    assert equal_error_rate(np.array([0.1, 0.2, 0.8, 0.9]), y).eer == pytest.approx(1.0)
    assert equal_error_rate(np.full(4, 0.5), y).eer == pytest.approx(0.5)  # all tied: no information
    with pytest.raises(ValueError, match="both target and non-target"):
        equal_error_rate(np.ones(3), np.ones(3, bool))


def test_eer_agrees_with_brute_force():
    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(size=300), 2)  # rounding makes ties
    labels = rng.random(300) < 0.3
    scores[labels] += 0.8
    r = equal_error_rate(scores, labels)
    # Brute force over all thresholds: FAR and FRR bracket the EER at the crossing.
    far = np.array([(scores[~labels] >= t).mean() for t in np.unique(scores)])
    frr = np.array([(scores[labels] < t).mean() for t in np.unique(scores)])
    i = np.flatnonzero(far <= frr)[0]  # first (lowest) threshold where FAR <= FRR
    lo, hi = sorted([max(far[i], frr[i]), min(far[i - 1], frr[i - 1])])
    assert lo - 1e-9 <= r.eer <= hi + 1e-9


def test_pair_scores_and_plot(tmp_path):
    e = np.eye(4, dtype=np.float32)[[0, 0, 1, 2]] * 3  # unnormalised on purpose
    s, y = pair_scores(e, ["a", "a", "b", "c"])
    assert len(s) == 6 and y.sum() == 1 and s[y][0] == pytest.approx(1.0) and np.allclose(s[~y], 0)
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(0.8, 0.1, 50), rng.normal(0.5, 0.1, 500)]
    labels = np.r_[np.ones(50, bool), np.zeros(500, bool)]
    png = plot_scores(scores, labels, equal_error_rate(scores, labels), tmp_path / "det.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_snorm_removes_per_utterance_offsets():
    from signals.speech.encoder.metrics import snorm_pair_scores

    # 40 speakers x 2 utterances. Every utterance leans towards a common "hub" direction by a different
    # amount, which shifts all its raw cosines together; S-norm against a disjoint cohort removes the shift.
    rng = np.random.default_rng(0)
    d, hub = 64, np.eye(64)[0]

    def utterances(n_spk):
        e = np.repeat(rng.standard_normal((n_spk, d)), 2, axis=0) + 0.8 * rng.standard_normal((2 * n_spk, d))
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        return e + rng.uniform(0, 2, size=(2 * n_spk, 1)) * hub

    trial, cohort = utterances(40), utterances(60)
    names = [f"s{i // 2}" for i in range(80)]
    raw = equal_error_rate(*pair_scores(trial, names)).eer
    s, y = snorm_pair_scores(trial, names, cohort)
    assert len(s) == 80 * 79 // 2 and y.sum() == 40
    assert raw > 0.15 and equal_error_rate(s, y).eer < 0.03  # measured: 0.24 -> 0.002
    with pytest.raises(ValueError, match="cohort of at least 2"):
        snorm_pair_scores(trial, names, cohort[:1])


def test_snorm_hand_computed():
    from signals.speech.encoder.metrics import cohort_stats, snorm, snorm_pair_scores

    # 2-D unit vectors: the cosine of angles is easy to write down. Cohort at 0, 90, 180 and 270 degrees.
    cohort = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], float)
    a = np.array([[1.0, 0.0]])  # cosines with the cohort: 1, 0, -1, 0 -> mean 0, std sqrt(1/2)
    b = np.array([[0.6, 0.8]])  # cosines: .6, .8, -.6, -.8 -> mean 0, std sqrt(.5)
    mu, sd = cohort_stats(np.r_[a, b] * 5, cohort)  # lengths do not matter
    np.testing.assert_allclose(mu, [0, 0], atol=1e-12)
    np.testing.assert_allclose(sd, [np.sqrt(0.5), np.sqrt(0.5)])
    # cos(a, b) = 0.6 -> ((0.6 - 0) / .7071 + (0.6 - 0) / .7071) / 2 = 0.8485
    assert snorm(0.6, mu[0], sd[0], mu[1], sd[1]) == pytest.approx(0.6 / np.sqrt(0.5))
    s, y = snorm_pair_scores(np.r_[a, b], ["x", "y"], cohort)
    assert s[0] == pytest.approx(0.6 / np.sqrt(0.5)) and not y[0]
    # Leave-own-speaker-out: rows of the embedding's own speaker are dropped from its statistics only.
    rows = ["x", "y", "z", "z"]  # cohort row 0 is speaker x, row 1 speaker y
    mu2, sd2 = cohort_stats(np.r_[a, b], cohort, ["x", "y"], rows)
    for k, keep in enumerate([[1, 2, 3], [0, 2, 3]]):
        c = (np.r_[a, b][k] @ cohort[keep].T)
        assert mu2[k] == pytest.approx(c.mean()) and sd2[k] == pytest.approx(c.std())
    s2, _ = snorm_pair_scores(np.r_[a, b], ["x", "y"], cohort, rows)
    assert s2[0] == pytest.approx(snorm(0.6, mu2[0], sd2[0], mu2[1], sd2[1]))
    with pytest.raises(ValueError, match="after leaving out"):
        cohort_stats(a, cohort[:3], ["x"], ["x", "x", "y"])
    with pytest.raises(ValueError, match="dimensions"):
        cohort_stats(np.ones((1, 3)), cohort)


def test_decisions_at_threshold():
    from signals.speech.encoder.metrics import decisions_at

    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.75])
    labels = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    d = decisions_at(scores, labels, 0.7)  # accepts 0.9, 0.8 (right), 0.7 and 0.75 (wrong); rejects 0.3 (wrong)
    assert (d.false_accepts, d.false_rejects, d.n_target, d.n_nontarget) == (2, 1, 3, 4)
    assert d.far == pytest.approx(0.5) and d.frr == pytest.approx(1 / 3) and d.accuracy == pytest.approx(4 / 7)


# --- partials, the same as Resemblyzer's --------------------------------------------------------------


def test_partial_slices():
    assert partial_slices(8000) == [slice(0, 160)]  # short: one zero-padded partial
    s = partial_slices(16000 * 10)
    assert all(x.stop - x.start == 160 for x in s)
    assert [x.start for x in s[:3]] == [0, 77, 154]  # 1.3 partials per second
    assert s[-1].stop * 160 >= 16000 * 10 * 0.9
    mels = partial_mels(np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32) * 0.1)
    assert mels.shape == (len(partial_slices(48000)), 160, 40) and mels.dtype == np.float32


def test_partial_slices_match_resemblyzer():
    pytest.importorskip("resemblyzer")
    from resemblyzer import VoiceEncoder

    for n in [1, 100, 15999, 16000, 25600, 25601, 33000, 48000, 160123, 480000]:
        _, ref = VoiceEncoder.compute_partial_slices(n, 1.3, 0.75)
        assert partial_slices(n) == ref, n


def test_mean_embedding_is_unit():
    e = mean_embedding(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    np.testing.assert_allclose(e, [2**-0.5, 2**-0.5], rtol=1e-6)


# --- model and GE2E loss ----------------------------------------------------------------------------


def test_model_forward_and_ge2e_loss():
    torch = pytest.importorskip("torch")
    from signals.speech.encoder.config import EncoderConfig
    from signals.speech.encoder.model import SpeakerEncoder, ge2e_loss

    torch.manual_seed(0)
    m = SpeakerEncoder(EncoderConfig(hidden_size=32, embedding_size=16, num_layers=2))
    e = m(torch.rand(6, 50, 40))
    assert e.shape == (6, 16) and torch.all(e >= 0)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(6))

    # Reference: the paper's loss written as plain loops.
    emb = torch.nn.functional.normalize(torch.randn(4, 3, 8), dim=-1)
    w, b = torch.tensor([10.0]), torch.tensor([-5.0])
    total = 0.0
    for j in range(4):
        for i in range(3):
            sims = []
            for k in range(4):
                others = emb[k] if k != j else torch.cat([emb[k, :i], emb[k, i + 1:]])
                c = torch.nn.functional.normalize(others.mean(0), dim=0)
                sims.append(w * torch.dot(emb[j, i], c) + b)
            sims = torch.cat(sims)
            total = total - (sims[j] - torch.logsumexp(sims, 0))
    torch.testing.assert_close(ge2e_loss(emb, w, b), total / 12)
    # Clustered embeddings (each speaker near its own direction) give a far lower loss.
    centers = torch.nn.functional.normalize(torch.randn(4, 1, 8), dim=-1)
    clustered = torch.nn.functional.normalize(centers + 0.05 * torch.randn(4, 3, 8), dim=-1)
    assert ge2e_loss(clustered, w, b) < ge2e_loss(emb, w, b) - 0.5


def test_export_parity_dynamic_axes(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from signals.export import compare
    from signals.modelfolder import ModelFolder
    from signals.speech.encoder.config import EncoderConfig
    from signals.speech.encoder.export import Exported, write_model_folder
    from signals.speech.encoder.model import SpeakerEncoder

    torch.manual_seed(0)
    m = SpeakerEncoder(EncoderConfig(hidden_size=48, embedding_size=32, num_layers=2)).eval()
    cfg = write_model_folder(m, tmp_path, {"type": "test"})
    graph = cfg.graphs["encoder"]
    assert graph.parity_max_abs_diff < 1e-5 and graph.inputs == {"mels": ("batch", "frames", 40)}
    sess = ModelFolder.load(tmp_path, "speaker_encoder").session("encoder", providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["mels"] and [o.name for o in sess.get_outputs()] == ["embeddings"]
    for shape in [(1, 20, 40), (7, 333, 40)]:
        x = np.random.default_rng(1).random(shape, dtype=np.float32)
        assert compare(Exported(m), tmp_path / graph.file, ["mels"], ["embeddings"], [[x]]) <= 1e-5


def test_shipped_model_onnx_matches_safetensors(librispeech_root):
    torch = pytest.importorskip("torch")
    from signals.speech.audio import load_audio
    from signals.speech.encoder.export import load_model
    from signals.speech.encoder.infer import EncoderRuntime

    rt = EncoderRuntime.load(SHIPPED, threads=1)
    m = load_model(rt.folder)
    wav, sr = load_audio(librispeech_root / "train-clean-100" / "1034-121119-0000.flac")
    mels = partial_mels(rt.preprocess(wav, sr), rt.front)
    with torch.inference_mode():
        ref = m(torch.from_numpy(mels)).numpy()
    np.testing.assert_allclose(rt.run(mels), ref, atol=1e-5)


# --- runtime ---------------------------------------------------------------------------------------


def test_runtime_is_torch_free_and_batches_files(librispeech_root):
    files = sorted((librispeech_root / "train-clean-100").glob("*.flac"))[:3]
    code = (
        "import sys, numpy as np\n"
        "from signals.speech.encoder.infer import load\n"
        "enc = load(threads=1)\n"
        f"files = {[str(f) for f in files]!r}\n"
        "E = enc.embed_files(files)\n"
        "one = np.stack([enc.embed_file(f) for f in files])\n"
        "assert E.shape == (3, 256) and np.allclose(np.linalg.norm(E, axis=1), 1, atol=1e-5)\n"
        "assert np.abs(E - one).max() < 1e-5, np.abs(E - one).max()\n"
        "r = enc.verify(files[0], files[1])\n"  # S-norm against the shipped cohort: numpy only as well
        "assert r.method == 's-norm' and r.snorm is not None, r\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_runtime_input_errors(tmp_path):
    from signals.errors import AudioError, ModelError
    from signals.speech.encoder.infer import EncoderRuntime as Runtime

    enc = Runtime.load(threads=1)
    with pytest.raises(AudioError, match="too short"):
        enc.embed_utterance(np.full(1000, 0.1, np.float32), 16000, name="short.wav")
    with pytest.raises(AudioError, match="silent"):
        enc.embed_utterance(np.zeros(16000, np.float32), 16000, name="zeros.wav")
    with pytest.raises(AudioError, match="mono"):
        enc.embed_utterance(np.full((2, 16000), 0.1, np.float32), 16000)
    with pytest.raises(ModelError, match="not a model folder"):
        Runtime.load(tmp_path)


def _model_copy(tmp_path, cohort: bool):
    """The shipped model folder in ``tmp_path`` (large files linked), with or without its S-norm cohort."""
    import json
    import shutil

    src, dst = SHIPPED, tmp_path / ("with" if cohort else "without")
    dst.mkdir()
    for f in src.iterdir():
        if f.is_file() and f.name != "config.json" and (cohort or f.name != "cohort.npy"):
            if f.suffix in {".onnx", ".safetensors"}:
                (dst / f.name).symlink_to(f)
            else:
                shutil.copy(f, dst / f.name)
    cfg = json.loads((src / "config.json").read_text())
    if not cohort:
        cfg["files"].pop("cohort")
        cfg["runtime"] = {"threshold": cfg["runtime"]["threshold"]}
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_shipped_cohort_is_disjoint_from_test_speakers_and_matches_config():
    import hashlib

    from signals.modelfolder import ModelFolder

    mf = ModelFolder.load(SHIPPED, "speaker_encoder")
    info, rows = mf.config.source["cohort"], mf.config.runtime["cohort_speakers"]
    path = mf.file(mf.config.files["cohort"])
    cohort = np.load(path)
    assert cohort.dtype == np.float32 and cohort.shape == tuple(info["shape"]) and cohort.shape[1] == 256
    assert path.stat().st_size < 1_000_000
    np.testing.assert_allclose(np.linalg.norm(cohort, axis=1), 1, atol=1e-5)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"]
    # the S-norm threshold belongs to this cohort
    assert mf.metrics()["calibration"]["snorm"]["cohort_sha256"] == info["sha256"]
    assert mf.config.runtime["snorm_threshold"] == mf.metrics()["calibration"]["snorm"]["threshold"]
    test = set((SHIPPED / "splits" / "test_speakers.txt").read_text().split())
    listed = set((SHIPPED / "splits" / "cohort_speakers.txt").read_text().split())
    assert len(rows) == len(cohort) and set(rows) == listed and not set(rows) & test


def test_verify_with_and_without_cohort(tmp_path, librispeech_root):
    from signals.errors import ModelError
    from signals.speech.audio import load_audio, write_audio
    from signals.speech.encoder.infer import EncoderRuntime as Runtime

    files = sorted((librispeech_root / "train-clean-100").glob("*.flac"))[:2]
    wav, sr = load_audio(files[0])
    a = write_audio(tmp_path / "a.wav", wav[: len(wav) // 2], sr)
    b = write_audio(tmp_path / "b.wav", wav[len(wav) // 2 :], sr)
    with_c = Runtime.load(_model_copy(tmp_path, cohort=True), threads=1)
    without = Runtime.load(_model_copy(tmp_path, cohort=False), threads=1)
    assert without.cohort is None and with_c.cohort is not None
    for x, y, same in [(a, b, True), (a, files[1], False)]:
        r = with_c.verify(x, y)
        e_x, e_y = with_c.embed_files([x, y])
        # The S-norm score recomputed here from the embeddings and the cohort file.
        cx, cy = with_c.cohort @ e_x, with_c.cohort @ e_y
        cos = float(e_x @ e_y)
        want = 0.5 * ((cos - cx.mean()) / cx.std() + (cos - cy.mean()) / cy.std())
        assert r.method == "s-norm" and r.snorm == pytest.approx(want, abs=1e-4) and r.score == r.snorm
        assert r.cosine == pytest.approx(cos, abs=1e-5) and r.threshold == pytest.approx(with_c.snorm_threshold)
        assert r.same is same
        raw = with_c.verify(x, y, raw=True)
        plain = without.verify(x, y)
        for q in (raw, plain):
            assert q.method == "cosine" and q.score == pytest.approx(cos, abs=1e-5)
            assert q.threshold == pytest.approx(with_c.threshold) and q.same is same
        assert plain.snorm is None and raw.snorm == pytest.approx(r.snorm)
    assert with_c.verify(a, b, threshold=1e6).same is False  # an explicit threshold applies to the S-norm score
    (tmp_path / "x").mkdir()
    broken = _model_copy(tmp_path / "x", cohort=True)
    (broken / "cohort.npy").unlink()
    with pytest.raises(ModelError, match="cohort.npy is missing"):
        Runtime.load(broken, threads=1)
    np.save(broken / "cohort.npy", np.ones((3, 7), np.float32))
    with pytest.raises(ModelError, match=r"expected a cohort of at least 2 embeddings \[K, 256\]"):
        Runtime.load(broken, threads=1)


# --- data -----------------------------------------------------------------------------------------


def test_find_utterances_layouts(tmp_path):
    from signals.speech.audio import write_audio

    tone = (0.1 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    write_audio(tmp_path / "a" / "s1" / "x.wav", tone, 16000)
    write_audio(tmp_path / "a" / "s1" / "y.flac", tone, 16000)
    write_audio(tmp_path / "a" / "s2" / "sub" / "z.wav", tone, 16000)
    write_audio(tmp_path / "a" / "19-198-0001.flac", tone, 16000)
    utts = find_utterances(tmp_path / "a")
    assert [(u.speaker, u.path.name) for u in utts] == [("19", "19-198-0001.flac"), ("s1", "x.wav"),
                                                        ("s1", "y.flac"), ("s2", "z.wav")]
    assert [u.speaker for u in find_utterances(tmp_path / "a", {"s2"})] == ["s2"]
    write_audio(tmp_path / "a" / "loose.wav", tone, 16000)
    with pytest.raises(DataError, match="cannot tell the speaker of 1 file"):
        find_utterances(tmp_path / "a")
    with pytest.raises(DataError, match="not found"):
        find_utterances(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        find_utterances(tmp_path / "empty")


def test_split_and_sampler():
    spk = [f"s{i}" for i in range(30)]
    sp = split_speakers(spk, 5, 3, seed=0)
    assert len(sp["test"]) == 5 and len(sp["val"]) == 3 and len(sp["train"]) == 22
    assert not set(sp["test"]) & set(sp["val"]) and not set(sp["train"]) & (set(sp["test"]) | set(sp["val"]))
    assert split_speakers(spk, 5, 3, seed=0) == sp
    with pytest.raises(DataError, match="cannot give"):
        split_speakers(spk[:4], 2, 1)
    rng = np.random.default_rng(0)
    mels = {s: [rng.random((200 + 10 * i, 40), dtype=np.float32)] for i, s in enumerate(spk[:6])}
    mels["short"] = [rng.random((100, 40), dtype=np.float32)]  # < 160 frames: never sampled
    b = GE2ESampler(mels, 4, 3, seed=0).batch()
    assert b.shape == (4, 3, 160, 40)
    with pytest.raises(DataError, match="only 6 speakers"):
        GE2ESampler(mels, 7, 3)
    w, s = split_halves([np.arange(10.0), np.arange(7.0)], ["a", "b"])
    assert [len(x) for x in w] == [5, 5, 3, 4] and s == ["a", "a", "b", "b"]


def test_frontend_roundtrip():
    from signals.configio import from_dict, to_dict
    from signals.errors import ConfigError

    f = FrontEnd(partial_rate=2.0)
    assert from_dict(FrontEnd, json.loads(json.dumps(to_dict(f)))) == f
    with pytest.raises(ConfigError, match=r"x.json: unknown key 'frontend.mel.n_mel' \(MelConfig has"):
        from_dict(FrontEnd, to_dict(f) | {"mel": {"n_mel": 40}}, "x.json", "frontend")


# --- training: learns, checkpoints, resumes, exports ------------------------------------------------


def test_train_resume_export(tmp_path, librispeech_root):
    pytest.importorskip("torch")
    from signals.cli import main

    spk_file = tmp_path / "speakers.txt"
    ids = sorted({f.name.split("-")[0] for f in (librispeech_root / "train-clean-100").glob("*.flac")})[:6]
    spk_file.write_text("\n".join(ids) + "\n")
    out = tmp_path / "run"
    common = ["speech", "encoder", "train", str(librispeech_root / "train-clean-100"), "--out", str(out),
              "--speakers", str(spk_file), "--speakers-per-batch", "3", "--utterances-per-speaker", "2",
              "--val-speakers", "2", "--holdout-speakers", "1", "--save-every", "2", "--val-every", "2",
              "--threads", "1", "--lr", "1e-3"]
    assert main(common + ["--steps", "2"]) == 0
    assert (out / "checkpoint.pt").is_file() and (out / "split.json").is_file()
    assert len((out / "test_speakers.txt").read_text().split()) == 1
    assert main(common + ["--steps", "3"]) == 0  # resumes at step 2
    import torch

    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 3
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss") and [r.split(",")[0] for r in rows[1:]] == ["2", "3"]
    assert main(["speech", "encoder", "export", str(out / "checkpoint.pt"), "--out", str(tmp_path / "m")]) == 0
    from signals.speech.encoder.infer import EncoderRuntime as Runtime

    rt = Runtime.load(tmp_path / "m", threads=1)
    assert rt.folder.config.graphs["encoder"].parity_max_abs_diff < 1e-4 and rt.threshold is None
    assert rt.folder.config.source["training_config"]["steps"] == 3
