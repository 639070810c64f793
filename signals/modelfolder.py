"""The one model-folder contract: a typed ``config.json``, ``metrics.json``, and where folders are found.

A model folder (``models/<name>/``) holds everything a runtime needs, and nothing else::

    config.json        what to build and how to feed it (ModelConfig below); written by export only
    model.safetensors  PyTorch weights (never pickles)
    *.onnx             the graphs the torch-free runtime runs
    metrics.json       measured results (evaluations, benchmarks, calibrations); never read by a runtime
    train_log.jsonl    training history, one JSON object per line (when the folder came from training)
    README.md          the model card

``config.json`` has one layout for every model::

    {"kind": "har", "format": 1, "description": "...",
     "model":    {...},   # the model's frozen config dataclass (FusionActNetConfig, EncoderConfig, ...)
     "frontend": {...},   # the front end's config dataclass (what turns a recording into network input)
     "graphs":   {"fp32": {"file": "fusionactnet.onnx", "inputs": {"x": ["batch", 9, 128]},
                           "outputs": {"probs": ["batch", 6]}, "opset": 17, "sha256": "...",
                           "parity_max_abs_diff": 2.4e-07}},
     "weights":  "model.safetensors",
     "files":    {"cohort": "cohort.npy"},   # other files the runtime reads, by role
     "runtime":  {...},   # settings of the runtime that are neither network nor front end (labels, thresholds)
     "source":   {...},   # provenance: data, training config and command, upstream weights
     "licence":  "Apache-2.0"}

It is read once, into a frozen :class:`ModelConfig` that every runtime holds (as piper's runtime holds
its ``PiperConfig``); each runtime turns ``model``/``frontend``/``runtime`` into its own dataclasses
with :meth:`ModelFolder.section`. File names in it are confined to the folder.

Lookup (:func:`find_model`): an explicit ``--model`` path, else ``$SIGNALS_MODELS/<name>``, else the
checkout's ``models/<name>``. Torch-free: json, hashlib and (for sessions) onnxruntime only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, TypeVar

from signals.configio import from_dict, to_dict
from signals.errors import ConfigError, ModelError
from signals.paths import REPO_ROOT

T = TypeVar("T")

FORMAT = 1  # bump when the layout below changes; load() refuses folders of a newer format
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
LOG_FILE = "train_log.jsonl"
WEIGHTS_FILE = "model.safetensors"
REPO_MODELS = REPO_ROOT / "models"  # the checkout's shipped models: the last place find_model looks


# --------------------------------------------------------------------------------------------------
# config.json


Dims = tuple[int | str, ...]  # one tensor's dims; a string names a dynamic axis ("batch", "frames")


@dataclass(frozen=True)
class Graph:
    """One ONNX graph of a folder: its file, named inputs/outputs with dims, and export checks."""

    file: str
    inputs: dict[str, Dims]
    outputs: dict[str, Dims]
    opset: int = 17
    sha256: str | None = None
    parity_max_abs_diff: float | None = None  # max |torch - onnxruntime| measured at export


@dataclass(frozen=True)
class ModelConfig:
    """``config.json`` of every model folder (see the module docstring)."""

    kind: str  # "har" | "speaker_encoder" | "super_resolution" | ...: which runtime reads it
    format: int = FORMAT
    description: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    frontend: dict[str, Any] = field(default_factory=dict)
    graphs: dict[str, Graph] = field(default_factory=dict)
    weights: str | None = WEIGHTS_FILE
    files: dict[str, str] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    licence: str = "unknown"

    def file_names(self) -> list[str]:
        """Every file name the config points at (weights, graphs, other files)."""
        return [*([self.weights] if self.weights else []), *(g.file for g in self.graphs.values()),
                *self.files.values()]


def confined(folder: str | Path, name: str, where: str = "") -> Path:
    """``folder / name``, refusing names that could leave the folder (absolute, drive, ``..``).

    Config files travel with downloaded model folders, so a name such as ``../../.ssh/id_rsa`` or
    ``/etc/passwd`` must never be opened. The check is on the name: symbolic links placed inside the
    folder by whoever built it (e.g. a cache sharing large weight files) are followed.
    """
    folder = Path(folder)
    where = where or str(folder / CONFIG_FILE)
    posix, win = PurePosixPath(name), PureWindowsPath(name)
    if (not name or posix.is_absolute() or win.is_absolute() or win.drive or ".." in posix.parts
            or ".." in win.parts):
        raise ModelError(f"{where}: file name {name!r} must be a plain path inside the model folder")
    return folder / name


def read_config(folder: str | Path) -> ModelConfig:
    """``folder/config.json`` as a :class:`ModelConfig`, with errors naming the folder or file."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise ModelError(f"model folder not found: {folder}")
    if not path.is_file():
        raise ModelError(f"{folder} is not a model folder: {CONFIG_FILE} is missing")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or "kind" not in data:
        raise ModelError(f"{path} has no 'kind': written by an older version of signals? Re-export the model "
                         "(see the model card) or convert it with scripts/migrate_model_folders.py")
    if isinstance(data.get("format"), int) and data["format"] > FORMAT:
        raise ModelError(f"{path} has format {data['format']}; this version of signals reads format {FORMAT}: "
                         "upgrade signals")
    try:
        config = from_dict(ModelConfig, data, str(path))
    except ConfigError as exc:
        raise ModelError(str(exc)) from exc
    for name in config.file_names():
        confined(folder, name, str(path))
    return config


