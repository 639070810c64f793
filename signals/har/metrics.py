"""Classification metrics and ``signals har evaluate``: accuracy, macro-F1, per-class precision/recall,
confusion matrix (JSON + PNG), for the PyTorch weights or the fp32/int8 ONNX graphs.

``classification_metrics`` is numpy only; ``evaluate`` imports torch only for ``--backend torch``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from signals.errors import DataError, ModelError


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


def predict_onnx(model_dir: str | Path, x: np.ndarray, int8: bool = False, threads: int | None = None,
                 batch_size: int = 256) -> np.ndarray:
    """Probabilities [N, K] from the model folder's fp32 or int8 ONNX graph (torch-free)."""
    from signals.runtime import create_session, read_config

    cfg = read_config(model_dir)
    name = cfg.get("onnx", {}).get("int8" if int8 else "fp32")
    if not name:
        raise ModelError(f"{model_dir}/config.json names no {'int8' if int8 else 'fp32'} ONNX graph")
    sess = create_session(Path(model_dir) / name, providers=["CPUExecutionProvider"], threads=threads)
    x = np.ascontiguousarray(x, np.float32)
    return np.concatenate([sess.run(["probs"], {"x": x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)])


def predict_torch(model_dir: str | Path, x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Probabilities [N, K] from ``model.safetensors`` through PyTorch."""
    import torch

    from signals.har.export import load_torch_model

    if threads:
        torch.set_num_threads(threads)
    model = load_torch_model(model_dir)
    return model.predict_proba(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()


def check_dataset_matches(cfg: dict, ds, model_dir) -> None:
    if list(cfg["classes"]) != list(ds.class_names):
        raise DataError(f"dataset {ds.name!r} classes {ds.class_names} differ from the model's {cfg['classes']} "
                        f"({model_dir})")
    c, t = ds.test.x.shape[1:]
    if c != cfg["model"]["in_channels"]:
        raise DataError(f"dataset {ds.name!r} has {c} channels, the model in {model_dir} expects "
                        f"{cfg['model']['in_channels']}")


def evaluate(model_dir: str | Path, dataset: str = "uci-har", data: str | None = None, backend: str = "torch",
             json_out: str | Path | None = None, png_out: str | Path | None = None, threads: int | None = None,
             split: str = "test") -> dict:
    """Metrics of a model folder on a dataset split; backend = torch | onnx | int8."""
    from signals.har.data import load_dataset
    from signals.runtime import read_config

    cfg = read_config(model_dir)
    ds = load_dataset(dataset, root=data)
    part = ds.test if split == "test" else ds.train
    check_dataset_matches(cfg, ds, model_dir)
    t0 = time.time()
    if backend == "torch":
        probs = predict_torch(model_dir, part.x, threads)
    elif backend in ("onnx", "int8"):
        probs = predict_onnx(model_dir, part.x, int8=backend == "int8", threads=threads)
    else:
        raise ModelError(f"unknown backend {backend!r} (torch | onnx | int8)")
    seconds = time.time() - t0
    m = classification_metrics(part.y, probs.argmax(1), ds.class_names)
    m.update(model=str(model_dir), dataset=ds.name, split=split, backend=backend, seconds=round(seconds, 2))
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(m, indent=2) + "\n")
    if png_out:
        plot_confusion(m, png_out, f"{ds.name} {split} ({backend}): acc {m['accuracy']:.4f}, "
                                    f"macro-F1 {m['macro_f1']:.4f}")
    return m


def format_report(m: dict) -> str:
    lines = [f"{m.get('dataset', '')} {m.get('split', '')} [{m.get('backend', '')}]: n={m['n']}  "
             f"accuracy={m['accuracy']:.4f}  macro-F1={m['macro_f1']:.4f}",
             f"{'class':<22}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for name, r in m["per_class"].items():
        lines.append(f"{name:<22}{r['precision']:>10.4f}{r['recall']:>10.4f}{r['f1']:>10.4f}{r['support']:>9d}")
    lines.append("confusion (rows true, cols predicted):")
    lines += ["  " + " ".join(f"{v:5d}" for v in row) for row in m["confusion_matrix"]]
    return "\n".join(lines)


def record_metrics(model_dir: str | Path, m: dict) -> None:
    """Store a summary of ``m`` in the model folder's config.json (metrics.<split>_<backend>)."""
    from signals.runtime import read_config, write_config

    cfg = read_config(model_dir)
    keep = ("n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "dataset", "seconds")
    cfg.setdefault("metrics", {})[f"{m['split']}_{m['backend']}"] = {k: m[k] for k in keep if k in m}
    write_config(model_dir, cfg)


def run_evaluate(args) -> int:
    from signals.paths import model_dir

    backend = "int8" if args.int8 else args.backend
    m = evaluate(args.model or model_dir("har"), args.dataset, args.data, backend, args.json, args.png, args.threads, args.split)
    print(format_report(m))
    if getattr(args, "record", False):
        record_metrics(args.model or model_dir("har"), m)
        print(f"recorded in {args.model or model_dir('har')}/config.json under metrics.{m['split']}_{backend}")
    if args.json:
        print(f"wrote {args.json}")
    if args.png:
        print(f"wrote {args.png}")
    return 0
