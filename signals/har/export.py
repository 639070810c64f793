"""Export a trained FusionActNet folder to ONNX (fp32 + int8) in place, through :mod:`signals.export`.

The graph is self-contained for devices: input ``x`` float32 [batch, C, T] in raw units (per-channel
normalisation is inside), output ``probs`` float32 [batch, K], softmax-normalised, in the dataset's
class order (UCI HAR: labels 1..6). The batch axis is dynamic. The fp32 graph is checked with
``onnx.checker`` and against PyTorch (:data:`signals.export.PARITY_ATOL`) before config.json names it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from signals.errors import ModelError
from signals.export import atomic_file, compare, export_graph, write_folder
from signals.har.model import FusionActNetConfig, FusionActNetEnsemble
from signals.modelfolder import Graph, ModelConfig, ModelFolder, sha256, writable
from signals.torchutils import load_safetensors

FP32_FILE, INT8_FILE = "fusionactnet.onnx", "fusionactnet.int8.onnx"


def load_model(model_dir: str | Path | ModelFolder) -> FusionActNetEnsemble:
    """The PyTorch model of a model folder (config.json + model.safetensors), in eval mode."""
    folder = model_dir if isinstance(model_dir, ModelFolder) else ModelFolder.load(model_dir, "har")
    model = FusionActNetEnsemble(folder.section("model", FusionActNetConfig))
    load_safetensors(model, folder.file(folder.config.weights or "model.safetensors", must_exist=False))
    return model.eval()


class Exported(nn.Module):
    """The inference signature: raw windows in, class probabilities out.

    x: Tensor[B, C, T] float32 raw units -> probs Tensor[B, K] float32 (dataset class order)
    """

    def __init__(self, model: FusionActNetEnsemble) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.log_probs(x).exp()


def input_convs(onnx_path: str | Path, first_block: bool = False) -> list[str]:
    """Names of the Conv nodes that read the (normalised) input windows.

    They stay float in the int8 graph: SITTING vs STANDING hinges on a few degrees of gravity
    direction, which 8-bit input activations blur. Chosen on validation subjects: quantising them
    too cost 6 points of validation accuracy (0.924 vs 0.972; fp32 0.983) for the shipped model.
    ``first_block``: also every Conv of the first block (``blocks.0``) of both branches and of the guidance
    net, which all run at the input's time resolution (FusionActNet-Lite: validation accuracy 0.9805 with
    them float vs 0.9664 without, fp32 0.9785, both with percentile calibration on 2,048 windows).
    """
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    reach = {i.name for i in graph.input}
    for node in graph.node:  # topological order: follow the element-wise normalisation ops
        if node.op_type in ("Sub", "Div", "Mul", "Add", "Cast") and any(t in reach for t in node.input):
            reach.update(node.output)
    return [n.name for n in graph.node if n.op_type == "Conv" and (
        any(t in reach for t in n.input) or (first_block and "/blocks.0/" in n.name))]


CALIBRATION = ("minmax", "percentile", "entropy")


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, calib: np.ndarray, batch: int = 64,
                  method: str = "minmax", float_first_block: bool = False) -> Path:
    """Static QDQ int8 (per-channel weights, activations calibrated on ``calib`` [N, C, T] train windows).

    The convolutions reading the input (see :func:`input_convs`; with ``float_first_block`` the whole
    first block of each branch and of the guidance net) and the fusion arithmetic stay float. ``method``: activation ranges from
    min/max, the 99.999th percentile or entropy (:data:`CALIBRATION`).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": np.ascontiguousarray(calib[i : i + batch], np.float32)}
                                 for i in range(0, len(calib), batch)])

        def get_next(self):
            return next(self.batches, None)

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    pre = int8_path.with_suffix(".pre.onnx")
    try:
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        src = pre
    except Exception:  # pre-processing is an optimisation only; quantise the raw graph if it fails
        src = fp32_path
    if method not in CALIBRATION:
        raise ModelError(f"unknown int8 calibration method {method!r} ({' | '.join(CALIBRATION)})")
    exclude = input_convs(src, float_first_block)  # names as in the graph being quantised
    try:
        quantize_static(
            str(src), str(int8_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            # the fused softmax / log-space arithmetic stays float: quantising it would cost accuracy
            op_types_to_quantize=["Conv", "MatMul", "Gemm"],
            nodes_to_exclude=exclude,
            calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                              "entropy": CalibrationMethod.Entropy}[method],
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    finally:
        pre.unlink(missing_ok=True)
    return int8_path


def calibration_windows(dataset: str, n: int, data: str | None = None, seed: int = 0) -> np.ndarray:
    """``n`` random TRAIN windows of ``dataset`` (the one the model was trained on; never test windows)."""
    from signals.har.data import load_dataset

    ds = load_dataset(dataset, root=data)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(ds.train.x), size=min(n, len(ds.train.x)), replace=False)
    return np.asarray(ds.train.x[np.sort(idx)], np.float32)


