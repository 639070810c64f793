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
from signals.har.infer import KIND, HARRuntime, Labels, open_outputs
from signals.har.metrics import classification_metrics, plot_confusion
from signals.modelfolder import CONFIG_FILE, METRICS_FILE, ModelFolder, update_metrics
from signals.outputs import AtomicOutput

BACKENDS = ("torch", "onnx", "int8")


def model_files(folder: ModelFolder) -> list[Path]:
    """The files of a model folder an evaluation reads or updates: no output may replace one of them."""
    names = [CONFIG_FILE, METRICS_FILE, *folder.config.file_names()]
    return [folder.path / name for name in names]


def _write_json(out: AtomicOutput, data: dict) -> None:
    out.tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")



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
             threads: int | None = None, split: str = "test", overwrite: bool = False) -> dict:
    """Metrics of a model folder on a dataset split (writes ``json_out`` / ``png_out`` when given, atomically;
    ``overwrite`` lets them replace one of the model's own files)."""
    from signals.har.data import load_dataset

    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r} ({' | '.join(BACKENDS)})")
    folder = ModelFolder.find(KIND, model_dir)  # config.json is read once, here
    labels = folder.section("runtime", Labels)
    with open_outputs({"json": (json_out, (".json",)), "png": (png_out, (".png",))}, model_files(folder),
                      overwrite) as outs:
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
        if "json" in outs:
            _write_json(outs["json"], m)
        if "png" in outs:
            plot_confusion(m, outs["png"].tmp, f"{ds.name} {split} ({backend}): acc {m['accuracy']:.4f}, "
                                               f"macro-F1 {m['macro_f1']:.4f}")
    return m


