"""Export a trained FusionActNet folder to ONNX (fp32 + int8) in place, through :mod:`signals.export`.

The graph is self-contained for devices: input ``x`` float32 [batch, C, T] in raw units (per-channel
normalisation is inside), output ``probs`` float32 [batch, K], softmax-normalised, in the dataset's
class order (UCI HAR: labels 1..6). The batch axis is dynamic. The fp32 graph is checked with
``onnx.checker`` and against PyTorch (:data:`signals.export.PARITY_ATOL`) before config.json names it.

Inside, the fp32 graph computes the trained network's arithmetic in the form ONNX Runtime's CPU
provider runs fastest: 2-D convolutions over [B, C, 1, T] (:func:`conv2d_layout`; they run in its
blocked NCHWc layout, 1-D ones do not) and the two branches paired into one network of grouped
convolutions (:class:`_Paired`; half the nodes per call). The int8 graph is quantised from the unpaired
2-D form, so each branch keeps its own activation ranges.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from signals.errors import ModelError
from signals.export import atomic_file, compare, export_graph, quiet_quantizer, write_folder
from signals.har.model import FusionActNetConfig, FusionActNetEnsemble, time_mean
from signals.modelfolder import Graph, ModelConfig, ModelFolder, sha256, writable
from signals.torchutils import load_safetensors

FP32_FILE, INT8_FILE = "fusionactnet.onnx", "fusionactnet.int8.onnx"


def load_model(model_dir: str | Path | ModelFolder) -> FusionActNetEnsemble:
    """The PyTorch model of a model folder (config.json + model.safetensors), in eval mode."""
    folder = model_dir if isinstance(model_dir, ModelFolder) else ModelFolder.load(model_dir, "har")
    model = FusionActNetEnsemble(folder.section("model", FusionActNetConfig))
    load_safetensors(model, folder.file(folder.config.weights or "model.safetensors", must_exist=False))
    return model.eval()


class _Unsqueeze(nn.Module):
    """Tensor[B, C, T] -> Tensor[B, C, 1, T]: the entry of the 2-D layout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(2)


def _as_2d(module: nn.Module) -> nn.Module | None:
    """The 2-D twin (kernel (1, k) over [B, C, 1, T]) of a 1-D layer, or None for layers that need none."""
    if isinstance(module, nn.Conv1d):
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise ModelError(f"conv2d_layout: unsupported padding {module.padding!r} ({module.padding_mode})")
        twin = nn.Conv2d(module.in_channels, module.out_channels, (1, module.kernel_size[0]),
                         stride=(1, module.stride[0]), padding=(0, module.padding[0]),
                         dilation=(1, module.dilation[0]), groups=module.groups, bias=module.bias is not None)
        twin.weight.data.copy_(module.weight.data.unsqueeze(2))
        if module.bias is not None:
            twin.bias.data.copy_(module.bias.data)
        return twin
    if isinstance(module, nn.BatchNorm1d):
        twin = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        twin.load_state_dict(module.state_dict())
        return twin
    if isinstance(module, (nn.MaxPool1d, nn.AvgPool1d)):
        if module.padding not in (0, (0,)) or getattr(module, "ceil_mode", False):
            raise ModelError(f"conv2d_layout: unsupported pooling {module}")
        k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        st = module.stride if isinstance(module.stride, int) else module.stride[0]
        cls = nn.MaxPool2d if isinstance(module, nn.MaxPool1d) else nn.AvgPool2d
        return cls((1, k), stride=(1, st))
    return None


