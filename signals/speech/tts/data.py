"""Synthesizer training data: the kokoro-teacher corpus -> a compact, GPU-portable *pack*.

    signals speech tts prepare ../shared/data/kokoro-teacher --out data/tts_pack

The corpus (``metadata.tsv``, ``speakers.tsv``, ``wav/<speaker>/<utt>.ogg``; see its README) is turned,
once, into a folder of numpy arrays that holds everything training needs and nothing it does not:

* the vocoder mel of every utterance (:data:`signals.speech.features.VOCODER_MEL`: 22.05 kHz, hop 256,
  80 bands, log magnitude), quantised to ``uint8`` over ``[MEL_LO, MEL_HI]`` (step 0.055 in log units,
  ~0.5 dB, far below what the synthesizer's own error will be) so 2.9 h of speech fits a device upload;
* the token IDs of its phoneme string (``[BOUNDARY, *symbols, BOUNDARY]``, :mod:`.text`);
* per-token durations converted from the corpus's 25 ms frames to mel frames - the alignment prior
  of the guided-attention loss;
* the utterance's GE2E embedding from our speaker encoder (L2-normalised, 256-d) - the SV2TTS
  conditioning;
* the split of every utterance (train / val / test), decided here once and recorded.

Split: a few voices (stock and mixed) are held out entirely - ``val`` voices for checkpoint
selection, ``test`` voices for the final numbers - and a few sentences of every training voice are
held out into ``val`` as well ("seen voice, unseen sentence"). Every sentence in the corpus is
unique, so anything outside ``train`` is also an unseen sentence.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signals.configio import to_dict
from signals.errors import DataError
from signals.speech.tts.config import SplitConfig

# Quantisation range of the stored log-mels: the floor log(1e-5) = -11.51 and a ceiling above any
# speech frame seen in the corpus (max is ~2.2).
MEL_LO, MEL_HI = -11.5129, 3.0
PACK_VERSION = 1

@dataclass(frozen=True)
class Utterance:
    utterance: str
    speaker: str
    num_samples: int
    text: str
    phonemes: str
    durations: tuple[int, ...]  # corpus frames (600 samples at 24 kHz) per token, pads included


def read_corpus(root: str | Path) -> tuple[list[Utterance], dict[str, dict[str, str]]]:
    """``(utterances, speakers)`` of a kokoro-teacher-format folder, checked for consistency."""
    root = Path(root)
    meta, spk = root / "metadata.tsv", root / "speakers.tsv"
    for f in (meta, spk):
        if not f.is_file():
            raise DataError(f"{root} is not a kokoro-teacher corpus: {f.name} is missing")
    with spk.open(newline="") as fh:
        speakers = {r["speaker"]: r for r in csv.DictReader(fh, delimiter="\t")}
    utts = []
    with meta.open(newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        need = {"utterance", "speaker", "num_samples", "text", "phonemes", "durations"}
        if not need <= set(reader.fieldnames or ()):
            raise DataError(f"{meta}: expected columns {sorted(need)}, got {reader.fieldnames}")
        for line, r in enumerate(reader, start=2):
            try:
                durs = tuple(int(x) for x in r["durations"].split(","))
                n = int(r["num_samples"])
            except ValueError as exc:
                raise DataError(f"{meta} line {line}: {exc}") from exc
            if len(durs) != len(r["phonemes"]) + 2:
                raise DataError(f"{meta} line {line}: {len(durs)} durations for {len(r['phonemes'])} phonemes + 2 pads")
            if r["speaker"] not in speakers:
                raise DataError(f"{meta} line {line}: speaker {r['speaker']!r} is not in speakers.tsv")
            utts.append(Utterance(r["utterance"], r["speaker"], n, r["text"], r["phonemes"], durs))
    if not utts:
        raise DataError(f"{meta} lists no utterances")
    return utts, speakers


def split_corpus(utts: Sequence[Utterance], cfg: SplitConfig = SplitConfig()) -> list[str]:
    """``"train" | "val" | "test"`` for every utterance (deterministic in ``cfg.seed``)."""
    voices = {u.speaker for u in utts}
    for v in (*cfg.test_voices, *cfg.val_voices):
        if v not in voices:
            raise DataError(f"held-out voice {v!r} is not in the corpus")
    rng = np.random.default_rng(cfg.seed)
    split = ["train"] * len(utts)
    by_voice: dict[str, list[int]] = {}
    for i, u in enumerate(utts):
        by_voice.setdefault(u.speaker, []).append(i)
    for voice, idx in sorted(by_voice.items()):
        if voice in cfg.test_voices:
            for i in idx:
                split[i] = "test"
        elif voice in cfg.val_voices:
            for i in idx:
                split[i] = "val"
        else:
            for i in rng.choice(idx, size=min(cfg.val_sentences_per_voice, len(idx)), replace=False):
                split[int(i)] = "val"
    return split


def token_frames(durations: Sequence[int], n_frames: int, corpus_hop_s: float = 0.025,
                 hop_s: float = 256 / 22050) -> np.ndarray:
    """Corpus per-token durations -> mel frames per token, ``int [n_tokens]`` summing to ``n_frames``.

    Token boundaries are exact times (``cumsum(durations) * 25 ms``); mel frame ``j`` (centred at
    ``j * hop_s``) belongs to the token whose interval contains its centre.
    """
    ends = np.cumsum(np.asarray(durations, dtype=np.float64)) * corpus_hop_s
    centres = np.arange(n_frames) * hop_s
    owner = np.minimum(np.searchsorted(ends, centres, side="right"), len(ends) - 1)
    return np.bincount(owner, minlength=len(ends)).astype(np.int16)


def quantize_mel(mel: np.ndarray) -> np.ndarray:
    q = np.round((np.clip(mel, MEL_LO, MEL_HI) - MEL_LO) / (MEL_HI - MEL_LO) * 255.0)
    return q.astype(np.uint8)


def dequantize_mel(q: np.ndarray) -> np.ndarray:
    return (q.astype(np.float32) * ((MEL_HI - MEL_LO) / 255.0) + MEL_LO).astype(np.float32)


def prepare(root: str | Path, out: str | Path, encoder_dir: str | Path | None = None,
            split: SplitConfig = SplitConfig(), limit: int | None = None, progress: bool = True) -> Path:
    """Build the training pack of corpus ``root`` in folder ``out`` (written atomically at the end)."""
    from tqdm import tqdm

    from signals.speech.audio import load_audio, resample
    from signals.speech.encoder.infer import load as load_encoder
    from signals.speech.features import VOCODER_MEL, mel_numpy
    from signals.speech.tts.text import DEFAULT_SYMBOLS, phonemes_to_ids

    root, out = Path(root), Path(out)
    utts, speakers = read_corpus(root)
    labels = split_corpus(utts, split)
    if limit is not None:
        utts, labels = utts[:limit], labels[:limit]
    encoder = load_encoder(encoder_dir)
    mels, tokens, durs, embeds = [], [], [], []
    for u in tqdm(utts, desc="tts prepare", unit="utt", disable=not progress):
        path = root / "wav" / u.speaker / f"{u.utterance}.ogg"
        wav, sr = load_audio(path)
        if len(wav) != u.num_samples:
            raise DataError(f"{path}: {len(wav)} samples, metadata.tsv says {u.num_samples}")
        embeds.append(encoder.embed_utterance(wav, sr, name=str(path)))
        wav22 = resample(wav, sr, VOCODER_MEL.sample_rate)
        mel = mel_numpy(wav22, VOCODER_MEL).T  # [frames, 80]
        ids = phonemes_to_ids(u.phonemes, DEFAULT_SYMBOLS)
        if len(ids) != len(u.durations):
            raise DataError(f"{u.utterance}: {len(ids)} tokens but {len(u.durations)} durations "
                            "(a phoneme symbol is missing from the symbol table)")
        mels.append(quantize_mel(mel))
        tokens.append(np.asarray(ids, np.int16))
        durs.append(token_frames(u.durations, len(mel), hop_s=VOCODER_MEL.hop_length / VOCODER_MEL.sample_rate))
    speaker_names = sorted({u.speaker for u in utts})
    spk_index = {s: i for i, s in enumerate(speaker_names)}
    return write_pack(out, mels, tokens, durs, np.stack(embeds), [spk_index[u.speaker] for u in utts], labels,
                      info={"corpus": str(root), "split_config": to_dict(split), "speakers": speaker_names,
                            "speaker_info": {s: speakers[s] for s in speaker_names},
                            "utterances": [u.utterance for u in utts], "texts": [u.text for u in utts],
                            "phonemes": [u.phonemes for u in utts]})


def write_pack(out: str | Path, mels: Sequence[np.ndarray], tokens: Sequence[np.ndarray],
               durations: Sequence[np.ndarray], embeddings: np.ndarray, speakers: Sequence[int],
               split: Sequence[str], info: dict | None = None) -> Path:
    """Write a pack (atomically: a temporary folder renamed at the end).

    Per utterance: ``mels`` uint8 ``[frames, 80]`` (:func:`quantize_mel`), ``tokens`` token IDs,
    ``durations`` mel frames per token (summing to ``frames``); ``embeddings [N, 256]``, ``speakers``
    (int index per utterance), ``split`` ("train" | "val" | "test"). ``info`` goes into the manifest.
    """
    import shutil

    from signals.speech.features import VOCODER_MEL
    from signals.speech.tts.text import DEFAULT_SYMBOLS

    out = Path(out)
    n = len(mels)
    if not n == len(tokens) == len(durations) == len(embeddings) == len(speakers) == len(split):
        raise ValueError("mels, tokens, durations, embeddings, speakers and split must have one entry per utterance")
    for i, (m, t, d) in enumerate(zip(mels, tokens, durations)):
        if len(t) != len(d) or int(np.sum(d)) != len(m):
            raise DataError(f"utterance {i}: {len(t)} tokens / {len(d)} durations summing to {int(np.sum(d))} "
                            f"for {len(m)} frames")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "mels.npy", np.concatenate(mels).astype(np.uint8))
    np.save(tmp / "mel_offsets.npy", np.cumsum([0, *map(len, mels)]).astype(np.int64))
    np.save(tmp / "tokens.npy", np.concatenate(tokens).astype(np.int16))
    np.save(tmp / "token_offsets.npy", np.cumsum([0, *map(len, tokens)]).astype(np.int64))
    np.save(tmp / "durations.npy", np.concatenate(durations).astype(np.int16))
    np.save(tmp / "embeddings.npy", np.asarray(embeddings).astype(np.float16))
    np.save(tmp / "speakers.npy", np.asarray(speakers, np.int16))
    manifest = {"version": PACK_VERSION, "mel": to_dict(VOCODER_MEL),
                "mel_quantization": {"lo": MEL_LO, "hi": MEL_HI, "levels": 256},
                "symbols": list(DEFAULT_SYMBOLS), **(info or {}), "split": list(split)}
    (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def compress_pack(folder: str | Path, out: str | Path) -> Path:
    """A copy of a pack with its mels LZMA-compressed (``mels.u8.xz``, ~60 % of the size) for moving it
    to a training machine with an upload limit; :meth:`Pack.load` reads either form."""
    import lzma
    import shutil

    folder, out = Path(folder), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for f in folder.iterdir():
        if f.name != "mels.npy":
            shutil.copy2(f, out / f.name)
    mels = np.load(folder / "mels.npy")
    tmp = out / "mels.u8.xz.tmp"
    tmp.write_bytes(lzma.compress(np.ascontiguousarray(mels).tobytes(), preset=6))
    tmp.replace(out / "mels.u8.xz")
    return out


def unpack_pack(folder: str | Path) -> Path:
    """Undo :func:`compress_pack` in place (``mels.u8.xz`` -> ``mels.npy``), once on the training machine, so
    that every later :meth:`Pack.load` there reads the array in seconds instead of decompressing again."""
    folder = Path(folder)
    if (folder / "mels.u8.xz").is_file():
        tmp = folder / "mels.npy.tmp.npy"
        np.save(tmp, Pack.load(folder).mels)
        tmp.replace(folder / "mels.npy")
        (folder / "mels.u8.xz").unlink()
    return folder


@dataclass
class Pack:
    """A prepared pack in memory (numpy; see :func:`prepare`)."""

    folder: Path
    manifest: dict
    mels: np.ndarray  # uint8 [total_frames, 80]
    mel_offsets: np.ndarray  # int64 [N + 1]
    tokens: np.ndarray  # int16 [total_tokens]
    token_offsets: np.ndarray  # int64 [N + 1]
    durations: np.ndarray  # int16 [total_tokens], mel frames per token
    embeddings: np.ndarray  # float16 [N, 256]
    speakers: np.ndarray  # int16 [N]

    @classmethod
    def load(cls, folder: str | Path) -> Pack:
        folder = Path(folder)
        if not (folder / "manifest.json").is_file():
            raise DataError(f"{folder} is not a TTS training pack (no manifest.json): run `signals speech tts prepare`")
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("version") != PACK_VERSION:
            raise DataError(f"{folder}: pack version {manifest.get('version')}, this code reads {PACK_VERSION}")
        arrays = {k: np.load(folder / f"{k}.npy", allow_pickle=False) for k in
                  ("mel_offsets", "tokens", "token_offsets", "durations", "embeddings", "speakers")}
        if (folder / "mels.npy").is_file():
            arrays["mels"] = np.load(folder / "mels.npy", allow_pickle=False)
        elif (folder / "mels.u8.xz").is_file():  # the transport form, see compress_pack()
            import lzma

            raw = lzma.decompress((folder / "mels.u8.xz").read_bytes())
            arrays["mels"] = np.frombuffer(raw, np.uint8).reshape(int(arrays["mel_offsets"][-1]), -1)
        else:
            raise DataError(f"{folder}: neither mels.npy nor mels.u8.xz is present")
        return cls(folder=folder, manifest=manifest, **arrays)

    def __len__(self) -> int:
        return len(self.mel_offsets) - 1

    def indices(self, split: str) -> np.ndarray:
        return np.asarray([i for i, s in enumerate(self.manifest["split"]) if s == split], np.int64)

    def n_frames(self, i: int) -> int:
        return int(self.mel_offsets[i + 1] - self.mel_offsets[i])

    def mel(self, i: int) -> np.ndarray:
        """``float32 [frames, 80]`` log-mel of utterance ``i``."""
        return dequantize_mel(self.mels[self.mel_offsets[i]: self.mel_offsets[i + 1]])

    def token_ids(self, i: int) -> np.ndarray:
        return self.tokens[self.token_offsets[i]: self.token_offsets[i + 1]].astype(np.int64)

    def token_durations(self, i: int) -> np.ndarray:
        return self.durations[self.token_offsets[i]: self.token_offsets[i + 1]].astype(np.int64)

    def mel_stats(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean and std of the log-mel over ``split`` frames, ``float32 [80]`` each."""
        idx = self.indices(split)
        frames = np.concatenate([self.mels[self.mel_offsets[i]: self.mel_offsets[i + 1]] for i in idx])
        x = dequantize_mel(frames)
        return x.mean(0).astype(np.float32), np.maximum(x.std(0), 1e-3).astype(np.float32)


def length_buckets(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                   bucket_factor: int = 20) -> Iterator[np.ndarray]:
    """Batches of indices into ``lengths`` with similar lengths (less padding), in random order.

    Shuffles, sorts within chunks of ``batch_size * bucket_factor``, cuts batches, shuffles batches.
    """
    order = rng.permutation(len(lengths))
    chunk = batch_size * bucket_factor
    batches = []
    for s in range(0, len(order), chunk):
        part = order[s: s + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[b: b + batch_size] for b in range(0, len(part), batch_size)]
    for j in rng.permutation(len(batches)):
        yield batches[j]
