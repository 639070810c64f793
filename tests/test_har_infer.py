"""The torch-free HAR runtime: recordings in, activity timeline out.

A tiny ONNX model built here with ``onnx.helper`` (same input/output contract as FusionActNet:
``x`` float32 [B, 9, 128] -> ``probs`` float32 [B, K]) scores each window by its body-acceleration
energy, so STILL / MOVING are predictable from the physics of the example recording. The shipped
``models/har`` is exercised too when present.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from signals.cli import main
from signals.configio import to_dict
from signals.errors import DataError, ModelError
from signals.har.frontend import CHANNELS, PreprocessConfig, iter_recording
from signals.har.infer import HARRuntime, Segment, format_timeline, predict_recording
from signals.modelfolder import REPO_MODELS, Graph, ModelConfig, write_config

REPO_ROOT = REPO_MODELS.parent

EXAMPLE = REPO_ROOT / "examples" / "har"
RAW = EXAMPLE / "RawData" / "acc_exp04_user02.txt"
CSV = EXAMPLE / "exp04_user02.csv"
CSV_HEADER = "time,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z"


def _energy_graph(path: Path, moving_bias: float) -> None:
    """A 2-class graph: MOVING when 200 * mean body_acc energy exceeds ``-moving_bias``."""
    w = np.zeros((9, 2), np.float32)
    w[0:3, 1] = 200.0
    energy_graph(path, w, np.array([0.0, moving_bias], np.float32))


def energy_graph(path: Path, w: np.ndarray, b: np.ndarray) -> None:
    """x [B, 9, 128] -> probs = softmax(mean(x^2 over time) @ w + b), ``w`` [9, K], ``b`` [K]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Mul", ["x", "x"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["energy"], axes=[2], keepdims=0),
        helper.make_node("MatMul", ["energy", "w"], ["z"]),
        helper.make_node("Add", ["z", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "energy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 9, 128])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", w.shape[1]])],
        [numpy_helper.from_array(np.asarray(w, np.float32), "w"), numpy_helper.from_array(np.asarray(b, np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


IO = dict(inputs={"x": ("batch", 9, 128)}, outputs={"probs": ("batch", 2)})


def build_energy_model(folder: Path, int8_too: bool = False) -> Path:
    """A 2-class model: MOVING when the mean body_acc energy exceeds 0.01 g^2 (std ~0.1 g).

    The "int8" graph, when asked for, is a different model on purpose (MOVING always wins, bias +50),
    so a test can tell which graph a runtime really runs.
    """
    folder.mkdir(parents=True, exist_ok=True)
    _energy_graph(folder / "energy.onnx", -2.0)
    graphs = {"fp32": Graph(file="energy.onnx", **IO)}
    if int8_too:
        _energy_graph(folder / "energy.int8.onnx", 50.0)
        graphs["int8"] = Graph(file="energy.int8.onnx", **IO)
    write_config(folder, ModelConfig(kind="har", frontend=to_dict(PreprocessConfig()), graphs=graphs, weights=None,
                                     runtime={"classes": ["STILL", "MOVING"], "channels": CHANNELS,
                                              "sample_rate": 50.0}))
    return folder


@pytest.fixture(scope="module")
def energy_dir(tmp_path_factory) -> Path:
    return build_energy_model(tmp_path_factory.mktemp("har-model"), int8_too=True)


@pytest.fixture(scope="module")
def runtime(energy_dir) -> HARRuntime:
    return HARRuntime.load(energy_dir, providers=["CPUExecutionProvider"], threads=1)


def _check_example_timeline(segs: list[Segment]) -> None:
    # The excerpt: LAYING 0-10.3 s, LIE_TO_STAND 10.3-14 s, moving about, WALKING 28.1-40 s.
    assert segs[0].label == "STILL" and segs[0].start_s == 0.0 and segs[0].end_s > 8.0
    assert segs[-1].label == "MOVING" and segs[-1].start_s < 28.0 and segs[-1].end_s == pytest.approx(40.0)
    assert all(a.end_s == pytest.approx(b.start_s) for a, b in zip(segs, segs[1:]))  # tiles, no overlap
    assert all(a.label != b.label for a, b in zip(segs, segs[1:]))  # merged
    assert sum(s.windows for s in segs) == (2000 - 128) // 64 + 1
    assert all(0.5 <= s.confidence <= 1.0 for s in segs)


def test_predict_hapt_pair_and_csv_agree(runtime):
    raw = predict_recording(runtime, RAW)
    _check_example_timeline(raw)
    # either half of the pair names the recording
    gyro = predict_recording(runtime, RAW.with_name("gyro_exp04_user02.txt"))
    assert [(s.label, s.start_s, s.end_s) for s in gyro] == [(s.label, s.start_s, s.end_s) for s in raw]
    csv = predict_recording(runtime, CSV)  # rate inferred from the time column
    assert [(s.label, s.start_s, s.end_s) for s in csv] == [(s.label, s.start_s, s.end_s) for s in raw]
    np.testing.assert_allclose([s.confidence for s in csv], [s.confidence for s in raw], atol=1e-3)
    text = format_timeline(raw)
    assert "STILL" in text and "MOVING" in text and "0:40.0" in text


def test_streaming_is_independent_of_chunk_and_batch_size(runtime):
    full = [np.concatenate(parts) for parts in zip(*iter_recording(RAW, chunk_seconds=60))]
    small = [np.concatenate(parts) for parts in zip(*iter_recording(RAW, chunk_seconds=0.5))]
    np.testing.assert_array_equal(full[0], small[0])
    np.testing.assert_array_equal(full[1], small[1])
    assert full[0].shape == (2000, 3)
    np.testing.assert_array_equal(full[0], np.loadtxt(RAW))
    a = predict_recording(runtime, RAW, batch_size=1)
    b = predict_recording(runtime, RAW, batch_size=256)
    assert a == b


def test_other_sample_rate_is_resampled(runtime, tmp_path):
    from scipy.signal import resample_poly

    data = np.loadtxt(CSV, delimiter=",", skiprows=1)[:, 1:]
    up = resample_poly(data, 2, 1, axis=0, padtype="line")  # the same motion recorded at 100 Hz
    path = tmp_path / "rec100.csv"
    t = np.arange(len(up)) / 100
    np.savetxt(path, np.column_stack([t, up]), delimiter=",", header=CSV_HEADER, comments="", fmt="%.6f")
    chunks = list(iter_recording(path, chunk_seconds=7))
    n = sum(len(a) for a, _ in chunks)
    assert abs(n - 2000) <= 2
    _check_example_timeline(predict_recording(runtime, path))
    # without a time column the rate must be given
    np.savetxt(path, up, delimiter=",", header=CSV_HEADER[5:], comments="", fmt="%.6f")
    with pytest.raises(DataError, match="--sample-rate"):
        predict_recording(runtime, path)
    _check_example_timeline(predict_recording(runtime, path, sample_rate=100))


def test_resampling_has_no_edge_transients(tmp_path):
    """Gravity alone at 60 Hz -> 50 Hz: constant output, right length, whatever the chunking."""
    n = 600  # 10 s
    still = np.tile([0.3, 0.2, 0.93, 0.01, -0.02, 0.0], (n, 1))
    path = tmp_path / "still60.csv"
    np.savetxt(path, np.column_stack([np.arange(n) / 60, still]), delimiter=",", header=CSV_HEADER,
               comments="", fmt="%.6f")  # fmt: skip
    for chunk_seconds in (60, 0.7):
        acc, gyro = (np.concatenate(p) for p in zip(*iter_recording(path, chunk_seconds=chunk_seconds)))
        assert len(acc) == 500
        np.testing.assert_allclose(
            acc, np.tile([0.3, 0.2, 0.93], (500, 1)), atol=1e-3
        )  # unpadded soxr: errors up to 0.13 g
        np.testing.assert_allclose(gyro, np.tile([0.01, -0.02, 0.0], (500, 1)), atol=1e-3)


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def test_bad_recordings_raise_clear_errors(runtime, tmp_path):
    good = CSV.read_text().splitlines()
    cases = [
        (["time,acc_x,acc_y,acc_z,gyro_x,gyro_y"] + good[1:], r"line 1: missing columns \['gyro_z'\]"),
        (good[:5] + ["0.08,0.1,nan,0.3,0,0,0"] + good[6:], r"line 6, column 3: 'nan'"),
        (good[:7] + ["0.12,0.1,abc,0.3,0,0,0"] + good[8:], r"line 8, column 3: 'abc' is not a number"),
        (good[:9] + ["0.16,0.1,0.2,0.3,0,0"] + good[10:], r"line 10: expected 7 columns, found 6"),
        (good[:1500] + ["29.98,0.1,0.2,0.3,0,0,"] + good[1501:], r"line 1501, column 7: '' is not a number"),
        (good[:100], r"too short: 99 samples \(1\.98 s at 50 Hz\)"),
        (good[:1], "no data rows"),
        ([""], "empty file"),
    ]
    for i, (rows, pattern) in enumerate(cases):
        path = _write(tmp_path / f"bad{i}.csv", rows)
        with pytest.raises(DataError, match=pattern) as info:
            predict_recording(runtime, path)
        assert f"bad{i}.csv" in str(info.value)
    with pytest.raises(DataError, match="recording not found"):
        predict_recording(runtime, tmp_path / "absent.csv")
    with pytest.raises(DataError, match="positive"):
        predict_recording(runtime, CSV, sample_rate=-5)
    # HAPT pairs: partner missing, partner shorter, malformed line
    acc = tmp_path / "acc_exp01_user01.txt"
    acc.write_text(RAW.read_text())
    with pytest.raises(DataError, match="partner .*gyro_exp01_user01.txt is missing"):
        predict_recording(runtime, acc)
    gyro_lines = RAW.with_name("gyro_exp04_user02.txt").read_text().splitlines()
    gyro = _write(tmp_path / "gyro_exp01_user01.txt", gyro_lines[:1500])
    with pytest.raises(DataError, match=r"gyro_exp01_user01\.txt ends at line 1500"):
        predict_recording(runtime, acc)
    gyro_lines[41] = "0.1 0.2 x"
    _write(gyro, gyro_lines)
    with pytest.raises(DataError, match=r"gyro_exp01_user01\.txt: line 42, column 3: 'x' is not a number"):
        predict_recording(runtime, acc)


def test_predict_windows_validates(runtime):
    x = np.zeros((3, 9, 128), np.float32)
    x[1, 0] = 0.5  # energy 0.25 -> MOVING
    probs = runtime.predict_windows(x)
    assert probs.shape == (3, 2) and probs.dtype == np.float32
    assert probs.argmax(1).tolist() == [0, 1, 0]
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    assert runtime.predict_windows(np.zeros((0, 9, 128), np.float32)).shape == (0, 2)
    with pytest.raises(DataError, match=r"shape \[N, 9, 128\], got \[3, 6, 128\]"):
        runtime.predict_windows(np.zeros((3, 6, 128), np.float32))
    x[2, 4, 7] = np.nan
    with pytest.raises(DataError, match="NaN .* window 2"):
        runtime.predict_windows(x)


def test_load_errors_and_int8_choice(energy_dir, tmp_path):
    still = np.zeros((1, 9, 128), np.float32)
    rt = HARRuntime.load(energy_dir, int8=True, providers=["CPUExecutionProvider"])
    assert rt.classes == ["STILL", "MOVING"] and rt.graph == "int8"
    # the int8 graph of this folder is a different model: only it calls a still window MOVING
    assert rt.predict_windows(still).argmax(1).tolist() == [1]
    assert HARRuntime.load(energy_dir).predict_windows(still).argmax(1).tolist() == [0]
    cfg = json.loads((energy_dir / "config.json").read_text())
    broken = tmp_path / "broken"
    broken.mkdir()
    int8 = cfg["graphs"]["int8"]
    for change, pattern in [
        ({"graphs": {"fp32": cfg["graphs"]["fp32"]}}, "names no 'int8' graph"),
        ({"runtime": {**cfg["runtime"], "channels": CHANNELS[:6]}}, "graph input has 9 channels, runtime.channels lists 6"),
        ({"frontend": {"window": 0}}, r"config.json: frontend: .*must be positive"),
        ({"frontend": {"window": 64}}, "graph input has 128-sample windows, frontend.window is 64"),
        ({"frontend": {"stride": 2}}, r"unknown key 'frontend.stride'"),
        ({"graphs": {"int8": {**int8, "file": "missing.onnx"}}}, "missing.onnx is missing"),
        ({"graphs": {"int8": {**int8, "file": "../energy.onnx"}}}, "must be a plain path inside the model folder"),
        ({"graphs": {"int8": {**int8, "inputs": {"mels": ["batch", 9, 128]}}}}, "must map x"),
        ({"kind": "speaker_encoder"}, "holds a 'speaker_encoder' model, not a 'har' model"),
    ]:
        (broken / "config.json").write_text(json.dumps({**cfg, **change}))
        for name in ("energy.onnx", "energy.int8.onnx"):
            (broken / name).write_bytes((energy_dir / name).read_bytes())
        with pytest.raises(ModelError, match=pattern):
            HARRuntime.load(broken, int8=True)
    (broken / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "runtime"}))
    with pytest.raises(ModelError, match=r"missing 'classes'|classes"):
        HARRuntime.load(broken)
    with pytest.raises(ModelError, match="model folder not found"):
        HARRuntime.load(tmp_path / "nothing")


def test_predict_command_prints_timeline_and_json(energy_dir, tmp_path, capsys):
    cmd = ["har", "predict", str(RAW), "--model", str(energy_dir), "--threads", "1"]
    assert main([*cmd, "--json", str(tmp_path / "out.json")]) == 0
    out = capsys.readouterr().out
    assert "STILL" in out and "MOVING" in out
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["segments"][0]["label"] == "STILL" and doc["segments"][-1]["end_s"] == pytest.approx(40.0)
    assert main([*cmd, "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["segments"] == doc["segments"]
    assert "MOVING" in captured.err


def test_runtime_is_torch_free(energy_dir):
    code = (
        "import sys\n"
        "class Block:\n"  # any 'import torch' now fails
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from signals.har.infer import HARRuntime, predict_recording\n"
        f"rt = HARRuntime.load({str(energy_dir)!r}, threads=1)\n"
        f"print(predict_recording(rt, {str(CSV)!r})[-1].label, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "MOVING False"


def test_shipped_model_on_example():
    folder = REPO_MODELS / "har"
    if not (folder / "config.json").is_file():
        pytest.skip(f"no shipped HAR model at {folder} (train and export it first)")
    rt = HARRuntime.load(folder, threads=2)
    segs = predict_recording(rt, RAW)
    assert {s.label for s in segs} <= set(rt.classes)
    # ground truth of the excerpt (a test subject): LAYING for the first 10 s, WALKING at the end
    assert segs[0].label == "LAYING" and segs[0].end_s > 8.0
    assert "WALKING" in segs[-1].label


def test_time_column_tolerates_jitter_rounding_and_dropped_samples(tmp_path):
    """Real loggers: clocks rounded to 10 ms at 60 Hz, jitter, a dropped sample now and then -> accepted, at the
    right rate; the strict checks (order, gaps, drift, units) are in tests/bad_cases_har.py."""
    rng = np.random.default_rng(0)
    still = np.tile([0.3, 0.2, 0.93, 0.01, -0.02, 0.0], (3000, 1))
    jitter = np.arange(3000) / 50 + rng.uniform(-0.004, 0.004, 3000)
    dropped = np.delete(np.arange(3002) / 50, [700, 2100])
    for name, t, rate in [("rounded60", np.round(np.arange(3000) / 60, 2), 60.0), ("jitter", jitter, 50.0),
                          ("dropped", dropped, 50.0)]:
        path = tmp_path / f"{name}.csv"
        np.savetxt(path, np.column_stack([t, still]), delimiter=",", header=CSV_HEADER, comments="", fmt="%.6f")
        acc, _ = (np.concatenate(p) for p in zip(*iter_recording(path)))
        # a dropped sample among the rows the rate is measured on biases it by 1/1000 (3 samples here)
        assert abs(len(acc) - 3000 * 50 / rate) <= 3, name
