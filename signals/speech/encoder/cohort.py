"""The impostor cohort for S-norm, shipped in the model folder as ``cohort.npy`` (torch-free).

    signals speech encoder cohort DIR --speakers LIST [--exclude LIST] [--split-halves] [--licence TEXT]
                                      [--model MODEL_DIR]

Embeds the recordings of the speakers in ``LIST`` found in ``DIR`` (optionally each cut into two halves,
as the evaluation trials are) with the model of ``MODEL_DIR`` and writes ``MODEL_DIR/cohort.npy``
(``float32 [K, 256]``, rows sorted by speaker), names it in ``config.json["files"]``, lists the speaker of
every row in ``config.json["runtime"]["cohort_speakers"]`` and describes it (data, exact command, the
file's sha256) in ``config.json["source"]["cohort"]``. ``--exclude`` (e.g. the held-out test speakers) makes the
command refuse a cohort that shares a speaker with it, so test voices never enter the normaliser.
A new cohort invalidates an S-norm threshold calibrated on the old one, so it is dropped.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import DataError
from signals.modelfolder import ModelFolder, find_model, read_metrics, sha256, update_metrics, write_config
from signals.speech.encoder.card import write_card
from signals.speech.encoder.data import find_utterances, load_preprocessed, read_speaker_list, split_halves
from signals.speech.encoder.infer import COHORT_FILE, KIND, EncoderRuntime


def _short(path: str | Path) -> str:
    """The last two path parts (``librispeech-mini/train-clean-100``, ``splits/test_speakers.txt``)."""
    return "/".join(Path(path).resolve().parts[-2:])


def build_cohort(data: str | Path, encoder: EncoderRuntime, speakers: str | Path, exclude: str | Path | None = None,
                 split: bool = False, progress: bool = True) -> tuple[np.ndarray, list[str], int]:
    """``(float32 [K, D] embeddings, speaker ID per row, number of recordings)`` of ``speakers`` in ``data``."""
    wanted = read_speaker_list(speakers)
    if exclude is not None:
        clash = wanted & read_speaker_list(exclude)
        if clash:
            raise DataError(f"{speakers}: {len(clash)} cohort speaker(s) such as {sorted(clash)[0]} are listed in "
                            f"{exclude}; the cohort must not contain the excluded (test) speakers")
    utts = find_utterances(data, wanted)
    wavs = load_preprocessed(utts, encoder.front, progress=progress)
    spk = [u.speaker for u in utts]
    if split:
        wavs, spk = split_halves(wavs, spk)
    return encoder.embed_preprocessed(wavs).astype(np.float32), spk, len(utts)


def write_cohort(model_dir: str | Path, cohort: np.ndarray, row_speakers: list[str], info: dict[str, Any]) -> Path:
    """``cohort.npy`` + its entries in ``config.json``; drops an S-norm threshold of an earlier cohort."""
    folder = ModelFolder.load(model_dir, KIND)
    path = folder.path / COHORT_FILE
    np.save(path, np.ascontiguousarray(cohort, dtype=np.float32))
    config = folder.config
    described = {"file": COHORT_FILE, "shape": list(cohort.shape), "dtype": "float32", **info, "sha256": sha256(path)}
    runtime = {k: v for k, v in config.runtime.items() if k != "snorm_threshold"}  # calibrated on another cohort
    write_config(folder.path, replace(config, files={**config.files, "cohort": COHORT_FILE},
                                      runtime={**runtime, "cohort_speakers": list(row_speakers)},
                                      source={**config.source, "cohort": described}))
    calibration = read_metrics(folder.path).get("calibration", {})
    if "snorm" in calibration:
        update_metrics(folder.path, calibration={k: v for k, v in calibration.items() if k != "snorm"})
    write_card(folder.path)
    return path


def make_cohort(data: str | Path, speakers: str | Path, model_dir: str | Path | None = None,
                exclude: str | Path | None = None, split: bool = False, licence: str | None = None,
                threads: int | None = None, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Build and write the cohort of ``model_dir`` (default ``models/speaker_encoder``); returns (path, info)."""
    folder = find_model(KIND, model_dir)
    encoder = EncoderRuntime.load(folder, threads=threads)
    cohort, rows, n_rec = build_cohort(data, encoder, speakers, exclude, split, progress)
    cmd = ["signals", "speech", "encoder", "cohort", str(data), "--speakers", str(speakers)]
    cmd += ["--exclude", str(exclude)] if exclude else []
    cmd += ["--split-halves"] if split else []
    cmd += ["--licence", licence] if licence else []
    cmd += ["--model", str(model_dir)] if model_dir is not None else []
    info = {"data": _short(data), "speakers_file": _short(speakers), "exclude_file": _short(exclude) if exclude else None,
            "data_licence": licence, "split_halves": bool(split), "n_speakers": len(set(rows)), "n_recordings": n_rec,
            "n_embeddings": len(rows), "command": shlex.join(cmd),
            "note": "impostor cohort for S-norm in `signals speech verify`; embeddings of the listed speakers' "
                    "recordings" + (", each cut into two halves" if split else "")}
    return write_cohort(folder, cohort, rows, info), info
