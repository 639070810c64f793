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
    pair = TransitionAwareRuntime.pair(rt, load("models/har-hapt"))  # + postural transitions (see the class)
    segments = predict_recording(pair, "acc_exp04_user02.txt")  # changes of activity mid-transition
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
from signals.modelfolder import ModelFolder, find_model
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
    def bridges(self) -> tuple[str, ...]:
        """Classes a timeline decodes but does not show as activities (see :class:`TransitionAwareRuntime`)."""
        return ()

    @property
    def activities(self) -> list[str]:
        """The classes a timeline shows (all of them here)."""
        return self.classes

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


@dataclass(frozen=True)
class TransitionAwareRuntime:
    """An activity model read together with a postural-transition model (e.g. ``models/har`` + ``models/har-hapt``).

    Why: a 6-class model has never seen a window that straddles a sit-to-stand; it labels it with one of the
    two activities, and the HMM then moves the change of activity by up to a window. Here the decoder's states
    are the transition model's classes (the activities and the transitions), its HMM is the transition
    model's own (``runtime.smoothing`` of that folder, fitted on the training subjects' recordings with its
    transitions), and each window's evidence is::

        p(activity a) = p_activity_model(a) * (1 - t),   p(transition j) = p_transition_model(j),
        t = sum_j p_transition_model(j)

    so the activity model keeps deciding *which* activity and the transition model says *where one ends*.
    The transition classes are :attr:`bridges`: a :class:`Timeline` splits a run of them at its midpoint
    between the activities on either side and records the transition on the segment that follows. Chosen on
    the validation subjects' recordings (see ``models/har/README.md``). Same interface as :class:`HARRuntime`
    for the timeline code (``labels``, ``preprocess``, ``predict_windows``); both models run on every window.
    """

    activity: HARRuntime
    transition: HARRuntime
    labels: Labels  # the transition model's classes and HMM, the activity model's channels
    activity_index: tuple[int, ...]  # column of each activity class in the decoder's classes
    bridge_index: tuple[int, ...]  # columns of the transition classes

    @classmethod
    def pair(cls, activity: HARRuntime, transition: HARRuntime) -> TransitionAwareRuntime:
        """Check that the two models can share windows and a decoder, and pair them."""
        where = f"{activity.folder.path} with transitions from {transition.folder.path}"
        if activity.preprocess is None or transition.preprocess != activity.preprocess:
            raise ModelError(f"{where}: the two models must share one front end (config.json frontend), "
                             "so every window is cut once for both")
        if list(transition.labels.channels) != list(activity.labels.channels):
            raise ModelError(f"{where}: input channels differ ({list(activity.labels.channels)} vs "
                             f"{list(transition.labels.channels)})")
        missing = [c for c in activity.classes if c not in transition.classes]
        if missing:
            raise ModelError(f"{where}: the transition model has no class {missing[0]!r}; its classes must include "
                             f"every activity of the activity model ({activity.classes})")
        bridges = [c for c in transition.classes if c not in activity.classes]
        if not bridges:
            raise ModelError(f"{where}: the transition model has no class beyond the activity model's "
                             f"{activity.classes}; pass a model with postural transitions (e.g. models/har-hapt)")
        if transition.labels.smoothing is None:
            raise ModelError(f"{transition.folder.path} has no smoothing HMM (config.json runtime.smoothing); it is "
                             "the decoder of the transition-aware timeline: fit one with `signals har fit-smoothing`")
        labels = Labels(classes=transition.labels.classes, channels=activity.labels.channels,
                        sample_rate=activity.labels.sample_rate, smoothing=transition.labels.smoothing)
        return cls(activity=activity, transition=transition, labels=labels,
                   activity_index=tuple(transition.classes.index(c) for c in activity.classes),
                   bridge_index=tuple(transition.classes.index(c) for c in bridges))

    @property
    def folder(self) -> ModelFolder:
        return self.activity.folder

    @property
    def preprocess(self) -> PreprocessConfig | None:
        return self.activity.preprocess

    @property
    def graph(self) -> str:
        return self.activity.graph

    @property
    def classes(self) -> list[str]:
        return list(self.labels.classes)

    @property
    def bridges(self) -> tuple[str, ...]:
        return tuple(self.labels.classes[i] for i in self.bridge_index)

    @property
    def activities(self) -> list[str]:
        """The classes a timeline shows: the activity model's."""
        return self.activity.classes

    def predict_windows(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """x: float32 [N, C, window] -> the decoder's evidence float32 [N, K] (K: the transition model's classes)."""
        p = self.activity.predict_windows(x, batch_size).astype(np.float64)
        h = self.transition.predict_windows(x, batch_size).astype(np.float64)
        bridge = list(self.bridge_index)
        t = np.clip(h[:, bridge].sum(1, keepdims=True), 0.0, 1.0)
        out = np.zeros_like(h)
        out[:, list(self.activity_index)] = p / np.maximum(p.sum(1, keepdims=True), 1e-12) * (1.0 - t)
        out[:, bridge] = h[:, bridge]
        return out.astype(np.float32)


def load_transitions(transitions: str | Path, providers: Sequence[str] | None = None, threads: int | None = None,
                     int8: bool = False) -> HARRuntime:
    """The transition model of a pair (``--transitions``, named so in the errors of a missing folder)."""
    return HARRuntime.from_folder(ModelFolder.load(find_model(KIND, transitions, option="--transitions"), KIND),
                                  providers, threads, int8)


def load_pair(model_dir: str | Path | None, transitions: str | Path, providers: Sequence[str] | None = None,
              threads: int | None = None, int8: bool = False) -> TransitionAwareRuntime:
    """``model_dir``'s activities, decoded with the postural transitions of the model in ``transitions``."""
    return TransitionAwareRuntime.pair(HARRuntime.load(model_dir, providers, threads, int8),
                                       load_transitions(transitions, providers, threads, int8))


# --------------------------------------------------------------------------------------------------
# Recording -> timeline


@dataclass
class Segment:
    start_s: float
    end_s: float
    label: str
    confidence: float  # mean over the segment's windows of the probability of its label
    windows: int = 1
    transition: str | None = None  # the postural transition that led into this segment (transition-aware timeline)


class Timeline:
    """Window decisions -> segments. Window ``i`` owns the ``hop`` samples around its centre, so the
    segments tile the recording without overlap (the first starts at 0 s; :meth:`finish` stretches the
    last to the recording's end). Consecutive windows with the same label merge into one segment.

    ``smoother``: a :class:`signals.har.smoothing.FixedLagViterbi`; without one each window takes its argmax.
    ``bridges``: classes that are not shown as activities (postural transitions, see
    :class:`TransitionAwareRuntime`): a run of them is split at its midpoint, the first half going to the
    activity before it and the second to the one after, and the new segment records the transition
    (``Segment.transition``; the most probable bridge class of the run). A run at the start of the stream goes to the first
    activity, one at the end to the last. Only the run's extent and per-class sums are kept: memory stays constant.
    """

    def __init__(self, classes: Sequence[str], cfg: PreprocessConfig, smoother: FixedLagViterbi | None = None,
                 bridges: Sequence[str] = ()):
        self.classes = list(classes)
        self.sr, self.win, self.hop = cfg.sample_rate, cfg.window, cfg.hop
        self.smoother = smoother
        self.bridges = frozenset(bridges)
        unknown = self.bridges - set(self.classes)
        if unknown:
            raise ConfigError(f"bridge classes {sorted(unknown)} are not among the timeline's classes {self.classes}")
        self.segments: list[Segment] = []
        self.n = 0  # windows placed
        self._bridge: dict | None = None  # the open run of bridge windows: start_s, end_s, probability sum per class

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
        if label in self.bridges:
            if self._bridge is None:
                self._bridge = {"start_s": lo, "end_s": hi, "score": {}}
            self._bridge["end_s"] = hi
            self._bridge["score"][label] = self._bridge["score"].get(label, 0.0) + conf
            return
        via = None
        if self._bridge is not None:  # a transition ends here: the change of activity goes to its midpoint
            bridge, self._bridge = self._bridge, None
            via = max(bridge["score"], key=bridge["score"].get)
            if self.segments:
                lo = (bridge["start_s"] + bridge["end_s"]) / 2
                self.segments[-1].end_s = lo
            else:
                lo = 0.0
        last = self.segments[-1] if self.segments else None
        if last is not None and last.label == label and via is None:
            last.confidence = (last.confidence * last.windows + conf) / (last.windows + 1)
            last.windows += 1
            last.end_s = hi
        else:
            self.segments.append(Segment(lo, hi, label, conf, transition=via))

    def finish(self, total_samples: int) -> list[Segment]:
        if self.smoother is not None:
            for _, state, row in self.smoother.flush():
                self._place(state, row)
        if self._bridge is not None:  # the stream ended inside a transition
            bridge, self._bridge = self._bridge, None
            if not self.segments:  # nothing but transition windows: show the transition itself
                label = max(bridge["score"], key=bridge["score"].get)
                n = self.n
                self.segments.append(Segment(0.0, bridge["end_s"], label, bridge["score"][label] / n, windows=n))
            self.segments[-1].end_s = bridge["end_s"]
        if self.segments:
            self.segments[-1].end_s = max(self.segments[-1].end_s, total_samples / self.sr)
        return self.segments


def stream_probs(
    runtime: HARRuntime | TransitionAwareRuntime,
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
    runtime: HARRuntime | TransitionAwareRuntime,
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
    timeline = Timeline(runtime.classes, cfg, smoother(runtime, smoothing, lag), bridges=runtime.bridges)
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
    """A human-readable table: start, end, duration, activity, confidence (and, on a transition-aware
    timeline, the postural transition that led into each segment)."""
    if not segments:
        return "(no segments)"
    width = max(8, *(len(s.label) for s in segments))
    via = any(s.transition for s in segments)
    lines = [f"{'start':>9}  {'end':>9}  {'dur s':>6}  {'activity':<{width}}  confidence"
             + ("  after" if via else "")]
    for s in segments:
        lines.append(f"{_clock(s.start_s):>9}  {_clock(s.end_s):>9}  {s.end_s - s.start_s:6.1f}  "
                     f"{s.label:<{width}}  " + (f"{s.confidence:<10.2f}  {s.transition or ''}".rstrip() if via
                                                   else f"{s.confidence:.2f}"))  # fmt: skip
    return "\n".join(lines)
