"""The one place that builds onnxruntime sessions.

Torch-free: imports onnxruntime only. Every runtime builds its sessions here (through
:meth:`signals.modelfolder.ModelFolder.session`, which also checks the graph's named inputs and
outputs), so provider choice (CUDA when present, else CPU) and threading behave the same everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from signals.errors import ModelError


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, CPU always last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


def intra_op_threads(threads: int | None) -> int:
    """The intra-op thread count a session built with ``threads`` runs (``None``: onnxruntime's default, one per
    core; ``os.cpu_count`` stands for it)."""
    return int(threads) if threads is not None else (os.cpu_count() or 1)


def create_session(
    onnx_path: str | Path,
    providers: Sequence[str] | None = None,
    threads: int | None = None,
    blocked_convs: bool | None = None,
):
    """An ``onnxruntime.InferenceSession`` for ``onnx_path``.

    ``providers`` defaults to :func:`default_providers`; ``threads`` sets intra-op threads
    (``None`` = onnxruntime's default, all cores). ``blocked_convs``: onnxruntime's NCHWc layout transformer on
    or off; ``None`` (the default) = on for one intra-op thread only. Our waveform graphs store 1-D convolutions
    as 2-D ones (:func:`signals.export.conv1d_as_conv2d`) for its blocked kernels, which split the work by
    16-channel blocks: for the few channels of a waveform upsampler that is faster on one thread and slower on
    several, where im2col + GEMM parallelises better (HiFi-SR's upsampler, 412 frames: 288 vs 347 ms on 1
    thread, 247 vs 183 ms on 2). Graphs without 2-D convolutions are not affected.
    """
    import onnxruntime as ort

    path = Path(onnx_path)
    if not path.is_file():
        if path.exists():  # a folder, a device, a pipe: onnxruntime would read /dev/zero forever
            raise ModelError(f"ONNX model {path} is not a regular file")
        raise ModelError(f"ONNX model not found: {path}. Export it first or check the model folder.")
    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if blocked_convs is None:
        blocked_convs = intra_op_threads(threads) == 1
    extra = {} if blocked_convs else {"disabled_optimizers": ["NchwcTransformer"]}
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=list(providers or default_providers()),
                                    **extra)
    except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt graphs
        # one line (the CLI prints one), short: onnxruntime's message may quote the file's bytes
        text = " ".join(str(exc).split())
        text = text if len(text) <= 300 else text[:300] + " ..."
        raise ModelError(f"could not load ONNX model {path} (damaged, or not an ONNX graph): {text}") from None
