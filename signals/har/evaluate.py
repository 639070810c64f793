"""Evaluate a HAR model folder on a dataset split: PyTorch weights, or the fp32 / int8 ONNX graphs.

    signals har evaluate --model models/har --json m.json --png cm.png [--backend onnx | --int8] [--record]

The ONNX back ends run through the runtime (:class:`signals.har.infer.HARRuntime`, the same checks and
session as ``signals har predict``); ``torch`` imports torch only when chosen. config.json is read once. ``record`` stores the
summary in the folder's ``metrics.json`` under ``<split>_<backend>``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from signals.errors import DataError, ModelError
from signals.har.infer import KIND, HARRuntime, Labels
from signals.har.metrics import classification_metrics, plot_confusion
from signals.modelfolder import METRICS_FILE, ModelFolder, update_metrics

BACKENDS = ("torch", "onnx", "int8")


def predict_torch(folder: ModelFolder, x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Probabilities [N, K] from the folder's ``model.safetensors`` through PyTorch."""
    import torch

    from signals.har.export import load_model

    if threads:
        torch.set_num_threads(threads)
    model = load_model(folder)
    return model.predict_proba(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()


def evaluate(model_dir: str | Path | None = None, dataset: str = "uci-har", data: str | None = None,
             backend: str = "torch", json_out: str | Path | None = None, png_out: str | Path | None = None,
             threads: int | None = None, split: str = "test") -> dict:
    """Metrics of a model folder on a dataset split (writes ``json_out`` / ``png_out`` when given)."""
    from signals.har.data import load_dataset

    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r} ({' | '.join(BACKENDS)})")
    folder = ModelFolder.find(KIND, model_dir)  # config.json is read once, here
    labels = folder.section("runtime", Labels)
    ds = load_dataset(dataset, root=data)
    part = ds.test if split == "test" else ds.train
    if list(labels.classes) != list(ds.class_names):
        raise DataError(f"dataset {ds.name!r} classes {ds.class_names} differ from the model's "
                        f"{list(labels.classes)} ({folder.path})")
    if part.x.shape[1] != len(labels.channels):
        raise DataError(f"dataset {ds.name!r} has {part.x.shape[1]} channels, the model in {folder.path} "
                        f"expects {len(labels.channels)}")
    t0 = time.time()
    if backend == "torch":
        probs = predict_torch(folder, part.x, threads)
    else:
        runtime = HARRuntime.from_folder(folder, ["CPUExecutionProvider"], threads, int8=backend == "int8")
        probs = runtime.predict_windows(part.x)
    seconds = time.time() - t0
    m = classification_metrics(part.y, probs.argmax(1), ds.class_names)
    m.update(model=str(folder.path), dataset=ds.name, split=split, backend=backend, seconds=round(seconds, 2))
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(m, indent=2) + "\n")
    if png_out:
        plot_confusion(m, png_out, f"{ds.name} {split} ({backend}): acc {m['accuracy']:.4f}, "
                                    f"macro-F1 {m['macro_f1']:.4f}")
    return m


def record(model_dir: str | Path, m: dict) -> Path:
    """Store a summary of ``m`` in the folder's metrics.json under ``<split>_<backend>``; returns the file."""
    keep = ("n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "dataset", "seconds")
    update_metrics(model_dir, **{f"{m['split']}_{m['backend']}": {k: m[k] for k in keep if k in m}})
    return Path(model_dir) / METRICS_FILE
