"""Convert Resemblyzer's pretrained GE2E encoder into our model folder ``models/speaker_encoder/``.

    signals speech encoder convert                       # reads resemblyzer/pretrained.pt of the installed wheel
    signals speech encoder convert --weights pretrained.pt --out models/speaker_encoder

The checkpoint (``resemblyzer==0.1.4``, Apache-2.0, Resemble AI; the network and training recipe of
Corentin Jemine's Real-Time-Voice-Cloning, trained on LibriSpeech + VoxCeleb 1/2) is read with
``torch.load(weights_only=True)``: tensors only, nothing is unpickled as code. Its parameter names
are ours, so the state dict loads strictly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from signals.errors import ModelError
from signals.paths import model_dir
from signals.runtime import write_config
from signals.speech.encoder.card import render_card
from signals.speech.encoder.export import sha256, write_model_folder
from signals.speech.encoder.infer import MODEL_NAME
from signals.speech.encoder.model import EncoderConfig, SpeakerEncoder

RESEMBLYZER_VERSION = "0.1.4"


def resemblyzer_weights() -> Path:
    """``pretrained.pt`` inside the installed resemblyzer package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("resemblyzer is not installed: `pip install resemblyzer==0.1.4` or pass --weights PATH")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise ModelError(f"resemblyzer is installed but {path} is missing")
    return path


def load_resemblyzer(path: str | Path) -> tuple[SpeakerEncoder, int]:
    """Our :class:`SpeakerEncoder` holding the checkpoint's weights, and its training step."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt["model_state"]
    except Exception as exc:
        raise ModelError(f"{path} is not a Resemblyzer/RTVC encoder checkpoint: {exc}") from exc
    model = SpeakerEncoder(EncoderConfig())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not match the 3 x LSTM(256) encoder: {exc}") from exc
    return model.eval(), int(ckpt.get("step", 0))


def convert(weights: str | Path | None = None, out: str | Path | None = None) -> dict[str, Any]:
    weights = Path(weights) if weights is not None else resemblyzer_weights()
    out = Path(out) if out is not None else model_dir(MODEL_NAME)
    model, step = load_resemblyzer(weights)
    previous = out / "config.json"
    old = json.loads(previous.read_text()) if previous.is_file() else {}
    src_sha = sha256(weights)
    command = "signals speech encoder convert" + (f" --weights {weights}" if weights != resemblyzer_weights_or_none()
                                                  else "") + (f" --out {out}" if out != model_dir(MODEL_NAME) else "")
    source = {"type": "resemblyzer", "resemblyzer_version": RESEMBLYZER_VERSION, "weights_sha256": src_sha,
              "step": step, "licence": "Apache-2.0", "command": command}
    # A calibration measured on these exact weights stays valid when the folder is rebuilt;
    same = old.get("source", {}).get("weights_sha256") == src_sha
    config = write_model_folder(model, out, source, verification=old.get("verification") if same else None)
    # so do the evaluations and the S-norm cohort (embeddings of these weights); other weights void the cohort.
    for key in ("cohort", "evaluations") if same else ():
        if old.get(key):
            config[key] = old[key]
    if not same and (out / "cohort.npy").is_file():
        (out / "cohort.npy").unlink()
    write_config(out, config)
    (out / "README.md").write_text(render_card(config))
    return config


def resemblyzer_weights_or_none() -> Path | None:
    try:
        return resemblyzer_weights()
    except ModelError:
        return None
