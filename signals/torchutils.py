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


def plain(obj: Any, where: str = "state") -> Any:
    """``obj`` as what :func:`load_checkpoint` can read back: tensors, numbers, strings, bools, None, and
    dicts/lists/tuples of them. Dataclasses become dicts (:func:`signals.configio.to_dict`), paths strings,
    numpy scalars Python numbers; anything else is a :class:`TypeError` naming where it is, raised while
    saving, so a training run never writes a checkpoint it could not resume from."""
    import dataclasses

    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        from signals.configio import to_dict

        return plain(to_dict(obj), where)
    if isinstance(obj, dict):
        return {plain(k, f"{where} key"): plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(f"{where}: a {type(obj).__module__}.{type(obj).__qualname__} cannot go into a checkpoint "
                    "(checkpoints hold tensors, numbers, strings and dicts/lists of them)")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomic ``torch.save`` of :func:`plain` data: a crash mid-write never leaves a truncated checkpoint
    behind, and the file loads with ``weights_only=True``."""
    path = Path(path)
    state = plain(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)  # never write through a link left in the run folder
    torch.save(state, tmp)
    os.replace(tmp, path)


def _numpy_scalar_globals() -> list[Any]:
    # Checkpoints written before save_checkpoint() made its data plain may hold numpy scalars (a metric
    # rounded with round(np.float64)); rebuilding one takes numpy's scalar() and dtype, which only turn
    # bytes into a number. Nothing else is added to what weights_only=True allows.
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    return [scalar, np.dtype, *(getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType"))]


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line for an error message (torch's messages run to many lines)."""
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    return f"{type(exc).__name__}: {text[:limit]}" if text else type(exc).__name__


def safe_load(path: str | Path, what: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, so a crafted file cannot
    run code while it is read. Anything unreadable (not a torch file, truncated, holding objects or code)
    becomes one :class:`~signals.errors.ModelError` line saying the file is not ``what``."""
    import pickle
    import re

    from signals.errors import ModelError

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} not found: {path}" if not path.exists() else f"{path} is not a file ({what})")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except MemoryError:
        raise ModelError(f"{path} is not {what}: it does not fit in memory") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError, KeyError,
            IndexError, OSError, ImportError, UnicodeDecodeError, OverflowError) as exc:
        text = str(exc)
        if "Weights only load failed" in text:  # the safe unpickler stopped at a class, function or opcode
            found = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"Unsupported operand (\S+)", text)
            reason = (f"it holds Python objects or code{f' ({found.group(1)})' if found else ''}, not only tensors "
                      "and plain data; checkpoints are never loaded in a way that could run code")
        else:
            reason = first_line(exc)
        raise ModelError(f"{path} is not {what}: {reason}") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    what: str = "a signals training checkpoint") -> dict[str, Any] | None:
    """A checkpoint written by :func:`save_checkpoint`, or None if absent (:func:`safe_load`: never runs code
    from the file; anything else than a dict of plain data is a ModelError)."""
    from signals.errors import ModelError

    path = Path(path)
    if not path.exists():
        return None
    ckpt = safe_load(path, what, map_location)
    if not isinstance(ckpt, dict):
        raise ModelError(f"{path} is not {what}: it holds a {type(ckpt).__name__}, not a dict of entries")
    return ckpt


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
        raise ModelError(f"weights not found: {path}" if not path.exists() else f"{path} is not a regular file")
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError) for damaged files
        raise ModelError(f"{path} is damaged (not a safetensors file): {first_line(exc)}") from None
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not match the model built from config.json: {first_line(exc, 400)}") from None
    return model


def load_foreign_state(path: str | Path, key: str, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state dict under key, whole checkpoint)`` of a third-party ``torch.save`` file (converters).

    Read with ``weights_only=True``: tensors and plain containers only, nothing is unpickled as code.
    Anything unreadable becomes a :class:`ModelError` saying the file is not ``what``.
    """
    from signals.errors import ModelError

    ckpt = safe_load(path, what)
    try:
        state = ckpt[key]
    except (KeyError, TypeError, IndexError):
        raise ModelError(f"{path} is not {what}: it has no {key!r} entry") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} is not {what}: its {key!r} entry is not a dict of tensors")
    return state, ckpt


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class TorchSession:
    """A torch function behind an onnxruntime session's ``run(names, feeds)`` (one input, one output), so a
    runtime built around ONNX graphs can run a module being trained in their place."""

    def __init__(self, fn, device: torch.device | str = "cpu", amp: bool = False):
        self.fn, self.device, self.amp = fn, torch.device(device), amp

    @torch.no_grad()
    def run(self, names, feeds):
        (x,) = feeds.values()
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            y = self.fn(torch.from_numpy(x).to(self.device))
        return [y.float().cpu().numpy()]


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
    """``(tensors, state)`` of a folder written by :func:`save_compact`, or None if it has no state.

    Safetensors and JSON only: nothing in the folder can run code. Shard names are confined to the folder,
    and a damaged ``state.json`` or shard is a :class:`~signals.errors.ModelError` naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from signals.errors import ModelError
    from signals.modelfolder import MAX_CONFIG_BYTES, regular_file

    folder = Path(folder)
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelError(f"{path} is too large to be a checkpoint's state ({path.stat().st_size} bytes)")
        state = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path} is not a checkpoint state written by signals: {first_line(exc)}") from None
    shards = state.get("shards") if isinstance(state, dict) else None
    if not isinstance(shards, list) or not all(isinstance(n, str) for n in shards):
        raise ModelError(f"{path} is not a checkpoint state written by signals: no list of 'shards'")
    tensors: dict[str, torch.Tensor] = {}
    for name in shards:
        shard = regular_file(folder, name, str(path))
        try:
            tensors.update(load_file(str(shard)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{shard} is damaged (not a safetensors file): {first_line(exc)}") from None
    return tensors, state


def folder_bytes(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())
