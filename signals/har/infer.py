"""Torch-free FusionActNet runtime: a continuous recording -> a timeline of activities.

numpy + scipy + soxr + onnxruntime only (never torch). The recording is streamed in chunks by the
front end (:mod:`signals.har.frontend`: read -> resample to the model's rate -> the UCI HAR filter,
the very code that built the training windows) -> sliding windows -> ONNX model -> consecutive
window probabilities decoded by the model folder's HMM (fixed-lag Viterbi, :mod:`signals.har.smoothing`;
raw argmax per window with ``smoothing=False``) -> consecutive windows with the same label merged into
segments. Memory stays constant however long the recording is (only the segments list grows, with each
change of activity).

    rt = load()                                       # models/har (or --model / $SIGNALS_MODELS)
    segments = predict_recording(rt, "acc_exp04_user02.txt")                 # smoothed when the folder has an HMM
    segments = predict_recording(rt, "acc_exp04_user02.txt", smoothing=False)  # one label per window
    probs = rt.predict_windows(windows)               # float32 [N, 9, 128] -> [N, K]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import ConfigError, DataError, ModelError
from signals.har.frontend import CHANNELS, PreprocessConfig, UCIHARFilter, iter_recording
from signals.har.smoothing import FixedLagViterbi, SmoothingConfig
from signals.modelfolder import ModelFolder
from signals.outputs import AtomicOutput, check_output

KIND = "har"


@dataclass(frozen=True)
class Labels:
    """``config.json["runtime"]`` of a HAR model: what its input channels and output classes are."""

    classes: tuple[str, ...]  # output order of ``probs``
    channels: tuple[str, ...]  # input order of ``x``
    sample_rate: float  # Hz of the windows the model was trained on
    smoothing: SmoothingConfig | None = None  # the HMM that smooths the timeline (signals har fit-smoothing)


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
    confidence: float  # mean over the segment's windows of the probability of its label
    windows: int = 1


class Timeline:
    """Window decisions -> segments. Window ``i`` owns the ``hop`` samples around its centre, so the
    segments tile the recording without overlap (the first starts at 0 s; :meth:`finish` stretches the
    last to the recording's end). Consecutive windows with the same label merge into one segment.

    ``smoother``: a :class:`signals.har.smoothing.FixedLagViterbi`; without one each window takes its argmax.
    """

    def __init__(self, classes: Sequence[str], cfg: PreprocessConfig, smoother: FixedLagViterbi | None = None):
        self.classes = list(classes)
        self.sr, self.win, self.hop = cfg.sample_rate, cfg.window, cfg.hop
        self.smoother = smoother
        self.segments: list[Segment] = []
        self.n = 0  # windows placed

    def add(self, probs: np.ndarray) -> None:
        """probs [n, K] of the next windows, in order."""
        for p in probs:
            if self.smoother is None:
                self._place(int(p.argmax()), p)
            else:
                for _, state, row in self.smoother.push(p):
                    self._place(state, row)

    def _place(self, k: int, p: np.ndarray) -> None:
        label, conf = self.classes[k], float(p[k])
        i = self.n
        self.n += 1
        lo = 0.0 if i == 0 else (i * self.hop + (self.win - self.hop) / 2) / self.sr
        hi = (i * self.hop + (self.win + self.hop) / 2) / self.sr
        last = self.segments[-1] if self.segments else None
        if last is not None and last.label == label:
            last.confidence = (last.confidence * last.windows + conf) / (last.windows + 1)
            last.windows += 1
            last.end_s = hi
        else:
            self.segments.append(Segment(lo, hi, label, conf))

    def finish(self, total_samples: int) -> list[Segment]:
        if self.smoother is not None:
            for _, state, row in self.smoother.flush():
                self._place(state, row)
        if self.segments:
            self.segments[-1].end_s = max(self.segments[-1].end_s, total_samples / self.sr)
        return self.segments


def stream_probs(
    runtime: HARRuntime,
    path: str | Path,
    on_probs: Callable[[np.ndarray], None],
    sample_rate: float | None = None,
    batch_size: int = 256,
    columns: Sequence[str] | None = None,
) -> int:
    """Stream a recording through the front end and the model: ``on_probs(probs [n, K])`` is called with
    every batch of window probabilities, in order. Returns the recording's length in samples (at the
    model's rate). Constant memory: one chunk of the recording and one batch of windows at a time.
    """
    cfg = runtime.preprocess
    if cfg is None or list(runtime.labels.channels) != CHANNELS:
        raise ModelError(f"{runtime.folder.path}: the model's channels {list(runtime.labels.channels)} are not the "
                         f"UCI HAR front end's {CHANNELS}; it cannot be fed from a recording")
    sr, win, hop = cfg.sample_rate, cfg.window, cfg.hop
    filt = UCIHARFilter(cfg)
    buf = np.zeros((len(CHANNELS), 0), np.float32)  # filtered samples from absolute index buf_start
    buf_start = next_start = total = n_windows = 0
    pending: list[np.ndarray] = []

    def run_batch() -> None:
        nonlocal n_windows
        if pending:
            probs = runtime.predict_windows(np.stack(pending))
            pending.clear()
            n_windows += len(probs)
            on_probs(probs)

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
    if not n_windows:
        raise DataError(f"{path}: recording too short: {total} samples ({total / sr:.2f} s at {sr:g} Hz) is "
                        f"less than one {win}-sample window ({win / sr:.2f} s)")  # fmt: skip
    return total


def smoother(runtime: HARRuntime, smoothing: bool | None = None, lag: int | None = None) -> FixedLagViterbi | None:
    """The decoder a timeline of ``runtime`` uses: ``smoothing`` None = the folder's HMM when it has one,
    True = it must have one, False = none (raw argmax per window). ``lag`` overrides the folder's lag."""
    cfg = runtime.labels.smoothing
    if smoothing is False or (smoothing is None and cfg is None):
        return None
    if cfg is None:
        raise ModelError(f"{runtime.folder.path} has no smoothing HMM (config.json runtime.smoothing); fit one with "
                         f"`signals har fit-smoothing --model {runtime.folder.path}` or predict with --no-smoothing")
    if lag is not None and lag < 0:
        raise ConfigError(f"--lag must be >= 0 windows, got {lag}")
    return FixedLagViterbi(cfg, lag)


def predict_recording(
    runtime: HARRuntime,
    path: str | Path,
    sample_rate: float | None = None,
    batch_size: int = 256,
    columns: Sequence[str] | None = None,
    smoothing: bool | None = None,
    lag: int | None = None,
) -> list[Segment]:
    """The activity timeline of a recording: every window classified, decoded (smoothed by the folder's HMM
    unless ``smoothing`` is False, see :func:`smoother`) and consecutive equal labels merged into segments."""
    cfg = runtime.preprocess
    if cfg is None:
        raise ModelError(f"{runtime.folder.path}: the model has no front end (config.json frontend); "
                         "it cannot be fed from a recording")
    timeline = Timeline(runtime.classes, cfg, smoother(runtime, smoothing, lag))
    total = stream_probs(runtime, path, timeline.add, sample_rate=sample_rate, batch_size=batch_size,
                         columns=columns)
    return timeline.finish(total)


# --------------------------------------------------------------------------------------------------
# Output files of the har commands (signals.outputs: checked before the work, written atomically)


@contextlib.contextmanager
def open_outputs(outputs: dict[str, tuple[str | Path | None, tuple[str, ...]]], inputs: list[Path],
                 overwrite: bool = False) -> Iterator[dict[str, AtomicOutput]]:
    """``{name: (path or None, suffixes)}`` -> ``{name: AtomicOutput}`` for the paths given, entered before the
    work starts: every path is checked first (so a bad second one fails before the first temporary file is
    made), each becomes its target only if the whole block succeeds, and none is left behind otherwise."""
    given = {name: (path, suffixes) for name, (path, suffixes) in outputs.items() if path is not None}
    for name, (path, suffixes) in given.items():
        check_output(path, inputs=inputs, overwrite=overwrite, suffixes=suffixes, what=f"--{name} output")
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(AtomicOutput(path, inputs=inputs, overwrite=overwrite, suffixes=suffixes,
                                                      what=f"--{name} output"))
               for name, (path, suffixes) in given.items()}



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