def write_config(folder: str | Path, config: ModelConfig) -> Path:
    """Write ``folder/config.json`` (atomically: a reader never sees half a file)."""
    return _write_json(Path(folder) / CONFIG_FILE, to_dict(config))


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------------
# metrics.json and the training log


def read_metrics(folder: str | Path) -> dict[str, Any]:
    """``folder/metrics.json`` ({} when there is none)."""
    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from exc


def update_metrics(folder: str | Path, **entries: Any) -> Path:
    """Set top-level entries of ``folder/metrics.json`` (other entries are kept)."""
    metrics = read_metrics(folder)
    metrics.update(to_dict(entries))
    return _write_json(Path(folder) / METRICS_FILE, metrics)


def append_log(path: str | Path, row: dict[str, Any]) -> None:
    """Append one JSON object as a line to a training log (``train_log.jsonl``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(to_dict(row)) + "\n")


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# lookup


def find_model(name: str, model: str | Path | None = None) -> Path:
    """The folder of model ``name``: ``model`` if given, else ``$SIGNALS_MODELS/<name>``, else ``models/<name>``.

    The checkout's ``models/`` is only a fallback, so an installed (non-editable) package finds models
    through ``--model`` or ``$SIGNALS_MODELS``. The error names every place that was tried.
    """
    if model is not None:
        path = Path(model)
        if not path.is_dir():
            raise ModelError(f"model folder not found: {path} (given with --model)")
        return path
    tried = []
    env = os.environ.get("SIGNALS_MODELS")
    if env:
        path = Path(env) / name
        if path.is_dir():
            return path
        tried.append(f"$SIGNALS_MODELS/{name} = {path} (missing)")
    else:
        tried.append(f"$SIGNALS_MODELS/{name} ($SIGNALS_MODELS is not set)")
    path = REPO_MODELS / name
    if path.is_dir():
        return path
    tried.append(f"{path} (missing)")
    raise ModelError(f"no {name!r} model found: pass --model FOLDER, or set SIGNALS_MODELS to a folder that has "
                     f"{name}/. Tried: --model (not given); " + "; ".join(tried))


# --------------------------------------------------------------------------------------------------
# the object every runtime holds


@dataclass(frozen=True)
class ModelFolder:
    """A model folder whose ``config.json`` has been read (once) and checked."""

    path: Path
    config: ModelConfig

    @classmethod
    def load(cls, path: str | Path, kind: str | None = None) -> ModelFolder:
        """Read ``path/config.json``; with ``kind``, refuse a folder made for another runtime."""
        path = Path(path)
        config = read_config(path)
        if kind is not None and config.kind != kind:
            raise ModelError(f"{path} holds a {config.kind!r} model, not a {kind!r} model")
        return cls(path=path, config=config)

    @classmethod
    def find(cls, kind: str, model: str | Path | None = None) -> ModelFolder:
        """:func:`find_model` + :meth:`load`: the folder of a ``kind`` model (the folder name is the kind)."""
        return cls.load(find_model(kind, model), kind)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    def file(self, name: str, must_exist: bool = True) -> Path:
        """A file of the folder by name (confined to the folder)."""
        path = confined(self.path, name, str(self.config_path))
        if must_exist and not path.is_file():
            raise ModelError(f"{self.path}: {name} is missing (named in {CONFIG_FILE})")
        return path

    def graph(self, role: str, inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None) -> Graph:
        """Graph ``role``; with ``inputs``/``outputs``, refuse one declaring other tensor names (runtimes feed
        and read tensors by name)."""
        graphs = self.config.graphs
        if role not in graphs:
            raise ModelError(f"{self.config_path} names no {role!r} graph (it has: {', '.join(graphs) or 'none'})")
        spec = graphs[role]
        if (inputs is not None and list(spec.inputs) != list(inputs)) or \
                (outputs is not None and list(spec.outputs) != list(outputs)):
            raise ModelError(f"{self.config_path}: the {role} graph must map {', '.join(inputs or spec.inputs)} -> "
                             f"{', '.join(outputs or spec.outputs)}; config.json declares {dict(spec.inputs)} -> "
                             f"{dict(spec.outputs)}")
        return spec

    def session(self, role: str, providers: Sequence[str] | None = None, threads: int | None = None):
        """An onnxruntime session of graph ``role``, checked to have the named inputs and outputs."""
        from signals.runtime import create_session

        spec = self.graph(role)
        path = self.file(spec.file)
        sess = create_session(path, providers=providers, threads=threads)
        ins, outs = [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()]
        if ins != list(spec.inputs) or not set(spec.outputs) <= set(outs):
            raise ModelError(f"{path}: expected inputs {list(spec.inputs)} and outputs {list(spec.outputs)}, "
                             f"the graph has {ins} -> {outs}; re-export the model")
        return sess

    def section(self, name: str, cls: type[T], key: str | None = None) -> T:
        """Section ``name`` of config.json (``model``, ``frontend``, ``runtime``), or its ``key``, as ``cls``."""
        data = getattr(self.config, name)
        path = name
        if key is not None:
            if key not in data:
                raise ModelError(f"{self.config_path}: '{name}.{key}' is missing")
            data, path = data[key], f"{name}.{key}"
        try:
            return from_dict(cls, data, str(self.config_path), path)
        except ConfigError as exc:
            raise ModelError(str(exc)) from exc

    def metrics(self) -> dict[str, Any]:
        return read_metrics(self.path)
