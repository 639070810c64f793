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
