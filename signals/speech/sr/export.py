"""Export the HiFi-SR generator to ONNX and write the model folder.

    signals speech sr export --weights runs/sr/generator_best.safetensors --out models/super_resolution

The graph maps ``mel: float32[batch, 80, frames]`` (the SR_MEL log-mel of the input resampled to 48 kHz)
to ``audio: float32[batch, frames * 256]``; batch and frames are dynamic. Parity with PyTorch is checked
on two lengths before the folder is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from signals.errors import ModelError
from signals.runtime import write_config
from signals.speech.features import SR_MEL
from signals.speech.sr.model import SMALL, Generator, GeneratorConfig
from signals.speech.sr.postprocess import BANDWIDTH_DROP_DB, CROSSOVER_WIDTH_HZ
from signals.torchutils import load_safetensors, save_safetensors

ONNX_NAME = "generator.onnx"
OPSET = 17


class _Export(nn.Module):
    """The inference signature: ``mel [B, n_mels, F]`` -> ``audio [B, F * hop]``."""

    def __init__(self, gen: Generator):
        super().__init__()
        self.gen = gen

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.gen(mel).squeeze(1)


def export_onnx(gen: Generator, path: str | Path, frames: int = 64) -> Path:
    import onnx

    gen = gen.eval().float()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.randn(1, gen.cfg.n_mels, frames)
    torch.onnx.export(
        _Export(gen), (dummy,), str(path), input_names=["mel"], output_names=["audio"],
        dynamic_axes={"mel": {0: "batch", 2: "frames"}, "audio": {0: "batch", 1: "samples"}},
        opset_version=OPSET, dynamo=False,
    )
    onnx.checker.check_model(onnx.load(str(path)))
    return path


@torch.inference_mode()
def check_parity(gen: Generator, onnx_path: str | Path, lengths: tuple[int, ...] = (40, 203), seed: int = 0) -> float:
    """Max |onnxruntime - torch| over random log-mels of several lengths (dynamic axis check)."""
    from signals.runtime import create_session

    sess = create_session(onnx_path, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for n in lengths:
        mel = torch.randn(1, gen.cfg.n_mels, n, generator=g) * 2.0 - 6.0
        ref = gen.eval()(mel).squeeze(1).numpy()
        got = sess.run(["audio"], {"mel": mel.numpy()})[0]
        if got.shape != ref.shape:
            raise ModelError(f"ONNX output shape {got.shape} != torch {ref.shape} for {n} frames")
        worst = max(worst, float(np.max(np.abs(got - ref))))
    return worst


def model_config(gcfg: GeneratorConfig, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``config.json``: everything the runtime needs to rebuild the front end and the model."""
    return {
        "model": "hifi-sr",
        "sample_rate": SR_MEL.sample_rate,
        "mel": SR_MEL.to_dict(),
        "generator": gcfg.to_dict(),
        "onnx": ONNX_NAME,
        "onnx_io": {"input": "mel", "output": "audio", "hop": gcfg.hop},
        "inference": {
            "context_frames": gcfg.context_frames,
            "chunk_frames": 1024,
            "crossfade_frames": 8,
            "bandwidth_drop_db": BANDWIDTH_DROP_DB,
            "crossover_width_hz": CROSSOVER_WIDTH_HZ,
        },
        **(extra or {}),
    }


def export(weights: str | Path, out: str | Path, gcfg: GeneratorConfig | None = None,
           extra: dict[str, Any] | None = None, tolerance: float = 1e-3) -> dict[str, Any]:
    """Load generator weights, write ``out/{config.json, model.safetensors, generator.onnx}``."""
    from safetensors import safe_open

    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"generator weights not found: {weights}")
    if gcfg is None:
        with safe_open(str(weights), "pt") as f:
            meta = f.metadata() or {}
        gcfg = GeneratorConfig.from_dict(json.loads(meta["config"])) if "config" in meta else SMALL
    gen = load_safetensors(Generator(gcfg), weights).eval()
    out = Path(out)
    onnx_path = export_onnx(gen, out / ONNX_NAME)
    err = check_parity(gen, onnx_path)
    if err > tolerance:
        raise ModelError(f"ONNX parity failed: max abs difference {err:.2e} > {tolerance:.0e}")
    save_safetensors(gen, out / "model.safetensors", metadata={"config": json.dumps(gcfg.to_dict())})
    cfg = model_config(gcfg, {**(extra or {}), "export_parity_max_abs": err})
    write_config(out, cfg)
    return {"onnx": str(onnx_path), "parity_max_abs": err, "params": sum(p.numel() for p in gen.parameters())}
