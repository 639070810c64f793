"""Speaker-verification metrics: ROC, equal error rate, pair scores, DET/histogram plot. numpy only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-accept and false-reject rates at every distinct threshold.

    Accept when ``score >= threshold``. Returns ``(far, frr, thresholds)``, ordered by decreasing
    threshold, with the end points (accept nothing: far 0 / frr 1, accept all: far 1 / frr 0) included.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"EER needs both target and non-target pairs (got {n_pos} and {n_neg})")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    # Last index of each run of equal scores: ties are accepted or rejected together.
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    far = np.r_[0.0, fp / n_neg]
    frr = np.r_[1.0, 1.0 - tp / n_pos]
    thresholds = np.r_[np.inf, s[last]]
    return far, frr, thresholds


@dataclass(frozen=True)
class EER:
    eer: float  # equal error rate, 0..1
    threshold: float  # score threshold at which FAR = FRR (accept when score >= threshold)


def equal_error_rate(scores: np.ndarray, labels: np.ndarray) -> EER:
    """EER by linear interpolation of FAR and FRR between the two ROC points where they cross."""
    far, frr, thr = roc(scores, labels)
    diff = frr - far  # starts at 1, ends at -1, non-increasing
    i = int(np.flatnonzero(diff <= 0)[0])  # first point with FAR >= FRR (i >= 1)
    d0, d1 = diff[i - 1], diff[i]
    t = 0.0 if d0 == d1 else d0 / (d0 - d1)  # fraction of the way from point i-1 to i
    eer = far[i - 1] + t * (far[i] - far[i - 1])
    t_lo = thr[i]
    t_hi = thr[i - 1] if np.isfinite(thr[i - 1]) else thr[i]
    return EER(eer=float(eer), threshold=float(t_hi + t * (t_lo - t_hi)))


def pair_scores(embeddings: np.ndarray, speakers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine score and same-speaker label of every unordered pair: ``(float [P], bool [P])``, P = N(N-1)/2."""
    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    i, j = np.triu_indices(len(e), k=1)
    spk = np.asarray(speakers)
    return np.einsum("pd,pd->p", e[i], e[j]), spk[i] == spk[j]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cohort_stats(embeddings: np.ndarray, cohort: np.ndarray, speakers: list[str] | None = None,
                 cohort_speakers: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each embedding's cosines with an impostor ``cohort``: ``(float [N], float [N])``.

    ``embeddings: float [N, D]``, ``cohort: float [K, D]``. When both speaker lists are given (one ID per
    row), each embedding leaves its own speaker's cohort rows out, so a speaker's own voice never counts
    as an impostor (leave-own-speaker-out; used to calibrate on speakers who are in the cohort).
    """
    e, c = _unit(np.atleast_2d(embeddings)), _unit(np.atleast_2d(cohort))
    if e.shape[1] != c.shape[1]:
        raise ValueError(f"embeddings have {e.shape[1]} dimensions but the cohort has {c.shape[1]}")
    cs = e @ c.T  # [N, K]
    if speakers is None or cohort_speakers is None:
        if len(c) < 2:
            raise ValueError(f"S-norm needs a cohort of at least 2 embeddings, got {len(c)}")
        return cs.mean(axis=1), np.maximum(cs.std(axis=1), 1e-12)
    if len(speakers) != len(e) or len(cohort_speakers) != len(c):
        raise ValueError(f"{len(speakers)} speaker IDs for {len(e)} embeddings / {len(cohort_speakers)} for "
                         f"{len(c)} cohort rows")
    keep = np.asarray(speakers, dtype=str)[:, None] != np.asarray(cohort_speakers, dtype=str)[None, :]  # [N, K]
    n = keep.sum(axis=1)
    if (n < 2).any():
        raise ValueError(f"S-norm needs a cohort of at least 2 embeddings, got {int(n.min())} after leaving out "
                         "the embedding's own speaker")
    mu = (cs * keep).sum(axis=1) / n
    var = (((cs - mu[:, None]) ** 2) * keep).sum(axis=1) / n
    return mu, np.maximum(np.sqrt(var), 1e-12)


def snorm(raw: np.ndarray | float, mu_a, sd_a, mu_b, sd_b) -> np.ndarray | float:
    """Symmetric normalisation of a raw cosine ``s(a, b)``: ``((s - mu_a) / sd_a + (s - mu_b) / sd_b) / 2``."""
    return 0.5 * ((raw - mu_a) / sd_a + (raw - mu_b) / sd_b)


def snorm_pair_scores(embeddings: np.ndarray, speakers: list[str], cohort: np.ndarray,
                      cohort_speakers: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pair_scores` with symmetric score normalisation (S-norm) against an impostor ``cohort``.

    Each raw cosine ``s(a, b)`` becomes ``((s - mu_a) / sd_a + (s - mu_b) / sd_b) / 2``, where mu/sd are the
    mean/std of that embedding's cosines with the cohort ``float [K, D]`` (see :func:`cohort_stats`; pass
    ``cohort_speakers`` to leave each embedding's own speaker out of its cohort). It removes per-utterance
    score offsets (a voice that resembles many others scores high against all of them), so one threshold
    fits all trials better. Scores are in standard deviations, not cosines.
    """
    e = _unit(embeddings)
    mu, sd = cohort_stats(e, cohort, speakers if cohort_speakers is not None else None, cohort_speakers)
    raw, labels = pair_scores(e, speakers)
    i, j = np.triu_indices(len(e), k=1)
    return snorm(raw, mu[i], sd[i], mu[j], sd[j]), labels


@dataclass(frozen=True)
class Decisions:
    threshold: float
    far: float  # false accepts / different-speaker trials
    frr: float  # false rejects / same-speaker trials
    false_accepts: int
    false_rejects: int
    n_target: int
    n_nontarget: int

    @property
    def accuracy(self) -> float:
        """Fraction of all trials decided right (dominated by the many different-speaker trials)."""
        return 1.0 - (self.false_accepts + self.false_rejects) / (self.n_target + self.n_nontarget)


def decisions_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> Decisions:
    """Error counts and rates of the decision ``same = score >= threshold`` on labelled trials."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    accept = scores >= threshold
    fa, fr = int((accept & ~labels).sum()), int((~accept & labels).sum())
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    return Decisions(threshold=float(threshold), far=fa / max(n_neg, 1), frr=fr / max(n_pos, 1),
                     false_accepts=fa, false_rejects=fr, n_target=n_pos, n_nontarget=n_neg)


def plot_scores(scores: np.ndarray, labels: np.ndarray, result: EER, path: str | Path, title: str = "",
                xlabel: str = "cosine similarity") -> Path:
    """A PNG with the DET curve (probit axes) and the target / non-target score histograms."""
    from signals.plotting import pyplot, save_figure

    plt = pyplot()
    from scipy.stats import norm

    labels = np.asarray(labels, bool)
    far, frr, _ = roc(scores, labels)
    eps = 1e-4
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax1.plot(norm.ppf(np.clip(far, eps, 1 - eps)), norm.ppf(np.clip(frr, eps, 1 - eps)), lw=1.5)
    ticks = np.array([0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    ax1.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax1.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax1.set_xlim(norm.ppf(5e-4), norm.ppf(0.5))
    ax1.set_ylim(norm.ppf(5e-4), norm.ppf(0.5))
    e = norm.ppf(np.clip(result.eer, eps, 1 - eps))
    ax1.plot([e], [e], "o", label=f"EER {100 * result.eer:.2f} %")
    ax1.set_xlabel("false accept rate (%)")
    ax1.set_ylabel("false reject rate (%)")
    ax1.set_title("DET")
    ax1.grid(alpha=0.3)
    ax1.legend()
    bins = np.linspace(float(np.min(scores)), float(np.max(scores)), 60)
    ax2.hist(scores[~labels], bins=bins, density=True, alpha=0.6, label=f"different speaker ({(~labels).sum()})")
    ax2.hist(scores[labels], bins=bins, density=True, alpha=0.6, label=f"same speaker ({labels.sum()})")
    ax2.axvline(result.threshold, color="k", ls="--", label=f"threshold {result.threshold:.3f}")
    ax2.set_xlabel(xlabel)
    ax2.set_title("score distributions")
    ax2.legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=110)
