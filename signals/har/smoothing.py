"""A smoothed, streaming activity timeline: fixed-lag Viterbi decoding of window probabilities. numpy only.

The classifier scores each window (2.56 s, every 1.28 s) on its own, so a timeline built from its
argmax flickers: one window of STANDING inside a minute of SITTING. An HMM over the windows removes
that: its states are the model's classes, its transition matrix ``A[i, j] = P(window t+1 is j |
window t is i)`` is counted on the label sequences of the *training* subjects' recordings
(:func:`fit`), and its emissions are the network's posteriors turned into scaled likelihoods
(hybrid HMM/ANN): ``log b_t(j) = w * (log p_t(j) - beta * log prior(j))``, ``prior`` being the class
frequencies of the windows the network was trained on, ``w`` the emission weight and ``beta`` the prior
weight (1: the textbook scaled likelihood; it lifts rare classes such as HAPT's postural transitions,
each under 1 % of the training windows, by up to 5 nats, so a model that gives a transition a few per
cent anywhere would see transitions everywhere; smaller ``beta`` tempers that).

Decoding is **causal with a bounded lag** (fixed-lag Viterbi): after window ``t`` arrives, the label of
window ``t - lag`` is decided by backtracking the best path ending at ``t`` through the last ``lag``
back-pointers. Memory is constant (``lag`` back-pointer rows of ``K`` ints and ``lag`` probability
rows); latency is ``lag`` windows (``lag * hop / rate`` seconds, 1.28 s per window at 50 Hz). ``lag=0``
is forward-only decoding; a lag as long as the recording is the full Viterbi path. At the end of a
stream :meth:`FixedLagViterbi.flush` decides the last ``lag`` windows on the final best path.

The fitted HMM lives in the model folder, ``config.json["runtime"]["smoothing"]``
(:class:`SmoothingConfig`), so the runtime needs nothing else.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signals.errors import ConfigError

EPS = 1e-6  # probabilities are floored here before the log: one confident wrong window is not -inf


@dataclass(frozen=True)
class SmoothingConfig:
    """``config.json["runtime"]["smoothing"]``: the HMM the runtime decodes window probabilities with."""

    transitions: tuple[tuple[float, ...], ...]  # [K, K] row-stochastic, per window hop, runtime.classes order
    prior: tuple[float, ...]  # [K] class frequencies of the training windows (posterior -> scaled likelihood)
    # Defaults chosen on validation subjects' recordings (8, 17, 21, 25; FusionActNet-Lite's validation run):
    # sample accuracy at lag 8 for w 0.5 / 1 / 1.5 / 2: 0.9648 / 0.9933 / 0.9905 / 0.9892 (raw 0.9666), beta 0
    # vs 0.5 vs 1: 0.9933 / 0.9921 / 0.9889; lag 0 / 2 / 4 / 8 / 16: 0.925 / 0.969 / 0.983 / 0.993 / 0.993.
    # Re-checked with a second held-out proxy of the full-size network (models/har-hapt, same 4 subjects held
    # out, its 6 activity probabilities renormalised), transitions fitted on the other 17 training subjects;
    # sample accuracy Lite / HAPT-proxy: defaults 0.9933 / 0.9891; w 0.9 lag 12 0.9936 / 0.9872; w 0.75 lag
    # 16 0.9949 / 0.9842; min_duration 2 / 4 0.9935 / 0.9839, 0.9922 / 0.9838; switch_scale 0.5 0.9924 /
    # 0.9860; pseudo-count 0.1 / 2 0.9914 / 0.9883, 0.9915 / 0.9882; beta 0.25 0.9927 / 0.9873. Nothing beats
    # the defaults on both (mean 0.9912), so they stay (w x lag x min_duration x switch_scale grid, 6 x 4 x 3 x 2).
    emission_weight: float = 1.0  # w: < 1 trusts the (correlated, overlapping) windows less
    prior_weight: float = 0.0  # beta: how far the posteriors are divided by the training prior (0: not at all)
    lag: int = 8  # windows decided this many windows late (fixed-lag Viterbi, 10.24 s at 50 Hz); --lag overrides it
    # duration-aware states: every class is a chain of `min_duration` states, so a change of activity can only
    # follow `min_duration` windows of the same class (except at the stream's two ends). 1: the plain HMM.
    min_duration: int = 1

    def __post_init__(self) -> None:
        k = len(self.prior)
        a = np.asarray(self.transitions, dtype=np.float64)
        if a.shape != (k, k):
            raise ValueError(f"smoothing.transitions must be [{k}, {k}] (one row per class), got {list(a.shape)}")
        if (a < 0).any() or not np.allclose(a.sum(1), 1.0, atol=1e-4):
            raise ValueError("smoothing.transitions rows must be probabilities summing to 1")
        p = np.asarray(self.prior, dtype=np.float64)
        if (p <= 0).any() or not np.isclose(p.sum(), 1.0, atol=1e-4):
            raise ValueError("smoothing.prior must be positive and sum to 1")
        if not self.emission_weight > 0:
            raise ValueError(f"smoothing.emission_weight must be > 0, got {self.emission_weight}")
        if self.lag < 0:
            raise ValueError(f"smoothing.lag must be >= 0 windows, got {self.lag}")
        if not 0 <= self.prior_weight <= 1:
            raise ValueError(f"smoothing.prior_weight must be in [0, 1], got {self.prior_weight}")
        if self.min_duration < 1:
            raise ValueError(f"smoothing.min_duration must be >= 1 window, got {self.min_duration}")


def expanded_transitions(transitions: np.ndarray, min_duration: int) -> np.ndarray:
    """Log transition matrix [K*D, K*D] of the duration-aware HMM: class ``i`` is the chain of states
    ``i*D .. i*D + D-1``; state ``i*D + d`` (d < D-1) moves on to ``d + 1`` with probability 1, the last one
    stays with ``A[i, i]`` or enters the first state of class ``j`` with ``A[i, j]``. ``D = 1``: ``log A``."""
    a = np.asarray(transitions, np.float64)
    k, d = len(a), int(min_duration)
    with np.errstate(divide="ignore"):
        log_a = np.log(a)
    if d == 1:
        return log_a
    out = np.full((k * d, k * d), -np.inf)
    for i in range(k):
        for step in range(d - 1):
            out[i * d + step, i * d + step + 1] = 0.0
        last = i * d + d - 1
        out[last, np.arange(k) * d] = log_a[i]  # to the first state of every other class ...
        out[last, last] = log_a[i, i]  # ... or stay in this one's last state
    return out


class FixedLagViterbi:
    """Streaming fixed-lag Viterbi over window probabilities, constant memory.

    ``push(probs)`` takes the next window's probabilities ``[K]`` and returns the windows decided so
    far as ``(index, class, probs)`` tuples (at most one per push once ``lag`` windows are buffered);
    ``flush()`` returns the rest when the stream ends and resets the decoder.
    """

    def __init__(self, cfg: SmoothingConfig, lag: int | None = None) -> None:
        self.cfg = cfg
        self.lag = cfg.lag if lag is None else int(lag)
        if self.lag < 0:
            raise ConfigError(f"lag must be >= 0 windows, got {self.lag}")
        self.k = len(cfg.prior)
        self.d = cfg.min_duration
        self.log_a = expanded_transitions(np.asarray(cfg.transitions, np.float64), self.d)  # [S, S], S = K * D
        self.log_prior = np.log(np.asarray(cfg.prior, np.float64))
        self.log_init = np.repeat(self.log_prior, self.d)  # a stream may start inside an activity: any state
        self.n_states = self.k * self.d
        self.reset()

    def reset(self) -> None:
        self.delta: np.ndarray | None = None  # best log score of a path ending in each state, [K * D]
        self.back: deque[np.ndarray] = deque(maxlen=max(self.lag, 1))  # back-pointers of the last `lag` steps
        self.rows: deque[np.ndarray] = deque(maxlen=self.lag + 1)  # probabilities of the undecided windows
        self.t = -1  # index of the newest window
        self.decided = 0  # windows returned so far

    def emission(self, probs: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(probs, np.float64), EPS, 1.0)
        return self.cfg.emission_weight * (np.log(p) - self.cfg.prior_weight * self.log_prior)

    def push(self, probs: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
        probs = np.asarray(probs)
        if probs.shape != (self.k,):
            raise ConfigError(f"smoothing expects {self.k} class probabilities per window, got {list(probs.shape)}")
        e = np.repeat(self.emission(probs), self.d)  # every state of a class emits as the class
        if self.delta is None:
            self.delta = self.log_init + e
        else:
            scores = self.delta[:, None] + self.log_a  # [from, to]
            bp = scores.argmax(0)
            self.delta = scores[bp, np.arange(self.n_states)] + e
            if self.lag:
                self.back.append(bp)
        self.delta = self.delta - self.delta.max()  # keep the numbers small; argmaxes are unchanged
        self.t += 1
        self.rows.append(probs)
        if self.t < self.lag:
            return []
        state = int(self.delta.argmax())
        for bp in reversed(self.back):  # exactly `lag` back-pointers once t >= lag
            state = int(bp[state])
        row = self.rows.popleft()
        self.decided += 1
        return [(self.t - self.lag, state // self.d, row)]

    def flush(self) -> list[tuple[int, int, np.ndarray]]:
        """The undecided windows (the last ``min(lag, windows)``), on the best path ending at the last one."""
        if self.delta is None:
            self.reset()
            return []
        n = len(self.rows)
        states = [int(self.delta.argmax())]
        for bp in list(reversed(self.back))[: n - 1]:
            states.append(int(bp[states[-1]]))
        states.reverse()
        out = [(self.decided + i, s // self.d, row) for i, (s, row) in enumerate(zip(states, self.rows))]
        self.reset()
        return out


def decode(probs: np.ndarray, cfg: SmoothingConfig, lag: int | None = None) -> np.ndarray:
    """Probabilities [N, K] of one recording's windows -> decoded classes [N] (the streaming decoder, run whole)."""
    dec = FixedLagViterbi(cfg, lag)
    out = np.empty(len(probs), np.int64)
    for row in probs:
        for i, s, _ in dec.push(row):
            out[i] = s
    for i, s, _ in dec.flush():
        out[i] = s
    return out


