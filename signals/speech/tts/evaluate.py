"""How good the voice-cloning chain is on held-out sentences: intelligibility, speaker similarity, SV-EER.

    signals speech tts evaluate --sentences 48 --real-speakers 8 --out runs/tts_eval [--write-metrics]

    from signals.speech.tts.evaluate import evaluate, format_report
    report = evaluate(sentences=12, real_speakers=4, out="runs/tts_eval")
    print(format_report(report))

Sentences: the ``test`` split of the kokoro-teacher corpus - the held-out teacher voices (stock and
mixed, American and British) whose utterances were never trained on; every corpus sentence is unique,
so these sentences are unseen too. The split is the pack's (``pack``: its ``manifest.json``) or, by
default, the one :func:`signals.speech.tts.data.split_corpus` makes with :class:`SplitConfig` - the
same function ``prepare`` used. ``--split val`` evaluates the validation split's held-out voices
instead (teacher rows only), for choosing checkpoints and synthesis settings without the test voices.

Rows (the same sentences in every row):

========================  =====================================================================================
``teacher``               the corpus audio itself (24 kHz): the ceiling of what a student of this teacher can score
``copy_synthesis``        teacher audio -> :data:`VOCODER_MEL` -> our vocoder: the upper bound of our chain
``clone_teacher``         our clone of each held-out teacher voice; its reference is ONE OTHER utterance of the
                          voice (the voice's longest test utterance, never a target), the text is the target sentence
``clone_real``            clones of real unseen voices: one reference recording each from LibriSpeech (only the
                          encoder's test speakers), LJSpeech and VCTK, each speaking a fixed subset of the sentences
``..._48k``               the same clones through HiFi-SR to 48 kHz (issue part 4: what the stage adds or costs)
========================  =====================================================================================

Metrics per row: corpus-level WER of ``pocketsphinx`` (:mod:`.metrics`; American and British teacher
voices also separately, real voices by source); speaker similarity = cosine of our encoder's
embeddings of the audio and of the voice's reference utterance (mean); the SV2TTS paper's SV-EER of
the row's audio against the references of all the row's speakers (:func:`.metrics.clone_sv_eer`). Clone
rows also count the sentences whose decoder hit the length guard (``Piece.stopped`` False).

Files in ``out``: ``report.json``, ``alignment.png`` (decoder step x token), ``mel_clone_vs_teacher.png``,
``spectrogram_sr.png`` (one clone before/after HiFi-SR) and a few WAVs. MOS cannot be measured here
(no listeners); the report says so. Torch-free: the runtimes, numpy, pocketsphinx and matplotlib.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import AudioError, ConfigError, DataError
from signals.speech.tts.infer import SAMPLE_RATES

log = logging.getLogger(__name__)

CORPUS_FOLDER = "kokoro-teacher"
# Real unseen voices: source name -> folder under the data root.
REAL_FOLDERS = {"librispeech": "librispeech-mini", "ljspeech": "ljspeech-mini", "vctk": "vctk-wideband"}
REAL_SOURCES = tuple(REAL_FOLDERS)
TEST_SPEAKERS_FILE = "splits/test_speakers.txt"  # in the speaker encoder's model folder
SPLITS = ("test", "val")  # whose held-out teacher voices are evaluated

DEFAULT_SENTENCES = 48
DEFAULT_REAL_SPEAKERS = 8
DEFAULT_REAL_SENTENCES = 6

MOS_NOTE = ("MOS (mean opinion score, the SV2TTS paper's naturalness and similarity ratings) cannot be measured "
            "here: it needs human listeners. WER of an offline recogniser and the encoder's cosine/SV-EER are "
            "proxies for intelligibility and speaker similarity, not for naturalness.")

# The acceptance targets (issue 8, "What it must show").
TARGETS = {"clone_teacher": {"wer": 0.20, "similarity": 0.80, "sv_eer": 0.10}, "clone_real": {"wer": 0.30}}

ROW_LABELS = {
    "teacher": "teacher (corpus audio)",
    "copy_synthesis": "copy-synthesis (teacher mel -> vocoder)",
    "clone_teacher": "clone, held-out teacher voices",
    "clone_teacher_48k": "clone, held-out teacher voices + HiFi-SR",
    "clone_real": "clone, real unseen voices",
    "clone_real_48k": "clone, real unseen voices + HiFi-SR",
}


# --------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Voice:
    """A voice to clone: its reference recording and how its sentences are read."""

    speaker: str  # "kk_af_sarah", "librispeech:103", "ljspeech:LJ", "vctk:p360"
    source: str  # "kokoro-teacher" or one of REAL_SOURCES
    group: str  # report grouping: "american" / "british" for teacher voices, the source for real ones
    accent: str  # G2P accent of the clone: "us" / "gb"
    reference: Path
    reference_id: str


@dataclass(frozen=True)
class Target:
    """One sentence spoken by one voice."""

    utterance: str  # corpus utterance of the sentence
    voice: Voice
    text: str
    audio: Path | None = None  # the teacher's recording (None for real voices: they never said it)


def _check_positive(name: str, value: int | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, int | np.integer) or value < (0 if allow_zero else 1):
        raise ConfigError(f"{name} must be {'a non-negative' if allow_zero else 'a positive'} integer, got {value!r}")


def _round_robin(groups: Sequence[Sequence[Any]]) -> list[Any]:
    out, i = [], 0
    while any(i < len(g) for g in groups):
        out += [g[i] for g in groups if i < len(g)]
        i += 1
    return out


def _spread(items: Sequence[Any], k: int) -> list[Any]:
    """``k`` items spread evenly over ``items`` (all of them when ``k >= len``), order kept."""
    if k >= len(items):
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, k).round()]


def check_split(split: str) -> None:
    """A clear error for a split name this evaluation does not know."""
    if split not in SPLITS:
        raise ConfigError(f"split {split!r}: choose from {', '.join(SPLITS)}")


def held_out_split(corpus: Path, pack: str | Path | None = None, split: str = "test"):
    """``(utterances of the held-out voices of ``split``, speakers.tsv rows, where the split came from)``.

    ``test``: the test split (held-out voices). ``val``: the validation split's held-out voices only (the
    validation split also holds a few unseen sentences of every training voice; those are left out, so
    that ``val`` measures what ``test`` does, on other voices: for choosing checkpoints and synthesis
    settings without looking at the test voices).
    """
    from signals.speech.tts.config import SplitConfig
    from signals.speech.tts.data import read_corpus, split_corpus

    check_split(split)
    utts, speakers = read_corpus(corpus)
    if pack is not None:
        manifest_path = Path(pack) / "manifest.json"
        if not manifest_path.is_file():
            raise DataError(f"{pack} is not a TTS training pack (no manifest.json): give the folder "
                            "`signals speech tts prepare` wrote, or leave out the pack to split the corpus")
        manifest = json.loads(manifest_path.read_text())
        labels_by_id = dict(zip(manifest.get("utterances", []), manifest.get("split", [])))
        by_id = {u.utterance: u for u in utts}
        missing = sorted(u for u, s in labels_by_id.items() if s == split and u not in by_id)
        if missing:
            raise DataError(f"{manifest_path}: {len(missing)} {split} utterances (e.g. {missing[0]}) are not in "
                            f"{corpus}; the pack was made from another corpus")
        labelled = [(by_id[u], s) for u, s in labels_by_id.items() if u in by_id]
        source = f"pack {pack} (split_config {manifest.get('split_config')})"
    else:
        labelled = list(zip(utts, split_corpus(utts, SplitConfig())))
        source = "split_corpus(corpus, SplitConfig()) - the split `signals speech tts prepare` records"
    trained = {u.speaker for u, s in labelled if s == "train"}
    chosen = sorted((u for u, s in labelled if s == split and u.speaker not in trained), key=lambda u: u.utterance)
    if not chosen:
        raise DataError(f"no {split} utterances of held-out voices in {pack or corpus}")
    return chosen, speakers, f"{split}: {source}"


def teacher_plan(corpus: Path, pack: str | Path | None, sentences: int,
                 voices: int | None, split: str = "test") -> tuple[list[Voice], list[Target], str]:
    """Held-out teacher voices (American and British alternating) with one reference each and their targets."""
    from signals.speech.tts.text import accent_for_group

    utts, speakers, source = held_out_split(corpus, pack, split)
    by_voice: dict[str, list] = {}
    for u in utts:
        by_voice.setdefault(u.speaker, []).append(u)
    accents: dict[str, list[str]] = {}
    for v in sorted(by_voice):
        accents.setdefault(speakers[v].get("accent", "?"), []).append(v)
    order = _round_robin([accents[a] for a in sorted(accents)])
    order = [v for v in order if len(by_voice[v]) >= 2]  # a reference and at least one other sentence
    if voices is not None:
        order = order[:voices]
    if not order:
        raise DataError(f"no held-out voice of {corpus} has two test utterances")
    if sentences < len(order):
        order = order[:sentences]
    plan_voices, targets = [], []
    for j, v in enumerate(order):
        rows = by_voice[v]
        ref = max(rows, key=lambda u: (u.num_samples, u.utterance))  # the voice's fixed reference
        others = [u for u in rows if u is not ref]
        k = sentences // len(order) + (j < sentences % len(order))
        info = speakers[v]
        voice = Voice(speaker=v, source="kokoro-teacher", group=info.get("accent", "?"),
                      accent=accent_for_group(info.get("group", v.split("_")[1])),
                      reference=corpus / "wav" / v / f"{ref.utterance}.ogg", reference_id=ref.utterance)
        plan_voices.append(voice)
        targets += [Target(u.utterance, voice, u.text, corpus / "wav" / v / f"{u.utterance}.ogg")
                    for u in _spread(others, k)]
    # interleave voices so that a prefix of the targets (plots, WAVs) covers several voices
    per_voice = [[t for t in targets if t.voice is v] for v in plan_voices]
    return plan_voices, _round_robin(per_voice), source


def _audio_files(folder: Path) -> list[Path]:
    from signals.speech.audio import AUDIO_SUFFIXES

    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def _longest(files: Sequence[Path]) -> Path:
    import soundfile as sf

    return max(files, key=lambda p: (sf.info(str(p)).duration, p.name))


def _librispeech_voices(folder: Path, test_speakers: Path) -> list[Voice]:
    if not test_speakers.is_file():
        raise DataError(f"{test_speakers} not found: the speaker encoder's held-out LibriSpeech speakers are "
                        "needed to pick real voices it never saw (drop librispeech from the real sources)")
    allowed = {s.strip() for s in test_speakers.read_text().split() if s.strip()}
    files: dict[str, list[Path]] = {}
    for p in _audio_files(folder):
        spk = p.name.split("-")[0]
        if spk in allowed:
            files.setdefault(spk, []).append(p)
    if not files:
        raise DataError(f"{folder}: no recording of the encoder's test speakers ({test_speakers})")
    sex: dict[str, str] = {}
    info = folder / "SPEAKERS.TXT"
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            parts = [x.strip() for x in line.split("|")]
            if len(parts) >= 2 and not line.startswith(";"):
                sex[parts[0]] = parts[1]
    by_sex: dict[str, list[str]] = {}
    for spk in sorted(files, key=lambda s: (len(s), s)):
        by_sex.setdefault(sex.get(spk, "?"), []).append(spk)
    out = []
    for spk in _round_robin([by_sex[k] for k in sorted(by_sex)]):  # F, M, F, M, ...
        ref = _longest(files[spk])
        out.append(Voice(f"librispeech:{spk}", "librispeech", "librispeech", "us", ref, ref.stem))
    return out


def _by_prefix_voices(source: str, folder: Path, speaker_of) -> list[Voice]:
    files: dict[str, list[Path]] = {}
    for p in _audio_files(folder):
        files.setdefault(speaker_of(p), []).append(p)
    if not files:
        raise DataError(f"{folder}: no audio files")
    out = []
    for spk in sorted(files):
        ref = _longest(files[spk])
        out.append(Voice(f"{source}:{spk}", source, source, "us", ref, ref.stem))
    return out


def real_plan(data: Path, n: int, sources: Sequence[str], encoder_folder: Path) -> list[Voice]:
    """``n`` real voices, round robin over ``sources`` (LibriSpeech test speakers alternate F/M)."""
    if n == 0:
        return []
    unknown = [s for s in sources if s not in REAL_FOLDERS]
    if unknown or not sources:
        raise ConfigError(f"unknown real-voice source(s) {unknown or list(sources)}: choose from {list(REAL_SOURCES)}")
    pools = []
    for s in dict.fromkeys(sources):
        folder = data / REAL_FOLDERS[s]
        if not folder.is_dir():
            raise DataError(f"real-voice data folder not found: {folder} (source {s!r}); point --data (or "
                            f"SIGNALS_DATA) at the folder holding {REAL_FOLDERS[s]}, or leave {s} out of the sources")
        if s == "librispeech":
            pools.append(_librispeech_voices(folder, encoder_folder / TEST_SPEAKERS_FILE))
        elif s == "ljspeech":
            pools.append(_by_prefix_voices(s, folder, lambda p: p.name.split("-")[0]))
        else:
            pools.append(_by_prefix_voices(s, folder, lambda p: p.stem.split("_")[0]))
    voices = _round_robin(pools)
    if len(voices) < n:
        log.warning("only %d real voices are available (asked for %d)", len(voices), n)
    return voices[:n]


def real_targets(voices: Sequence[Voice], sentences: Sequence[Target], per_voice: int) -> list[Target]:
    """Real voice ``j`` speaks ``per_voice`` consecutive held-out sentences starting at ``j * per_voice``
    (wrapping), so the voices together cover as many different sentences as possible."""
    n = len(sentences)
    k = min(per_voice, n)
    return [Target(sentences[(j * k + i) % n].utterance, v, sentences[(j * k + i) % n].text)
            for j, v in enumerate(voices) for i in range(k)]


# --------------------------------------------------------------------------------------------- scoring


@dataclass
class _Row:
    """What one row collected, utterance by utterance."""

    name: str
    sample_rate: int
    refs: list[str] = field(default_factory=list)
    hyps: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)
    embeds: list[np.ndarray | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    unstopped: list[bool] = field(default_factory=list)  # clone rows: the length guard ended some piece

    def add(self, target: Target, hyp: str, emb: np.ndarray | None, seconds: float) -> None:
        self.refs.append(target.text)
        self.hyps.append(hyp)
        self.groups.append(target.voice.group)
        self.speakers.append(target.voice.speaker)
        self.embeds.append(emb)
        self.seconds.append(seconds)


def _stats(x: Sequence[float]) -> dict[str, float | int]:
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max()),
            "n": int(a.size)}


def _listed(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else list(ci)  # as report.json reads back


def summarize_row(row: _Row, references: dict[str, np.ndarray]) -> dict[str, Any]:
    """WER (all and by group), similarity to the reference, SV-EER and length-guard count of one row."""
    from signals.speech.tts.metrics import WordErrors, bootstrap_ci, clone_sv_eer, cosine, word_errors

    out: dict[str, Any] = {"name": row.name, "label": ROW_LABELS.get(row.name, row.name),
                           "sample_rate": row.sample_rate, "utterances": len(row.refs),
                           "speakers": len(set(row.speakers)), "audio_seconds": float(sum(row.seconds))}
    per_utt = [word_errors(r, h) for r, h in zip(row.refs, row.hyps, strict=True)]
    out["wer"] = sum(per_utt, WordErrors()).as_dict()
    out["wer"]["ci95"] = _listed(bootstrap_ci([e.errors for e in per_utt], [e.ref_words for e in per_utt]))
    out["wer_by_group"] = {
        g: sum((e for e, gg in zip(per_utt, row.groups) if gg == g), WordErrors()).as_dict()
        for g in sorted(set(row.groups))}
    ok = [i for i, e in enumerate(row.embeds) if e is not None]
    sims = [cosine(row.embeds[i], references[row.speakers[i]]) for i in ok]
    out["similarity"] = _stats(sims)
    out["similarity"]["ci95"] = _listed(bootstrap_ci(sims))
    out["similarity_by_group"] = {g: _stats([c for i, c in zip(ok, sims) if row.groups[i] == g])
                                  for g in sorted(set(row.groups))}
    out["embedding_failures"] = len(row.embeds) - len(ok)
    spk = sorted(set(row.speakers[i] for i in ok))
    if len(spk) >= 2:
        pairs = clone_sv_eer(np.stack([row.embeds[i] for i in ok]), [row.speakers[i] for i in ok],
                             np.stack([references[s] for s in spk]), spk)
        out["sv_eer"] = {"eer": pairs.eer.eer, "threshold": pairs.eer.threshold, "n_target": pairs.n_target,
                         "n_nontarget": pairs.n_nontarget, "enrolled_speakers": len(spk)}
    else:
        out["sv_eer"] = None  # needs at least two speakers
    if row.unstopped:
        out["length_guard_hits"] = int(sum(row.unstopped))
    return out


# --------------------------------------------------------------------------------------------- plots


def plot_alignments(items: Sequence[tuple[str, np.ndarray, bool]], path: Path) -> Path:
    """Attention alignments (decoder step x token) of a few sentences: ``(title, alignment [steps, tokens], stopped)``."""
    from signals.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(len(items), 1, figsize=(9, 2.6 * len(items)), squeeze=False)
    for ax, (title, align, stopped) in zip(axes[:, 0], items):
        im = ax.imshow(align.T, origin="lower", aspect="auto", interpolation="none", cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"{title[:90]}{'' if stopped else '  [length guard: no stop]'}", fontsize=8)
        ax.set_xlabel("decoder step")
        ax.set_ylabel("token")
        fig.colorbar(im, ax=ax, pad=0.01)
    return save_figure(fig, path)


def plot_mels(teacher: np.ndarray, clone: np.ndarray, title: str, path: Path,
              clone_label: str = "clone (synthesizer + postnet)") -> Path:
    """Teacher vs clone log-mel (both :data:`VOCODER_MEL`, ``[80, frames]``), one colour scale."""
    from signals.plotting import pyplot, save_figure

    plt = pyplot()
    lo, hi = float(min(teacher.min(), clone.min())), float(max(teacher.max(), clone.max()))
    lo = max(lo, hi - 12.0)
    fig, axes = plt.subplots(2, 1, figsize=(9, 5.5))
    for ax, mel, name in zip(axes, (teacher, clone), ("teacher (corpus audio)", clone_label)):
        im = ax.imshow(mel, origin="lower", aspect="auto", interpolation="none", vmin=lo, vmax=hi, cmap="magma")
        ax.set_title(f"{name}: {title[:80]}", fontsize=8)
        ax.set_xlabel("frame (11.6 ms)")
        ax.set_ylabel("mel band")
        fig.colorbar(im, ax=ax, pad=0.01)
    return save_figure(fig, path)


def plot_sr(before: np.ndarray, before_rate: int, after: np.ndarray, after_rate: int, title: str, path: Path) -> Path:
    """Linear-frequency spectrograms of one clone at the vocoder's rate and after HiFi-SR (both to 24 kHz)."""
    from signals.plotting import plot_spectrograms

    return plot_spectrograms([(before, before_rate, f"vocoder output, {before_rate / 1000:g} kHz: {title[:70]}"),
                              (after, after_rate, f"after HiFi-SR, {after_rate / 1000:g} kHz: {title[:70]}")], path)