def conv2d_layout(model: FusionActNetEnsemble) -> FusionActNetEnsemble:
    """An eval-mode copy of ``model`` whose members compute on Tensor[B, C, 1, T]: every Conv1d,
    BatchNorm1d and pooling layer replaced by its 2-D twin, and the members' ``entry`` (decimation)
    preceded by an unsqueeze. Same weights, same arithmetic (the outputs agree to float rounding).

    Why: ONNX Runtime (CPU) runs 2-D convolutions in its blocked NCHWc layout and fuses the residual
    additions into them; 1-D ones go through a plain im2col + GEMM per window. Measured on the 2-core
    development machine, one thread: FusionActNet-Lite (24 24 48 48) 4,109 -> 5,254 windows/s at batch
    256 and batch-1 p50 0.364 -> 0.290 ms; widths 16 16 32 32: 7,037 -> 10,081 windows/s.
    """
    import copy

    out = copy.deepcopy(model)

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            twin = _as_2d(child)
            if twin is not None:
                setattr(parent, name, twin)
            else:
                swap(child)

    for net in out.members:
        swap(net)
        net.entry = nn.Sequential(_Unsqueeze(), net.entry)
    return out.eval()  # after the swap: new layers are born in training mode (batch statistics)


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``conv`` followed by eval-mode ``bn``, as one convolution."""
    if bn is None:
        b = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
        return conv.weight.detach(), b.detach()
    w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    return w.detach(), b.detach()


def _paired_conv(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor], groups: int) -> nn.Conv2d:
    """One Conv2d computing two same-shaped convolutions side by side: ``groups`` = 1 when both read the
    same input, 2 when each reads its own half of the channels. Weights are stacked, so the arithmetic is
    each original convolution's."""
    w, bias = torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])
    k = w.shape[-1]
    conv = nn.Conv2d(w.shape[1] * groups, w.shape[0], (1, k), padding=(0, k // 2), groups=groups)
    conv.weight.data.copy_(w)
    conv.bias.data.copy_(bias)
    return conv


class _PairedBlock(nn.Module):
    """A ResBlock of the static branch and the same block of the dynamic branch as one block.

    x: Tensor[B, C_in, 1, T] (shared input, first block) or Tensor[B, 2 C_in, 1, T] -> Tensor[B, 2 C_out, 1, T // 2]
    """

    def __init__(self, s: nn.Module, d: nn.Module, shared_input: bool) -> None:
        super().__init__()
        g = 1 if shared_input else 2
        self.conv1 = _paired_conv(_folded(s.conv1, s.bn1), _folded(d.conv1, d.bn1), g)
        self.conv2 = _paired_conv(_folded(s.conv2, s.bn2), _folded(d.conv2, d.bn2), 2)
        self.skip = _paired_conv(_folded(s.skip), _folded(d.skip), g)
        self.pool = s.pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x))
        return self.pool(torch.relu(self.conv2(h) + self.skip(x)))