# --------------------------------------------------------------------------------------------------
# fitting on labelled recordings


def window_labels(segments: Iterable[tuple[int, int, int]], n_samples: int, window: int, hop: int) -> np.ndarray:
    """The label sequence a recording's windows should have: int64 [N] (-1 where the centre is unlabelled).

    ``segments``: ``(class, start, end)`` with 1-based inclusive sample indices (HAPT ``labels.txt``),
    class already mapped to the model's index (-1 for a class the model does not have). Window ``i``
    covers samples ``[i*hop, i*hop + window)`` and is labelled by its centre sample, as the runtime
    places it on the timeline.
    """
    n = 0 if n_samples < window else (n_samples - window) // hop + 1
    per_sample = np.full(n_samples, -1, np.int64)
    for cls, start, end in segments:
        per_sample[start - 1 : end] = cls
    centres = np.arange(n) * hop + window // 2
    return per_sample[centres] if n else np.zeros(0, np.int64)


def count_transitions(sequences: Iterable[np.ndarray], k: int) -> np.ndarray:
    """Transition counts [K, K] between consecutive *labelled* windows (unlabelled windows, -1, are skipped:
    a gap between two labelled segments counts as one transition from the first to the second)."""
    counts = np.zeros((k, k), np.float64)
    for seq in sequences:
        s = np.asarray(seq)
        s = s[s >= 0]
        if len(s) > 1:
            np.add.at(counts, (s[:-1], s[1:]), 1.0)
    return counts


