"""Write a speaker-encoder model folder: config.json, model.safetensors, speaker_encoder.onnx (+ parity).

    signals speech encoder export runs/encoder/checkpoint.pt --out runs/encoder/model

The ONNX graph takes ``mels`` float32 [batch, frames, 40] (linear power mel, any number of frames)
and returns ``embeddings`` float32 [batch, 256], L2-normalised. Both axes are dynamic.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from signals.errors import ModelError
from signals.runtime import write_config
from signals.speech.encoder.infer import ONNX_FILE, FrontEnd
from signals.speech.encoder.model import EncoderConfig, SpeakerEncoder
from signals.speech.features import ENCODER_MEL, MelConfig
from signals.torchutils import load_checkpoint, save_safetensors


class _OnnxWrapper(nn.Module):
    """The inference signature only: mels -> embeddings (no GE2E w/b, no training state)."""

    def __init__(self, model: SpeakerEncoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return self.model(mels)


def export_onnx(model: SpeakerEncoder, path: str | Path, opset: int = 17) -> Path:
    """Export ``model`` to ``path`` with dynamic batch and frame axes, checked by ``onnx.checker``."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    example = torch.rand(2, 160, model.config.n_mels)
    with warnings.catch_warnings():
        # The exporter warns that LSTM graphs traced at batch 2 may fail at other batch sizes, and about
        # shape checks traced as constants; check_parity runs batch sizes 1-5 and several lengths instead.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        _export(model, example, path, opset)
    onnx.checker.check_model(onnx.load(str(path)))
    return path


def _export(model: SpeakerEncoder, example: torch.Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(
        _OnnxWrapper(model), (example,), str(path), input_names=["mels"], output_names=["embeddings"],
        dynamic_axes={"mels": {0: "batch", 1: "frames"}, "embeddings": {0: "batch"}},
        opset_version=opset, dynamo=False,
    )


@torch.inference_mode()
def check_parity(model: SpeakerEncoder, onnx_path: str | Path, seed: int = 0) -> float:
    """Largest |torch - onnxruntime| over random inputs of several batch sizes and lengths."""
    from signals.runtime import create_session

    session = create_session(onnx_path, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch, frames in [(1, 160), (3, 160), (2, 57), (5, 300)]:
        # Power mels of normalised speech span roughly 0..10; exponentiate for a realistic spread.
        mels = torch.exp(3 * torch.randn(batch, frames, model.config.n_mels, generator=gen) - 4)
        ref = model.eval()(mels).numpy()
        got = session.run(["embeddings"], {"mels": mels.numpy()})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_model_folder(model: SpeakerEncoder, out: str | Path, source: dict[str, Any],
                       front: FrontEnd = FrontEnd(), mel: MelConfig = ENCODER_MEL,
                       verification: dict[str, Any] | None = None, parity_tol: float = 1e-4) -> dict[str, Any]:
    """config.json + model.safetensors + ONNX (parity-checked) in ``out``; returns the config."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors(model, out / "model.safetensors", metadata={"format": "pt"})
    onnx_path = export_onnx(model, out / ONNX_FILE)
    err = check_parity(model, onnx_path)
    if err > parity_tol:
        raise ModelError(f"ONNX export of {out} disagrees with torch: max |diff| {err:.2e} > {parity_tol:.0e}")
    config = {
        "name": "speaker_encoder",
        "architecture": "GE2E speaker encoder: 3 x LSTM(256) -> Linear(256) -> ReLU -> L2 norm",
        "model": model.config.to_dict(),
        "mel": mel.to_dict(),
        "frontend": front.to_dict(),
        "onnx": {"file": ONNX_FILE, "inputs": {"mels": ["batch", "frames", model.config.n_mels]},
                 "outputs": {"embeddings": ["batch", model.config.embedding_size]},
                 "parity_max_abs_diff": err},
        "verification": verification or {"threshold": None, "note": "run `signals speech encoder evaluate "
                                                                     "DIR --calibrate MODEL_DIR`"},
        "source": source,
        "sha256": {"model.safetensors": sha256(out / "model.safetensors"), ONNX_FILE: sha256(onnx_path)},
    }
    write_config(out, config)
    return config


def model_from_checkpoint(path: str | Path) -> tuple[SpeakerEncoder, dict[str, Any]]:
    """The model and saved training arguments of a ``train.py`` checkpoint."""
    ckpt = load_checkpoint(path)
    if ckpt is None:
        raise ModelError(f"checkpoint not found: {path}")
    if "model" not in ckpt or "config" not in ckpt:
        raise ModelError(f"{path} is not a speaker-encoder training checkpoint (no 'model'/'config' entries)")
    model = SpeakerEncoder(EncoderConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> dict[str, Any]:
    """``signals speech encoder export``: a trained checkpoint -> a model folder with a short model card."""
    model, ckpt = model_from_checkpoint(checkpoint)
    args = ckpt.get("args", {})
    source = {"checkpoint": str(checkpoint), "step": int(ckpt.get("step", 0)), "training_args": args,
              "training_command": ckpt.get("command", "")}
    config = write_model_folder(model, out, source)
    card = [
        "# Speaker encoder (GE2E), trained with `signals speech encoder train`", "",
        f"- Training command: `{source['training_command']}`",
        f"- Steps: {source['step']}; data: `{args.get('data', '?')}`",
        f"- ONNX parity (max |torch - ORT|): {config['onnx']['parity_max_abs_diff']:.2e}",
        "- Evaluate: `signals speech encoder evaluate DIR --model THIS_FOLDER`", "",
        "Licence of the weights follows the licence of the training data.", "",
    ]
    (Path(out) / "README.md").write_text("\n".join(card))
    return config
