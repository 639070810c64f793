"""Speaker-verification evaluation of a model folder on a speaker-labelled audio folder (torch-free).

    signals speech encoder evaluate DIR [--model MODEL_DIR] [--split-halves] [--speakers LIST]
                                        [--exclude-speakers LIST] [--cohort-speakers LIST | --model-cohort]
                                        [--calibrate MODEL_DIR] [--record MODEL_DIR] [--out OUT]

``--calibrate`` sets the model's verification threshold (``config.json["runtime"]``, measured details in
``metrics.json["calibration"]``); ``--record`` adds the result to ``metrics.json["evaluations"]``.

Every utterance is embedded once; every unordered pair of embeddings is scored by cosine similarity
and labelled same/different speaker; the EER and the threshold at the EER are reported, and the
false accept / false reject rates of the model's calibrated threshold on these trials. With
``--split-halves`` each (VAD-trimmed) recording is cut into two halves that form a same-speaker pair,
for folders with one recording per speaker such as the shared ``librispeech-mini``.

S-norm: ``--cohort-speakers`` builds the cohort from other speakers' recordings in DIR (disjoint from
the trial speakers); ``--model-cohort`` uses the model folder's shipped ``cohort.npy``, the cohort that
``signals speech verify`` uses. Trial speakers who are in that cohort are scored leave-own-speaker-out
(their own rows are left out of their statistics; counted in ``n_speakers_in_cohort``), which is how
the S-norm threshold is calibrated on non-test speakers; the test evaluation has none.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import DataError
from signals.modelfolder import ModelFolder, read_metrics, update_metrics, write_config
from signals.speech.encoder.card import write_card
from signals.speech.encoder.data import find_utterances, load_preprocessed, read_speaker_list, split_halves
from signals.speech.encoder.infer import KIND, EncoderRuntime
from signals.speech.encoder.metrics import (
    decisions_at,
    equal_error_rate,
    pair_scores,
    plot_scores,
    snorm_pair_scores,
)


def _embed_folder(data, encoder: EncoderRuntime, wanted: set[str] | None, split: bool, progress: bool,
                  exclude: set[str] | None = None):
    utts = find_utterances(data, wanted)
    if exclude:
        utts = [u for u in utts if u.speaker not in exclude]
        if not utts:
            raise DataError(f"{data}: no recordings left after excluding {len(exclude)} speakers")
    wavs = load_preprocessed(utts, encoder.front, progress=progress)
    spk = [u.speaker for u in utts]
    if split:
        wavs, spk = split_halves(wavs, spk)
    return utts, encoder.embed_preprocessed(wavs), spk


def evaluate(data: str | Path, encoder: EncoderRuntime, split: bool = False, speakers: str | Path | None = None,
             out: str | Path | None = None, progress: bool = True,
             cohort_speakers: str | Path | None = None, exclude_speakers: str | Path | None = None,
             model_cohort: bool = False) -> dict[str, Any]:
    """EER report (dict) on ``data``; writes ``eer.json`` and ``scores.png`` into ``out`` when given.

    With ``cohort_speakers`` (a speaker list, e.g. a training run's ``train_speakers.txt``) the recordings
    of those speakers in ``data`` form an impostor cohort and trials are scored with S-norm; with
    ``model_cohort`` the encoder's own cohort (``cohort.npy``) is used instead.
    """
    if cohort_speakers and model_cohort:
        raise DataError("use either --cohort-speakers or --model-cohort, not both")
    if model_cohort and encoder.cohort is None:
        raise DataError("--model-cohort: the model folder has no cohort.npy (make one with "
                        "`signals speech encoder cohort DIR --speakers LIST`)")
    wanted = read_speaker_list(speakers) if speakers else None
    excluded = read_speaker_list(exclude_speakers) if exclude_speakers else None
    utts, embeds, spk = _embed_folder(data, encoder, wanted, split, progress, excluded)
    n_cohort, n_in_cohort, cohort_name = 0, 0, None
    if cohort_speakers:
        cohort_ids = read_speaker_list(cohort_speakers)
        overlap = cohort_ids & set(spk)
        if overlap:
            raise DataError(f"{cohort_speakers}: {len(overlap)} cohort speaker(s) such as {sorted(overlap)[0]} are "
                            "also evaluated; the cohort must be disjoint from the trial speakers (use --speakers)")
        _, cohort, _ = _embed_folder(data, encoder, cohort_ids, split, progress)
        n_cohort, cohort_name = len(cohort), str(cohort_speakers)
        scores, labels = snorm_pair_scores(embeds, spk, cohort)
    elif model_cohort:
        n_cohort, cohort_name = len(encoder.cohort), "model cohort.npy"
        rows = encoder.cohort_speakers
        if rows is None:
            raise DataError("--model-cohort: config.json['runtime'] lists no cohort_speakers, so trial speakers in "
                            "the cohort cannot be left out")
        n_in_cohort = len(set(rows) & set(spk))
        scores, labels = snorm_pair_scores(embeds, spk, encoder.cohort, rows)
    else:
        scores, labels = pair_scores(embeds, spk)
    if not labels.any():
        raise DataError(f"{data}: every speaker has a single recording, so there are no same-speaker pairs: "
                        "use --split-halves")
    result = equal_error_rate(scores, labels)
    score_name = "s-norm" if n_cohort else "cosine"
    report = {
        "data": str(data), "speakers_file": str(speakers) if speakers else None,
        "exclude_speakers_file": str(exclude_speakers) if exclude_speakers else None, "split_halves": bool(split),
        "n_speakers": len(set(spk)), "n_recordings": len(utts), "n_embeddings": len(spk),
        "n_target": int(labels.sum()), "n_nontarget": int((~labels).sum()),
        "score": score_name, "cohort_speakers_file": cohort_name,
        "n_cohort_embeddings": n_cohort, "n_speakers_in_cohort": n_in_cohort, "eer": result.eer,
        "threshold": result.threshold,
        "target_mean": float(scores[labels].mean()), "nontarget_mean": float(scores[~labels].mean()),
    }
    # How the model's stored decision threshold (the one `verify` uses for this score) does on these trials.
    calibrated = encoder.snorm_threshold if n_cohort else encoder.threshold
    if calibrated is not None:
        d = decisions_at(scores, labels, calibrated)
        report["at_model_threshold"] = {"threshold": d.threshold, "far": d.far, "frr": d.frr,
                                        "false_accepts": d.false_accepts, "false_rejects": d.false_rejects,
                                        "accuracy": d.accuracy}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eer.json").write_text(json.dumps(report, indent=2) + "\n")
        np.savez_compressed(out / "scores.npz", scores=scores.astype(np.float32), labels=labels)
        plot_scores(scores, labels, result, out / "scores.png",
                    title=f"{Path(data).name}: EER {100 * result.eer:.2f} % ({report['n_speakers']} speakers)",
                    xlabel="S-norm score" if n_cohort else "cosine similarity")
        report["outputs"] = [str(out / n) for n in ("eer.json", "scores.npz", "scores.png")]
    return report


def _describe(report: dict[str, Any]) -> str:
    speakers = f"{report['n_speakers']} speakers"
    if report.get("exclude_speakers_file"):
        speakers += f" not in {'/'.join(Path(report['exclude_speakers_file']).resolve().parts[-2:])}"
    return (f"{'/'.join(Path(report['data']).resolve().parts[-2:])} ({speakers}"
            + (", each recording split into halves" if report["split_halves"] else "") + ")")


def calibrate(model_dir: str | Path, report: dict[str, Any]) -> Path:
    """Make the EER threshold of ``report`` the model folder's cosine or S-norm verification threshold.

    The threshold is a setting of the runtime (``config.json["runtime"]``); how it was measured goes to
    ``metrics.json["calibration"]``. An S-norm threshold is only meaningful for the cohort it was computed
    with, so it must come from a ``--model-cohort`` evaluation and is stored with that cohort's sha256.
    """
    folder = ModelFolder.load(model_dir, KIND)
    config = folder.config
    entry = {"threshold": report["threshold"], "eer": report["eer"], "n_target": report["n_target"],
             "n_nontarget": report["n_nontarget"], "data": _describe(report)}
    if report.get("score") == "s-norm":
        if report.get("cohort_speakers_file") != "model cohort.npy":
            raise DataError("--calibrate with S-norm stores the threshold for the model's own cohort: use "
                            "--model-cohort instead of --cohort-speakers")
        entry.update({"cohort_sha256": (config.source.get("cohort") or {}).get("sha256"),
                      "n_speakers_in_cohort": report["n_speakers_in_cohort"],
                      "note": "S-norm threshold at the equal error rate, from `signals speech encoder evaluate "
                              "--model-cohort --calibrate`; trial speakers who are in the cohort were scored "
                              "leave-own-speaker-out"})
        key, setting = "snorm", "snorm_threshold"
    else:
        entry["note"] = "cosine threshold at the equal error rate, from `signals speech encoder evaluate --calibrate`"
        key, setting = "cosine", "threshold"
    path = write_config(folder.path, replace(config, runtime={**config.runtime, setting: report["threshold"]}))
    update_metrics(folder.path, calibration={**folder.metrics().get("calibration", {}), key: entry})
    write_card(folder.path)  # the card quotes the calibration
    return path


def record(model_dir: str | Path, report: dict[str, Any]) -> Path:
    """Add ``report``'s headline numbers to ``metrics.json["evaluations"]`` (same protocol: replaced) and the card."""
    def short(p):
        return "/".join(Path(p).resolve().parts[-2:]) if p else None

    cohort = report["cohort_speakers_file"]
    entry = {"data": short(report["data"]), "speakers_file": short(report["speakers_file"]),
             "split_halves": report["split_halves"], "score": report["score"],
             "cohort_speakers_file": cohort if cohort == "model cohort.npy" else short(cohort),
             "n_cohort_embeddings": report["n_cohort_embeddings"], "n_speakers": report["n_speakers"],
             "n_target": report["n_target"], "n_nontarget": report["n_nontarget"],
             "eer": report["eer"], "threshold": report["threshold"]}
    if report.get("exclude_speakers_file"):
        entry["exclude_speakers_file"] = short(report["exclude_speakers_file"])
    if report.get("n_speakers_in_cohort"):
        entry["n_speakers_in_cohort"] = report["n_speakers_in_cohort"]
    if report.get("at_model_threshold"):
        entry["at_model_threshold"] = report["at_model_threshold"]
    key = ("data", "speakers_file", "exclude_speakers_file", "split_halves", "score", "cohort_speakers_file")
    evals = [e for e in read_metrics(model_dir).get("evaluations", []) if any(e.get(k) != entry.get(k) for k in key)]
    path = update_metrics(model_dir, evaluations=[*evals, entry])
    write_card(model_dir)
    return path