def fit(
    sequences: Sequence[np.ndarray],
    train_labels: np.ndarray,
    k: int,
    pseudo_count: float = 0.5,
    emission_weight: float = SmoothingConfig.emission_weight,
    lag: int = SmoothingConfig.lag,
    prior_weight: float = SmoothingConfig.prior_weight,
    min_duration: int = SmoothingConfig.min_duration,
    switch_scale: float = 1.0,
) -> SmoothingConfig:
    """An HMM from the training subjects: transitions counted on their window label sequences (each row
    gets ``pseudo_count`` added to every cell, so no change of activity is impossible), prior = class
    frequencies of the training windows ``train_labels`` the network learnt from.

    ``switch_scale`` multiplies every change-of-activity probability (the diagonal takes up the rest): < 1
    makes switching dearer than counted (a cost of ``-log switch_scale`` nats per change), > 1 cheaper."""
    counts = count_transitions(sequences, k) + pseudo_count
    a = scale_switches(counts / counts.sum(1, keepdims=True), switch_scale)
    freq = np.bincount(np.asarray(train_labels, np.int64), minlength=k).astype(np.float64) + 1.0
    prior = freq / freq.sum()
    return SmoothingConfig(
        transitions=tuple(tuple(round(float(v), 8) for v in row) for row in _renormalise(a)),
        prior=tuple(round(float(v), 8) for v in _renormalise(prior[None])[0]),
        emission_weight=float(emission_weight),
        prior_weight=float(prior_weight),
        lag=int(lag),
        min_duration=int(min_duration),
    )


def scale_switches(a: np.ndarray, switch_scale: float) -> np.ndarray:
    """Row-stochastic ``a`` with its off-diagonal entries times ``switch_scale`` and each diagonal entry
    1 - the rest of its row."""
    a = np.asarray(a, np.float64)
    if switch_scale == 1.0:
        return a
    off = a * switch_scale
    np.fill_diagonal(off, 0.0)
    if not switch_scale > 0 or (off.sum(1) >= 1).any():
        raise ConfigError(f"switch scale {switch_scale:g} leaves no probability for staying in an activity: use a "
                          "smaller --switch-scale")
    np.fill_diagonal(off, 1.0 - off.sum(1))
    return off


