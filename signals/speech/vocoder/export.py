"""Write a vocoder model folder: config.json, model.safetensors, vocoder.onnx (parity-checked).

    signals speech vocoder export --weights runs/vocoder/generator.safetensors --out runs/vocoder/model

The graph maps ``mel: float32 [batch, 80, frames]`` (:data:`~signals.speech.features.VOCODER_MEL`) to
``audio: float32 [batch, frames * 256]``; batch and frames are dynamic.

HiFi-GAN V1 has 13.9 M parameters: 55.7 MB in float32, over the 50 MB a file may have here. With
``fp16_weights`` (the default) the weights are rounded to float16 once, *before* export: the
safetensors file stores them as float16, and the ONNX graph stores float16 initializers each followed
by a ``Cast`` to float32, which onnxruntime folds when the session is created. So both files are half
the size, the arithmetic stays float32, and torch (float16-rounded weights in float32) and onnxruntime
compute the same function (parity within :data:`signals.export.PARITY_ATOL`). What the rounding costs
against the float32 original is measured by ``convert`` and recorded in the model card.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from signals.configio import to_dict
from signals.errors import ModelError
from signals.export import check_parity, export_graph, round_to_fp16, store_initializers_fp16, write_folder
from signals.modelfolder import ModelConfig, sha256
from signals.speech.features import VOCODER_MEL, MelConfig
from signals.speech.nn.generator import HIFIGAN_V1, HiFiGANConfig
from signals.speech.vocoder.infer import GRAPH, KIND, SynthesisConfig
from signals.speech.vocoder.model import Vocoder, check_mel_matches

ONNX_FILE = "vocoder.onnx"
DESCRIPTION = "HiFi-GAN V1 vocoder: VOCODER_MEL log-mel (22.05 kHz, 80 bands, hop 256) -> 22.05 kHz waveform"


class Exported(nn.Module):
    """mel: Tensor[B, 80, F] -> audio: Tensor[B, F * 256]"""

    def __init__(self, gen: Vocoder):
        super().__init__()
        self.gen = gen

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.gen(mel).squeeze(1)


def parity_cases(n_mels: int, seed: int = 0) -> list[list[np.ndarray]]:
    """Log-mels of several lengths and batch sizes in the range of real speech (about -11.5 ... 2)."""
    rng = np.random.default_rng(seed)
    return [[(rng.standard_normal((b, n_mels, f)) * 2.0 - 5.0).astype(np.float32)] for b, f in ((1, 40), (2, 97), (1, 203))]


def export(model: Vocoder, out: str | Path, source: dict[str, Any], licence: str, fp16_weights: bool = True,
           mel: MelConfig = VOCODER_MEL, synthesis: SynthesisConfig | None = None,
           description: str = DESCRIPTION) -> ModelConfig:
    """``out/{config.json, model.safetensors, vocoder.onnx}`` from ``model`` (weight norm folded here).

    With ``fp16_weights`` the model is rounded to float16 precision first (see the module docstring);
    ``model`` itself is not changed. Raises :class:`ModelError` when onnxruntime and torch disagree by
    more than :data:`PARITY_ATOL`.
    """
    cfg = model.cfg
    check_mel_matches(cfg, mel)
    model = copy.deepcopy(model).eval().float().remove_weight_norm()
    if fp16_weights:
        round_to_fp16(model)
    cfg = replace(cfg, weight_norm=False)
    out = Path(out)
    onnx_path = out / ONNX_FILE
    cases = parity_cases(cfg.in_channels)
    graph = export_graph(Exported(model), onnx_path, inputs={"mel": ("batch", cfg.in_channels, "frames")},
                         outputs={"audio": ("batch", "samples")}, example=[torch.randn(1, cfg.in_channels, 64)],
                         cases=cases, conv2d=True)  # onnxruntime's blocked kernels on one thread (runtime.create_session)
    if fp16_weights:
        store_initializers_fp16(onnx_path)
        err = check_parity(Exported(model), onnx_path, ["mel"], ["audio"], cases)
        graph = replace(graph, sha256=sha256(onnx_path), parity_max_abs_diff=err)
    synthesis = synthesis or SynthesisConfig(hop=cfg.hop, context_frames=cfg.context_frames)
    config = ModelConfig(
        kind=KIND, description=description, model=to_dict(cfg), frontend=to_dict(mel),
        graphs={GRAPH: graph}, runtime=to_dict(synthesis), source=source, licence=licence,
    )
    weights = model.half() if fp16_weights else model
    # One metadata key: safetensors writes several in random order, and the file should be reproducible.
    write_folder(out, config, model=weights, metadata={"config": json.dumps(to_dict(cfg))})
    return config


def load_weights(path: str | Path, cfg: HiFiGANConfig = HIFIGAN_V1) -> Vocoder:
    """A float32 :class:`Vocoder` from a ``.safetensors`` file (float16 or float32; with or without weight norm).

    The generator's config is read from the file's metadata (``config``: a JSON :class:`HiFiGANConfig`, as
    :func:`export` and training write it), else ``cfg``.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from signals.configio import from_dict

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"vocoder weights not found: {path}")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if "config" in meta:
        cfg = from_dict(HiFiGANConfig, json.loads(meta["config"]), str(path), "metadata.config")
    where = "metadata 'config'" if "config" in meta else "no 'config' in the file's metadata, so the default"
    state = load_file(str(path))
    cfg = replace(cfg, weight_norm=any(".parametrizations." in k for k in state))
    model = Vocoder(cfg)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not match the HiFi-GAN generator of its {where} {to_dict(cfg)}: "
                         f"{str(exc)[:500]}") from exc
    return model.remove_weight_norm().eval()


def export_weights(weights: str | Path, out: str | Path, fp16_weights: bool = True,
                   licence: str = "see the training data") -> ModelConfig:
    """``signals speech vocoder export``: generator weights (e.g. from training) -> a model folder."""
    model = load_weights(weights)
    source = {"weights": str(weights), "weights_sha256": sha256(weights)}
    return export(model, out, source=source, licence=licence, fp16_weights=fp16_weights)

