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


def snorm_pair_scores(embeddings: np.ndarray, speakers: list[str], cohort: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pair_scores` with symmetric score normalisation (S-norm) against an impostor ``cohort``.

    Each raw cosine ``s(a, b)`` becomes ``((s - mu_a) / sd_a + (s - mu_b) / sd_b) / 2``, where mu/sd are the
    mean/std of that embedding's cosines with the cohort ``float [K, D]`` (speakers disjoint from the trial).
    It removes per-utterance score offsets (a voice that resembles many others scores high against all of
    them), so one threshold fits all trials better. Scores are in standard deviations, not cosines.
    """
    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    c = np.asarray(cohort, dtype=np.float64)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    if len(c) < 2:
        raise ValueError(f"S-norm needs a cohort of at least 2 embeddings, got {len(c)}")
    cs = e @ c.T  # [N, K]
    mu, sd = cs.mean(axis=1), np.maximum(cs.std(axis=1), 1e-12)
    raw, labels = pair_scores(e, speakers)
    i, j = np.triu_indices(len(e), k=1)
    return 0.5 * ((raw - mu[i]) / sd[i] + (raw - mu[j]) / sd[j]), labels


def plot_scores(scores: np.ndarray, labels: np.ndarray, result: EER, path: str | Path, title: str = "",
                xlabel: str = "cosine similarity") -> Path:
    """A PNG with the DET curve (probit axes) and the target / non-target score histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
