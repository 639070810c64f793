"""Training-side helpers shared by every model: seeding, DDP, resumable checkpoints, safetensors.

Torch is imported here, so runtime code must never import this module.

Distributed training: every training entry point calls :func:`setup_distributed` first. Under
``torchrun --nproc_per_node=N`` it joins the process group (NCCL on GPU, Gloo on CPU) and pins the
local GPU; as a plain ``python``/``signals`` process it returns a single-process context, so one
entry point serves both.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str | None = None) -> torch.device:
    """``name`` ('cpu', 'cuda', 'cuda:1') or the best available device."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def setup_distributed(device: str | None = None) -> DistContext:
    """Join the torchrun process group if launched by torchrun, else a single-process context."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistContext(device=pick_device(device))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and device != "cpu":
        torch.cuda.set_device(local)
        dev, backend = torch.device("cuda", local), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local, device=dev)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare module inside DDP / torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomic ``torch.save``: a crash mid-write never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """A checkpoint written by :func:`save_checkpoint` (our own files only), or None if absent."""
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location=map_location, weights_only=False)


def save_safetensors(model: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)


def load_safetensors(model: torch.nn.Module, path: str | Path, strict: bool = True) -> torch.nn.Module:
    from safetensors.torch import load_file

    from signals.errors import ModelError

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights not found: {path}")
    try:
        missing, unexpected = model.load_state_dict(load_file(str(path)), strict=strict)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not match the model built from config.json: {exc}") from exc
    return model


def load_foreign_state(path: str | Path, key: str, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state dict under key, whole checkpoint)`` of a third-party ``torch.save`` file (converters).

    Read with ``weights_only=True``: tensors and plain containers only, nothing is unpickled as code.
    Anything unreadable becomes a :class:`ModelError` saying the file is not ``what``.
    """
    from signals.errors import ModelError

    try:
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
        return ckpt[key], ckpt
    except Exception as exc:
        raise ModelError(f"{path} is not {what}: {exc}") from exc


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
