"""Torch-free voice cloning: reference audio + text -> speech in that voice (numpy + onnxruntime).

    from signals.speech.tts.infer import load
    clone = load()                                          # models/{tts,speaker_encoder,vocoder,super_resolution}
    emb = clone.embed(["ref1.wav", "ref2.flac"])            # float32 [256], L2-normalised
    result = clone.synthesize("Any English text.", emb)     # CloneResult: wav float32 at 22.05 kHz, mels, alignments
    result = clone.synthesize(text, emb, sample_rate=48000) # ... through HiFi-SR to 48 kHz
    clone.write(long_text, emb, "out.wav")                  # sentence by sentence, constant memory, atomic
    for chunk in clone.stream_audio(text, emb): play(chunk) # 22.05 kHz audio as the decoder makes it

The chain (SV2TTS): the GE2E encoder turns the reference into a d-vector; the text front end
(:mod:`.text`) turns text into phonemes, sentence by sentence; the synthesizer's three graphs run a
Tacotron 2 decoder loop in numpy (:class:`SynthesizerRuntime`); the HiFi-GAN vocoder turns each mel
into 22.05 kHz audio; HiFi-SR optionally extends it to 48 kHz.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import AudioError, DataError, ModelError
from signals.modelfolder import ModelFolder
from signals.speech.features import MelConfig
from signals.speech.tts.config import MASK_NAMES, STATE_NAMES, SynthesisConfig, TacotronConfig, TTSFrontend
from signals.speech.tts.text import BOUNDARY, PAD, phonemes_to_ids, pieces

log = logging.getLogger(__name__)

KIND = "tts"
SAMPLE_RATES = (22050, 48000)
MAX_TEXT_CHARS = 100_000  # beyond this a text is almost certainly a mistake (a book: split it into files)


@dataclass(frozen=True)
class Synthesis:
    """One sentence's synthesizer output."""

    mel: np.ndarray  # float32 [n_mels, frames]: the vocoder's log-mel
    alignment: np.ndarray  # float32 [decoder steps, tokens]
    stopped: bool  # False when the length guard ended the loop (the stop token never fired)


@dataclass(frozen=True)
class DecoderStep:
    """One step of the decoder loop."""

    frames: np.ndarray  # float32 [reduction, n_mels]: the decoder's mel frames (normalised, before the postnet)
    alignment: np.ndarray  # float32 [tokens]: this step's attention weights
    stopped: bool  # the stop token fired here (the loop's last step)