def _renormalise(a: np.ndarray) -> np.ndarray:
    """Rows rounded to 8 decimals still summing to 1 (the rounding error goes to the largest entry)."""
    a = np.round(a, 8)
    idx = a.argmax(1)
    a[np.arange(len(a)), idx] += 1.0 - a.sum(1)
    return a


def recording_length(path: str | Path) -> int:
    """Samples in a HAPT raw file (its non-blank lines), read in blocks."""
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            n += bool(line.strip())
    return n


def fit_recordings(
    recordings: Sequence, classes: Sequence[str], window: int, hop: int, train_labels: np.ndarray, **kw
) -> tuple[SmoothingConfig, dict]:
    """:func:`fit` on HAPT recordings (:class:`signals.har.data.HAPTRecording`): each labels.txt activity is
    mapped to the model's class of the same name (-1 when the model has no such class). Returns the HMM
    and its provenance (subjects, windows, transitions counted)."""
    from signals.har.data import HAPT_CLASSES

    index = {name: i for i, name in enumerate(classes)}
    seqs = []
    for rec in recordings:
        segs = [(index.get(HAPT_CLASSES[a - 1], -1), s, e) for a, s, e in rec.segments]
        seqs.append(window_labels(segs, recording_length(rec.acc), window, hop))
    cfg = fit(seqs, train_labels, len(classes), **kw)
    labelled = [s[s >= 0] for s in seqs]
    info = dict(subjects=sorted({int(r.user) for r in recordings}), recordings=len(recordings),
                labelled_windows=int(sum(len(s) for s in labelled)),
                transitions=int(sum(int((s[1:] != s[:-1]).sum()) for s in labelled if len(s) > 1)),
                pseudo_count=float(kw.get("pseudo_count", 0.5)), switch_scale=float(kw.get("switch_scale", 1.0)))
    return cfg, info


def fit_folder(
    model_dir: str | Path | None = None,
    data: str | Path | None = None,
    lag: int = SmoothingConfig.lag,
    emission_weight: float = SmoothingConfig.emission_weight,
    prior_weight: float = SmoothingConfig.prior_weight,
    pseudo_count: float = 0.5,
    exclude_subjects: Sequence[int] | None = None,
    min_duration: int = SmoothingConfig.min_duration,
    switch_scale: float = 1.0,
    selection: dict | None = None,
) -> tuple[Path, SmoothingConfig, dict]:
    """Fit the HMM of a HAR model folder on the *training* subjects' HAPT recordings and store it in its
    ``config.json["runtime"]["smoothing"]`` (provenance in ``source["smoothing"]``).

    The model's dataset (``source.dataset.name``) must be rebuilt from HAPT (``uci-har`` or ``hapt``): its
    training windows give the class prior; the test subjects (``exclude_subjects``, default the official
    UCI HAR test subjects) are never read. ``selection``: how the settings were chosen, stored with the
    provenance.
    """
    from dataclasses import replace

    from signals.configio import to_dict
    from signals.errors import DataError
    from signals.har.data import UCI_HAR_TEST_SUBJECTS, hapt_recordings, load_dataset
    from signals.har.frontend import PreprocessConfig
    from signals.har.infer import KIND, Labels
    from signals.modelfolder import ModelFolder, write_config

    folder = ModelFolder.find(KIND, model_dir)
    labels = folder.section("runtime", Labels)
    front = folder.section("frontend", PreprocessConfig) if folder.config.frontend else None
    name = folder.config.source.get("dataset", {}).get("name")
    if front is None or name not in ("uci-har", "hapt"):
        raise DataError(f"{folder.path}: smoothing is fitted on UCI HAPT recordings; this model was trained on "
                        f"{name!r} (need 'uci-har' or 'hapt' with the UCI HAR front end)")
    exclude = UCI_HAR_TEST_SUBJECTS if exclude_subjects is None else tuple(exclude_subjects)
    ds = load_dataset(name, root=data)
    train = ds.train
    keep = ~np.isin(np.asarray(train.subjects), exclude)
    recs = hapt_recordings(data, exclude=exclude)
    cfg, info = fit_recordings(recs, labels.classes, front.window, front.hop, np.asarray(train.y)[keep],
                               pseudo_count=pseudo_count, emission_weight=emission_weight, lag=lag,
                               prior_weight=prior_weight, min_duration=min_duration, switch_scale=switch_scale)
    if selection:
        info["selection"] = selection
    runtime = {**folder.config.runtime, "smoothing": to_dict(cfg)}
    source = {**folder.config.source, "smoothing": info}
    write_config(folder.path, replace(folder.config, runtime=runtime, source=source))
    return folder.path, cfg, info
