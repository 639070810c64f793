"""Write a speaker-encoder model folder: config.json, model.safetensors, speaker_encoder.onnx (+ parity).

    signals speech encoder export runs/encoder/checkpoint.pt --out runs/encoder/model

The ONNX graph takes ``mels`` float32 [batch, frames, 40] (linear power mel, any number of frames)
and returns ``embeddings`` float32 [batch, 256], L2-normalised. Both axes are dynamic; parity with
torch is checked on several batch sizes and lengths (:func:`signals.export.export_graph`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from signals.configio import to_dict
from signals.errors import ModelError
from signals.export import atomic_file, export_graph, write_folder
from signals.modelfolder import ModelConfig, ModelFolder, writable
from signals.speech.encoder.config import EncoderConfig
from signals.speech.encoder.frontend import FrontEnd
from signals.speech.encoder.infer import KIND, ONNX_FILE
from signals.speech.encoder.model import SpeakerEncoder
from signals.torchutils import first_line, load_checkpoint, load_safetensors

DESCRIPTION = "GE2E speaker encoder: 3 x LSTM(256) -> Linear(256) -> ReLU -> L2 norm"


class Exported(nn.Module):
    """The inference signature only (no GE2E w/b, no training state).

    mels: Tensor[B, frames, n_mels] linear power mel -> embeddings: Tensor[B, D], L2-normalised
    """

    def __init__(self, model: SpeakerEncoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return self.model(mels)


def parity_cases(n_mels: int, seed: int = 0) -> list[list[np.ndarray]]:
    """Random power mels of several batch sizes and lengths (the LSTM is traced at batch 2, 160 frames)."""
    rng = np.random.default_rng(seed)
    # Power mels of normalised speech span roughly 0..10; exponentiate for a realistic spread.
    return [[np.exp(3 * rng.standard_normal((b, t, n_mels)) - 4).astype(np.float32)]
            for b, t in [(1, 160), (3, 160), (2, 57), (5, 300)]]


def write_model_folder(model: SpeakerEncoder, out: str | Path, source: dict[str, Any],
                       front: FrontEnd = FrontEnd(), runtime: dict[str, Any] | None = None,
                       files: dict[str, str] | None = None, licence: str = "unknown") -> ModelConfig:
    """config.json + model.safetensors + ONNX (parity-checked) in ``out``; returns the config."""
    out = Path(out)
    model = model.eval().cpu()
    mc = model.config
    graph = export_graph(Exported(model), out / ONNX_FILE, inputs={"mels": ("batch", "frames", mc.n_mels)},
                         outputs={"embeddings": ("batch", mc.embedding_size)},
                         example=[torch.rand(2, 160, mc.n_mels)], cases=parity_cases(mc.n_mels))
    config = ModelConfig(kind=KIND, description=DESCRIPTION, model=to_dict(mc), frontend=to_dict(front),
                         graphs={"encoder": graph}, files=files or {}, runtime=runtime or {}, source=source,
                         licence=licence)
    write_folder(out, config, model, metadata={"format": "pt"})
    return config


def load_model(model_dir: str | Path | ModelFolder) -> SpeakerEncoder:
    """The PyTorch model of a model folder (config.json + model.safetensors), in eval mode."""
    folder = model_dir if isinstance(model_dir, ModelFolder) else ModelFolder.load(model_dir, KIND)
    model = SpeakerEncoder(folder.section("model", EncoderConfig))
    return load_safetensors(model, folder.file(folder.config.weights or "model.safetensors", must_exist=False)).eval()


def model_from_checkpoint(path: str | Path) -> tuple[SpeakerEncoder, dict[str, Any]]:
    """The model and the saved training state of a ``train.py`` checkpoint."""
    from signals.configio import from_dict

    ckpt = load_checkpoint(path, what="a signals training checkpoint")  # weights_only: never runs code
    if ckpt is None:
        raise ModelError(f"checkpoint not found: {path}")
    if "model" not in ckpt or "config" not in ckpt:
        raise ModelError(f"{path} is not a speaker-encoder training checkpoint (no 'model'/'config' entries)")
    model = SpeakerEncoder(from_dict(EncoderConfig, ckpt["config"], str(path), "config"))
    try:
        model.load_state_dict(ckpt["model"])
        int(ckpt.get("step", 0))
    except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise ModelError(f"{path}: its weights do not fit the model its config describes ({first_line(exc)})") from None
    return model.eval(), ckpt


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> ModelConfig:
    """``signals speech encoder export``: a trained checkpoint -> a model folder with a short model card."""
    model, ckpt = model_from_checkpoint(checkpoint)
    source = {"type": "trained", "checkpoint": str(checkpoint), "step": int(ckpt.get("step", 0)),
              "data": ckpt.get("data", ""), "training_config": ckpt.get("train_config", {}),
              "training_command": ckpt.get("command", "")}
    config = write_model_folder(model, out, source,
                                licence="follows the licence of the training data (see source.data)")
    card = [
        "# Speaker encoder (GE2E), trained with `signals speech encoder train`", "",
        f"- Training command: `{source['training_command']}`",
        f"- Steps: {source['step']}; data: `{source['data'] or '?'}`",
        f"- ONNX parity (max |torch - ORT|): {config.graphs['encoder'].parity_max_abs_diff:.2e}",
        "- Evaluate: `signals speech encoder evaluate DIR --model THIS_FOLDER`", "",
        "Licence of the weights follows the licence of the training data.", "",
    ]
    with atomic_file(writable(out, "README.md")) as tmp:  # never through a link left in --out
        tmp.write_text("\n".join(card))
    return config
