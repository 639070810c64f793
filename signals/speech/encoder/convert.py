"""Convert Resemblyzer's pretrained GE2E encoder into our model folder ``models/speaker_encoder/``.

    signals speech encoder convert                       # reads resemblyzer/pretrained.pt of the installed wheel
    signals speech encoder convert --weights pretrained.pt --out models/speaker_encoder

The checkpoint (``resemblyzer==0.1.4``, Apache-2.0, Resemble AI; the network and training recipe of
Corentin Jemine's Real-Time-Voice-Cloning, trained on LibriSpeech + VoxCeleb 1/2) is read with
``torch.load(weights_only=True)``: tensors only, nothing is unpickled as code. Its parameter names
are ours, so the state dict loads strictly.
"""

from __future__ import annotations

from pathlib import Path

from signals.errors import ModelError
from signals.modelfolder import CONFIG_FILE, METRICS_FILE, REPO_MODELS, ModelConfig, read_config, sha256
from signals.speech.encoder.card import write_card
from signals.speech.encoder.config import EncoderConfig
from signals.speech.encoder.export import write_model_folder
from signals.speech.encoder.infer import KIND
from signals.speech.encoder.model import SpeakerEncoder
from signals.torchutils import load_foreign_state

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
    state, ckpt = load_foreign_state(path, "model_state", "a Resemblyzer/RTVC encoder checkpoint")
    model = SpeakerEncoder(EncoderConfig())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not match the 3 x LSTM(256) encoder: {exc}") from exc
    return model.eval(), int(ckpt.get("step", 0))


def convert(weights: str | Path | None = None, out: str | Path | None = None) -> ModelConfig:
    """Resemblyzer's ``pretrained.pt`` -> the model folder ``out`` (default: the checkout's models/speaker_encoder)."""
    weights = Path(weights) if weights is not None else resemblyzer_weights()
    default_out = REPO_MODELS / KIND
    out = Path(out) if out is not None else default_out
    model, step = load_resemblyzer(weights)
    old = read_config(out) if (out / CONFIG_FILE).is_file() else None
    src_sha = sha256(weights)
    command = "signals speech encoder convert" + (f" --weights {weights}" if weights != resemblyzer_weights_or_none()
                                                  else "") + (f" --out {out}" if out != default_out else "")
    source = {"type": "resemblyzer", "resemblyzer_version": RESEMBLYZER_VERSION, "weights_sha256": src_sha,
              "step": step, "licence": "Apache-2.0", "command": command}
    # Calibrations, evaluations and the S-norm cohort measured on these exact weights stay valid when the
    # folder is rebuilt; other weights void them.
    same = old is not None and old.source.get("weights_sha256") == src_sha
    if same and old.source.get("cohort"):
        source["cohort"] = old.source["cohort"]
    if not same:
        (out / "cohort.npy").unlink(missing_ok=True)
        (out / METRICS_FILE).unlink(missing_ok=True)
    config = write_model_folder(model, out, source, runtime=old.runtime if same else {},
                                files=old.files if same else {}, licence="Apache-2.0")
    write_card(out)
    return config


def resemblyzer_weights_or_none() -> Path | None:
    try:
        return resemblyzer_weights()
    except ModelError:
        return None