def record(model_dir: str | Path, m: dict) -> Path:
    """Store a summary of ``m`` in the folder's metrics.json under ``<split>_<backend>``; returns the file."""
    keep = ("n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "dataset", "seconds")
    update_metrics(model_dir, **{f"{m['split']}_{m['backend']}": {k: m[k] for k in keep if k in m}})
    return Path(model_dir) / METRICS_FILE


# --------------------------------------------------------------------------------------------------
# whole recordings through the streaming runtime

DEFAULT_TOLERANCE_S = 2.0  # segment onset/offset tolerance: 1.5 window hops (1.28 s each at 50 Hz)


def timeline_samples(segments, classes: list[str], n: int, sample_rate: float) -> np.ndarray:
    """A timeline (segments tiling the recording) -> int64 [n] class index per sample (-1 for a label outside
    ``classes``: a transition-aware timeline that saw nothing but a transition)."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.full(n, -1, np.int64)
    for s in segments:
        out[int(round(s.start_s * sample_rate)) : int(round(s.end_s * sample_rate))] = index.get(s.label, -1)
    return out


def reference_samples(recording, classes: list[str], n: int) -> np.ndarray:
    """labels.txt of one recording -> int64 [n] model class per sample (-1: unlabelled or not a model class)."""
    from signals.har.data import HAPT_CLASSES

    index = {c: i for i, c in enumerate(classes)}
    out = np.full(n, -1, np.int64)
    for act, start, end in recording.segments:
        out[start - 1 : end] = index.get(HAPT_CLASSES[act - 1], -1)
    return out


def score_recording(ref: np.ndarray, hyp: np.ndarray, k: int, tolerance: int) -> dict:
    """Sample confusion [K, K] over the labelled samples and the segment-match counts of one recording."""
    from signals.har.metrics import confusion_matrix, match_segments, runs

    mask = ref >= 0
    cm = confusion_matrix(ref[mask], np.maximum(hyp[mask], 0), k)
    ref_runs, hyp_runs = runs(ref), runs(hyp, mask)
    return dict(confusion=cm, n_ref=len(ref_runs), n_hyp=len(hyp_runs),
                hits=match_segments(ref_runs, hyp_runs, tolerance))


def evaluate_recordings(
    model_dir: str | Path | None = None,
    data: str | Path | None = None,
    subjects=None,
    int8: bool = False,
    threads: int | None = None,
    lag: int | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    json_out: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
    transitions: str | Path | None = None,
) -> dict:
    """The streaming runtime over every HAPT recording of ``subjects`` (default: the UCI HAR test subjects),
    scored sample by sample at the model's rate against labels.txt inside the labelled segments of the
    model's classes (activities 1-6 for a 6-class model, all 12 for the HAPT model).

    Each recording is streamed once; its window probabilities feed two timelines, raw (argmax per window)
    and smoothed (the folder's HMM, fixed-lag Viterbi, ``lag`` overriding its lag) when the folder has one.
    Per timeline: sample accuracy, macro-F1 and per-class recall over labelled samples, the sample
    confusion matrix, and segment precision/recall/F1 (a labelled segment is found when a predicted run
    of its class, cut to the labelled samples, starts and ends within ``tolerance_s`` of it).

    ``transitions``: a model folder with postural-transition classes (``models/har-hapt``); the timelines are
    then decoded transition-aware (:class:`signals.har.infer.TransitionAwareRuntime`, the transition model's
    HMM) and scored on the activity model's classes.

    ``json_out`` is checked before the first recording is read and written atomically (``overwrite``: it
    may replace one of the model's own files).
    """
    folder = ModelFolder.find(KIND, model_dir)
    with open_outputs({"json": (json_out, (".json",))}, model_files(folder), overwrite) as outs:
        out = _score_recordings(folder, data, subjects, int8, threads, lag, tolerance_s, progress, transitions)
        if "json" in outs:
            _write_json(outs["json"], out)
    return out


def _score_recordings(folder: ModelFolder, data, subjects, int8: bool, threads: int | None, lag: int | None,
                      tolerance_s: float, progress: bool, transitions: str | Path | None = None) -> dict:
    """:func:`evaluate_recordings` without the output file."""
    from tqdm import tqdm

    from signals.har.data import HAPT_CLASSES, UCI_HAR_TEST_SUBJECTS, hapt_recordings
    from signals.har.infer import Timeline, TransitionAwareRuntime, load_transitions, smoother, stream_probs
    from signals.har.metrics import classification_metrics, match_transitions, segment_scores

    runtime = HARRuntime.from_folder(folder, ["CPUExecutionProvider"], threads, int8=int8)
    if transitions is not None:
        runtime = TransitionAwareRuntime.pair(
            runtime, load_transitions(transitions, ["CPUExecutionProvider"], threads, int8=int8))
    classes = runtime.activities  # scored; the decoder may have more (the transition-aware one's bridges)
    cfg = runtime.preprocess
    if cfg is None:
        raise ModelError(f"{folder.path}: the model has no front end; it cannot be fed from a recording")
    subjects = tuple(UCI_HAR_TEST_SUBJECTS if subjects is None else subjects)
    recordings = hapt_recordings(data, subjects=subjects)
    if not recordings:
        raise DataError(f"no HAPT recordings of subjects {list(subjects)}")
    sr, k = cfg.sample_rate, len(classes)
    tol = int(round(tolerance_s * sr))
    variants = ["raw"] + (["smoothed"] if runtime.labels.smoothing is not None else [])
    totals = {v: dict(confusion=np.zeros((k, k), np.int64), n_ref=0, n_hyp=0, hits=0) for v in variants}
    events = {v: dict(n_ref=0, n_hyp=0, named=0, located=0) for v in variants}  # transition-aware timelines
    per_recording = []
    t0 = time.time()
    for rec in tqdm(recordings, desc="recordings", disable=not progress, leave=False):
        timelines = {"raw": Timeline(runtime.classes, cfg, bridges=runtime.bridges)}
        if "smoothed" in variants:
            timelines["smoothed"] = Timeline(runtime.classes, cfg, smoother(runtime, True, lag), bridges=runtime.bridges)

        def feed(probs, tls=timelines):
            for tl in tls.values():
                tl.add(probs)

        n = stream_probs(runtime, rec.acc, feed)
        ref = reference_samples(rec, classes, n)
        row = dict(recording=rec.name, user=rec.user, samples=n, labelled=int((ref >= 0).sum()))
        for v, tl in timelines.items():
            segments = tl.finish(n)
            s = score_recording(ref, timeline_samples(segments, classes, n, sr), k, tol)
            if runtime.bridges:  # were the labelled postural transitions found, and named?
                ref_ev = [(HAPT_CLASSES[a - 1], start - 1, end) for a, start, end in rec.segments
                          if HAPT_CLASSES[a - 1] in runtime.bridges]
                hyp_ev = [(g.transition, int(round(g.start_s * sr))) for g in segments if g.transition]
                e = events[v]
                e["n_ref"] += len(ref_ev)
                e["n_hyp"] += len(hyp_ev)
                e["named"] += match_transitions(ref_ev, hyp_ev, tol)
                e["located"] += match_transitions(ref_ev, hyp_ev, tol, same_name=False)
            for key in ("confusion", "n_ref", "n_hyp", "hits"):
                totals[v][key] = totals[v][key] + s[key]
            cm = s["confusion"]
            row[v] = dict(accuracy=float(np.trace(cm) / max(cm.sum(), 1)), wrong=int(cm.sum() - np.trace(cm)),
                          segments=s["n_hyp"],
                          segment_f1=segment_scores(s["n_ref"], s["n_hyp"], s["hits"])["f1"])
        per_recording.append(row)
    seconds = time.time() - t0
    out = dict(model=str(folder.path), graph=runtime.graph,
               transitions=str(runtime.transition.folder.path) if transitions is not None else None,
               subjects=list(subjects), recordings=len(recordings),
               sample_rate=sr, classes=classes, tolerance_s=tolerance_s,
               lag=(smoother(runtime, True, lag).lag if "smoothed" in variants else None),
               labelled_samples=int(totals["raw"]["confusion"].sum()), seconds=round(seconds, 1))
    for v, t in totals.items():
        cm = t["confusion"]
        y_true = np.repeat(np.repeat(np.arange(k), k), cm.ravel())  # confusion -> label pairs
        y_pred = np.repeat(np.tile(np.arange(k), k), cm.ravel())
        m = classification_metrics(y_true, y_pred, classes)
        out[v] = dict(sample_accuracy=m["accuracy"], sample_macro_f1=m["macro_f1"],
                      recall={c: r["recall"] for c, r in m["per_class"].items() if r["support"]},
                      confusion_matrix=m["confusion_matrix"],
                      segments=segment_scores(t["n_ref"], t["n_hyp"], t["hits"]))
        if runtime.bridges:
            e = events[v]
            out[v]["transitions"] = {**segment_scores(e["n_ref"], e["n_hyp"], e["named"]),
                                     "located_recall": e["located"] / e["n_ref"] if e["n_ref"] else 0.0}
    out["per_recording"] = per_recording
    return out


def format_recordings_report(m: dict) -> str:
    via = f" + transitions from {m['transitions']}" if m.get("transitions") else ""
    lines = [f"{m['model']} [{m['graph']}]{via}: {m['recordings']} HAPT recordings of subjects "
             f"{','.join(map(str, m['subjects']))}, {m['labelled_samples']:,} labelled samples at "
             f"{m['sample_rate']:g} Hz; segment tolerance ±{m['tolerance_s']:g} s"
             + (f"; smoothing lag {m['lag']} windows" if m.get("lag") is not None else ""),
             f"{'timeline':<10}{'sample acc':>11}{'macro-F1':>10}{'seg P':>8}{'seg R':>8}{'seg F1':>8}"
             f"{'segments (ref)':>16}"]
    for v in ("raw", "smoothed"):
        if v in m:
            r, s = m[v], m[v]["segments"]
            lines.append(f"{v:<10}{r['sample_accuracy']:>11.4f}{r['sample_macro_f1']:>10.4f}{s['precision']:>8.4f}"
                         f"{s['recall']:>8.4f}{s['f1']:>8.4f}{s['n_predicted']:>9d} ({s['n_reference']})")
    for v in ("raw", "smoothed"):
        if v in m:
            lines.append(f"sample recall per class ({v}): " + ", ".join(
                f"{c} {r:.3f}" for c, r in m[v]["recall"].items()))
    for v in ("raw", "smoothed"):
        if v in m and "transitions" in m[v]:
            t = m[v]["transitions"]
            lines.append(f"postural transitions ({v}): {t['matched']} of {t['n_reference']} labelled ones found and "
                         f"named within ±{m['tolerance_s']:g} s (recall {t['recall']:.3f}, precision {t['precision']:.3f} "
                         f"of {t['n_predicted']} marked, F1 {t['f1']:.3f}); a change of activity placed in "
                         f"{t['located_recall']:.3f} of them")
    lines += worst_recordings(m)
    return "\n".join(lines)


def worst_recordings(m: dict, top: int = 3) -> list[str]:
    """Report lines naming the recordings that hold most of each timeline's wrong samples: an aggregate
    accuracy can hide one recording that fails almost whole."""
    lines = []
    for v in ("raw", "smoothed"):
        rows = [r for r in m.get("per_recording", []) if v in r and r[v].get("wrong")]
        total = sum(r[v]["wrong"] for r in rows)
        if not total:
            continue
        rows.sort(key=lambda r: -r[v]["wrong"])
        lines.append(f"most wrong samples ({v}, {total:,} in all): " + ", ".join(
            f"{r['recording']} {r[v]['wrong']:,} ({r[v]['wrong'] / total:.0%}; acc {r[v]['accuracy']:.3f})"
            for r in rows[:top]))
    return lines
