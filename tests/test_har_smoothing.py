"""The smoothed timeline: fixed-lag Viterbi (streaming, constant memory), fitting, segment metrics, runtime."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from test_har_infer import RAW, build_energy_model

from signals.cli import main
from signals.configio import from_dict, to_dict
from signals.errors import ConfigError, ModelError
from signals.har.infer import HARRuntime, predict_recording
from signals.har.metrics import match_segments, runs, segment_scores
from signals.har.smoothing import (
    FixedLagViterbi,
    SmoothingConfig,
    count_transitions,
    decode,
    expanded_transitions,
    fit,
    scale_switches,
    window_labels,
)
from signals.modelfolder import read_config, write_config


def sticky(k: int, stay: float = 0.9) -> SmoothingConfig:
    a = np.full((k, k), (1 - stay) / (k - 1))
    np.fill_diagonal(a, stay)
    return SmoothingConfig(transitions=tuple(map(tuple, a)), prior=tuple([1 / k] * k))


def viterbi(probs: np.ndarray, cfg: SmoothingConfig) -> np.ndarray:
    """Textbook offline Viterbi (the whole path), the reference for the streaming decoder."""
    log_a, log_p = np.log(np.asarray(cfg.transitions)), np.log(np.asarray(cfg.prior))
    e = cfg.emission_weight * (np.log(np.clip(probs, 1e-6, 1)) - cfg.prior_weight * log_p)
    return best_path(log_p + e[0], log_a, e)


def best_path(start: np.ndarray, log_a: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The most likely state sequence from start scores [S], log transitions [S, S] and emissions [T, S]."""
    delta, back = start, []
    for t in range(1, len(e)):
        s = delta[:, None] + log_a
        back.append(s.argmax(0))
        delta = s.max(0) + e[t]
    path = [int(delta.argmax())]
    for bp in reversed(back):
        path.append(int(bp[path[-1]]))
    return np.asarray(path[::-1])


