"""Training-side helpers shared by every model: seeding, DDP, resumable checkpoints, safetensors.

Torch is imported here, so runtime code must never import this module.

Distributed training: every training entry point calls :func:`setup_distributed` first. Under
``torchrun --nproc_per_node=N`` it joins the process group (NCCL on GPU, Gloo on CPU) and pins the
local GPU; as a plain ``python``/``signals`` process it returns a single-process context, so one
entry point serves both.
"""

from __future__ import annotations

import json
import os
import random
import shutil
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


def rank0_decides(ctx: DistContext, flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (a wall-clock stop must be taken by all processes at the same step,
    or the others wait forever in the next gradient all-reduce); ``flag`` itself without DDP."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.broadcast(t, 0)
    return bool(t.item())


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


# --------------------------------------------------------------------------------------------------
# compact, sharded checkpoints (the form that moves between machines)

SHARD_BYTES = int(15.9 * 2**20)  # whole file, header included: under the 16 MiB a lent GPU returns per file
HEADER_BYTES = 4096  # safetensors header: a JSON table of the tensors (plus each tensor's entry)
STATE_FILE = "state.json"


def save_compact(folder: str | Path, tensors: dict[str, torch.Tensor], state: dict[str, Any],
                 prefix: str = "state", shard_bytes: int | None = None) -> list[Path]:
    """Tensors (already in the dtypes to store) as safetensors shards of at most ``shard_bytes`` (default
    :data:`SHARD_BYTES`; first-fit decreasing) + ``state.json`` listing them; atomic (temporary folder +
    rename: an interrupted save leaves the previous checkpoint). Returns the files written.

    For moving training between machines: a lent GPU returns at most 8 files of 16 MiB (64 MiB in all)."""
    limit = SHARD_BYTES if shard_bytes is None else shard_bytes
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards: list[dict[str, torch.Tensor]] = []
    sizes: list[int] = []
    for k, v in sorted(tensors.items(), key=lambda kv: -kv[1].numel() * kv[1].element_size()):
        nbytes = v.numel() * v.element_size() + len(k) + 128  # data + its header entry (name, dtype, shape, offsets)
        if nbytes > limit - HEADER_BYTES:
            raise ValueError(f"tensor {k} ({nbytes} bytes) is larger than one shard ({limit} bytes)")
        j = next((j for j, s in enumerate(sizes) if s + nbytes <= limit), None)
        if j is None:
            shards.append({})
            sizes.append(HEADER_BYTES)
            j = len(shards) - 1
        shards[j][k] = v
        sizes[j] += nbytes
    names = []
    for n, shard in enumerate(shards):
        name = f"{prefix}-{n + 1:02d}-of-{len(shards):02d}.safetensors"
        save_file(shard, str(tmp / name))
        names.append(name)
    (tmp / STATE_FILE).write_text(json.dumps({**state, "shards": names}, indent=1) + "\n")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return [folder / n for n in names] + [folder / STATE_FILE]


def load_compact(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """``(tensors, state)`` of a folder written by :func:`save_compact`, or None if it has no state."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / STATE_FILE).is_file():
        return None
    state = json.loads((folder / STATE_FILE).read_text())
    tensors: dict[str, torch.Tensor] = {}
    for name in state["shards"]:
        tensors.update(load_file(str(folder / name)))
    return tensors, state


def folder_bytes(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())
