"""Transition-aware timelines: an activity model decoded with a postural-transition model's classes and HMM.

The pairing and the fused evidence run on tiny ONNX models (:func:`test_har_infer.energy_graph`), the
bridge logic of :class:`signals.har.infer.Timeline` on hand-made window decisions, and the shipped
``models/har`` + ``models/har-hapt`` on the example recording when present.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_har_infer import IO, RAW, build_energy_model, energy_graph

from signals.cli import main
from signals.configio import to_dict
from signals.errors import ConfigError, ModelError
from signals.har.evaluate import timeline_samples
from signals.har.frontend import CHANNELS, PreprocessConfig
from signals.har.infer import HARRuntime, Timeline, TransitionAwareRuntime, format_timeline, predict_recording
from signals.har.metrics import match_transitions
from signals.har.smoothing import SmoothingConfig
from signals.modelfolder import REPO_MODELS, Graph, ModelConfig, read_config, write_config

CFG = PreprocessConfig()  # 50 Hz, 128-sample windows, hop 64: window i owns samples 64 i + 32 .. 64 i + 96


def place(classes: list[str], labels: str, bridges=("T",), n_samples: int | None = None):
    """One window per character of ``labels`` (each a class name's first letter), decided as given."""
    tl = Timeline(classes, CFG, bridges=bridges)
    names = {c[0]: i for i, c in enumerate(classes)}
    for ch in labels:
        p = np.full(len(classes), 0.1)
        p[names[ch]] = 0.8
        tl._place(names[ch], p)
    n = n_samples if n_samples is not None else 64 * (len(labels) - 1) + 128
    return tl.finish(n), n


def test_a_transition_run_is_split_at_its_midpoint():
    segs, n = place(["A", "B", "T"], "AATTBB")
    # the bridge holds windows 2 and 3: samples 160 .. 288, midpoint 224 (4.48 s)
    assert [(s.label, s.start_s, s.end_s, s.windows, s.transition) for s in segs] == [
        ("A", 0.0, pytest.approx(4.48), 2, None), ("B", pytest.approx(4.48), pytest.approx(n / 50), 2, "T")]
    hyp = timeline_samples(segs, ["A", "B"], n, 50.0)
    assert (hyp[:224] == 0).all() and (hyp[224:] == 1).all()
    text = format_timeline(segs)
    assert text.splitlines()[0].endswith("after") and text.splitlines()[2].endswith("  T")


def test_transition_runs_at_the_ends_and_between_equal_activities():
    segs, _ = place(["A", "B", "T"], "TTAAB")  # at the start: to the first activity, which records it
    assert segs[0].label == "A" and segs[0].start_s == 0.0 and segs[0].transition == "T" and segs[0].windows == 2
    segs, n = place(["A", "B", "T"], "AABTT")  # at the end: to the last activity
    assert [s.label for s in segs] == ["A", "B"] and segs[-1].end_s == pytest.approx(n / 50)
    segs, _ = place(["A", "B", "T"], "AATAA")  # two changes seen as one transition: the segments stay apart
    assert [(s.label, s.transition) for s in segs] == [("A", None), ("A", "T")]
    assert segs[0].end_s == pytest.approx(segs[1].start_s) == pytest.approx((64 * 2 + 64) / 50)
    segs, n = place(["A", "B", "T"], "TTT")  # nothing but a transition: it is shown
    assert [(s.label, s.start_s, s.windows) for s in segs] == [("T", 0.0, 3)] and segs[0].end_s == n / 50
    assert (timeline_samples(segs, ["A", "B"], n, 50.0) == -1).all()


def test_the_most_probable_transition_names_the_run():
    tl = Timeline(["A", "B", "U", "V"], CFG, bridges=("U", "V"))
    for k, conf in [(0, 0.9), (2, 0.4), (3, 0.7), (3, 0.6), (2, 0.5), (1, 0.9)]:
        p = np.zeros(4)
        p[k] = conf
        tl._place(k, p)
    segs = tl.finish(64 * 5 + 128)
    assert [(s.label, s.transition) for s in segs] == [("A", None), ("B", "V")]  # V 1.3 vs U 0.9


def test_without_bridges_the_timeline_is_unchanged():
    segs, _ = place(["A", "B", "T"], "AATTBB", bridges=())
    assert [s.label for s in segs] == ["A", "T", "B"] and all(s.transition is None for s in segs)
    with pytest.raises(ConfigError, match="bridge classes"):
        Timeline(["A", "B"], CFG, bridges=("T",))


def test_transition_events_are_matched_by_place_and_name():
    ref = [("SIT_TO_STAND", 100, 250), ("STAND_TO_SIT", 1000, 1150)]
    hyp = [("SIT_TO_STAND", 200), ("SIT_TO_STAND", 1160), ("LIE_TO_SIT", 3000)]
    assert match_transitions(ref, hyp, tolerance=10) == 1  # the second is named wrong
    assert match_transitions(ref, hyp, tolerance=10, same_name=False) == 2
    assert match_transitions(ref, hyp, tolerance=5, same_name=False) == 1  # 1160 is 10 samples late
    assert match_transitions(ref, [("SIT_TO_STAND", 90)], tolerance=10) == 1
    assert match_transitions(ref, [("SIT_TO_STAND", 200)] * 1, tolerance=10_000) == 1  # one-to-one
    assert match_transitions([], hyp, tolerance=10) == 0


# --------------------------------------------------------------------------------------------------
# pairing two model folders


def transition_model(folder: Path, classes=("STILL", "MOVING", "SHIFT"), smoothing: bool = True,
                     frontend: PreprocessConfig = CFG) -> Path:
    """3 classes: MOVING on body_acc energy (as the energy model), SHIFT on body_gyro energy."""
    folder.mkdir(parents=True, exist_ok=True)
    w = np.zeros((9, len(classes)), np.float32)
    w[0:3, 1] = 200.0
    w[3:6, 2:] = 60.0
    energy_graph(folder / "t.onnx", w, np.array([0.0, -2.0] + [-10.0] * (len(classes) - 2), np.float32))
    k = len(classes)
    runtime = {"classes": list(classes), "channels": CHANNELS, "sample_rate": 50.0}
    if smoothing:
        a = np.full((k, k), 0.05 / (k - 1))
        np.fill_diagonal(a, 0.95)
        runtime["smoothing"] = to_dict(SmoothingConfig(transitions=tuple(map(tuple, a)), prior=(1 / k,) * k, lag=3))
    io = dict(inputs=IO["inputs"], outputs={"probs": ("batch", k)})
    write_config(folder, ModelConfig(kind="har", frontend=to_dict(frontend), graphs={"fp32": Graph(file="t.onnx", **io)},
                                     weights=None, runtime=runtime))
    return folder


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> TransitionAwareRuntime:
    root = tmp_path_factory.mktemp("pair")
    activity = HARRuntime.load(build_energy_model(root / "energy"), threads=1)
    return TransitionAwareRuntime.pair(activity, HARRuntime.load(transition_model(root / "shift"), threads=1))


def test_pair_fuses_the_two_models_evidence(pair):
    assert pair.classes == ["STILL", "MOVING", "SHIFT"] and pair.bridges == ("SHIFT",)
    assert pair.activities == ["STILL", "MOVING"] and pair.labels.smoothing.lag == 3
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.0, 0.3, size=(40, 9, 1))
    scale[:5], scale[5:10, 3:6], scale[10:15, :3], scale[10:15, 3:6] = 0.001, 0.0, 0.01, 0.5  # quiet; acc; gyro
    x = (rng.normal(size=(40, 9, 128)) * scale).astype(np.float32)
    p, h = pair.activity.predict_windows(x), pair.transition.predict_windows(x)
    q = pair.predict_windows(x)
    assert q.shape == (40, 3) and q.dtype == np.float32
    np.testing.assert_allclose(q[:, 2], h[:, 2], rtol=1e-6)
    np.testing.assert_allclose(q[:, :2], p * (1 - h[:, 2:3]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-5)
    assert (q[:5].argmax(1) == 0).all() and (q[10:15].argmax(1) == 2).all()  # STILL, SHIFT
    assert (q[5:10].argmax(1) == 1).all()  # MOVING


def test_pair_timeline_shows_activities_and_marks_transitions(pair):
    for smoothing in (False, True):
        segs = predict_recording(pair, RAW, smoothing=smoothing)
        assert {s.label for s in segs} <= {"STILL", "MOVING"}
        assert segs[0].start_s == 0.0 and segs[-1].end_s == pytest.approx(40.0)
        assert all(a.end_s == pytest.approx(b.start_s) for a, b in zip(segs, segs[1:]))
        assert any(s.transition == "SHIFT" for s in segs)
        assert segs[0].label == "STILL" and segs[0].end_s > 8.0
    plain = predict_recording(pair.activity, RAW, smoothing=False)
    assert sum(s.windows for s in plain) == (2000 - 128) // 64 + 1


def test_pairing_errors_name_the_problem(tmp_path):
    activity = HARRuntime.load(build_energy_model(tmp_path / "energy"), threads=1)
    cases = [
        (transition_model(tmp_path / "a", classes=("STILL", "RUNNING", "SHIFT")), "has no class 'MOVING'"),
        (build_energy_model(tmp_path / "b"), "no class beyond"),
        (transition_model(tmp_path / "c", smoothing=False), "no smoothing HMM"),
        (transition_model(tmp_path / "d", frontend=replace(CFG, gravity_cutoff_hz=0.5)), "one front end"),
    ]
    for folder, message in cases:
        with pytest.raises(ModelError, match=message):
            TransitionAwareRuntime.pair(activity, HARRuntime.load(folder, threads=1))


def test_cli_predict_with_transitions(tmp_path, capsys):
    energy, shift = build_energy_model(tmp_path / "energy"), transition_model(tmp_path / "shift")
    js = tmp_path / "p.json"
    assert main(["har", "predict", str(RAW), "--model", str(energy), "--transitions", str(shift),
                 "--json", str(js)]) == 0
    out = capsys.readouterr().out
    doc = json.loads(js.read_text())
    assert doc["transitions"] == str(shift) and doc["smoothing"] == {"lag_windows": 3}
    assert {s["label"] for s in doc["segments"]} <= {"STILL", "MOVING"}
    assert any(s["transition"] == "SHIFT" for s in doc["segments"]) and "after" in out
    assert main(["har", "predict", str(RAW), "--model", str(energy), "--transitions", str(energy)]) == 2
    assert "no class beyond" in capsys.readouterr().err
    assert main(["har", "predict", str(RAW), "--model", str(energy), "--transitions", str(tmp_path / "nope")]) == 2
    assert f"model folder not found: {tmp_path / 'nope'} (given with --transitions)" in capsys.readouterr().err
    assert main(["har", "evaluate-recordings", "--model", str(energy), "--transitions", str(RAW)]) == 2
    assert "is a file, not a model folder (given with --transitions)" in capsys.readouterr().err


@pytest.mark.parametrize("names", [("har", "har-hapt"), ("har-lite", "har-hapt-lite")])
def test_shipped_models_mark_the_example_transition(names):
    full, hapt = (REPO_MODELS / n for n in names)
    if not ((full / "config.json").is_file() and (hapt / "config.json").is_file()):
        pytest.skip(f"no shipped models/{names[0]} and models/{names[1]}")
    rt = TransitionAwareRuntime.pair(HARRuntime.load(full, threads=1), HARRuntime.load(hapt, threads=1))
    segs = predict_recording(rt, RAW)
    # ground truth: LAYING 0-10.3 s, LIE_TO_STAND 10.3-14.0 s, unlabelled movement, WALKING 28.1-40 s
    assert segs[0].label == "LAYING" and 10.0 < segs[0].end_s < 14.3
    assert segs[1].transition == "LIE_TO_STAND" and segs[-1].label == "WALKING"
    assert {s.label for s in segs} <= set(rt.activities)
    assert read_config(full).runtime["classes"] == rt.activities
