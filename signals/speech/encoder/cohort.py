"""The impostor cohort for S-norm, shipped in the model folder as ``cohort.npy`` (torch-free).

    signals speech encoder cohort DIR --speakers LIST [--exclude LIST] [--split-halves] [--licence TEXT]
                                      [--model MODEL_DIR]

Embeds the recordings of the speakers in ``LIST`` found in ``DIR`` (optionally each cut into two halves,
as the evaluation trials are) with the model of ``MODEL_DIR`` and writes ``MODEL_DIR/cohort.npy``
(``float32 [K, 256]``, rows sorted by speaker) plus ``config.json["cohort"]``: source, speakers of every
row, the exact command and the file's sha256. ``--exclude`` (e.g. the held-out test speakers) makes the
command refuse a cohort that shares a speaker with it, so test voices never enter the normaliser.
A new cohort invalidates an S-norm threshold calibrated on the old one, so it is dropped.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import DataError
from signals.runtime import read_config, write_config
from signals.speech.encoder.data import find_utterances, load_preprocessed, read_speaker_list, split_halves
from signals.speech.encoder.infer import SpeakerEncoder

COHORT_FILE = "cohort.npy"


def _short(path: str | Path) -> str:
    """The last two path parts (``librispeech-mini/train-clean-100``, ``splits/test_speakers.txt``)."""
    return "/".join(Path(path).resolve().parts[-2:])


def build_cohort(data: str | Path, encoder: SpeakerEncoder, speakers: str | Path, exclude: str | Path | None = None,
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
    """``cohort.npy`` + ``config.json["cohort"]`` in ``model_dir``; re-renders the converted model's card."""
    model_dir = Path(model_dir)
    cfg = read_config(model_dir)
    path = model_dir / COHORT_FILE
    np.save(path, np.ascontiguousarray(cohort, dtype=np.float32))
    cfg["cohort"] = {"file": COHORT_FILE, "shape": list(cohort.shape), "dtype": "float32", **info,
                     "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "row_speakers": list(row_speakers)}
    ver = cfg.get("verification") or {}
    if ver.pop("snorm", None) is not None:  # calibrated against another cohort: no longer valid
        cfg["verification"] = ver
    write_config(model_dir, cfg)
    if (cfg.get("source") or {}).get("type") == "resemblyzer":
        from signals.speech.encoder.card import render_card

        (model_dir / "README.md").write_text(render_card(cfg))
    return path


def make_cohort(data: str | Path, speakers: str | Path, model_dir: str | Path | None = None,
                exclude: str | Path | None = None, split: bool = False, licence: str | None = None,
                threads: int | None = None, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Build and write the cohort of ``model_dir`` (default ``models/speaker_encoder``); returns (path, info)."""
    from signals.paths import model_dir as default_dir

    folder = Path(model_dir) if model_dir is not None else default_dir("speaker_encoder")
    encoder = SpeakerEncoder.load(folder, threads=threads)
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
