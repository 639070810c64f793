"""The one ONNX export path: wrapper module -> named, dynamic graph -> checker -> parity -> model folder.

Every model's ``export.py`` does the same four things with these functions:

1. wrap the trained network in a tiny ``nn.Module`` whose ``forward`` *is* the inference signature
   (named tensors in, named tensors out, no training state), with the shapes in its docstring;
2. :func:`export_graph`: ``torch.onnx.export`` with the input/output names and dims of a
   :class:`signals.modelfolder.Graph` (string dims become dynamic axes), ``onnx.checker``, then
   :func:`check_parity` on a few inputs of different sizes (so the dynamic axes are exercised),
   refusing the graph when onnxruntime and torch differ by more than :data:`PARITY_ATOL`;
3. :func:`save_weights`: ``model.safetensors``;
4. :func:`signals.modelfolder.write_config`: ``config.json`` naming the graphs, with their sha256.

Every file is written atomically into the folder (:func:`atomic_file`): a temporary file renamed over the
target, so an export that fails half-way leaves the previous graph, and a target that is a symbolic link
(a folder linking shared or shipped files) is replaced by a file of the folder's own instead of having
the file it points to overwritten.

Torch and onnx are imported here; runtime code never imports this module.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from signals.errors import ModelError, SignalsError
from signals.modelfolder import Dims, Graph, ModelConfig, sha256, writable, write_config

OPSET = 17
# One tolerance for every float32 graph: the shipped graphs agree with torch to ~3e-7; 1e-4 leaves room for
# other CPUs' kernels while still catching a wrong op (those differ by 1e-2 or more).
PARITY_ATOL = 1e-4


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary path to write ``path`` through (see the module docstring); ``path`` must be confined to
    its folder by the caller (:func:`signals.modelfolder.writable`)."""
    from signals.outputs import AtomicOutput

    try:
        with AtomicOutput(path, what="model file") as out:
            yield out.tmp
    except SignalsError as exc:  # OutputError: the folder cannot be written, the name is a folder ...
        raise ModelError(str(exc)) from None


def export_graph(
    module: nn.Module,
    path: str | Path,
    inputs: Mapping[str, Dims],
    outputs: Mapping[str, Dims],
    example: Sequence[np.ndarray | torch.Tensor],
    cases: Sequence[Sequence[np.ndarray]] = (),
    atol: float = PARITY_ATOL,
    opset: int = OPSET,
    conv2d: bool = False,
    reference: nn.Module | None = None,
) -> Graph:
    """Export ``module`` to ``path`` and check it; returns the :class:`Graph` entry for ``config.json``.

    ``inputs``/``outputs``: name -> dims in ``forward``'s order (a string dim is a dynamic axis, e.g.
    ``{"mels": ("batch", "frames", 40)}``). ``example``: the tensors traced. ``cases``: input tuples
    for :func:`check_parity` (default: the example alone); give several sizes along dynamic axes.
    ``conv2d``: store 1-D convolutions as 2-D ones (:func:`conv1d_as_conv2d`, faster in onnxruntime on CPU);
    the parity check runs on the rewritten graph. ``reference``: the module the parity check compares with
    (default ``module``), e.g. the exact model when ``module`` traces a faster approximation of it; the recorded
    ``parity_max_abs_diff`` is then the approximation's error too.
    """
    import onnx

    path = writable(Path(path).parent, Path(path).name)
    module = module.eval().cpu()
    example = tuple(torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x for x in example)
    dynamic = {name: {i: d for i, d in enumerate(dims) if isinstance(d, str)}
               for name, dims in {**inputs, **outputs}.items()}
    cases = list(cases) or [tuple(x.numpy() for x in example)]
    # checked and compared before it replaces the previous graph: a failed export leaves that one in place
    with atomic_file(path) as tmp:
        with warnings.catch_warnings(), torch.inference_mode():
            # Tracing warns about shape checks turned into constants and about RNNs traced at one batch
            # size; the parity cases below run other sizes instead of trusting either warning.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module, example, str(tmp), input_names=list(inputs), output_names=list(outputs),
                              dynamic_axes={k: v for k, v in dynamic.items() if v}, opset_version=opset,
                              dynamo=False)
        model = onnx.load(str(tmp))
        if conv2d and conv1d_as_conv2d(model):
            onnx.save(model, str(tmp))
        onnx.checker.check_model(model)
        ref = module if reference is None else reference.eval().cpu()
        err = check_parity(ref, tmp, list(inputs), list(outputs), cases, atol=atol)
        digest = sha256(tmp)
    return Graph(file=path.name, inputs={k: tuple(v) for k, v in inputs.items()},
                 outputs={k: tuple(v) for k, v in outputs.items()}, opset=opset, sha256=digest,
                 parity_max_abs_diff=err)


