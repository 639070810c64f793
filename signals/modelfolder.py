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

Model folders are downloaded and shared, so nothing in one may hurt the user: every file name is
confined to the folder (:func:`confined`), ``config.json`` is size-limited and checked before use,
every graph is checked against the sha256 its export recorded before onnxruntime parses it, and
whatever signals writes into a folder replaces the file there, never the target of a symbolic link
(:func:`writable`). Every failure is a :class:`~signals.errors.ModelError` naming the folder or file.
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
from signals.errors import ConfigError, ModelError, SignalsError
from signals.paths import REPO_ROOT

T = TypeVar("T")

FORMAT = 1  # bump when the layout below changes; load() refuses folders of a newer format
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
LOG_FILE = "train_log.jsonl"
WEIGHTS_FILE = "model.safetensors"
REPO_MODELS = REPO_ROOT / "models"  # the checkout's shipped models: the last place find_model looks
# The largest shipped config.json is 8 kB; a file a thousand times larger is not a config, and reading
# one of gigabytes (or a planted 100 MB of whitespace) into memory before refusing it helps nobody.
MAX_CONFIG_BYTES = 4 << 20


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
    """``folder / name``, refusing names that could leave the folder (absolute, drive, ``..``, NUL).

    Config files travel with downloaded model folders, so a name such as ``../../.ssh/id_rsa`` or
    ``/etc/passwd`` must never be opened. The check is on the name. Symbolic links placed inside the
    folder by whoever built it (a cache sharing large weight files, a test folder linking the shipped
    graphs) are followed when *reading*: a link is the folder author's explicit choice, and what is read
    is only ever parsed as a model (never echoed or executed), and only if it is a regular file whose
    sha256 matches the config (graphs), so a link to ``/etc/shadow`` or ``/dev/zero`` fails with a
    :class:`ModelError`. Links are never followed when *writing*: see :func:`writable`.
    """
    folder = Path(folder)
    where = where or str(folder / CONFIG_FILE)
    if not isinstance(name, str):
        raise ModelError(f"{where}: file name {name!r} must be a string")
    posix, win = PurePosixPath(name), PureWindowsPath(name)
    if (not name or "\x00" in name or posix.is_absolute() or win.is_absolute() or win.drive or ".." in posix.parts
            or ".." in win.parts):
        raise ModelError(f"{where}: file name {name!r} must be a plain path inside the model folder")
    return folder / name


def regular_file(folder: str | Path, name: str, where: str = "") -> Path:
    """:func:`confined` ``folder / name`` that exists and is a regular file (or a link to one)."""
    where = where or str(Path(folder) / CONFIG_FILE)
    path = confined(folder, name, where)
    if not path.is_file():
        if path.exists():  # a folder, a device, a pipe (or a link to one): never opened
            raise ModelError(f"{path} is not a regular file (named in {where})")
        raise ModelError(f"{Path(folder)}: {name} is missing (named in {Path(where).name})")
    return path


def writable(folder: str | Path, name: str) -> Path:
    """``folder / name`` for writing: :func:`confined`, and not through a linked subfolder.

    Write the file atomically (:class:`signals.outputs.AtomicOutput`: a temporary file renamed over
    the target), never by opening the target: a rename replaces a symbolic link *itself*, so a folder
    whose ``model.safetensors`` links to a shared cache (or to ``~/.bashrc``) gets a new file of its
    own instead of having the link's target overwritten. A subfolder that is a link leading elsewhere
    is refused, as the file would land outside the folder.
    """
    path = confined(folder, name, str(Path(folder)))
    try:
        inside = path.parent.resolve().is_relative_to(Path(folder).resolve())
    except OSError as exc:
        raise ModelError(f"{path}: cannot resolve its folder: {exc.strerror or exc}") from None
    if not inside:
        raise ModelError(f"{path}: refusing to write through a linked folder that leads outside {folder}")
    return path