# --------------------------------------------------------------------------------------------- evaluation


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def evaluate(model: str | Path | None = None, *, encoder_model: str | Path | None = None,
             vocoder_model: str | Path | None = None, sr_model: str | Path | None = None,
             corpus: str | Path | None = None, pack: str | Path | None = None, data: str | Path | None = None,
             sentences: int = DEFAULT_SENTENCES, voices: int | None = None,
             real_speakers: int = DEFAULT_REAL_SPEAKERS, real_sentences: int = DEFAULT_REAL_SENTENCES,
             real_sources: Sequence[str] = REAL_SOURCES, sample_rates: Sequence[int] = (22050, 48000),
             out: str | Path | None = None, wavs: int = 2, alignments: int = 3,
             providers: Sequence[str] | None = None, threads: int | None = None,
             write_metrics: bool = False, progress: bool = True, command: str | None = None,
             split: str = "test", int8_decoder: bool | None = None) -> dict[str, Any]:
    """Evaluate the clone chain (``model`` = the synthesizer folder, default ``models/tts``); returns the report.

    ``corpus``: the kokoro-teacher folder (default ``$SIGNALS_DATA/kokoro-teacher``); ``pack``: take the
    test split from this training pack's manifest instead of re-splitting the corpus; ``data``: the
    folder holding the real-voice datasets (default ``$SIGNALS_DATA``). ``sentences`` held-out sentences
    spread over ``voices`` held-out teacher voices (default all); ``real_speakers`` real voices each
    speaking ``real_sentences`` of them; ``sample_rates``: 22050 and/or 48000 (HiFi-SR rows).
    ``out``: report.json + PNGs + ``wavs`` example WAVs per voice kind; ``write_metrics``: the headline
    table into the model folder's ``metrics.json`` (key ``evaluation``). ``split="val"``: the validation
    split's held-out teacher voices instead (no real voices, no ``write_metrics``: the model card's numbers
    are the test split's), to choose checkpoints and synthesis settings without the test voices.
    ``int8_decoder``: as :func:`signals.speech.tts.infer.load` (default: the int8 decoder step on CPU providers).
    """
    from tqdm import tqdm

    from signals.paths import data_root
    from signals.speech.audio import load_audio, write_audio
    from signals.speech.tts.infer import load
    from signals.speech.tts.metrics import PocketSphinxASR

    t_start = time.perf_counter()
    _check_positive("sentences", sentences)
    _check_positive("voices", voices)
    _check_positive("real_speakers", real_speakers, allow_zero=True)
    _check_positive("real_sentences", real_sentences)
    _check_positive("wavs", wavs, allow_zero=True)
    _check_positive("alignments", alignments, allow_zero=True)
    check_split(split)
    if split != "test" and real_speakers:
        raise ConfigError(f"--split {split} evaluates held-out teacher voices only: the real voices are test "
                          "speakers; add --real-speakers 0")
    if split != "test" and write_metrics:
        raise ConfigError(f"--write-metrics stores the test split's table in the model card; not with --split {split}")
    rates = sorted(set(int(r) for r in sample_rates))
    if not rates or any(r not in SAMPLE_RATES for r in rates):
        raise ConfigError(f"sample rates {list(sample_rates)}: choose from {list(SAMPLE_RATES)}")
    corpus = Path(corpus) if corpus is not None else data_root() / CORPUS_FOLDER
    if not corpus.is_dir():
        raise DataError(f"teacher corpus not found: {corpus}; point --corpus (or SIGNALS_DATA) at the "
                        "kokoro-teacher folder (metadata.tsv, speakers.tsv, wav/)")
    data = Path(data) if data is not None else data_root()
    if real_speakers and not data.is_dir():
        raise DataError(f"data folder not found: {data} (it should hold {', '.join(REAL_FOLDERS.values())}); "
                        "use --data, or --real-speakers 0 to evaluate the teacher voices only")
    want_sr = 48000 in rates
    want_22 = 22050 in rates

    # plan first: data errors before the models load
    teacher_voices, targets, split_source = teacher_plan(corpus, pack, sentences, voices, split)
    runtime = load(model, encoder_model=encoder_model, vocoder_model=vocoder_model, sr_model=sr_model,
                   providers=providers, threads=threads, sample_rate=48000 if want_sr else 22050,
                   int8_decoder=int8_decoder)
    real_voices = real_plan(data, real_speakers, list(real_sources), runtime.encoder.folder.path)
    real = real_targets(real_voices, targets, real_sentences)
    asr = PocketSphinxASR()
    synth_folder = runtime.synthesizer.folder
    vocoder = runtime.vocoder
    voc_rate = vocoder.sample_rate
    pause_s = runtime.synthesizer.synthesis.pause_seconds
    timing = dict.fromkeys(("encoder", "synthesizer", "vocoder", "sr", "asr"), 0.0)

    def clock(key, fn, *args, **kw):
        t = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            timing[key] += time.perf_counter() - t

    def embed(wav: np.ndarray, rate: int, name: str) -> np.ndarray | None:
        try:
            return clock("encoder", runtime.encoder.embed_utterance, wav, rate, name=name)
        except AudioError as exc:  # a clone that is silent or too short after VAD: no embedding
            log.warning("no speaker embedding for %s: %s", name, exc)
            return None

    def transcribe(wav: np.ndarray, rate: int) -> str:
        return clock("asr", asr.transcribe, wav, rate)

    sr_failures: list[str] = []

    def upsample(wav: np.ndarray, name: str) -> np.ndarray:
        """HiFi-SR of one piece; a piece it refuses (silent, shorter than a frame) scores as silence."""
        try:
            return clock("sr", runtime.sr.upsample, wav, voc_rate, name=name)
        except AudioError as exc:
            log.warning("HiFi-SR refused %s (%s): scored as silence", name, exc)
            sr_failures.append(name)
            return np.zeros(round(len(wav) * runtime.sr.sample_rate / voc_rate), np.float32)

    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}

    def save_wav(name: str, wav: np.ndarray, rate: int) -> None:
        if out_dir is not None:
            write_audio(out_dir / name, np.clip(wav, -1.0, 1.0), rate)
            files.setdefault("wavs", [])
            files["wavs"].append(name)

    # reference embeddings: the conditioning of the clones and the enrolment of similarity / SV-EER
    references: dict[str, np.ndarray] = {}
    ref_info = []
    for v in [*teacher_voices, *real_voices]:
        wav, rate = load_audio(v.reference)
        references[v.speaker] = runtime.embed_audio(wav, rate, name=str(v.reference))
        ref_info.append({"speaker": v.speaker, "source": v.source, "group": v.group, "accent": v.accent,
                         "reference": v.reference_id, "reference_file": str(v.reference),
                         "reference_seconds": round(len(wav) / rate, 2)})

    rows: dict[str, _Row] = {}

    def row(name: str, rate: int) -> _Row:
        return rows.setdefault(name, _Row(name, rate))

    per_utt: list[dict[str, Any]] = []
    align_items: list[tuple[str, np.ndarray, bool]] = []
    plots_pending = {"mel": True, "sr": True}

    def clone(target: Target, kind: str, record: dict[str, Any], example: bool) -> None:
        emb = references[target.voice.speaker]
        syns = [clock("synthesizer", runtime.synthesizer.synthesize, runtime.synthesizer.ids(phonemes), emb)
                for _, phonemes in runtime.plan(target.text, target.voice.accent)]
        unstopped = any(not s.stopped for s in syns)
        parts22 = [clock("vocoder", vocoder, s.mel) for s in syns]
        pause22 = np.zeros(int(pause_s * voc_rate), np.float32)
        wav22 = np.concatenate([x for p in parts22 for x in (p, pause22)][:-1])
        rec = record["rows"]
        tag = target.utterance if kind == "teacher" else f"{_safe(target.voice.speaker)}_{target.utterance}"
        if want_22:
            r = row(f"clone_{kind}", voc_rate)
            hyp, e = transcribe(wav22, voc_rate), embed(wav22, voc_rate, f"clone of {tag}")
            r.add(target, hyp, e, len(wav22) / voc_rate)
            r.unstopped.append(unstopped)
            rec[r.name] = {"hyp": hyp, "cosine": _cos(e, emb), "seconds": round(len(wav22) / voc_rate, 3)}
        record["length_guard"] = unstopped
        record["decoder_steps"] = [int(len(s.alignment)) for s in syns]
        if kind == "teacher" and len(align_items) < alignments:
            align_items.append((f"{target.voice.speaker}: {target.text}", syns[0].alignment, syns[0].stopped))
        if example:
            save_wav(f"{tag}_clone_22k.wav", wav22, voc_rate)
        if want_sr:
            parts48 = [upsample(p, f"clone of {tag}") for p in parts22]
            pause48 = np.zeros(int(pause_s * runtime.sr.sample_rate), np.float32)
            wav48 = np.concatenate([x for p in parts48 for x in (p, pause48)][:-1])
            r = row(f"clone_{kind}_48k", runtime.sr.sample_rate)
            hyp, e = transcribe(wav48, r.sample_rate), embed(wav48, r.sample_rate, f"48 kHz clone of {tag}")
            r.add(target, hyp, e, len(wav48) / r.sample_rate)
            r.unstopped.append(unstopped)
            rec[r.name] = {"hyp": hyp, "cosine": _cos(e, emb), "seconds": round(len(wav48) / r.sample_rate, 3)}
            if example:
                save_wav(f"{tag}_clone_48k.wav", wav48, r.sample_rate)
            if plots_pending["sr"] and out_dir is not None:
                files["spectrogram_sr"] = plot_sr(wav22, voc_rate, wav48, r.sample_rate,
                                                  f"{target.voice.speaker}: {target.text}",
                                                  out_dir / "spectrogram_sr.png").name
                plots_pending["sr"] = False
        record["_mel"] = np.concatenate([s.mel for s in syns], axis=1)

    total = len(targets) + len(real)
    bar = tqdm(total=total, desc="tts evaluate", unit="sentence", disable=not progress)
    try:
        for n, target in enumerate(targets):
            rec: dict[str, Any] = {"utterance": target.utterance, "speaker": target.voice.speaker,
                                   "group": target.voice.group, "reference": target.voice.reference_id,
                                   "text": target.text, "rows": {}}
            emb_ref = references[target.voice.speaker]
            example = n < wavs
            wav, rate = load_audio(target.audio)
            r = row("teacher", rate)
            hyp, e = transcribe(wav, rate), embed(wav, rate, str(target.audio))
            r.add(target, hyp, e, len(wav) / rate)
            rec["rows"]["teacher"] = {"hyp": hyp, "cosine": _cos(e, emb_ref), "seconds": round(len(wav) / rate, 3)}
            mel_teacher = clock("vocoder", vocoder.mel, wav, rate, name=str(target.audio))
            copy = clock("vocoder", vocoder, mel_teacher)
            r = row("copy_synthesis", voc_rate)
            hyp, e = transcribe(copy, voc_rate), embed(copy, voc_rate, f"copy-synthesis of {target.utterance}")
            r.add(target, hyp, e, len(copy) / voc_rate)
            rec["rows"]["copy_synthesis"] = {"hyp": hyp, "cosine": _cos(e, emb_ref),
                                             "seconds": round(len(copy) / voc_rate, 3)}
            if example:
                save_wav(f"{target.utterance}_teacher.wav", wav, rate)
                save_wav(f"{target.utterance}_copy_synthesis.wav", copy, voc_rate)
                ref_name = f"{target.voice.speaker}_reference_{target.voice.reference_id}.wav"
                if ref_name not in files.get("wavs", []):
                    save_wav(ref_name, *load_audio(target.voice.reference))
            clone(target, "teacher", rec, example)
            mel_clone = rec.pop("_mel")
            if plots_pending["mel"] and out_dir is not None:
                label = ("clone (synthesizer + postnet + post-filter)" if runtime.synthesizer.postfilter is not None
                         else "clone (synthesizer + postnet)")
                files["mel_clone_vs_teacher"] = plot_mels(mel_teacher, mel_clone, f"{target.voice.speaker}: {target.text}",
                                                          out_dir / "mel_clone_vs_teacher.png", clone_label=label).name
                plots_pending["mel"] = False
            rec["duration_ratio"] = round(rec["rows"].get("clone_teacher", rec["rows"].get("clone_teacher_48k", {}))
                                          .get("seconds", np.nan) / (len(wav) / rate), 3)
            per_utt.append(rec)
            bar.update()
        written: set[str] = set()
        for target in real:
            rec = {"utterance": target.utterance, "speaker": target.voice.speaker, "group": target.voice.group,
                   "reference": target.voice.reference_id, "text": target.text, "rows": {}}
            example = target.voice.speaker not in written and len(written) < wavs
            if example:
                written.add(target.voice.speaker)
                save_wav(f"{_safe(target.voice.speaker)}_reference.wav", *load_audio(target.voice.reference))
            clone(target, "real", rec, example)
            rec.pop("_mel")
            per_utt.append(rec)
            bar.update()
    finally:
        bar.close()
    if out_dir is not None and align_items:
        files["alignment"] = plot_alignments(align_items, out_dir / "alignment.png").name

    order = ["teacher", "copy_synthesis", "clone_teacher", "clone_teacher_48k", "clone_real", "clone_real_48k"]
    summaries = [summarize_row(rows[name], references) for name in order if name in rows]
    ratios = [u["duration_ratio"] for u in per_utt if "duration_ratio" in u and np.isfinite(u["duration_ratio"])]
    report: dict[str, Any] = {
        "model": str(synth_folder.path),
        "model_step": synth_folder.config.source.get("step"),
        "decoder_graph": runtime.synthesizer.decoder_graph,
        "postfilter": runtime.synthesizer.postfilter is not None,
        "command": command,
        "asr": f"pocketsphinx {asr.version} (bundled US-English model); corpus WER over normalize_text()",
        "similarity": "cosine of the speaker encoder's embeddings of the audio and of the voice's reference utterance",
        "sv_eer": "clone_sv_eer: each row's audio scored against the reference of every speaker of the row "
                  "(target: its own voice); needs >= 2 speakers",
        "mos": MOS_NOTE,
        "data": {"corpus": str(corpus), "split": split_source, "sentences": len(targets),
                 "teacher_voices": [v.speaker for v in teacher_voices],
                 "real_voices": [v.speaker for v in real_voices], "real_sentences_per_voice": min(real_sentences, len(targets)),
                 "references": ref_info},
        "sample_rates": rates,
        "rows": summaries,
        "length_guard": {
            "sentences": sum(1 for u in per_utt if "length_guard" in u),
            "hits": sum(1 for u in per_utt if u.get("length_guard")),
            "max_steps": f"{runtime.synthesizer.synthesis.min_steps} + "
                         f"{runtime.synthesizer.synthesis.max_steps_per_token:g} x tokens decoder steps",
        },
        "duration_ratio_clone_vs_teacher": _stats(ratios),
        "sr_failures": sr_failures,
        "targets": TARGETS,
        "utterances": per_utt,
        "timing_seconds": {k: round(v, 2) for k, v in timing.items()},
        "seconds": round(time.perf_counter() - t_start, 1),
        "files": files,
    }
    if out_dir is not None:
        files["report"] = "report.json"
        tmp = out_dir / ".report.json.partial"
        tmp.write_text(json.dumps(_jsonable(report), indent=1, ensure_ascii=False) + "\n")
        os.replace(tmp, out_dir / "report.json")
    if write_metrics:
        from signals.modelfolder import update_metrics

        update_metrics(synth_folder.path, evaluation=headline(report))
    return report