@torch.inference_mode()
def compare(module: nn.Module, path: str | Path, input_names: Sequence[str], output_names: Sequence[str],
            cases: Sequence[Sequence[np.ndarray]]) -> float:
    """Largest ``|torch - onnxruntime|`` over all outputs of all ``cases`` (CPU provider); checks shapes."""
    from signals.runtime import create_session

    session = create_session(path, providers=["CPUExecutionProvider"])
    module = module.eval()
    worst = 0.0
    for case in cases:
        # floats are fed as float32, integer inputs (token IDs) keep their dtype
        feeds = {n: np.ascontiguousarray(x, dtype=np.float32 if np.asarray(x).dtype.kind == "f" else None)
                 for n, x in zip(input_names, case)}
        got = session.run(list(output_names), feeds)
        ref = module(*(torch.from_numpy(feeds[n]) for n in input_names))
        ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        for name, g, r in zip(output_names, got, ref):
            r = r.float().numpy()
            if g.shape != r.shape:
                raise ModelError(f"{path}: output {name!r} has shape {list(g.shape)} in onnxruntime but "
                                 f"{list(r.shape)} in torch for inputs {[list(x.shape) for x in case]}")
            worst = max(worst, float(np.max(np.abs(g - r))) if g.size else 0.0)
    return worst


def check_parity(module: nn.Module, path: str | Path, input_names: Sequence[str], output_names: Sequence[str],
                 cases: Sequence[Sequence[np.ndarray]], atol: float = PARITY_ATOL) -> float:
    """:func:`compare`, raising :class:`ModelError` when the difference exceeds ``atol``."""
    err = compare(module, path, input_names, output_names, cases)
    if not err <= atol:
        raise ModelError(f"ONNX export {path} disagrees with torch: max |diff| {err:.2e} > {atol:.0e}")
    return err


def save_weights(model: nn.Module, folder: str | Path, name: str = "model.safetensors",
                 metadata: dict[str, str] | None = None) -> Path:
    """``folder/name`` (safetensors; untrusted files are never unpickled), written atomically."""
    from signals.torchutils import save_safetensors

    path = writable(folder, name)
    with atomic_file(path) as tmp:
        save_safetensors(model, tmp, metadata=metadata)
    return path


def write_folder(folder: str | Path, config: ModelConfig, model: nn.Module | None = None,
                 metadata: dict[str, str] | None = None) -> Path:
    """Finish a model folder: ``config.weights`` from ``model`` (when given) and ``config.json``.

    Call it after :func:`export_graph` has written the graphs named in ``config.graphs``.
    """
    folder = Path(folder)
    missing = [g.file for g in config.graphs.values() if not writable(folder, g.file).is_file()]
    if missing:
        raise ModelError(f"{folder}: graphs {missing} named in the config were not exported")
    if model is not None and config.weights:
        save_weights(model, folder, config.weights, metadata)
    write_config(folder, config)
    return folder


def round_to_fp16(model: nn.Module) -> nn.Module:
    """Round every floating parameter and buffer to float16 precision in place (kept as float32)."""
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                t.copy_(t.half().float())
    return model


