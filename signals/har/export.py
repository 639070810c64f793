"""Export a trained FusionActNet folder to ONNX (fp32 + int8) and check it.

    signals har export --model runs/har/fusionactnet            # fp32 + int8 (calibrated on train windows)
    signals har export --model DIR --no-int8                    # fp32 only

The graph is self-contained for devices: input ``x`` float32 [batch, C, T] in raw units (per-channel
normalisation is inside), output ``probs`` float32 [batch, K], softmax-normalised, in the dataset's
class order (UCI HAR: labels 1..6). The batch axis is dynamic. The fp32 graph is checked with
``onnx.checker`` and against PyTorch (max abs diff <= 1e-4) before the config is updated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from signals.errors import ModelError
from signals.har.model import FusionActNetConfig, FusionActNetEnsemble, build_model
from signals.runtime import read_config, write_config
from signals.torchutils import load_safetensors

PARITY_ATOL = 1e-4


def load_torch_model(model_dir: str | Path) -> FusionActNetEnsemble:
    """The PyTorch model of a model folder (config.json + model.safetensors), in eval mode."""
    cfg = read_config(model_dir)
    if "model" not in cfg:
        raise ModelError(f"{model_dir}/config.json has no 'model' section: not a FusionActNet folder")
    model = build_model(FusionActNetConfig.from_dict(cfg["model"]))
    load_safetensors(model, Path(model_dir) / "model.safetensors")
    return model.eval()


class ProbsWrapper(nn.Module):
    """The inference signature: raw windows in, class probabilities out.

    x: Tensor[B, C, T] float32 raw units -> probs Tensor[B, K] float32 (dataset class order)
    """

    def __init__(self, model: FusionActNetEnsemble) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.log_probs(x).exp()


def export_onnx(model: FusionActNetEnsemble, path: str | Path, opset: int = 17) -> Path:
    """Write the fp32 graph with a dynamic batch axis and check it with ``onnx.checker``."""
    import onnx

    cfg = model.config
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(2, cfg.in_channels, cfg.window)
    with torch.inference_mode():
        torch.onnx.export(
            ProbsWrapper(model.eval()), (example,), str(path), input_names=["x"], output_names=["probs"],
            dynamic_axes={"x": {0: "batch"}, "probs": {0: "batch"}}, opset_version=opset, dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)))
    return path


def parity(model: FusionActNetEnsemble, onnx_path: str | Path, x: np.ndarray) -> float:
    """Max |p_torch - p_onnx| on windows ``x`` [N, C, T]."""
    from signals.runtime import create_session

    sess = create_session(onnx_path, providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(x, np.float32)
    got = sess.run(["probs"], {"x": x})[0]
    with torch.inference_mode():
        ref = model.eval().log_probs(torch.from_numpy(x)).exp().numpy()
    return float(np.abs(got - ref).max())


def input_convs(onnx_path: str | Path) -> list[str]:
    """Names of the Conv nodes that read the (normalised) input windows.

    They stay float in the int8 graph: SITTING vs STANDING hinges on a few degrees of gravity
    direction, which 8-bit input activations blur. Chosen on validation subjects: quantising them
    too cost 6 points of validation accuracy (0.924 vs 0.972; fp32 0.983) for the shipped model.
    """
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    reach = {i.name for i in graph.input}
    for node in graph.node:  # topological order: follow the element-wise normalisation ops
        if node.op_type in ("Sub", "Div", "Mul", "Add", "Cast") and any(t in reach for t in node.input):
            reach.update(node.output)
    return [n.name for n in graph.node if n.op_type == "Conv" and any(t in reach for t in n.input)]


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, calib: np.ndarray, batch: int = 64) -> Path:
    """Static QDQ int8 (per-channel weights, activations calibrated on ``calib`` [N, C, T] train windows).

    The convolutions reading the input (see :func:`input_convs`) and the fusion arithmetic stay float.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
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
    exclude = input_convs(src)  # names as in the graph being quantised
    try:
        quantize_static(
            str(src), str(int8_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            # the fused softmax / log-space arithmetic stays float: quantising it would cost accuracy
            op_types_to_quantize=["Conv", "MatMul", "Gemm"],
            nodes_to_exclude=exclude,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    finally:
        pre.unlink(missing_ok=True)
    return int8_path


def calibration_windows(cfg: dict, n: int, data: str | None = None, seed: int = 0) -> np.ndarray:
    """``n`` random TRAIN windows of the dataset the model was trained on (never test windows)."""
    from signals.har.data import load_dataset

    ds = load_dataset(cfg["dataset"]["name"], root=data)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(ds.train.x), size=min(n, len(ds.train.x)), replace=False)
    return np.asarray(ds.train.x[np.sort(idx)], np.float32)


def export_folder(
    model_dir: str | Path,
    int8: bool = True,
    data: str | None = None,
    calib: np.ndarray | None = None,
    n_calib: int = 512,
    check: np.ndarray | None = None,
) -> dict:
    """Export ``model_dir`` in place: writes the ONNX graphs, checks parity, updates config.json."""
    model_dir = Path(model_dir)
    cfg = read_config(model_dir)
    model = load_torch_model(model_dir)
    names = cfg.get("onnx") or {"fp32": "fusionactnet.onnx", "int8": "fusionactnet.int8.onnx"}
    fp32 = export_onnx(model, model_dir / names["fp32"])
    if calib is None and int8:
        calib = calibration_windows(cfg, n_calib, data)
    if check is None:
        if calib is not None:
            check = calib[:64]
        else:
            check = np.random.default_rng(0).normal(size=(16, model.config.in_channels, model.config.window))
            check = (check * np.asarray(cfg["normalization"]["std"])[:, None]
                     + np.asarray(cfg["normalization"]["mean"])[:, None]).astype(np.float32)
    diff = parity(model, fp32, check)
    if not diff <= PARITY_ATOL:
        raise ModelError(f"ONNX export of {model_dir} disagrees with PyTorch: max abs diff {diff:.2e} > {PARITY_ATOL}")
    report = {"fp32": names["fp32"], "parity_max_abs_diff": diff, "opset": 17}
    if int8:
        q = quantize_int8(fp32, model_dir / names["int8"], calib)
        report["int8"] = q.name
        report["int8_calibration_windows"] = int(len(calib))
        report["int8_max_abs_diff"] = parity(model, q, check)
    else:
        names = {k: v for k, v in names.items() if k != "int8"}
    cfg["onnx"] = names
    cfg.setdefault("export", {}).update(report)
    write_config(model_dir, cfg)
    return report


def run_export(args) -> int:
    from signals.paths import model_dir

    args.model = args.model or str(model_dir("har"))
    report = export_folder(args.model, int8=not args.no_int8, data=args.data, n_calib=args.calib_windows)
    print(f"{args.model}/{report['fp32']}: onnx.checker ok, max |torch - onnx| = {report['parity_max_abs_diff']:.2e}")
    if "int8" in report:
        print(f"{args.model}/{report['int8']}: static int8 (QDQ), calibrated on {report['int8_calibration_windows']} "
              f"train windows, max |torch - int8| = {report['int8_max_abs_diff']:.3f}")
    return 0
