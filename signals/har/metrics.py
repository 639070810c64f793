"""Classification metrics: accuracy, macro-F1, per-class precision/recall, confusion matrix (+ PNG, text).

numpy only (matplotlib for the PNG).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from signals.errors import DataError


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """[K, K] counts, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise DataError(f"labels and predictions must be equal-length vectors, got {y_true.shape} and {y_pred.shape}")
    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(cm.sum(0) > 0, tp / cm.sum(0), 0.0)
        recall = np.where(cm.sum(1) > 0, tp / cm.sum(1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = cm.sum(1) > 0  # macro-F1 over the classes that occur in y_true
    return dict(
        n=int(len(y_true)),
        accuracy=float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        macro_f1=float(f1[present].mean()) if present.any() else float("nan"),
        per_class={
            name: dict(precision=float(precision[i]), recall=float(recall[i]), f1=float(f1[i]),
                       support=int(cm[i].sum()))
            for i, name in enumerate(class_names)
        },
        confusion_matrix=cm.tolist(),
        classes=list(class_names),
    )


def plot_confusion(metrics: dict, path: str | Path, title: str = "") -> Path:
    """Write the confusion matrix (counts, row-normalised colour) as a PNG."""
    from signals.plotting import pyplot, save_figure

    plt = pyplot()

    cm = np.asarray(metrics["confusion_matrix"])
    names = metrics["classes"]
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 1.0 * len(names) + 2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}")
    return save_figure(fig, path, dpi=120)


def format_report(m: dict) -> str:
    lines = [f"{m.get('dataset', '')} {m.get('split', '')} [{m.get('backend', '')}]: n={m['n']}  "
             f"accuracy={m['accuracy']:.4f}  macro-F1={m['macro_f1']:.4f}",
             f"{'class':<22}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for name, r in m["per_class"].items():
        lines.append(f"{name:<22}{r['precision']:>10.4f}{r['recall']:>10.4f}{r['f1']:>10.4f}{r['support']:>9d}")
    lines.append("confusion (rows true, cols predicted):")
    lines += ["  " + " ".join(f"{v:5d}" for v in row) for row in m["confusion_matrix"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# whole recordings: sample-by-sample and segment (event) scores


def runs(labels: np.ndarray, mask: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """Maximal runs of equal labels as ``(label, start, end)`` (0-based, end exclusive); samples outside
    ``mask`` (or labelled < 0) belong to no run and break runs."""
    labels = np.asarray(labels, np.int64).copy()
    if mask is not None:
        labels[~np.asarray(mask, bool)] = -1
    if not len(labels):
        return []
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(labels)]])
    return [(int(labels[s]), int(s), int(e)) for s, e in zip(starts, ends) if labels[s] >= 0]


def match_segments(ref: list[tuple[int, int, int]], hyp: list[tuple[int, int, int]], tolerance: int) -> int:
    """How many reference segments find a hypothesis segment of the same label whose onset and offset each
    lie within ``tolerance`` samples of theirs (one-to-one, greedy in time order)."""
    used = np.zeros(len(hyp), bool)
    by_label: dict[int, list[int]] = {}
    for j, (lab, _, _) in enumerate(hyp):
        by_label.setdefault(lab, []).append(j)
    hits = 0
    for lab, on, off in ref:
        for j in by_label.get(lab, []):
            _, h_on, h_off = hyp[j]
            if not used[j] and abs(h_on - on) <= tolerance and abs(h_off - off) <= tolerance:
                used[j] = True
                hits += 1
                break
    return hits


def match_transitions(ref: list[tuple[str, int, int]], hyp: list[tuple[str, int]], tolerance: int,
                      same_name: bool = True) -> int:
    """How many labelled transitions ``(name, first, end)`` (samples) find a predicted one ``(name, at)`` whose
    change of activity lies within the transition's extent widened by ``tolerance`` samples on both sides and,
    with ``same_name``, names the same transition (one-to-one, greedy in time order)."""
    used = np.zeros(len(hyp), bool)
    hits = 0
    for name, first, end in ref:
        for j, (h_name, at) in enumerate(hyp):
            if not used[j] and first - tolerance <= at <= end + tolerance and (h_name == name or not same_name):
                used[j] = True
                hits += 1
                break
    return hits


def segment_scores(n_ref: int, n_hyp: int, hits: int) -> dict:
    """Event-based precision, recall and F1 from the counts of :func:`match_segments`."""
    precision = hits / n_hyp if n_hyp else 0.0
    recall = hits / n_ref if n_ref else 0.0
    f1 = 2 * hits / (n_ref + n_hyp) if n_ref + n_hyp else float("nan")
    return dict(precision=precision, recall=recall, f1=f1, n_reference=int(n_ref), n_predicted=int(n_hyp),
                matched=int(hits))