def _cos(e: np.ndarray | None, ref: np.ndarray) -> float | None:
    from signals.speech.tts.metrics import cosine

    return None if e is None else round(float(cosine(e, ref)), 4)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The table of ``report`` as stored in ``metrics.json["evaluation"]`` (no per-utterance detail)."""
    rows = {}
    for r in report["rows"]:
        rows[r["name"]] = {
            "label": r["label"], "sample_rate": r["sample_rate"], "utterances": r["utterances"],
            "speakers": r["speakers"], "wer": r["wer"]["wer"], "wer_ci95": r["wer"].get("ci95"),
            "wer_by_group": {g: w["wer"] for g, w in r["wer_by_group"].items()},
            "similarity_mean": r["similarity"].get("mean"), "similarity_ci95": r["similarity"].get("ci95"),
            "sv_eer": r["sv_eer"]["eer"] if r["sv_eer"] else None,
            **({"length_guard_hits": r["length_guard_hits"]} if "length_guard_hits" in r else {}),
        }
    data = report["data"]
    return _jsonable({
        "command": report.get("command"), "model_step": report.get("model_step"),
        "decoder_graph": report.get("decoder_graph"), "postfilter": report.get("postfilter"), "asr": report["asr"],
        "sentences": data["sentences"], "teacher_voices": data["teacher_voices"], "real_voices": data["real_voices"],
        "real_sentences_per_voice": data["real_sentences_per_voice"], "split": data["split"],
        "rows": rows, "length_guard": {k: report["length_guard"][k] for k in ("sentences", "hits")},
        "duration_ratio_clone_vs_teacher": report["duration_ratio_clone_vs_teacher"].get("mean"),
        "mos": report["mos"], "seconds": report["seconds"],
    })


# --------------------------------------------------------------------------------------------- text


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def _fmt_ci(ci: Sequence[float] | None) -> str:
    return "-" if not ci else f"{ci[0]:.2f}-{ci[1]:.2f}"


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table (what the ``evaluate`` command prints)."""
    data = report["data"]
    groups = sorted({g for r in report["rows"] for g in r["wer_by_group"]})
    teacher_groups = [g for g in ("american", "british") if g in groups]
    real_groups = [g for g in groups if g not in teacher_groups]
    lines = [
        f"TTS evaluation of {report['model']} (training step {report.get('model_step')}, "
        f"{report.get('decoder_graph', 'decoder')}.onnx): "
        f"{data['sentences']} held-out sentences of {len(data['teacher_voices'])} held-out teacher voices; "
        f"{len(data['real_voices'])} real unseen voices x {data['real_sentences_per_voice']} sentences",
        f"WER: {report['asr']}",
        "",
    ]
    head = f"{'row':<42} {'kHz':>6} {'utts':>5} {'WER':>7} {'(95%)':>9} "
    head += " ".join(f"{g[:8]:>8}" for g in teacher_groups + real_groups)
    head += f" {'cos(ref)':>9} {'(95%)':>9} {'SV-EER':>7} {'guard':>6}"
    lines += [head, "-" * len(head)]
    for r in report["rows"]:
        by = r["wer_by_group"]
        cells = " ".join(f"{_fmt(by[g]['wer']) if g in by else '':>8}" for g in teacher_groups + real_groups)
        guard = f"{r['length_guard_hits']}/{r['utterances']}" if "length_guard_hits" in r else ""
        lines.append(f"{r['label']:<42} {r['sample_rate'] / 1000:>6g} {r['utterances']:>5} {_fmt(r['wer']['wer']):>7} "
                     f"{_fmt_ci(r['wer'].get('ci95')):>9} {cells} {_fmt(r['similarity'].get('mean')):>9} "
                     f"{_fmt_ci(r['similarity'].get('ci95')):>9} "
                     f"{_fmt(r['sv_eer']['eer'] if r['sv_eer'] else None, pct=True):>7} {guard:>6}")
    lines.append("")
    lines.append("WER columns: corpus WER of all sentences, then by group (teacher voices: american / british "
                 "accent; real voices: by source). cos(ref): mean cosine to the voice's reference utterance. "
                 "(95%): bootstrap interval over the sentences (2,000 resamples; the voices and the model fixed). "
                 "guard: sentences whose decoder hit the length guard (no stop predicted).")
    by_name = {r["name"]: r for r in report["rows"]}
    checks = []
    for name, target in report.get("targets", {}).items():
        r = by_name.get(name)
        if r is None:
            continue
        got = {"wer": r["wer"]["wer"], "similarity": r["similarity"].get("mean"),
               "sv_eer": r["sv_eer"]["eer"] if r["sv_eer"] else None}
        for key, limit in target.items():
            v = got[key]
            ok = v is not None and (v >= limit if key == "similarity" else v <= limit)
            checks.append(f"{name} {key} {_fmt(v, pct=key == 'sv_eer')} "
                          f"{'>=' if key == 'similarity' else '<='} {_fmt(limit, pct=key == 'sv_eer')}: "
                          f"{'met' if ok else 'NOT met'}")
    if checks:
        lines.append("issue 8 targets (22.05 kHz rows): " + "; ".join(checks))
    ratio = report.get("duration_ratio_clone_vs_teacher", {})
    guard = report["length_guard"]
    lines.append(f"length guard ({guard['max_steps']}): {guard['hits']} of {guard['sentences']} cloned sentences; "
                 f"clone/teacher duration ratio mean {_fmt(ratio.get('mean'))} (min {_fmt(ratio.get('min'))}, "
                 f"max {_fmt(ratio.get('max'))})")
    lines.append(report["mos"])
    t = report.get("timing_seconds", {})
    lines.append(f"time: {report['seconds']:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()) + ")")
    if report.get("files"):
        f = report["files"]
        lines.append("files: " + ", ".join(str(v) for k, v in f.items() if k != "wavs")
                     + (f" and {len(f['wavs'])} WAVs" if f.get("wavs") else ""))
    return "\n".join(lines)


__all__ = ["MOS_NOTE", "REAL_SOURCES", "TARGETS", "Target", "Voice", "evaluate", "format_report", "headline",
           "real_plan", "real_targets", "teacher_plan", "held_out_split"]