def store_initializers_fp16(path: str | Path, min_size: int = 16) -> int:
    """Rewrite an ONNX file so float32 initializers (of ``min_size`` elements or more) are stored as
    float16, each read through a ``Cast`` to float32. Returns how many were converted.

    The values must already be float16-representable (:func:`round_to_fp16`) for the graph to
    compute exactly what it computed before.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    m = onnx.load(str(path))
    graph = m.graph
    inits, casts, n = [], [], 0
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if init.data_type != TensorProto.FLOAT or arr.size < min_size:
            inits.append(init)
            continue
        half = arr.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), arr):
            raise ModelError(f"{path}: initializer {init.name!r} is not float16-representable; round the model first")
        inits.append(numpy_helper.from_array(half, init.name + "__fp16"))
        casts.append(helper.make_node("Cast", [init.name + "__fp16"], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + "__cast"))
        n += 1
    del graph.initializer[:]
    graph.initializer.extend(inits)
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(m)
    with atomic_file(writable(path.parent, path.name)) as tmp:
        onnx.save(m, str(tmp))
    return n


def conv1d_as_conv2d(model) -> int:
    """Rewrite every 1-D ``Conv`` of an ``onnx.ModelProto`` (in place) as ``Unsqueeze -> 2-D Conv -> Squeeze``
    with a ``[1, k]`` kernel: the same arithmetic. Returns how many were rewritten.

    Why: onnxruntime's CPU provider runs 2-D convolutions through its blocked NCHWc kernels (direct
    convolution, no im2col buffer), 1-D ones through im2col + GEMM. For HiFi-GAN-style upsamplers (few
    channels, hundreds of thousands of samples) that is 15-30 % less time per convolution, ~10 % of the
    whole graph (measured on HiFi-SR, 1 thread). Weights stored as initializers only; others are left alone.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    axes = "conv1d_as_conv2d_axes"
    nodes, n = [], 0
    for node in graph.node:
        w = inits.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if w is None or len(w.dims) != 3 or users[w.name] != 1:
            nodes.append(node)
            continue
        w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w)[:, :, None, :], w.name))
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kw = {"kernel_shape": [1, w.dims[-1]], "group": attrs.get("group", 1),
              "dilations": [1, *attrs.get("dilations", [1])], "strides": [1, *attrs.get("strides", [1])]}
        if "pads" in attrs:
            kw["pads"] = [0, attrs["pads"][0], 0, attrs["pads"][1]]
        if "auto_pad" in attrs:
            kw["auto_pad"] = attrs["auto_pad"]
        x4, y4 = f"{node.output[0]}__in4d", f"{node.output[0]}__out4d"
        nodes += [helper.make_node("Unsqueeze", [node.input[0], axes], [x4]),
                  helper.make_node("Conv", [x4, *node.input[1:]], [y4], name=node.name, **kw),
                  helper.make_node("Squeeze", [y4, axes], [node.output[0]])]
        n += 1
    if n:
        graph.initializer.append(numpy_helper.from_array(np.array([2], dtype=np.int64), axes))
        del graph.node[:]
        graph.node.extend(nodes)
    return n


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    """onnxruntime's quantisers log through the *root* logger (one INFO line per unquantised tensor, ~40 for
    the TTS decoder step, and a pre-processing hint as a WARNING): under a CLI that logs at INFO they bury
    the export's own report. Raise the root level to ERROR while they run; errors still show."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_dynamic_int8(src: str | Path, dst: str | Path, op_types: Sequence[str] = ("MatMul", "Gemm")) -> Path:
    """``dst``: ``src`` with the weights of its ``op_types`` nodes in int8 (per output channel) and their
    activations quantised on the fly (onnxruntime dynamic quantisation: no calibration data).

    For graphs whose time goes to streaming large weight matrices from memory at batch 1 (an
    autoregressive decoder step): int8 weights are 4x less traffic. Float16 initializers stored by
    :func:`store_initializers_fp16` are expanded back to float32 first (the quantiser reads float32).
    """
    import onnx
    from onnx import TensorProto, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    m = onnx.load(str(src))
    graph = m.graph
    halves = {i.name: i for i in graph.initializer if i.data_type == TensorProto.FLOAT16}
    nodes, expanded = [], {}
    for node in graph.node:
        if node.op_type == "Cast" and len(node.input) == 1 and node.input[0] in halves:
            expanded[node.output[0]] = numpy_helper.to_array(halves[node.input[0]]).astype(np.float32)
        else:
            nodes.append(node)
    used = {name for node in nodes for name in node.input}
    inits = [i for i in graph.initializer if i.name in used]
    inits += [numpy_helper.from_array(arr, name) for name, arr in expanded.items()]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    fp32 = dst.with_suffix(".fp32.tmp.onnx")
    try:
        onnx.save(m, str(fp32))
        with atomic_file(writable(dst.parent, dst.name)) as tmp:
            with quiet_quantizer():
                quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                                 op_types_to_quantize=list(op_types))
    finally:
        fp32.unlink(missing_ok=True)
    return dst

