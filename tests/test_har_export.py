"""ONNX export: self-contained graph (normalisation inside), names, dynamic batch, parity, int8."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from signals.configio import to_dict
from signals.errors import ModelError
from signals.har.config import FusionActNetConfig
from signals.har.export import export, input_convs, load_model
from signals.har.model import FusionActNetEnsemble
from signals.modelfolder import ModelConfig, read_config, write_config
from signals.torchutils import save_safetensors

MEAN = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.8, -0.1, 0.1])
STD = np.array([0.2, 0.1, 0.1, 0.4, 0.4, 0.3, 0.4, 0.4, 0.3])


def make_folder(path, members: int = 1, static=(3, 4, 5), dynamic=(0, 1, 2), decimate: int = 1):
    cfg = FusionActNetConfig(branch_widths=(8, 16), guide_stem=4, guide_widths=(8,), guide_depths=(1,),
                             members=members, static_classes=static, dynamic_classes=dynamic, decimate=decimate)
    torch.manual_seed(0)
    model = FusionActNetEnsemble(cfg)
    for m in model.members:
        m.set_normalization(MEAN, STD)
        # non-trivial BatchNorm statistics, so eval-mode folding is exercised
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
    save_safetensors(model, path / "model.safetensors")
    names = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]
    write_config(path, ModelConfig(kind="har", model=to_dict(cfg),
                                   runtime=dict(classes=names, channels=[f"c{i}" for i in range(9)], sample_rate=50.0),
                                   source=dict(dataset=dict(name="synthetic"))))
    return model


def raw_windows(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 9, 128))
    return (x * STD[:, None] + MEAN[:, None]).astype(np.float32)


@pytest.mark.parametrize("members", [1, 2])
def test_export_parity_dynamic_batch_and_int8(tmp_path, members):
    import onnx
    import onnxruntime as ort

    model = make_folder(tmp_path, members=members, static=(5, 3, 4), dynamic=(1, 0, 2))
    config = export(tmp_path, int8=True, calib=raw_windows(96, seed=1))
    assert config.graphs["fp32"].parity_max_abs_diff <= 1e-4
    graph = onnx.load(str(tmp_path / "fusionactnet.onnx"))
    onnx.checker.check_model(graph)
    inp, out = graph.graph.input[0], graph.graph.output[0]
    assert inp.name == "x" and out.name == "probs"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert inp.type.tensor_type.shape.dim[0].dim_param  # symbolic (dynamic) batch axis
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]] == [9, 128]

    sess = ort.InferenceSession(str(tmp_path / "fusionactnet.onnx"), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        for n in (1, 7):  # any batch size; raw units in, probabilities in dataset order out
            x = raw_windows(n, seed=10 + n)
            got = sess.run(["probs"], {"x": x})[0]
            ref = model.eval().log_probs(torch.from_numpy(x)).exp().numpy()
            assert got.shape == (n, 6) and got.dtype == np.float32
            assert np.abs(got - ref).max() <= 1e-4
            np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)

    q = ort.InferenceSession(str(tmp_path / "fusionactnet.int8.onnx"), providers=["CPUExecutionProvider"])
    qgraph = onnx.load(str(tmp_path / "fusionactnet.int8.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in qgraph.graph.node)
    # the convolutions reading the input windows stay float: their weights are plain initializers. The
    # int8 graph is quantised from the unpaired layout (static conv1 + skip, dynamic conv1 + skip, guide stem)
    inits = {i.name for i in qgraph.graph.initializer}
    first = [n for n in qgraph.graph.node if n.name in set(input_convs(tmp_path / "fusionactnet.int8.onnx"))]
    assert len(first) == 5 * members and all(n.input[1] in inits for n in first)
    # the fp32 graph pairs the branches: one conv1 and one skip read the input for both, + the guide stem
    assert len(input_convs(tmp_path / "fusionactnet.onnx")) == 3 * members
    x = raw_windows(32, seed=3)
    pq = q.run(["probs"], {"x": x})[0]
    pf = sess.run(["probs"], {"x": x})[0]
    np.testing.assert_allclose(pq.sum(1), 1.0, atol=1e-4)
    assert np.abs(pq - pf).max() < 0.25  # quantised, so close but not equal
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert {k: g["file"] for k, g in cfg["graphs"].items()} == {"fp32": "fusionactnet.onnx",
                                                                 "int8": "fusionactnet.int8.onnx"}
    assert cfg["graphs"]["fp32"]["inputs"] == {"x": ["batch", 9, 128]}
    assert cfg["graphs"]["fp32"]["parity_max_abs_diff"] <= 1e-4
    assert cfg["source"]["export"]["int8_calibration_windows"] == 96
    assert read_config(tmp_path) == config


def test_int8_export_options_float_blocks_and_calibration(tmp_path):
    """FusionActNet-Lite's int8 settings: each branch's first blocks float, percentile calibration."""
    import onnx

    make_folder(tmp_path)
    with pytest.raises(ModelError, match="unknown int8 calibration method 'median'"):
        export(tmp_path, int8=True, calib=raw_windows(32), calib_method="median")
    config = export(tmp_path, int8=True, calib=raw_windows(64, seed=1), calib_method="percentile",
                    float_blocks=1)
    int8 = tmp_path / "fusionactnet.int8.onnx"  # (node names as in the unpaired graph it was quantised from)
    kept = input_convs(int8, blocks=1)
    # + conv2 of both branches' first block and the guidance net's first block (dw, pw, skip)
    assert set(input_convs(int8)) < set(kept) and len(kept) == 10
    # two blocks: + the three convolutions of each branch's second block (the guidance net has one block)
    assert set(kept) < set(input_convs(int8, blocks=2)) and len(input_convs(int8, blocks=2)) == 16
    q = onnx.load(str(int8)).graph
    inits = {i.name for i in q.initializer}
    float_convs = [n for n in q.node if n.op_type == "Conv" and n.input[1] in inits]
    assert sorted(n.name for n in float_convs) == sorted(kept)
    assert config.source["export"] == {"int8_calibration_windows": 64, "int8_calibration": "percentile",
                                       "int8_float_blocks": 1}


def test_export_without_int8_and_round_trip(tmp_path):
    model = make_folder(tmp_path)
    export(tmp_path, int8=False)
    assert (tmp_path / "fusionactnet.onnx").is_file() and not (tmp_path / "fusionactnet.int8.onnx").exists()
    assert list(json.loads((tmp_path / "config.json").read_text())["graphs"]) == ["fp32"]
    again = load_model(tmp_path)
    x = torch.from_numpy(raw_windows(4))
    with torch.inference_mode():
        assert torch.allclose(again(x), model.eval()(x))


def test_export_errors_name_the_problem(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        export(tmp_path / "nope")
    make_folder(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="weights not found"):
        export(tmp_path, int8=False)
    other = tmp_path / "other"
    other.mkdir()
    make_folder(other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["model"]["branch_widths"] = [8, 32]  # config no longer matches the weights
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="does not match"):
        export(other, int8=False)
    cfg["model"]["branch_width"] = [8, 16]  # a typo is refused, naming the key and the file
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=r"config.json: unknown key 'model.branch_width'"):
        export(other, int8=False)


@pytest.mark.parametrize("name", ["har", "har-lite", "har-hapt", "har-hapt-lite"])
def test_shipped_model_folder_is_consistent(name):
    """models/har*: config rebuilds the weights, the fp32 graph matches PyTorch on real example windows."""
    from signals.export import compare
    from signals.har.export import Exported
    from signals.har.frontend import CHANNELS, filter_recording, sliding_windows
    from signals.modelfolder import REPO_MODELS, ModelFolder, sha256

    folder = REPO_MODELS / name
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"no shipped model at {folder}")
    mf = ModelFolder.load(folder, "har")
    six = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]
    assert mf.config.runtime["classes"] == (six + ["STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT",
                                                   "STAND_TO_LIE", "LIE_TO_STAND"] if name.startswith("har-hapt") else six)
    assert mf.config.runtime["channels"] == CHANNELS and mf.config.model["static_classes"] == [3, 4, 5]
    for graph in mf.config.graphs.values():  # the graphs are the ones the config describes
        assert sha256(folder / graph.file) == graph.sha256
    raw = folder.parent.parent / "examples" / "har" / "RawData"
    acc = np.loadtxt(raw / "acc_exp04_user02.txt")
    gyro = np.loadtxt(raw / "gyro_exp04_user02.txt")
    x = sliding_windows(filter_recording(acc, gyro), 128, 64)[::4]  # a few real windows
    assert compare(Exported(load_model(mf)), folder / mf.graph("fp32").file, ["x"], ["probs"], [[x]]) <= 1e-4


@pytest.mark.parametrize("decimate,members", [(1, 1), (2, 2)])
def test_conv2d_layout_is_the_same_arithmetic(tmp_path, decimate, members):
    """The exported graph runs the branches as 2-D convolutions (ONNX Runtime's fast NCHWc path) and
    still computes exactly what the 1-D PyTorch model does, decimation and ensembles included."""
    import onnx

    from signals.har.export import conv2d_layout

    model = make_folder(tmp_path, members=members, decimate=decimate)  # (BatchNorm statistics non-trivial)
    x = torch.from_numpy(raw_windows(5, seed=4))
    twin = conv2d_layout(model)
    assert not any(isinstance(m, (torch.nn.Conv1d, torch.nn.BatchNorm1d, torch.nn.MaxPool1d))
                   for m in twin.modules())
    with torch.inference_mode():
        assert torch.allclose(twin.log_probs(x), model.eval().log_probs(x), atol=1e-6)
    assert any(isinstance(m, torch.nn.Conv1d) for m in model.modules())  # the original is untouched

    export(tmp_path, int8=False)
    graph = onnx.load(str(tmp_path / "fusionactnet.onnx")).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    kernels = {tuple(a.ints) for n in convs for a in n.attribute if a.name == "kernel_shape"}
    assert kernels <= {(1, 3), (1, 1)} and (1, 3) in kernels
    groups = [a.i for n in convs for a in n.attribute if a.name == "group"]
    # paired branches: grouped convolutions everywhere but where both read the input (first conv1 and skip)
    assert groups.count(2) == 4 * members
    assert any(n.op_type == "AveragePool" for n in graph.node) == (decimate > 1)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "fusionactnet.onnx"), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        ref = model.log_probs(x).exp().numpy()
    assert np.abs(sess.run(["probs"], {"x": x.numpy()})[0] - ref).max() <= 1e-5