@dataclass(frozen=True)
class SynthesizerRuntime:
    """The Tacotron 2 model folder: encoder, decoder-step and postnet sessions, looped in numpy."""

    folder: ModelFolder
    model: TacotronConfig
    synthesis: SynthesisConfig
    symbols: tuple[str, ...]
    mel: MelConfig  # the mel the model predicts (the vocoder's)
    encoder: Any
    decoder: Any
    postnet: Any
    decoder_graph: str = "decoder"  # the step graph the loop runs: "decoder" (float) or "decoder_int8"
    postfilter: Any = None  # the speaker-conditioned post-filter's session, when the folder has one (postfilter.py)
    postfilter_context: int = 0  # its receptive field, frames each side

    @classmethod
    def load(cls, model: str | Path | None = None, providers: Sequence[str] | None = None,
             threads: int | None = None, int8: bool | None = None,
             postfilter: bool | None = None) -> SynthesizerRuntime:
        """``int8``: run the int8 decoder step (``decoder_int8.onnx``; default: when the folder has one and the
        providers are CPU only: a GPU provider runs the float step, since onnxruntime's integer matmuls
        would fall back to the CPU). ``postfilter``: apply the folder's speaker-conditioned post-filter
        (``postfilter.onnx``; default: when it has one)."""
        folder = ModelFolder.find(KIND, model)
        cfg = folder.section("model", TacotronConfig)
        synthesis = folder.section("runtime", SynthesisConfig)
        front = folder.section("frontend", TTSFrontend)
        symbols = front.symbols
        if len(symbols) != cfg.n_symbols or symbols[:2] != (PAD, BOUNDARY):
            raise ModelError(f"{folder.config_path}: frontend.symbols has {len(symbols)} entries starting "
                             f"{list(symbols[:2])}; the model has {cfg.n_symbols} and expects {[PAD, BOUNDARY]} first")
        if front.mel.n_mels != cfg.n_mels:
            raise ModelError(f"{folder.config_path}: frontend.mel has {front.mel.n_mels} bands, the model {cfg.n_mels}")
        has_int8 = "decoder_int8" in folder.config.graphs
        if int8 and not has_int8:
            raise ModelError(f"{folder.path} has no int8 decoder (decoder_int8.onnx in config.json graphs): "
                             "re-export it with `signals speech tts export`, or use the float decoder")
        cpu_only = all((p[0] if isinstance(p, tuple) else p) == "CPUExecutionProvider" for p in (providers or []))
        if int8 is None:
            int8 = has_int8 and cpu_only
        step_graph = "decoder_int8" if int8 else "decoder"
        folder.graph("encoder", ["tokens", "speaker"], ["memory", "processed_memory"])
        folder.graph(step_graph, ["frame", *MASK_NAMES, *STATE_NAMES, "memory", "processed_memory"],
                     ["frames", "stop", *(f"{n}_out" for n in STATE_NAMES)])
        folder.graph("postnet", ["mel"], ["logmel"])
        sessions = {role: folder.session(graph, providers=providers, threads=threads)
                    for role, graph in (("encoder", "encoder"), ("decoder", step_graph), ("postnet", "postnet"))}
        has_filter = "postfilter" in folder.config.graphs
        if postfilter and not has_filter:
            raise ModelError(f"{folder.path} has no post-filter (postfilter.onnx in config.json graphs): train one with "
                             "`signals speech tts postfilter`")
        filter_context = 0
        if has_filter and postfilter is not False:
            folder.graph("postfilter", ["mel", "speaker"], ["mel_out"])
            sessions["postfilter"] = folder.session("postfilter", providers=providers, threads=threads)
            try:
                filter_context = int(folder.config.source["postfilter"]["receptive_field"])
            except (KeyError, TypeError, ValueError):
                raise ModelError(f"{folder.config_path}: source.postfilter.receptive_field is missing; re-run "
                                 "`signals speech tts postfilter`") from None
        return cls(folder=folder, model=cfg, synthesis=synthesis, symbols=symbols, mel=front.mel,
                   decoder_graph=step_graph, postfilter_context=filter_context, **sessions)

    @property
    def sample_rate(self) -> int:
        return int(self.mel.sample_rate)

    def ids(self, phonemes: str) -> list[int]:
        return phonemes_to_ids(phonemes, self.symbols)

    @property
    def postnet_context(self) -> int:
        """Frames each side that change an output frame of :meth:`postnet_mel` (the postnet's receptive field
        plus the post-filter's): with this much context a window of decoder frames gives the same log-mel as
        the whole sentence."""
        return self.model.postnet_layers * (self.model.postnet_kernel // 2) + self.postfilter_context

    def postnet_mel(self, frames: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """Decoder frames ``float32 [T, n_mels]`` (normalised) -> the vocoder's log-mel ``float32 [n_mels, T]``
        (through the post-filter, conditioned on ``embedding``, when there is one)."""
        logmel = self.postnet.run(["logmel"], {"mel": np.asarray(frames, np.float32)[None]})[0]
        if self.postfilter is not None:
            spk = np.asarray(embedding, np.float32).reshape(1, -1)
            logmel = self.postfilter.run(["mel_out"], {"mel": logmel, "speaker": spk})[0]
        return np.ascontiguousarray(logmel[0].T)

    def synthesize(self, ids: Sequence[int], embedding: np.ndarray, seed: int | None = None) -> Synthesis:
        """Token IDs of one sentence + a speaker embedding ``float [S]`` -> :class:`Synthesis`."""
        steps = list(self.decode(ids, embedding, seed))
        frames = np.concatenate([s.frames for s in steps])
        return Synthesis(mel=self.postnet_mel(frames, embedding), alignment=np.stack([s.alignment for s in steps]),
                         stopped=steps[-1].stopped)

    def decode(self, ids: Sequence[int], embedding: np.ndarray, seed: int | None = None) -> Iterator[DecoderStep]:
        """The decoder loop of one sentence, step by step, until the stop token fires or the length guard."""
        cfg, syn = self.model, self.synthesis
        tokens = np.asarray(ids, dtype=np.int64)[None]
        if tokens.shape[1] < 3:
            raise ValueError("a sentence needs at least one symbol between its boundary tokens")
        spk = np.asarray(embedding, dtype=np.float32).reshape(1, -1)
        memory, processed = self.encoder.run(None, {"tokens": tokens, "speaker": spk})
        n = tokens.shape[1]
        state = {
            "attention_h": np.zeros((1, cfg.attention_rnn_dim), np.float32),
            "attention_c": np.zeros((1, cfg.attention_rnn_dim), np.float32),
            "decoder_h": np.zeros((1, cfg.decoder_rnn_dim), np.float32),
            "decoder_c": np.zeros((1, cfg.decoder_rnn_dim), np.float32),
            "attention_weights": np.zeros((1, n), np.float32),
            "attention_cumulative": np.zeros((1, n), np.float32),
            "context": np.zeros((1, cfg.memory_dim), np.float32),
        }
        rng = np.random.default_rng(syn.seed if seed is None else seed)
        keep = 1.0 - cfg.prenet_dropout
        frame = np.zeros((1, cfg.n_mels), np.float32)
        max_steps = syn.min_steps + int(syn.max_steps_per_token * n)
        out_names = ["frames", "stop", *(f"{s}_out" for s in STATE_NAMES)]
        for step in range(max_steps):
            masks = {m: ((rng.random((1, d)) < keep) / keep).astype(np.float32)
                     for m, d in zip(MASK_NAMES, cfg.prenet_dims)}
            out = self.decoder.run(out_names, {"frame": frame, **masks, **state, "memory": memory,
                                               "processed_memory": processed})
            step_frames, stop = out[0], out[1]
            state = dict(zip(STATE_NAMES, out[2:]))
            frame = step_frames[:, -1]
            # no stop before min_steps: a premature stop would give a clip too short to vocode
            stopped = step + 1 >= syn.min_steps and 1.0 / (1.0 + np.exp(-float(stop[0]))) > syn.stop_threshold
            yield DecoderStep(frames=step_frames[0].astype(np.float32, copy=False),
                              alignment=state["attention_weights"][0], stopped=stopped)
            if stopped:
                return
        log.warning("the decoder reached its length guard (%d steps for %d tokens) without predicting a stop",
                    max_steps, n)


@dataclass(frozen=True)
class Piece:
    """One sentence of a cloned text, as it is produced."""

    text: str
    phonemes: str
    wav: np.ndarray  # float32 at the requested rate
    mel: np.ndarray  # float32 [80, frames] synthesizer output
    alignment: np.ndarray  # float32 [steps, tokens]
    stopped: bool


@dataclass(frozen=True)
class CloneResult:
    wav: np.ndarray  # float32 [samples]
    sample_rate: int
    pieces: list[Piece] = field(default_factory=list)


def check_embedding(emb: np.ndarray, dim: int, name: str = "embedding") -> np.ndarray:
    """A speaker embedding as L2-normalised ``float32 [dim]``, or a clear :class:`DataError`."""
    try:
        e = np.asarray(emb, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} is not a numeric array: {exc}") from exc
    if e.ndim == 2 and e.shape[0] == 1:
        e = e[0]
    if e.shape != (dim,):
        raise DataError(f"{name} must be one {dim}-d speaker embedding (shape [{dim}] or [1, {dim}]), got shape "
                        f"{list(e.shape)}; make one with `signals speech embed REF.wav --output emb.npy`")
    if not np.all(np.isfinite(e)):
        raise DataError(f"{name} contains NaN or infinite values")
    norm = float(np.linalg.norm(e))
    if norm < 1e-6:
        raise DataError(f"{name} is all zeros")
    return e / norm


def load_embedding(path: str | Path, dim: int = 256) -> np.ndarray:
    """``.npy`` file of one embedding (``[dim]`` or ``[1, dim]``), checked."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"embedding file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npy array: {exc}") from exc
    return check_embedding(arr, dim, name=str(path))


def check_output_path(path: str | Path, inputs: Sequence[str | Path] = (), sample_rate: int = SAMPLE_RATES[0],
                      float32: bool = False, overwrite: bool = False) -> Path:
    """Refuse an output path before any work is done (:mod:`signals.outputs`): an unknown or unsupported
    audio format, a folder, a device, a parent that is a file, an unwritable folder, or one of the inputs
    (writing over a reference would destroy it) unless ``overwrite``. Raises :class:`OutputError`."""
    from signals.outputs import check_audio_output

    return check_audio_output(path, sample_rate, float32=float32, inputs=inputs, overwrite=overwrite)


@dataclass(frozen=True)
class CloneRuntime:
    """Speaker encoder + synthesizer + vocoder (+ HiFi-SR for 48 kHz), each a torch-free runtime."""

    synthesizer: SynthesizerRuntime
    encoder: Any  # signals.speech.encoder.infer.EncoderRuntime
    vocoder: Any  # signals.speech.vocoder.infer.VocoderRuntime
    sr: Any = None  # signals.speech.sr.infer.SRRuntime, loaded by load(..., sample_rate=48000) or on first use
    sr_model: str | Path | None = None
    providers: Sequence[str] | None = None
    threads: int | None = None
    _lazy: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def embedding_dim(self) -> int:
        return self.synthesizer.model.speaker_dim

    # -- speaker

    def embed(self, references: Sequence[str | Path] | str | Path) -> np.ndarray:
        """The d-vector of one or more reference recordings: mean of their L2-normalised embeddings, re-normalised.

        Raises :class:`AudioError` for unreadable, silent or too short references, and for references with
        less than the encoder's ``MIN_SPEECH_SECONDS`` of detected speech (noise would make a voice of noise).
        """
        return self.embed_info(references)[0]

    def embed_info(self, references: Sequence[str | Path] | str | Path) -> tuple[np.ndarray, list[str]]:
        """:meth:`embed` plus low-confidence warnings (references with little speech)."""
        refs = [references] if isinstance(references, str | Path) else list(references)
        if not refs:
            raise AudioError("give at least one reference recording of the voice to clone")
        embeds, _, warnings = self.encoder.embed_files_info(refs)
        return check_embedding(embeds.mean(0), self.embedding_dim, name="reference embedding"), warnings

    def embed_audio(self, wav: np.ndarray, sample_rate: int, name: str = "reference") -> np.ndarray:
        from signals.speech.encoder.infer import MIN_SPEECH_SECONDS

        emb = self.encoder.embed_utterance(wav, sample_rate, name=name, min_speech=MIN_SPEECH_SECONDS)
        return check_embedding(emb, self.embedding_dim, name=name)

    # -- text -> audio

    def _sr(self):
        if self.sr is not None:
            return self.sr
        if "sr" not in self._lazy:
            from signals.speech.sr.infer import load as load_sr

            self._lazy["sr"] = load_sr(self.sr_model, providers=self.providers, threads=self.threads)
        return self._lazy["sr"]

    def plan(self, text: str, accent: str = "us") -> list[tuple[str, str]]:
        """``(sentence, phonemes)`` pieces of ``text``; raises :class:`TextError` before any audio is made."""
        if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
            raise DataError(f"text has {len(text):,} characters (limit {MAX_TEXT_CHARS:,}): split it into several files")
        return pieces(text, accent, self.synthesizer.synthesis.max_chars)

    def stream(self, text: str, embedding: np.ndarray, sample_rate: int = 22050, accent: str = "us",
               seed: int | None = None, plan: list[tuple[str, str]] | None = None) -> Iterator[Piece]:
        """:class:`Piece` by piece (sentence by sentence): memory does not grow with the text.
        ``plan``: the text's :meth:`plan` when the caller has it already."""
        if sample_rate not in SAMPLE_RATES:
            raise DataError(f"sample rate {sample_rate} Hz is not offered: choose {' or '.join(map(str, SAMPLE_RATES))}")
        emb = check_embedding(embedding, self.embedding_dim)
        plan = self.plan(text, accent) if plan is None else plan
        sr = self._sr() if sample_rate != self.vocoder.sample_rate else None
        for i, (sentence, phonemes) in enumerate(plan):
            syn = self.synthesizer.synthesize(self.synthesizer.ids(phonemes), emb,
                                              None if seed is None else seed + i)
            wav = self.vocoder(syn.mel)
            if sr is not None:
                wav = sr.upsample(wav, self.vocoder.sample_rate, name=f"sentence {i + 1}")
            yield Piece(text=sentence, phonemes=phonemes, wav=wav.astype(np.float32), mel=syn.mel,
                        alignment=syn.alignment, stopped=syn.stopped)

    def stream_audio(self, text: str, embedding: np.ndarray, sample_rate: int = 22050, accent: str = "us",
                     seed: int | None = None, first_chunk_frames: int = 32,
                     plan: list[tuple[str, str]] | None = None,
                     pause_seconds: float | None = None) -> Iterator[np.ndarray]:
        """The clone's audio as it is made, ``float32`` chunks (pauses between sentences included): concatenated,
        the same signal as :meth:`synthesize` up to float rounding.

        At 22.05 kHz the vocoder runs on the decoder's frames as they arrive: a chunk of frames is vocoded as
        soon as the decoder is ``postnet_context`` + the vocoder's ``context_frames`` frames past it (enough for
        both networks' receptive fields), the first chunk ``first_chunk_frames`` long (~0.37 s) and each next one
        twice as long, up to the vocoder's ``chunk_frames`` (small chunks cost the vocoder its context twice
        over; doubling keeps production ahead of playback at any real-time factor below 0.5). So the first audio
        comes after a few dozen decoder steps, however long the first sentence. At
        48 kHz a sentence goes through HiFi-SR whole (it measures the input's bandwidth first): one chunk per
        sentence. ``pause_seconds``: silence between sentences (default: the model's ``pause_seconds``).
        """
        if first_chunk_frames <= 0:
            raise ValueError(f"first_chunk_frames must be positive, got {first_chunk_frames}")
        plan = self.plan(text, accent) if plan is None else plan
        if pause_seconds is None:
            pause_seconds = self.synthesizer.synthesis.pause_seconds
        pause = np.zeros(int(pause_seconds * sample_rate), np.float32)
        if sample_rate != self.vocoder.sample_rate:
            for i, piece in enumerate(self.stream(text, embedding, sample_rate, accent, seed, plan=plan)):
                if i and pause.size:
                    yield pause
                yield piece.wav
            return
        emb = check_embedding(embedding, self.embedding_dim)
        syn, voc = self.synthesizer, self.vocoder
        lead = syn.postnet_context + voc.synthesis.context_frames  # decoder frames needed past a chunk's end
        largest = max(first_chunk_frames, voc.synthesis.chunk_frames)
        chunk = first_chunk_frames  # grows across sentences too: the audio already out covers the next one's start
        for i, (_, phonemes) in enumerate(plan):
            if i and pause.size:
                yield pause
            frames: list[np.ndarray] = []
            a = 0
            for step in syn.decode(syn.ids(phonemes), emb, None if seed is None else seed + i):
                frames.extend(step.frames)
                while len(frames) >= a + chunk + lead:
                    yield self._vocode(frames, a, a + chunk, len(frames), emb)
                    a, chunk = a + chunk, min(2 * chunk, largest)
            while a < len(frames):  # the sentence has ended: the rest, against its true end
                b = min(len(frames), a + chunk)
                yield self._vocode(frames, a, b, len(frames), emb)
                a, chunk = b, min(2 * chunk, largest)

    def _vocode(self, frames: list[np.ndarray], a: int, b: int, known: int, emb: np.ndarray) -> np.ndarray:
        """Audio of decoder frames ``[a, b)`` from the first ``known`` frames: the postnet and the vocoder each
        see their receptive field of true neighbours (or the sentence's edge), so the samples are final."""
        syn, voc = self.synthesizer, self.vocoder
        lo, hi = max(0, a - voc.synthesis.context_frames), min(known, b + voc.synthesis.context_frames)
        plo, phi = max(0, lo - syn.postnet_context), min(known, hi + syn.postnet_context)
        logmel = syn.postnet_mel(np.stack(frames[plo:phi]), emb)[:, lo - plo:hi - plo]
        return voc.run(np.ascontiguousarray(logmel))[(a - lo) * voc.hop:(b - lo) * voc.hop].astype(np.float32)

    def synthesize(self, text: str, embedding: np.ndarray, sample_rate: int = 22050, accent: str = "us",
                   seed: int | None = None) -> CloneResult:
        """The whole text in memory (use :meth:`write` for long texts)."""
        parts = list(self.stream(text, embedding, sample_rate, accent, seed))
        pause = np.zeros(int(self.synthesizer.synthesis.pause_seconds * sample_rate), np.float32)
        wav = np.concatenate([x for p in parts for x in (p.wav, pause)][:-1])
        return CloneResult(wav=wav, sample_rate=sample_rate, pieces=parts)

    def write(self, text: str, embedding: np.ndarray, output: str | Path, sample_rate: int = 22050,
              accent: str = "us", subtype: str = "PCM_16", inputs: Sequence[str | Path] = (),
              seed: int | None = None, on_piece=None, plan: list[tuple[str, str]] | None = None,
              overwrite: bool = False) -> dict:
        """Stream the clone of ``text`` to ``output`` through :func:`signals.outputs.audio_writer`: a temporary
        file beside it, renamed when complete, so an interrupted or failed run leaves no file that looks
        finished (and an existing ``output`` as it was). ``output`` may be one of ``inputs`` only with
        ``overwrite``."""
        from signals.outputs import audio_writer

        if subtype not in ("PCM_16", "FLOAT"):
            raise ValueError(f"subtype must be PCM_16 or FLOAT, got {subtype!r}")
        float32 = subtype == "FLOAT"
        output = check_output_path(output, inputs, sample_rate, float32, overwrite)
        emb = check_embedding(embedding, self.embedding_dim)
        plan = self.plan(text, accent) if plan is None else plan  # text errors before any file is created
        pause = np.zeros(int(self.synthesizer.synthesis.pause_seconds * sample_rate), np.float32)
        n, samples, unstopped = 0, 0, 0
        with audio_writer(output, sample_rate, 1, float32, inputs=inputs, overwrite=overwrite) as fh:
            for piece in self.stream(text, emb, sample_rate, accent, seed, plan=plan):
                if n:
                    fh.write(pause)
                    samples += len(pause)
                fh.write(np.clip(piece.wav, -1.0, 1.0))
                samples += len(piece.wav)
                n += 1
                unstopped += not piece.stopped
                if on_piece is not None:
                    on_piece(piece)
        return {"output": str(output), "sentences": n, "seconds": samples / sample_rate, "sample_rate": sample_rate,
                "length_guard_hits": unstopped}


def load(model: str | Path | None = None, encoder_model: str | Path | None = None,
         vocoder_model: str | Path | None = None, sr_model: str | Path | None = None,
         providers: Sequence[str] | None = None, threads: int | None = None,
         sample_rate: int = 22050, int8_decoder: bool | None = None, postfilter: bool | None = None) -> CloneRuntime:
    """The clone pipeline from its model folders (each ``--model``, else ``$SIGNALS_MODELS/<name>``, else
    the checkout's ``models/<name>``); HiFi-SR is loaded now for ``sample_rate=48000``, else on first use.
    ``int8_decoder``: the synthesizer's int8 decoder step, False for the float one (default: as
    :meth:`SynthesizerRuntime.load`, int8 when the folder has it and the providers are CPU only).
    ``postfilter``: the synthesizer folder's speaker-conditioned post-filter (default: when it has one)."""
    from signals.speech.encoder.infer import load as load_encoder
    from signals.speech.vocoder.infer import load as load_vocoder

    if sample_rate not in SAMPLE_RATES:
        raise DataError(f"sample rate {sample_rate} Hz is not offered: choose {' or '.join(map(str, SAMPLE_RATES))}")
    synth = SynthesizerRuntime.load(model, providers=providers, threads=threads, int8=int8_decoder,
                                    postfilter=postfilter)
    encoder = load_encoder(encoder_model, providers=providers, threads=threads)
    vocoder = load_vocoder(vocoder_model, providers=providers, threads=threads)
    if vocoder.sample_rate != synth.sample_rate or vocoder.n_mels != synth.model.n_mels:
        raise ModelError(f"the vocoder ({vocoder.sample_rate} Hz, {vocoder.n_mels} mels) does not take the "
                         f"synthesizer's mel ({synth.sample_rate} Hz, {synth.model.n_mels} mels)")
    sr = None
    if sample_rate == 48000:
        from signals.speech.sr.infer import load as load_sr

        sr = load_sr(sr_model, providers=providers, threads=threads)
    return CloneRuntime(synthesizer=synth, encoder=encoder, vocoder=vocoder, sr=sr, sr_model=sr_model,
                        providers=providers, threads=threads)
