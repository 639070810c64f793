"""Speaker-labelled audio folders and the GE2E batch sampler.

Folder layouts understood by :func:`find_utterances` (recursively, WAV/FLAC/OGG/MP3):

* one sub-folder per speaker: ``DIR/<speaker>/**/<file>`` (LibriSpeech ``<spk>/<chapter>/``, VoxCeleb
  ``<id>/<video>/``, or any hand-made folder);
* LibriSpeech file names anywhere: ``<speaker>-<chapter>-<utt>.flac`` (the flattened shared subset).

GE2E batches are S speakers x U "utterances" of 160 mel frames (1.6 s). Where a speaker has fewer
than U recordings (the shared ``librispeech-mini`` has ONE per speaker) the U utterances are random
1.6 s crops of that speaker's recordings: different stretches of speech of the same voice, which is
what the loss needs, at the price of less variety in channel and session than real corpora give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signals.errors import DataError
from signals.speech.audio import AUDIO_SUFFIXES
from signals.speech.encoder.frontend import FrontEnd, preprocess

LIBRISPEECH_NAME = re.compile(r"^(\d+)-(\d+)-(\d+)$")


@dataclass(frozen=True)
class Utterance:
    path: Path
    speaker: str


def speaker_of(path: Path, root: Path) -> str | None:
    """LibriSpeech name -> its speaker; else the first sub-folder below ``root``; else None."""
    m = LIBRISPEECH_NAME.match(path.stem)
    if m:
        return m.group(1)
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else None


def find_utterances(root: str | Path, speakers: set[str] | None = None) -> list[Utterance]:
    """Every audio file under ``root`` with its speaker, sorted by (speaker, path); optionally only ``speakers``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    found, unlabelled = [], []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        spk = speaker_of(path, root)
        if spk is None:
            unlabelled.append(path)
        elif speakers is None or spk in speakers:
            found.append(Utterance(path, spk))
    if unlabelled:
        raise DataError(
            f"{root}: cannot tell the speaker of {len(unlabelled)} file(s) such as {unlabelled[0].name}: put each "
            "speaker's files in a sub-folder named after the speaker, or use LibriSpeech names <spk>-<chapter>-<utt>"
        )
    if not found:
        what = f" of the {len(speakers)} requested speakers" if speakers is not None else ""
        raise DataError(f"no audio files{what} found under {root} ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return sorted(found, key=lambda u: (u.speaker, str(u.path)))


def read_speaker_list(path: str | Path) -> set[str]:
    """Speaker IDs, one per line (``#`` comments allowed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"speaker list not found: {path}")
    ids = {line.split("#")[0].strip() for line in path.read_text().splitlines()}
    ids.discard("")
    if not ids:
        raise DataError(f"{path} lists no speakers")
    return ids


def split_speakers(speakers: list[str], n_holdout: int, n_val: int, seed: int = 0) -> dict[str, list[str]]:
    """Disjoint train / val / test speaker lists; val is carved from what is left after the test hold-out."""
    spk = sorted(set(speakers))
    if n_holdout + n_val >= len(spk) - 1:
        raise DataError(f"{len(spk)} speakers cannot give {n_holdout} test + {n_val} validation speakers and "
                        "still leave at least 2 for training")
    order = np.random.default_rng(seed).permutation(len(spk))
    picked = [spk[i] for i in order]
    return {"test": sorted(picked[:n_holdout]), "val": sorted(picked[n_holdout : n_holdout + n_val]),
            "train": sorted(picked[n_holdout + n_val :])}


def load_preprocessed(utts: list[Utterance], front: FrontEnd = FrontEnd(), progress: bool = True) -> list[np.ndarray]:
    """Each file loaded, levelled and VAD-trimmed at 16 kHz: ``float32 [T_i]`` per utterance."""
    from tqdm import tqdm

    from signals.speech.audio import load_audio

    out = []
    for u in tqdm(utts, desc="preprocess", disable=not progress, leave=False):
        wav, sr = load_audio(u.path)
        out.append(preprocess(wav, sr, front, name=str(u.path)))
    return out


def split_halves(wavs: list[np.ndarray], speakers: list[str]) -> tuple[list[np.ndarray], list[str]]:
    """Each utterance cut into its first and second half: two same-speaker "utterances" per recording."""
    out_w, out_s = [], []
    for w, s in zip(wavs, speakers):
        h = len(w) // 2
        out_w += [w[:h], w[h:]]
        out_s += [s, s]
    return out_w, out_s


class GE2ESampler:
    """Random speakers x utterances batches of fixed-length mel crops, ``float32 [S, U, frames, n_mels]``."""

    def __init__(self, mels_by_speaker: dict[str, list[np.ndarray]], speakers_per_batch: int,
                 utterances_per_speaker: int, frames: int = 160, seed: int = 0) -> None:
        # Recordings shorter than one partial cannot give a crop (RTVC drops them the same way).
        self.mels = {s: [m for m in ms if len(m) >= frames] for s, ms in mels_by_speaker.items()}
        self.mels = {s: ms for s, ms in self.mels.items() if ms}
        self.speakers = sorted(self.mels)
        if len(self.speakers) < speakers_per_batch:
            raise DataError(f"only {len(self.speakers)} speakers have >= {frames} frames of speech, "
                            f"but a batch needs {speakers_per_batch}: lower --speakers-per-batch")
        self.S, self.U, self.frames = speakers_per_batch, utterances_per_speaker, frames
        self.rng = np.random.default_rng(seed)

    def batch(self) -> np.ndarray:
        out = np.empty((self.S, self.U, self.frames, next(iter(self.mels.values()))[0].shape[1]), np.float32)
        for i, s in enumerate(self.rng.choice(self.speakers, self.S, replace=False)):
            recs = self.mels[s]
            # Distinct recordings when there are enough, else crops of recordings drawn with replacement.
            picks = self.rng.choice(len(recs), self.U, replace=len(recs) < self.U)
            for j, r in enumerate(picks):
                m = recs[r]
                start = self.rng.integers(0, len(m) - self.frames + 1)
                out[i, j] = m[start : start + self.frames]
        return out