def random_probs(n: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = np.repeat(rng.integers(0, k, size=n // 8 + 1), 8)[:n]
    logits = rng.normal(size=(n, k)) * 1.5
    logits[np.arange(n), truth] += 1.0
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


def test_long_lag_is_the_full_viterbi_path_and_lag_zero_is_forward_only():
    probs, cfg = random_probs(60, 4), sticky(4)
    assert np.array_equal(decode(probs, cfg, lag=60), viterbi(probs, cfg))
    assert np.array_equal(decode(probs, cfg, lag=200), viterbi(probs, cfg))  # longer than the recording
    # lag 0: each window decided on arrival = the best path ending there (forward pass only)
    fwd = [viterbi(probs[: t + 1], cfg)[-1] for t in range(len(probs))]
    assert decode(probs, cfg, lag=0).tolist() == fwd
    # a fixed lag L decides window t from windows 0..t+L only: the best path through t+L, read back at t
    lag = 3
    expect = [viterbi(probs[: min(t + lag, len(probs) - 1) + 1], cfg)[t] for t in range(len(probs))]
    assert decode(probs, cfg, lag=lag).tolist() == expect


def test_streaming_decoder_is_causal_bounded_and_resets():
    probs, cfg = random_probs(40, 3, seed=1), sticky(3)
    dec = FixedLagViterbi(cfg, lag=5)
    out = []
    for t, row in enumerate(probs):
        got = dec.push(row)
        assert [i for i, _, _ in got] == ([t - 5] if t >= 5 else [])  # exactly `lag` windows late
        assert len(dec.rows) <= 6 and len(dec.back) <= 5  # constant memory
        out += got
    out += dec.flush()
    assert [i for i, _, _ in out] == list(range(40))
    assert all(np.array_equal(row, probs[i]) for i, _, row in out)
    assert dec.flush() == [] and dec.delta is None  # reset: the next push starts a new recording
    assert [s for _, s, _ in out] == decode(probs, cfg, lag=5).tolist()
    # shorter than the lag: everything comes out at flush
    short = FixedLagViterbi(cfg, lag=10)
    assert sum(len(short.push(r)) for r in probs[:4]) == 0
    assert [s for _, s, _ in short.flush()] == viterbi(probs[:4], cfg).tolist()
    with pytest.raises(ConfigError, match="3 class probabilities"):
        dec.push(np.ones(4) / 4)
    with pytest.raises(ConfigError, match="lag must be >= 0"):
        FixedLagViterbi(cfg, lag=-1)


def test_single_window_flicker_is_removed_and_real_changes_are_kept():
    k = 3
    labels = [0] * 20 + [1] + [0] * 20 + [2] * 20  # one stray window, then a real change
    probs = np.full((len(labels), k), 0.1)
    probs[np.arange(len(labels)), labels] = 0.8
    probs[20] = [0.35, 0.6, 0.05]  # the stray window, not quite sure of itself
    out = decode(probs, sticky(k, stay=0.95), lag=4)
    assert out.tolist() == [0] * 41 + [2] * 20
    assert decode(probs, sticky(k, stay=1 / 3), lag=4).tolist() == labels  # no stickiness: the raw argmax


def test_window_labels_transitions_and_fit():
    # 1-based inclusive segments: class 0 on samples 1..300, a gap, class 1 on 400..700
    seq = window_labels([(0, 1, 300), (1, 400, 700), (-1, 701, 800)], n_samples=800, window=128, hop=64)
    assert len(seq) == (800 - 128) // 64 + 1
    centres = np.arange(len(seq)) * 64 + 64  # 0-based centre sample; label of 1-based sample centre + 1
    assert seq.tolist() == [0 if c < 300 else 1 if 399 <= c < 700 else -1 for c in centres]
    counts = count_transitions([seq, np.array([1, 1, -1, 0])], 2)
    assert counts.tolist() == [[(seq == 0).sum() - 1, 1], [1, (seq == 1).sum() - 1 + 1]]
    cfg = fit([seq], train_labels=np.array([0, 0, 0, 1]), k=2, pseudo_count=0.5, lag=7, emission_weight=0.5)
    a = np.asarray(cfg.transitions)
    np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-12)
    assert a[0].tolist() == [3.5 / 5, 1.5 / 5] and cfg.lag == 7 and cfg.emission_weight == 0.5
    np.testing.assert_allclose(cfg.prior, [4 / 6, 2 / 6], atol=1e-8)  # counts + 1
    # round trip through config.json's converter
    assert from_dict(SmoothingConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_smoothing_config_is_validated():
    good = sticky(2)
    for change, pattern in [
        (dict(transitions=((0.5, 0.5),)), r"must be \[2, 2\]"),
        (dict(transitions=((0.5, 0.6), (0.5, 0.5))), "rows must be probabilities"),
        (dict(prior=(0.0, 1.0)), "prior must be positive"),
        (dict(emission_weight=0.0), "emission_weight must be > 0"),
        (dict(lag=-2), "lag must be >= 0"),
        (dict(min_duration=0), "min_duration must be >= 1"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            replace(good, **change)


def expanded_viterbi(probs: np.ndarray, cfg: SmoothingConfig) -> np.ndarray:
    """Offline Viterbi over the duration-aware HMM (each class a chain of ``min_duration`` states)."""
    d = cfg.min_duration
    log_a = expanded_transitions(np.asarray(cfg.transitions), d)
    log_p = np.log(np.asarray(cfg.prior))
    e = np.repeat(cfg.emission_weight * (np.log(np.clip(probs, 1e-6, 1)) - cfg.prior_weight * log_p), d, axis=1)
    return best_path(np.repeat(log_p, d) + e[0], log_a, e) // d


def test_min_duration_states():
    probs, cfg = random_probs(80, 3, seed=2), sticky(3, stay=0.7)
    # D = 1 is the plain HMM, exactly
    assert np.array_equal(expanded_transitions(np.asarray(cfg.transitions), 1), np.log(np.asarray(cfg.transitions)))
    assert np.array_equal(decode(probs, replace(cfg, min_duration=1), lag=80), viterbi(probs, cfg))
    for d in (2, 4):
        dcfg = replace(cfg, min_duration=d)
        full = decode(probs, dcfg, lag=200)
        assert np.array_equal(full, expanded_viterbi(probs, dcfg))
        # no inner run shorter than d windows (the first and last runs may be cut by the stream's ends)
        change = np.flatnonzero(np.diff(full)) + 1
        inner = np.diff(change)
        assert (inner >= d).all(), (d, inner)
        # streaming: the same memory bound (lag back-pointer rows of K * d states)
        dec = FixedLagViterbi(dcfg, lag=5)
        for row in probs:
            dec.push(row)
            assert len(dec.back) <= 5 and dec.back[-1].shape == (3 * d,) if dec.back else True
        dec.flush()
    # a stray run of 2 windows survives D = 2 but not D = 3
    labels = [0] * 20 + [1] * 2 + [0] * 20
    p = np.full((len(labels), 2), 0.05)
    p[np.arange(len(labels)), labels] = 0.95
    two = sticky(2, stay=0.9)
    assert decode(p, replace(two, min_duration=2), lag=6).tolist() == labels
    assert decode(p, replace(two, min_duration=3), lag=6).tolist() == [0] * len(labels)


def test_switch_scale():
    a = np.array([[0.9, 0.06, 0.04], [0.1, 0.8, 0.1], [0.0, 0.5, 0.5]])
    np.testing.assert_allclose(scale_switches(a, 0.5), [[0.95, 0.03, 0.02], [0.05, 0.9, 0.05], [0.0, 0.25, 0.75]])
    assert scale_switches(a, 1.0) is a or np.array_equal(scale_switches(a, 1.0), a)
    with pytest.raises(ValueError, match="no probability for staying"):
        scale_switches(a, 2.0)
    seq = np.array([0] * 10 + [1] * 10)
    plain, scaled = fit([seq], np.array([0, 1]), 2), fit([seq], np.array([0, 1]), 2, switch_scale=0.5, min_duration=3)
    np.testing.assert_allclose(np.asarray(scaled.transitions)[0, 1], np.asarray(plain.transitions)[0, 1] / 2, atol=1e-8)
    assert scaled.min_duration == 3 and plain.min_duration == 1


def test_runs_and_segment_matching():
    labels = np.array([0, 0, 1, 1, 1, 0, 0, 2, 2, 2])
    mask = np.array([1, 1, 1, 1, 1, 0, 1, 1, 1, 1], bool)
    assert runs(labels) == [(0, 0, 2), (1, 2, 5), (0, 5, 7), (2, 7, 10)]
    assert runs(labels, mask) == [(0, 0, 2), (1, 2, 5), (0, 6, 7), (2, 7, 10)]
    ref = [(0, 0, 100), (1, 100, 200)]
    hyp = [(0, 0, 95), (1, 95, 150), (0, 150, 160), (1, 160, 200)]
    assert match_segments(ref, hyp, tolerance=10) == 1  # class 1 is split: its pieces end/start too far
    assert match_segments(ref, [(0, 0, 95), (1, 95, 200)], tolerance=10) == 2
    assert match_segments(ref, [(0, 0, 95), (1, 95, 200)], tolerance=4) == 0
    assert match_segments(ref, [(1, 0, 100), (0, 100, 200)], tolerance=10) == 0  # wrong labels
    s = segment_scores(n_ref=2, n_hyp=4, hits=1)
    assert s["precision"] == 0.25 and s["recall"] == 0.5 and s["f1"] == pytest.approx(2 / 6)


@pytest.fixture
def smoothed_energy(tmp_path):
    folder = build_energy_model(tmp_path / "energy")
    cfg = read_config(folder)
    write_config(folder, replace(cfg, runtime={**cfg.runtime, "smoothing": to_dict(replace(sticky(2, 0.97), lag=3))}))
    return folder


def test_runtime_smooths_by_default_and_keeps_the_raw_output(smoothed_energy, tmp_path, capsys):
    rt = HARRuntime.load(smoothed_energy, threads=1)
    assert rt.labels.smoothing is not None and rt.labels.smoothing.lag == 3
    raw = predict_recording(rt, RAW, smoothing=False)
    smooth = predict_recording(rt, RAW)
    for segs in (raw, smooth):
        assert segs[0].start_s == 0.0 and segs[-1].end_s == pytest.approx(40.0)
        assert all(a.end_s == pytest.approx(b.start_s) for a, b in zip(segs, segs[1:]))
        assert sum(s.windows for s in segs) == (2000 - 128) // 64 + 1
    assert len(smooth) <= len(raw)
    assert smooth[0].label == "STILL" and smooth[-1].label == "MOVING"
    # the whole-recording decode equals the streaming one with a lag longer than the recording
    assert predict_recording(rt, RAW, lag=1000) == predict_recording(rt, RAW, lag=10_000)
    # CLI: smoothed by default, --no-smoothing gives the raw timeline, --lag is checked
    js = tmp_path / "p.json"
    assert main(["har", "predict", str(RAW), "--model", str(smoothed_energy), "--json", str(js)]) == 0
    doc = json.loads(js.read_text())
    assert doc["smoothing"] == {"lag_windows": 3} and len(doc["segments"]) == len(smooth)
    assert main(["har", "predict", str(RAW), "--model", str(smoothed_energy), "--no-smoothing", "--json", str(js)]) == 0
    doc = json.loads(js.read_text())
    assert doc["smoothing"] is None and len(doc["segments"]) == len(raw)
    capsys.readouterr()
    try:  # a negative lag is refused, by the argument parser or by the runtime
        rc = main(["har", "predict", str(RAW), "--model", str(smoothed_energy), "--lag", "-1"])
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert "--lag must be >= 0" in err or "--lag: must be between 0" in err


def test_no_hmm_means_raw_timeline_unless_smoothing_is_asked_for(tmp_path, capsys):
    folder = build_energy_model(tmp_path / "plain")
    rt = HARRuntime.load(folder, threads=1)
    assert predict_recording(rt, RAW) == predict_recording(rt, RAW, smoothing=False)
    with pytest.raises(ModelError, match="fit-smoothing"):
        predict_recording(rt, RAW, smoothing=True)
    assert main(["har", "predict", str(RAW), "--model", str(folder), "--lag", "2"]) == 2
    assert "no smoothing HMM" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["har", "har-lite", "har-hapt", "har-hapt-lite"])
def test_shipped_models_smooth_the_example(name):
    from signals.modelfolder import REPO_MODELS

    folder = REPO_MODELS / name
    if not (folder / "config.json").is_file():
        pytest.skip(f"no shipped model at {folder}")
    rt = HARRuntime.load(folder, threads=1)
    assert rt.labels.smoothing is not None and rt.labels.smoothing.lag == 8
    assert len(rt.labels.smoothing.prior) == len(rt.classes)
    raw, smooth = predict_recording(rt, RAW, smoothing=False), predict_recording(rt, RAW)
    assert len(smooth) < len(raw)  # the raw timeline of this excerpt flickers
    # ground truth: LAYING 0-10.3 s, LIE_TO_STAND 10.3-14.0 s, unlabelled movement, WALKING 28.1-40 s
    assert smooth[0].label == "LAYING" and smooth[0].end_s > 9.0 and smooth[-1].label == "WALKING"
    if "LIE_TO_STAND" in rt.classes:  # the 12-class HAPT model marks the postural transition
        marked = [s for s in smooth if s.label == "LIE_TO_STAND"]
        assert marked and 9.0 < marked[0].start_s < 12.0 and 12.0 < marked[0].end_s < 15.0