class _Paired(nn.Module):
    """One FusionActNet member in its inference form: raw windows -> class probabilities.

    The static and dynamic branches run as one network of grouped convolutions (:class:`_PairedBlock`,
    block-diagonal head), BatchNorm folded, and the fusion is computed in the probability domain
    (``[sigmoid(g) softmax(s), sigmoid(-g) softmax(d)]``, which is ``exp`` of :meth:`FusionActNet.fuse`).
    Same weights and arithmetic as the training model, about half the graph nodes: what a single
    window's latency is made of.

    x: Tensor[B, C, T] raw -> probs Tensor[B, K] (dataset class order)
    """

    def __init__(self, net: nn.Module) -> None:  # a member in the 2-D layout (conv2d_layout)
        super().__init__()
        self.net = net  # normalisation buffers, the entry (decimation), the guidance net, the class order
        pairs = zip(net.static.blocks, net.dynamic.blocks)
        self.blocks = nn.Sequential(*[_PairedBlock(s, d, i == 0) for i, (s, d) in enumerate(pairs)])
        hs, hd = net.static.head, net.dynamic.head
        self.k_static, self.k_dynamic = hs.out_features, hd.out_features
        self.head = nn.Linear(hs.in_features + hd.in_features, hs.out_features + hd.out_features)
        self.head.weight.data.zero_()
        self.head.weight.data[: hs.out_features, : hs.in_features] = hs.weight.detach()
        self.head.weight.data[hs.out_features :, hs.in_features :] = hd.weight.detach()
        self.head.bias.data.copy_(torch.cat([hs.bias.detach(), hd.bias.detach()]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net.inputs(x)
        g = self.net.guide(z).unsqueeze(-1)  # [B, 1]
        logits = self.head(time_mean(self.blocks(z)))  # [B, Ks + Kd]
        ks, kd = self.k_static, self.k_dynamic
        if ks == kd:  # one Softmax over [B, 2, K/2]
            w = torch.sigmoid(torch.stack([g, -g], 1))  # [B, 2, 1]
            fused = (torch.softmax(logits.reshape(-1, 2, ks), -1) * w).reshape(-1, ks + kd)
        else:
            fused = torch.cat([torch.sigmoid(g) * torch.softmax(logits[:, :ks], -1),
                               torch.sigmoid(-g) * torch.softmax(logits[:, ks:], -1)], dim=-1)
        return fused.index_select(-1, self.net.inverse)


class _Unpaired(nn.Module):
    """A member in the 2-D layout as trained: three separate nets, log-space fusion; x -> probs."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.log_probs(x).exp()


class Exported(nn.Module):
    """The inference signature: raw windows in, class probabilities out (the members' mean), each
    member in the 2-D layout (:func:`conv2d_layout`) with its branches paired (:class:`_Paired`), or,
    with ``paired=False``, kept apart (the int8 graph's source: each branch keeps its own activation
    ranges when quantised, where the paired graph would share one per block).

    x: Tensor[B, C, T] float32 raw units -> probs Tensor[B, K] float32 (dataset class order)
    """

    def __init__(self, model: FusionActNetEnsemble, paired: bool = True) -> None:
        super().__init__()
        wrap = _Paired if paired else _Unpaired
        self.members = nn.ModuleList(wrap(net) for net in conv2d_layout(model).members).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.members) == 1:
            return self.members[0](x)
        return torch.stack([m(x) for m in self.members]).mean(0)


def input_convs(onnx_path: str | Path, blocks: int = 0) -> list[str]:
    """Names of the Conv nodes that read the (normalised) input windows, and with ``blocks`` = N every
    Conv of the first N blocks (``blocks.0`` .. ``blocks.N-1``) of both branches and of the guidance net.

    They stay float in the int8 graph: SITTING vs STANDING hinges on a few degrees of gravity
    direction, which 8-bit input activations blur. Chosen on validation subjects: quantising the input
    convolutions too cost 6 points of validation accuracy (0.924 vs 0.972; fp32 0.983) for the shipped
    model; FusionActNet-Lite (widths 16 24 32 48, decimated to 25 Hz, seed 0) scored 0.9670 / 0.9697 /
    0.9825 with 0 / 1 / 2 blocks float (fp32 0.9818), percentile calibration on 2,048 windows.
    """
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    reach = {i.name for i in graph.input}
    for node in graph.node:  # topological order: follow the normalisation ops (and the 2-D layout's entry)
        if node.op_type in ("Sub", "Div", "Mul", "Add", "Cast", "Unsqueeze", "Reshape", "AveragePool") and any(
                t in reach for t in node.input):
            reach.update(node.output)
    early = tuple(f"/blocks.{i}/" for i in range(blocks))
    return [n.name for n in graph.node if n.op_type == "Conv" and (
        any(t in reach for t in n.input) or any(b in n.name for b in early))]


CALIBRATION = ("minmax", "percentile", "entropy")


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, calib: np.ndarray, batch: int = 64,
                  method: str = "minmax", float_blocks: int = 0) -> Path:
    """Static QDQ int8 (per-channel weights, activations calibrated on ``calib`` [N, C, T] train windows).

    The convolutions reading the input (see :func:`input_convs`; with ``float_blocks`` = N the whole
    first N blocks of each branch and of the guidance net) and the fusion arithmetic stay float. ``method``: activation ranges from
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
        with quiet_quantizer():
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        src = pre
    except Exception:  # pre-processing is an optimisation only; quantise the raw graph if it fails
        src = fp32_path
    if method not in CALIBRATION:
        raise ModelError(f"unknown int8 calibration method {method!r} ({' | '.join(CALIBRATION)})")
    exclude = input_convs(src, float_blocks)  # names as in the graph being quantised
    try:
        with quiet_quantizer():
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
    float_blocks: int = 0,
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
        with atomic_file(writable(folder.path, INT8_FILE)) as q, tempfile.TemporaryDirectory() as tmp:
            # quantised from the unpaired graph: FusionActNet-Lite's (seed 0) validation accuracy in int8 (2
            # float blocks, percentile) was 0.9825 from it and 0.9785 from the paired graph (fp32 0.9818)
            source_graph = Path(tmp) / FP32_FILE
            export_graph(Exported(model, paired=False), source_graph, inputs, outputs, example, cases=[[check]])
            quantize_int8(source_graph, q, calib, method=calib_method, float_blocks=float_blocks)
            # int8 is lossy by design: its difference is measured and recorded, not held to the fp32 tolerance
            graphs["int8"] = Graph(file=INT8_FILE, inputs=inputs, outputs=outputs, opset=graphs["fp32"].opset,
                                   sha256=sha256(q),
                                   parity_max_abs_diff=compare(wrapped, q, ["x"], ["probs"], [[check]]))
        source["export"] = {"int8_calibration_windows": int(len(calib))}
        if calib_method != "minmax" or float_blocks:  # folders exported with the defaults keep their record
            source["export"].update(int8_calibration=calib_method, int8_float_blocks=float_blocks)
    else:  # a stale int8 graph (or a link to one) goes: config.json will not name it
        writable(folder.path, INT8_FILE).unlink(missing_ok=True)
    config = replace(folder.config, graphs=graphs, source=source)
    write_folder(folder.path, config)
    return config

