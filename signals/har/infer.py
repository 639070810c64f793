"""Torch-free FusionActNet runtime: a continuous recording -> a timeline of activities.

numpy + scipy + soxr + onnxruntime only (never torch). The recording is streamed in chunks by the
front end (:mod:`signals.har.frontend`: read -> resample to the model's rate -> the UCI HAR filter,
the very code that built the training windows) -> sliding windows -> ONNX model -> consecutive
windows with the same label merged into segments. Memory stays constant however long the recording
is (only the segments list grows, with each change of activity).

    rt = load()                                       # models/har (or --model / $SIGNALS_MODELS)
    segments = predict_recording(rt, "acc_exp04_user02.txt")
    probs = rt.predict_windows(windows)               # float32 [N, 9, 128] -> [N, K]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import DataError, ModelError
from signals.har.frontend import CHANNELS, PreprocessConfig, UCIHARFilter, iter_recording
from signals.modelfolder import ModelFolder

KIND = "har"


@dataclass(frozen=True)
class Labels:
    """``config.json["runtime"]`` of a HAR model: what its input channels and output classes are."""

    classes: tuple[str, ...]  # output order of ``probs``
    channels: tuple[str, ...]  # input order of ``x``
    sample_rate: float  # Hz of the windows the model was trained on


@dataclass(frozen=True)
class HARRuntime:
    """A HAR model folder ready to run: one onnxruntime session (fp32 or int8) and its typed config."""

    folder: ModelFolder
    session: Any  # onnxruntime.InferenceSession: x float32 [B, C, T] -> probs float32 [B, K]
    labels: Labels
    preprocess: PreprocessConfig | None  # None: trained on windows as shipped (no raw front end)
    graph: str  # "fp32" or "int8": which graph the session runs

    @classmethod
    def load(
        cls,
        model_dir: str | Path | None = None,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        int8: bool = False,
    ) -> HARRuntime:
        """The model in ``model_dir`` (default: see :func:`signals.modelfolder.find_model`); ``int8`` picks
        the quantised graph."""
        return cls.from_folder(ModelFolder.find(KIND, model_dir), providers, threads, int8)

    @classmethod
    def from_folder(cls, folder: ModelFolder, providers: Sequence[str] | None = None, threads: int | None = None,
                    int8: bool = False) -> HARRuntime:
        labels = folder.section("runtime", Labels)
        front = folder.section("frontend", PreprocessConfig) if folder.config.frontend else None
        graph = "int8" if int8 else "fp32"
        spec = folder.graph(graph, ["x"], ["probs"])
        if len(spec.inputs["x"]) != 3:
            raise ModelError(f"{folder.config_path}: the {graph} graph's input must be x [batch, C, T], "
                             f"config.json declares {list(spec.inputs['x'])}")
        # The window length and channel count are stored by the graph, the front end and the labels:
        # they must agree, or windows would be cut for one model and fed to another.
        _, channels, window = spec.inputs["x"]
        problems = []
        if channels != len(labels.channels):
            problems.append(f"graph input has {channels} channels, runtime.channels lists {len(labels.channels)}")
        if front is not None and window != front.window:
            problems.append(f"graph input has {window}-sample windows, frontend.window is {front.window}")
        if spec.outputs["probs"][-1] != len(labels.classes):
            problems.append(f"graph output has {spec.outputs['probs'][-1]} classes, runtime.classes lists "
                            f"{len(labels.classes)}")
        if problems:
            raise ModelError(f"{folder.config_path}: " + "; ".join(problems))
        session = folder.session(graph, providers=providers, threads=threads)
        return cls(folder=folder, session=session, labels=labels, preprocess=front, graph=graph)

    @property
    def classes(self) -> list[str]:
        return list(self.labels.classes)

    @property
    def window_shape(self) -> tuple[int, int]:
        """(channels, samples) of one input window."""
        _, c, t = self.folder.graph(self.graph).inputs["x"]
        return int(c), int(t)

    def predict_windows(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """x: float32 [N, C, window] filtered channels (raw units) -> probs float32 [N, K], in batches."""
        x = np.asarray(x)
        want = self.window_shape
        if x.ndim != 3 or x.shape[1:] != want:
            raise DataError(f"windows must have shape [N, {want[0]}, {want[1]}], got {list(x.shape)}")
        if not np.issubdtype(x.dtype, np.number):
            raise DataError(f"windows must be numeric, got dtype {x.dtype}")
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            bad = int(np.argwhere(~np.isfinite(x))[0, 0])
            raise DataError(f"windows contain NaN or infinite values (first in window {bad})")
        k = len(self.labels.classes)
        if len(x) == 0:
            return np.zeros((0, k), np.float32)
        probs = np.concatenate([self.session.run(["probs"], {"x": np.ascontiguousarray(x[i : i + batch_size])})[0]
                                for i in range(0, len(x), batch_size)])
        if probs.shape != (len(x), k):
            raise ModelError(f"model returned probs of shape {list(probs.shape)}, expected [{len(x)}, {k}]")
        return probs.astype(np.float32, copy=False)


def load(model_dir: str | Path | None = None, providers: Sequence[str] | None = None, threads: int | None = None,
         int8: bool = False) -> HARRuntime:
    return HARRuntime.load(model_dir, providers=providers, threads=threads, int8=int8)


# --------------------------------------------------------------------------------------------------
# Recording -> timeline


@dataclass
class Segment:
    start_s: float
    end_s: float
    label: str
    confidence: float  # mean over the segment's windows of the winning class probability
    windows: int = 1


def predict_recording(
    runtime: HARRuntime,
    path: str | Path,
    sample_rate: float | None = None,
    batch_size: int = 256,
    columns: Sequence[str] | None = None,
) -> list[Segment]:
    """Classify every window of a recording and merge consecutive windows with the same label.

    Window ``i`` covers samples ``[i*hop, i*hop + window)``; on the timeline it owns the ``hop``
    samples around its centre, so segments tile the recording without overlap (the first starts
    at 0 s, the last ends at the recording's end).
    """
    cfg = runtime.preprocess
    if cfg is None or list(runtime.labels.channels) != CHANNELS:
        raise ModelError(f"{runtime.folder.path}: the model's channels {list(runtime.labels.channels)} are not the "
                         f"UCI HAR front end's {CHANNELS}; it cannot be fed from a recording")
    classes = runtime.classes
    sr, win, hop = cfg.sample_rate, cfg.window, cfg.hop
    filt = UCIHARFilter(cfg)
    buf = np.zeros((len(CHANNELS), 0), np.float32)  # filtered samples from absolute index buf_start
    buf_start = next_start = total = n_windows = 0
    pending: list[np.ndarray] = []
    segments: list[Segment] = []

    def run_batch() -> None:
        nonlocal n_windows
        if not pending:
            return
        probs = runtime.predict_windows(np.stack(pending))
        pending.clear()
        for p in probs:
            label, conf = classes[int(p.argmax())], float(p.max())
            i = n_windows
            n_windows += 1
            lo = 0.0 if i == 0 else (i * hop + (win - hop) / 2) / sr
            hi = (i * hop + (win + hop) / 2) / sr
            last = segments[-1] if segments else None
            if last is not None and last.label == label:
                last.confidence = (last.confidence * last.windows + conf) / (last.windows + 1)
                last.windows += 1
                last.end_s = hi
            else:
                segments.append(Segment(lo, hi, label, conf))

    def consume(filtered: np.ndarray) -> None:
        nonlocal buf, buf_start, next_start
        buf = np.concatenate([buf, filtered], axis=1)
        while next_start + win <= buf_start + buf.shape[1]:
            s = next_start - buf_start
            pending.append(buf[:, s : s + win])
            next_start += hop
            if len(pending) >= batch_size:
                run_batch()
        drop = next_start - buf_start  # samples no future window needs
        if drop > 0:
            buf = buf[:, drop:].copy()
            buf_start += drop

    for acc, gyro in iter_recording(path, sample_rate=sample_rate, columns=columns, target_rate=sr):
        total += len(acc)
        try:
            consume(filt.process(acc, gyro))
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
    consume(filt.flush())
    run_batch()
    if not segments:
        raise DataError(f"{path}: recording too short: {total} samples ({total / sr:.2f} s at {sr:g} Hz) is "
                        f"less than one {win}-sample window ({win / sr:.2f} s)")  # fmt: skip
    segments[-1].end_s = max(segments[-1].end_s, total / sr)
    return segments


def _clock(t: float) -> str:
    m, s = divmod(t, 60)
    h, m = divmod(int(m), 60)
    return f"{h:d}:{m:02d}:{s:04.1f}" if h else f"{m:d}:{s:04.1f}"


def format_timeline(segments: Sequence[Segment]) -> str:
    """A human-readable table: start, end, duration, activity, confidence."""
    if not segments:
        return "(no segments)"
    width = max(8, *(len(s.label) for s in segments))
    lines = [f"{'start':>9}  {'end':>9}  {'dur s':>6}  {'activity':<{width}}  confidence"]
    for s in segments:
        lines.append(f"{_clock(s.start_s):>9}  {_clock(s.end_s):>9}  {s.end_s - s.start_s:6.1f}  "
                     f"{s.label:<{width}}  {s.confidence:.2f}")  # fmt: skip
    return "\n".join(lines)