def export(
    model_dir: str | Path,
    int8: bool = True,
    data: str | None = None,
    calib: np.ndarray | None = None,
    n_calib: int = 512,
    check: np.ndarray | None = None,
    calib_method: str = "minmax",
    float_first_block: bool = False,
) -> ModelConfig:
    """Export ``model_dir`` in place: fp32 graph (parity-checked), int8 graph, config.json; returns the config.

    ``calib``: int8 calibration windows [N, C, T] (default: ``n_calib`` train windows of the model's
    dataset); ``check``: windows for the parity check (default: calibration windows, else random
    windows with the model's own normalisation statistics).
    """
    folder = ModelFolder.load(model_dir, "har")
    model = load_model(folder)
    mc = model.config
    front = folder.config.frontend
    if front and front.get("window", mc.window) != mc.window:
        raise ModelError(f"{folder.config_path}: model.window {mc.window} != frontend.window {front['window']}")
    if calib is None and int8:
        dataset = folder.config.source.get("dataset")
        name = dataset.get("name") if isinstance(dataset, dict) else None
        if not isinstance(name, str):
            raise ModelError(f"{folder.config_path}: source.dataset.name is missing, so the int8 calibration "
                             "windows cannot be chosen; pass --no-int8")
        calib = calibration_windows(name, n_calib, data)
    if check is None:
        if calib is not None:
            check = calib[:64]
        else:  # random windows in raw units, from the normalisation buffers inside the model
            net = model.members[0]
            z = np.random.default_rng(0).normal(size=(16, mc.in_channels, mc.window))
            check = (z * net.std.numpy() + net.mean.numpy()).astype(np.float32)
    inputs = {"x": ("batch", mc.in_channels, mc.window)}
    outputs = {"probs": ("batch", mc.n_classes)}
    example = [torch.from_numpy(np.ascontiguousarray(check[:2], np.float32))]
    wrapped = Exported(model)
    # Both graphs are written through atomic_file(): the folder may link its files to shared (or shipped)
    # ones, and exporting in place must replace such a link, never overwrite the file it points to.
    graphs = {"fp32": export_graph(wrapped, folder.path / FP32_FILE, inputs, outputs, example,
                                   cases=[[check[:1]], [check]])}
    source = dict(folder.config.source)
    source.pop("export", None)
    if int8:
        with atomic_file(writable(folder.path, INT8_FILE)) as q:
            quantize_int8(folder.path / FP32_FILE, q, calib, method=calib_method, float_first_block=float_first_block)
            # int8 is lossy by design: its difference is measured and recorded, not held to the fp32 tolerance
            graphs["int8"] = Graph(file=INT8_FILE, inputs=inputs, outputs=outputs, opset=graphs["fp32"].opset,
                                   sha256=sha256(q),
                                   parity_max_abs_diff=compare(wrapped, q, ["x"], ["probs"], [[check]]))
        source["export"] = {"int8_calibration_windows": int(len(calib))}
        if calib_method != "minmax" or float_first_block:  # folders exported with the defaults keep their record
            source["export"].update(int8_calibration=calib_method, int8_float_first_block=float_first_block)
    else:  # a stale int8 graph (or a link to one) goes: config.json will not name it
        writable(folder.path, INT8_FILE).unlink(missing_ok=True)
    config = replace(folder.config, graphs=graphs, source=source)
    write_folder(folder.path, config)
    return config

