"""Speaker-verification evaluation of a model folder on a speaker-labelled audio folder (torch-free).

    signals speech encoder evaluate DIR [--model MODEL_DIR] [--split-halves] [--speakers LIST] [--out OUT]

Every utterance is embedded once; every unordered pair of embeddings is scored by cosine similarity
and labelled same/different speaker; the EER and the threshold at the EER are reported. With
``--split-halves`` each (VAD-trimmed) recording is cut into two halves that form a same-speaker pair,
for folders with one recording per speaker such as the shared ``librispeech-mini``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import DataError
from signals.speech.encoder.data import find_utterances, load_preprocessed, read_speaker_list, split_halves
from signals.speech.encoder.infer import SpeakerEncoder
from signals.speech.encoder.metrics import equal_error_rate, pair_scores, plot_scores, snorm_pair_scores


def _embed_folder(data, encoder: SpeakerEncoder, wanted: set[str] | None, split: bool, progress: bool):
    utts = find_utterances(data, wanted)
    wavs = load_preprocessed(utts, encoder.front, progress=progress)
    spk = [u.speaker for u in utts]
    if split:
        wavs, spk = split_halves(wavs, spk)
    return utts, encoder.embed_preprocessed(wavs), spk


def evaluate(data: str | Path, encoder: SpeakerEncoder, split: bool = False, speakers: str | Path | None = None,
             out: str | Path | None = None, progress: bool = True,
             cohort_speakers: str | Path | None = None) -> dict[str, Any]:
    """EER report (dict) on ``data``; writes ``eer.json`` and ``scores.png`` into ``out`` when given.

    With ``cohort_speakers`` (a speaker list, e.g. a training run's ``train_speakers.txt``) the recordings
    of those speakers in ``data`` form an impostor cohort and trials are scored with S-norm.
    """
    wanted = read_speaker_list(speakers) if speakers else None
    utts, embeds, spk = _embed_folder(data, encoder, wanted, split, progress)
    n_cohort = 0
    if cohort_speakers:
        cohort_ids = read_speaker_list(cohort_speakers)
        overlap = cohort_ids & set(spk)
        if overlap:
            raise DataError(f"{cohort_speakers}: {len(overlap)} cohort speaker(s) such as {sorted(overlap)[0]} are "
                            "also evaluated; the cohort must be disjoint from the trial speakers (use --speakers)")
        _, cohort, _ = _embed_folder(data, encoder, cohort_ids, split, progress)
        n_cohort = len(cohort)
        scores, labels = snorm_pair_scores(embeds, spk, cohort)
    else:
        scores, labels = pair_scores(embeds, spk)
    if not labels.any():
        raise DataError(f"{data}: every speaker has a single recording, so there are no same-speaker pairs: "
                        "use --split-halves")
    result = equal_error_rate(scores, labels)
    report = {
        "data": str(data), "speakers_file": str(speakers) if speakers else None, "split_halves": bool(split),
        "n_speakers": len(set(spk)), "n_recordings": len(utts), "n_embeddings": len(spk),
        "n_target": int(labels.sum()), "n_nontarget": int((~labels).sum()),
        "score": "s-norm" if n_cohort else "cosine", "cohort_speakers_file": str(cohort_speakers) if n_cohort else None,
        "n_cohort_embeddings": n_cohort, "eer": result.eer, "threshold": result.threshold,
        "target_mean": float(scores[labels].mean()), "nontarget_mean": float(scores[~labels].mean()),
    }
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


def calibrate(model_dir: str | Path, report: dict[str, Any]) -> Path:
    """Store the EER threshold of ``report`` as the model folder's verification threshold."""
    from signals.runtime import read_config, write_config

    if report.get("score") != "cosine":
        raise DataError("--calibrate stores a cosine threshold for `signals speech verify`: run it without "
                        "--cohort-speakers")
    cfg = read_config(model_dir)
    cfg["verification"] = {
        "threshold": report["threshold"], "eer": report["eer"], "n_target": report["n_target"],
        "n_nontarget": report["n_nontarget"],
        "data": f"{'/'.join(Path(report['data']).resolve().parts[-2:])} ({report['n_speakers']} speakers"
                + (", each recording split into halves" if report["split_halves"] else "") + ")",
        "note": "cosine threshold at the equal error rate, from `signals speech encoder evaluate --calibrate`",
    }
    path = write_config(model_dir, cfg)
    if (cfg.get("source") or {}).get("type") == "resemblyzer":
        from signals.speech.encoder.card import render_card  # the card quotes the calibration

        (Path(model_dir) / "README.md").write_text(render_card(cfg))
    return path


def record(model_dir: str | Path, report: dict[str, Any]) -> Path:
    """Add ``report``'s headline numbers to ``config.json["evaluations"]`` (same protocol: replaced) and the card."""
    from signals.runtime import read_config, write_config

    def short(p):
        return "/".join(Path(p).resolve().parts[-2:]) if p else None

    entry = {"data": short(report["data"]), "speakers_file": short(report["speakers_file"]),
             "split_halves": report["split_halves"], "score": report["score"],
             "cohort_speakers_file": short(report["cohort_speakers_file"]),
             "n_cohort_embeddings": report["n_cohort_embeddings"], "n_speakers": report["n_speakers"],
             "n_target": report["n_target"], "n_nontarget": report["n_nontarget"],
             "eer": report["eer"], "threshold": report["threshold"]}
    key = ("data", "speakers_file", "split_halves", "score", "cohort_speakers_file")
    cfg = read_config(model_dir)
    evals = [e for e in cfg.get("evaluations", []) if any(e.get(k) != entry[k] for k in key)]
    cfg["evaluations"] = [*evals, entry]
    path = write_config(model_dir, cfg)
    if (cfg.get("source") or {}).get("type") == "resemblyzer":
        from signals.speech.encoder.card import render_card

        (Path(model_dir) / "README.md").write_text(render_card(cfg))
    return path