def read_config(folder: str | Path) -> ModelConfig:
    """``folder/config.json`` as a :class:`ModelConfig`, with errors naming the folder or file."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        if folder.exists():
            raise ModelError(f"{folder} is a file, not a model folder (a folder holding {CONFIG_FILE})")
        raise ModelError(f"model folder not found: {folder}")
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "is missing"
        raise ModelError(f"{folder} is not a model folder: {CONFIG_FILE} {what}")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:  # refused before reading: see MAX_CONFIG_BYTES
            raise ModelError(f"{path} is {size / 2**20:.1f} MiB; a model config is a few kB (at most "
                             f"{MAX_CONFIG_BYTES >> 20} MiB): not a signals config.json")
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path} cannot be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path} is not UTF-8 text (byte {exc.start}): not a signals config.json") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:  # thousands of nested brackets
        raise ModelError(f"{path} is not a signals config.json: nested too deeply") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} must hold a JSON object ({{\"kind\": ..., ...}}), not {_json_type(data)}")
    if "kind" not in data:
        raise ModelError(f"{path} has no 'kind': written by an older version of signals? Re-export the model "
                         "(see the model card) or convert it with scripts/migrate_model_folders.py")
    if isinstance(data.get("format"), int) and data["format"] > FORMAT:
        raise ModelError(f"{path} has format {data['format']}; this version of signals reads format {FORMAT}: "
                         "upgrade signals")
    try:
        config = from_dict(ModelConfig, data, str(path))
    except ConfigError as exc:
        raise ModelError(str(exc)) from exc
    except RecursionError:
        raise ModelError(f"{path} is not a signals config.json: nested too deeply") from None
    for name in config.file_names():
        confined(folder, name, str(path))
    return config


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), type(value).__name__)


def write_config(folder: str | Path, config: ModelConfig) -> Path:
    """Write ``folder/config.json`` (atomically: a reader never sees half a file)."""
    return _write_json(Path(folder) / CONFIG_FILE, to_dict(config))


def _write_json(path: Path, data: Any) -> Path:
    # Atomic (a reader never sees half a file) and never through a symbolic link (see writable()).
    from signals.outputs import AtomicOutput

    path = writable(path.parent, path.name)
    text = json.dumps(data, indent=2) + "\n"
    try:
        with AtomicOutput(path, what="model file") as out:
            out.tmp.write_text(text)
    except SignalsError as exc:  # OutputError: an unwritable folder, a config.json that is a folder ...
        raise ModelError(str(exc)) from None
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


def read_log(path: str | Path, *, skip_torn: bool = False) -> list[Any]:
    """The rows of a training log written by :func:`append_log`, blank lines ignored. A line that is not
    JSON raises :class:`json.JSONDecodeError`, or with ``skip_torn`` is left out: a run killed mid-write
    leaves its last line cut short, which should not cost the history before it."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if not skip_torn:
                raise
    return rows


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# lookup


def find_model(name: str, model: str | Path | None = None, option: str = "--model") -> Path:
    """The folder of model ``name``: ``model`` if given, else ``$SIGNALS_MODELS/<name>``, else ``models/<name>``.

    The checkout's ``models/`` is only a fallback, so an installed (non-editable) package finds models
    through ``--model`` or ``$SIGNALS_MODELS``. The error names every place that was tried, and ``option`` the
    command-line option a given ``model`` came from.
    """
    if model is not None:
        path = Path(model)
        if not path.is_dir():
            if path.exists():
                raise ModelError(f"{path} is a file, not a model folder (given with {option})")
            raise ModelError(f"model folder not found: {path} (given with {option})")
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
        """A file of the folder by name (confined to the folder; with ``must_exist``, a regular file)."""
        if must_exist:
            return regular_file(self.path, name, str(self.config_path))
        return confined(self.path, name, str(self.config_path))

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

    def verify(self, role: str) -> Path:
        """The file of graph ``role``, checked against the sha256 its export recorded (when one was).

        Done before onnxruntime parses the file, at every load: a truncated download, a file of another
        model with the same name or a changed graph then fails with a message saying so, instead of
        onnxruntime's protobuf error or, worse, a graph that loads and computes something else. It costs
        about 1 ms of CPU per MB (measured: 30 ms for the largest shipped graph, models/har's 30 MB
        fp32 graph, whose onnxruntime session takes 60 ms of CPU to build), small beside starting a command.
        """
        spec = self.graph(role)
        path = self.file(spec.file)
        if spec.sha256 is not None:
            try:
                got = sha256(path)
            except OSError as exc:
                raise ModelError(f"{path} cannot be read: {exc.strerror or exc}") from None
            if got != spec.sha256.lower():
                raise ModelError(f"{path} does not match the sha256 recorded for the {role!r} graph in "
                                 f"{self.config_path}: the file is damaged (an interrupted download?) or was "
                                 "changed after export; download or export the model again")
        return path

    def session(self, role: str, providers: Sequence[str] | None = None, threads: int | None = None,
                blocked_convs: bool | None = None):
        """An onnxruntime session of graph ``role`` (file verified by :meth:`verify`), checked to have the
        named inputs and outputs with the ranks and fixed sizes config.json declares. ``blocked_convs``: see
        :func:`signals.runtime.create_session`."""
        from signals.runtime import create_session

        spec = self.graph(role)
        path = self.verify(role)
        sess = create_session(path, providers=providers, threads=threads, blocked_convs=blocked_convs)  # ModelError
        ins, outs = [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()]
        if ins != list(spec.inputs) or not set(spec.outputs) <= set(outs):
            raise ModelError(f"{path}: expected inputs {list(spec.inputs)} and outputs {list(spec.outputs)}, "
                             f"the graph has {ins} -> {outs}; re-export the model")
        # Shapes: a graph of another model with the same tensor names would otherwise fail at the first
        # run() with onnxruntime's own error, after the work of reading the input.
        shapes = {t.name: t.shape for t in [*sess.get_inputs(), *sess.get_outputs()]}
        for name, dims in [*spec.inputs.items(), *spec.outputs.items()]:
            got = list(shapes[name])
            if len(got) != len(dims) or any(isinstance(d, int) and isinstance(g, int) and d != g
                                            for d, g in zip(dims, got)):
                raise ModelError(f"{path}: tensor {name!r} has shape {got} in the graph, config.json declares "
                                 f"{list(dims)}; re-export the model")
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
