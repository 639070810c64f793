"""The one place that builds onnxruntime sessions and reads model folders.

Torch-free: imports numpy, json and onnxruntime only. Every ``infer.py`` builds its sessions here,
so provider choice (CUDA when present, else CPU) and threading behave the same everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from signals.errors import ModelError


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, CPU always last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


def create_session(
    onnx_path: str | Path,
    providers: Sequence[str] | None = None,
    threads: int | None = None,
):
    """An ``onnxruntime.InferenceSession`` for ``onnx_path``.

    ``providers`` defaults to :func:`default_providers`; ``threads`` sets intra-op threads
    (``None`` = onnxruntime's default, all cores).
    """
    import onnxruntime as ort

    path = Path(onnx_path)
    if not path.is_file():
        raise ModelError(f"ONNX model not found: {path}. Export it first or check the model folder.")
    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=list(providers or default_providers()))
    except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt graphs
        raise ModelError(f"could not load ONNX model {path}: {exc}") from exc


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a model folder, with a clear error if the folder is not one."""
    folder = Path(model_dir)
    cfg = folder / "config.json"
    if not folder.is_dir():
        raise ModelError(f"model folder not found: {folder}")
    if not cfg.is_file():
        raise ModelError(f"{folder} is not a model folder: config.json is missing")
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{cfg} is not valid JSON: {exc}") from exc


def write_config(model_dir: str | Path, config: dict[str, Any]) -> Path:
    folder = Path(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(config, indent=2, sort_keys=False) + "\n")
    return path
