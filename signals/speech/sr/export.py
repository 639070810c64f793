"""Export the HiFi-SR generator to ONNX and write the model folder, through :mod:`signals.export`.

    signals speech sr export --weights runs/sr/generator_best.safetensors --out models/super_resolution

The graph maps ``mel: float32[batch, 80, frames]`` (the SR_MEL log-mel of the input resampled to 48 kHz)
to ``audio: float32[batch, frames * 256]``; batch and frames are dynamic. Parity with PyTorch is checked
on several lengths before the folder is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from signals.configio import from_dict, to_dict
from signals.errors import ModelError
from signals.export import export_graph, write_folder
from signals.modelfolder import ModelConfig, ModelFolder
from signals.speech.sr.config import SMALL, GeneratorConfig
from signals.speech.sr.frontend import FrontEnd
from signals.speech.sr.infer import KIND, ONNX_FILE, Chunking
from signals.speech.sr.model import Generator
from signals.torchutils import load_safetensors

DESCRIPTION = ("HiFi-SR: banded-attention conformer encoder over the 48 kHz log-mel feeding a HiFi-GAN/Snake "
               "upsampler; any input rate 4-48 kHz -> 48 kHz")


class Exported(nn.Module):
    """The inference signature: ``mel: Tensor[B, n_mels, F]`` -> ``audio: Tensor[B, F * hop]``."""

    def __init__(self, gen: Generator):
        super().__init__()
        self.gen = gen

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.gen(mel).squeeze(1)


def parity_cases(n_mels: int, lengths: tuple[int, ...] = (40, 203), seed: int = 0) -> list[list[np.ndarray]]:
    """Random log-mels (around the SR_MEL range) of several lengths: exercises the dynamic frames axis."""
    rng = np.random.default_rng(seed)
    return [[(rng.standard_normal((1, n_mels, n)) * 2.0 - 6.0).astype(np.float32)] for n in lengths]


def weights_config(weights: str | Path) -> GeneratorConfig:
    """The generator config stored in a training ``.safetensors`` file's metadata (else the small preset)."""
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        meta = f.metadata() or {}
    return from_dict(GeneratorConfig, json.loads(meta["config"]), str(weights), "config") if "config" in meta else SMALL


def load_model(model_dir: str | Path | ModelFolder) -> Generator:
    """The PyTorch generator of a model folder (config.json + model.safetensors), in eval mode."""
    folder = model_dir if isinstance(model_dir, ModelFolder) else ModelFolder.load(model_dir, KIND)
    gen = Generator(folder.section("model", GeneratorConfig))
    return load_safetensors(gen, folder.file(folder.config.weights or "model.safetensors", must_exist=False)).eval()


def export(weights: str | Path, out: str | Path, gcfg: GeneratorConfig | None = None,
           source: dict[str, Any] | None = None, licence: str = "unknown") -> ModelConfig:
    """Load generator weights, write ``out/{config.json, model.safetensors, generator.onnx}``; returns the config.

    ``source``: provenance for config.json (data split, training recipe); ``data.test_utterances`` is what
    ``signals speech sr evaluate --held-out`` evaluates on.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"generator weights not found: {weights}")
    gcfg = gcfg or weights_config(weights)
    gen = load_safetensors(Generator(gcfg), weights).eval().float()
    out = Path(out)
    graph = export_graph(Exported(gen), out / ONNX_FILE, inputs={"mel": ("batch", gcfg.n_mels, "frames")},
                         outputs={"audio": ("batch", "samples")}, example=[torch.randn(1, gcfg.n_mels, 64)],
                         cases=parity_cases(gcfg.n_mels))
    config = ModelConfig(kind=KIND, description=DESCRIPTION, model=to_dict(gcfg), frontend=to_dict(FrontEnd()),
                         graphs={"generator": graph}, runtime=to_dict(Chunking(context_frames=gcfg.context_frames)),
                         source=source or {}, licence=licence)
    write_folder(out, config, gen, metadata={"config": json.dumps(to_dict(gcfg))})
    return config
