"""signals demo: activity recognition, speaker verification, speech super-resolution and voice cloning.

    streamlit run app.py

Runs on the models shipped in ``models/`` through the torch-free runtime (numpy + onnxruntime).
Every tab works on the bundled examples (``examples/``) or on your own upload.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import streamlit as st  # noqa: E402

from signals.errors import SignalsError  # noqa: E402
from signals.modelfolder import find_model  # noqa: E402
from signals.paths import REPO_ROOT  # noqa: E402
from signals.speech.audio import AUDIO_SUFFIXES  # noqa: E402

EXAMPLES = REPO_ROOT / "examples"
log = logging.getLogger(__name__)


# the upload widgets accept every suffix the audio layer reads (signals.speech.audio.AUDIO_SUFFIXES)
AUDIO_TYPES = [s.lstrip(".") for s in AUDIO_SUFFIXES]

def _save_upload(upload, cleanup: contextlib.ExitStack) -> Path:
    """Uploaded bytes -> a temporary file that keeps the original suffix (the loaders look at it).

    The file is deleted when ``cleanup`` (one per script run, see :func:`main`) closes.
    """
    suffix = Path(upload.name).suffix
    tmp = tempfile.NamedTemporaryFile(delete=False, suffix=suffix, prefix="signals_")
    path = Path(tmp.name)
    cleanup.callback(path.unlink, missing_ok=True)
    with tmp:
        tmp.write(upload.getvalue())
    return path


def _missing_model(name: str, how: str) -> bool:
    try:
        find_model(name)
        return False
    except SignalsError as exc:
        st.warning(f"{exc}. Build it with `{how}`.")
        return True


def _wav_bytes(wav: np.ndarray, sr: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(wav, -1, 1), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _spectrogram(ax, wav: np.ndarray, sr: int, title: str) -> None:
    n_fft, hop = 1024, 256
    from signals.speech.features import stft

    frames = stft(np.pad(wav, (0, n_fft)), n_fft, hop, window=np.hanning(n_fft), center=False, dtype=np.float64)
    spec = 20 * np.log10(np.abs(frames).T + 1e-6)
    ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=spec.max() - 90, vmax=spec.max(),
              extent=[0, len(wav) / sr, 0, sr / 2000])
    ax.set(title=title, xlabel="time (s)", ylabel="kHz")


# --------------------------------------------------------------------------------------------------
# Activity recognition


# HAR model folders the tab offers (those found by signals.modelfolder.find_model), in menu order
HAR_MODELS = {
    "har": "FusionActNet (7.4 M parameters; 6 activities)",
    "har-lite": "FusionActNet-Lite (device-sized, distilled; 6 activities)",
    "har-hapt": "FusionActNet HAPT (12 classes: 6 activities + postural transitions)",
}


@st.cache_resource
def _har_runtime(name: str, int8: bool):
    from signals.har.infer import HARRuntime

    return HARRuntime.load(find_model(name), int8=int8)


def _har_models() -> dict[str, str]:
    """Menu label -> folder name of the HAR models present (the full model is checked by the caller)."""
    found = {}
    for name, label in HAR_MODELS.items():
        try:
            find_model(name)
        except SignalsError:
            continue
        found[label] = name
    return found


def _har_plot(path: Path, sample_rate: float | None, segments) -> plt.Figure:
    from signals.har.frontend import iter_recording

    chunks = list(iter_recording(path, sample_rate=sample_rate))
    acc = np.concatenate([a for a, _ in chunks])
    t = np.arange(len(acc)) / 50.0
    labels = sorted({s.label for s in segments})
    cmap = plt.cm.tab10 if len(labels) <= 10 else plt.cm.tab20  # HAPT: up to 12 classes
    colors = {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 4.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for i, axis in enumerate("xyz"):
        ax1.plot(t, acc[:, i], lw=0.7, label=f"acc {axis}")
    ax1.set(ylabel="acceleration (g)")
    ax1.legend(loc="upper right", fontsize=8, ncol=3)
    for s in segments:
        ax2.axvspan(s.start_s, s.end_s, color=colors[s.label], alpha=0.35 + 0.65 * s.confidence)
        ax1.axvspan(s.start_s, s.end_s, color=colors[s.label], alpha=0.08)
    ax2.set(yticks=[], xlabel="time (s)", ylabel="activity")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[lab]) for lab in labels]
    ax2.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=min(6, len(labels)),
               fontsize=8)
    fig.tight_layout()
    return fig


def har_tab(cleanup: contextlib.ExitStack) -> None:
    st.subheader("Human activity recognition — FusionActNet")
    st.caption("Smartphone accelerometer (g) + gyroscope (rad/s) at any rate → a timeline of activities. "
               "UCI HAR front end (median + Butterworth filters, gravity split), 2.56 s windows, 50 % overlap.")
    if _missing_model("har", "signals har train && signals har export"):
        return
    source = st.radio("Recording", ["Example: HAPT experiment 4, user 2 (40 s)", "Upload a CSV"], horizontal=True)
    sample_rate = None
    if source.startswith("Example"):
        path = EXAMPLES / "har" / "exp04_user02.csv"
        st.caption("Ground truth: LAYING 0–10.3 s, LIE_TO_STAND 10.3–14 s, unlabelled movement, WALKING from 28.1 s.")
    else:
        st.caption("Columns `acc_x,acc_y,acc_z` (g), `gyro_x,gyro_y,gyro_z` (rad/s) and optionally `time` (s).")
        upload = st.file_uploader("CSV recording", type=["csv", "txt"])
        rate = st.number_input("Sample rate (Hz; 0 = from the time column)", min_value=0.0, value=0.0)
        sample_rate = rate or None
        if upload is None:
            return
        path = _save_upload(upload, cleanup)
    models = _har_models()
    name = models[st.selectbox("Model", list(models))]
    int8 = st.toggle("int8 model", value=False)
    try:
        from signals.har.infer import format_timeline, predict_recording

        runtime = _har_runtime(name, int8)
        hmm = runtime.labels.smoothing
        smooth = st.toggle("Smoothed timeline (HMM, fixed-lag Viterbi)", value=hmm is not None, disabled=hmm is None,
                           help="Transition costs fitted on the training subjects' recordings; off: one label per "
                                "window (raw argmax).")
        lag = None
        if smooth and hmm is not None:
            lag = st.slider("Smoothing lag (windows of 1.28 s: how late each label is decided)", 0, 16, hmm.lag)
        segments = predict_recording(runtime, path, sample_rate=sample_rate, smoothing=smooth, lag=lag)
        st.pyplot(_har_plot(path, sample_rate, segments))
    except SignalsError as exc:
        st.error(str(exc))
        return
    st.code(format_timeline(segments), language=None)


# --------------------------------------------------------------------------------------------------
# Speaker verification


@st.cache_resource
def _encoder():
    from signals.speech.encoder.infer import EncoderRuntime

    return EncoderRuntime.load()


def _pick_audio(label: str, default: int, key: str, cleanup: contextlib.ExitStack) -> Path | None:
    options = sorted(p.name for p in (EXAMPLES / "speech").glob("voice_*.wav"))
    choice = st.selectbox(label, options + ["upload…"], index=default, key=key)
    if choice != "upload…":
        path = EXAMPLES / "speech" / choice
        st.audio(str(path))
        return path
    upload = st.file_uploader(f"{label} file", type=AUDIO_TYPES, key=key + "_up")
    return _save_upload(upload, cleanup) if upload is not None else None


def speaker_tab(cleanup: contextlib.ExitStack) -> None:
    st.subheader("Speaker verification — GE2E speaker encoder")
    st.caption("256-d voice embeddings (3-layer LSTM over 40-band mels, Resemblyzer weights). "
               "Same speaker when the S-norm score (cosine normalised against an impostor cohort) passes a "
               "threshold calibrated on non-test speakers.")
    if _missing_model("speaker_encoder", "signals speech encoder convert"):
        return
    col_a, col_b = st.columns(2)
    with col_a:
        a = _pick_audio("Voice A", 0, "a", cleanup)
    with col_b:
        b = _pick_audio("Voice B", 1, "b", cleanup)
    if a is None or b is None:
        return
    try:
        enc = _encoder()
        result = enc.verify(a, b)
    except SignalsError as exc:
        st.error(str(exc))
        return
    verdict = "same speaker" if result.same else "different speakers"
    st.metric("cosine similarity", f"{result.cosine:.3f}")
    if result.snorm is not None:
        st.metric("S-norm score", f"{result.snorm:.2f}",
                  help=f"decision on {result.method}, threshold {result.threshold:.3f}")
    (st.success if result.same else st.info)(f"**{verdict}** (threshold {result.threshold:.3f})")

    with st.expander("Similarity of all bundled voices"):
        paths = sorted((EXAMPLES / "speech").glob("voice_*.wav"))
        emb = enc.embed_files(paths)
        sim = emb @ emb.T
        fig, ax = plt.subplots(figsize=(5, 4))
        im = ax.imshow(sim, vmin=0, vmax=1, cmap="viridis")
        names = [p.stem for p in paths]
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
        fig.colorbar(im)
        fig.tight_layout()
        st.pyplot(fig)


# --------------------------------------------------------------------------------------------------
# Super-resolution


@st.cache_resource
def _upsampler():
    from signals.speech.sr.infer import load

    return load()


def sr_tab(cleanup: contextlib.ExitStack) -> None:
    st.subheader("Speech super-resolution — HiFi-SR")
    st.caption("Any input rate (4–48 kHz) → 48 kHz: a transformer over the low-resolution mel feeding a "
               "HiFi-GAN upsampler; the input's own band is kept and only the missing band is generated.")
    if _missing_model("super_resolution", "signals speech sr train"):
        return
    options = sorted(p.name for p in (EXAMPLES / "speech").glob("lowres_*.wav"))
    choice = st.selectbox("Input", options + ["upload…"])
    if choice == "upload…":
        upload = st.file_uploader("Audio file", type=AUDIO_TYPES)
        if upload is None:
            return
        path = _save_upload(upload, cleanup)
    else:
        path = EXAMPLES / "speech" / choice
    try:
        from signals.speech.audio import load_audio, resample

        wav, sr = load_audio(path)
        with st.spinner("Upsampling…"):
            out = _upsampler().upsample(wav, sr)
    except SignalsError as exc:
        st.error(str(exc))
        return
    col_in, col_out = st.columns(2)
    with col_in:
        st.markdown(f"**Input** — {sr} Hz")
        st.audio(_wav_bytes(wav, sr), format="audio/wav")
    with col_out:
        st.markdown("**Output** — 48,000 Hz")
        st.audio(_wav_bytes(out, 48000), format="audio/wav")
        st.download_button("Download 48 kHz WAV", _wav_bytes(out, 48000), file_name=f"{path.stem}_48k.wav")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
    _spectrogram(axes[0], resample(wav, sr, 48000), 48000, f"input ({sr} Hz, resampled to 48 kHz)")
    _spectrogram(axes[1], out, 48000, "HiFi-SR output (48 kHz)")
    fig.tight_layout()
    st.pyplot(fig)


# --------------------------------------------------------------------------------------------------
# Voice cloning

CLONE_MAX_CHARS = 1_000  # text box limit: about a minute of speech, so one click stays within a minute or two of CPU
CLONE_MAX_REF_SECONDS = 30.0  # of each reference recording; a longer one adds little to the d-vector, only time
CLONE_MAX_REFERENCES = 5  # uploaded files per clone (their embeddings are averaged)
CLONE_DEFAULT_TEXT = "Hello! This is my voice, cloned from a few seconds of speech."
# The bundled voices (examples/speech/voice_<x>_<n>.wav), synthetic, made by scripts/make_speech_examples.py.
BUNDLED_VOICES = {"voice_a": "flite slt (female)", "voice_b": "flite awb (male)", "voice_c": "espeak-ng en-us"}


@st.cache_resource
def _clone_runtime():
    from signals.speech.tts.infer import load

    return load()  # 22.05 kHz; HiFi-SR comes from _upsampler() (shared with the super-resolution tab) for 48 kHz


def _read_reference(data: bytes, name: str, max_seconds: float = CLONE_MAX_REF_SECONDS) -> tuple[np.ndarray, int, bool]:
    """Audio file bytes -> (mono float32 of at most the first ``max_seconds``, sample rate, whether it was cut).

    Decoded in memory (no temporary file); an unreadable file raises :class:`AudioError` naming it.
    """
    import soundfile as sf

    from signals.errors import AudioError

    try:
        with sf.SoundFile(io.BytesIO(data)) as fh:
            rate = int(fh.samplerate)
            limit = int(max_seconds * rate)
            wav = fh.read(frames=limit + 1, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        why = getattr(exc, "error_string", None) or str(exc)
        raise AudioError(f"{name} is not a readable audio file ({why}); use WAV, FLAC, OGG or MP3") from exc
    return wav[:limit].mean(axis=1), rate, len(wav) > limit


def _bundled_voices() -> dict[str, list[Path]]:
    voices: dict[str, list[Path]] = {}
    for path in sorted((EXAMPLES / "speech").glob("voice_*_*.wav")):
        voices.setdefault(path.stem.rsplit("_", 1)[0], []).append(path)
    return voices


def _clone(refs: list[tuple[str, bytes]], text: str, sample_rate: int) -> dict:
    """Reference recordings (name, bytes) + text -> the result the tab shows; SignalsError for bad input."""
    from signals.errors import AudioError, TextError
    from signals.speech.tts.infer import check_embedding

    if not refs:
        raise AudioError("upload at least one recording of the voice to clone (a few seconds of one speaker)")
    if len(text) > CLONE_MAX_CHARS:
        raise TextError(f"text has {len(text):,} characters; this demo takes at most {CLONE_MAX_CHARS:,} "
                        "(use `signals speech clone --text-file` for long texts)")
    rt = _clone_runtime()
    plan = rt.plan(text)  # text errors before any audio is made
    if sample_rate != rt.vocoder.sample_rate:
        rt = dataclasses.replace(rt, sr=_upsampler())
    t0 = time.perf_counter()
    embeds, notes = [], []
    for name, data in refs:
        wav, rate, cut = _read_reference(data, name)
        if cut:
            notes.append(f"{name}: only the first {CLONE_MAX_REF_SECONDS:.0f} s were used")
        embeds.append(rt.embed_audio(wav, rate, name=name))
    embedding = check_embedding(np.mean(embeds, axis=0), rt.embedding_dim, name="reference embedding")
    embed_s = time.perf_counter() - t0
    progress = st.progress(0.0, text=f"Synthesizing sentence 1 of {len(plan)}…")
    t0 = time.perf_counter()
    pieces = []
    for piece in rt.stream(text, embedding, sample_rate, plan=plan):
        pieces.append(piece)
        progress.progress(len(pieces) / len(plan), text=f"Synthesized sentence {len(pieces)} of {len(plan)}")
    synth_s = time.perf_counter() - t0
    progress.empty()
    pause = np.zeros(int(rt.synthesizer.synthesis.pause_seconds * sample_rate), np.float32)  # as CloneRuntime.synthesize
    wav = np.concatenate([x for p in pieces for x in (p.wav, pause)][:-1])
    return {"wav": wav, "sample_rate": sample_rate, "pieces": pieces, "references": [n for n, _ in refs],
            "notes": notes, "embed_s": embed_s, "synth_s": synth_s, "mel_rate": rt.vocoder.sample_rate,
            "hop": rt.vocoder.hop}


def _clone_figure(piece, sample_rate: int, mel_rate: int, hop: int) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1, 1.3, 1.3]})
    ax = axes[0]
    im = ax.imshow(piece.alignment.T, origin="lower", aspect="auto", cmap="viridis", interpolation="none")
    ax.set(title="attention alignment", xlabel="decoder step", ylabel="phoneme token")
    fig.colorbar(im, ax=ax, fraction=0.05)
    ax = axes[1]
    seconds = piece.mel.shape[1] * hop / mel_rate
    im = ax.imshow(piece.mel, origin="lower", aspect="auto", cmap="magma", extent=[0, seconds, 0, piece.mel.shape[0]])
    ax.set(title="synthesizer mel (log)", xlabel="time (s)", ylabel="mel band")
    fig.colorbar(im, ax=ax, fraction=0.05)
    _spectrogram(axes[2], piece.wav, sample_rate, f"output spectrogram ({sample_rate / 1000:g} kHz)")
    fig.tight_layout()
    return fig


def _show_clone(res: dict) -> None:
    wav, rate, pieces = res["wav"], res["sample_rate"], res["pieces"]
    audio_s = len(wav) / rate
    st.markdown(f"**Clone** of {', '.join(res['references'])} — {rate:,} Hz, {audio_s:.1f} s of audio, "
                f"{len(pieces)} sentence(s)")
    st.caption(f"speaker embedding {res['embed_s']:.2f} s; synthesis {res['synth_s']:.1f} s "
               f"(real-time factor {res['synth_s'] / max(audio_s, 1e-9):.2f})")
    for note in res["notes"]:
        st.info(note)
    data = _wav_bytes(wav, rate)
    st.audio(data, format="audio/wav")
    st.download_button(f"Download {rate / 1000:g} kHz WAV", data, file_name=f"clone_{rate}.wav", mime="audio/wav",
                       key="clone_download")  # the rerun it causes shows the same result (kept in session_state)
    unstopped = [str(i + 1) for i, p in enumerate(pieces) if not p.stopped]
    if unstopped:
        st.warning(f"Sentence(s) {', '.join(unstopped)} reached the decoder's length guard (the stop token never "
                   "fired): the audio may end in babble. Shorter sentences usually help.")
    st.dataframe([{"#": i + 1, "sentence": p.text, "phonemes": p.phonemes, "seconds": round(len(p.wav) / rate, 2),
                   "decoder steps": len(p.alignment), "stopped": p.stopped} for i, p in enumerate(pieces)],
                 hide_index=True)
    index = 0
    if len(pieces) > 1:
        index = st.selectbox("Plots for sentence", range(len(pieces)), key="clone_plot_sentence",
                             format_func=lambda i: f"{i + 1}: {pieces[i].text[:60]}")
    fig = _clone_figure(pieces[index], rate, res["mel_rate"], res["hop"])
    st.pyplot(fig)
    plt.close(fig)


# Its widgets rerun this tab only, not the other three tabs' analyses (st.fragment: Streamlit >= 1.37).
@getattr(st, "fragment", lambda fn: fn)
def clone_tab() -> None:
    st.subheader("Voice cloning — SV2TTS")
    st.caption("A few seconds of a voice + English text → that text in that voice: GE2E speaker embedding, "
               "speaker-conditioned Tacotron 2 (phonemes → mel), HiFi-GAN vocoder (22.05 kHz), HiFi-SR (48 kHz). "
               "The shipped synthesizer is an early training checkpoint: expect rough audio.")
    needed = (("tts", "signals speech tts train && signals speech tts export"),
              ("vocoder", "signals speech vocoder convert"),
              ("speaker_encoder", "signals speech encoder convert"))
    if any([_missing_model(name, how) for name, how in needed]):  # a list: warn about every missing one
        return
    try:
        find_model("super_resolution")
        rates = [48000, 22050]
    except SignalsError:
        rates = [22050]
    col_ref, col_text = st.columns([2, 3])
    with col_ref:
        source = st.radio("Reference voice", ["Bundled voice", "Upload"], horizontal=True, key="clone_source")
        refs: list[tuple[str, bytes]] = []
        if source == "Bundled voice":
            voices = _bundled_voices()
            if not voices:
                st.warning(f"No bundled voices in {EXAMPLES / 'speech'}; upload a recording instead.")
            else:
                voice = st.selectbox("Voice", list(voices), key="clone_voice",
                                     format_func=lambda v: f"{v} — {BUNDLED_VOICES.get(v, 'bundled')}, "
                                                           f"{len(voices[v])} recording(s)")
                st.caption("Synthetic voices made by `scripts/make_speech_examples.py` (no recorded speech is shipped); "
                           "all recordings of the voice are averaged.")
                st.audio(str(voices[voice][0]))
                refs = [(p.name, p.read_bytes()) for p in voices[voice]]
        else:
            uploads = st.file_uploader("Reference recording(s) of one speaker", type=AUDIO_TYPES,
                                       accept_multiple_files=True, key="clone_upload")
            st.caption(f"A few seconds of clean speech; several files are averaged (at most {CLONE_MAX_REFERENCES}), "
                       f"and only the first {CLONE_MAX_REF_SECONDS:.0f} s of each are used.")
            uploads = list(uploads or [])
            if len(uploads) > CLONE_MAX_REFERENCES:
                st.warning(f"{len(uploads)} files uploaded: only the first {CLONE_MAX_REFERENCES} are used.")
            refs = [(u.name, u.getvalue()) for u in uploads[:CLONE_MAX_REFERENCES]]
    with col_text:
        text = st.text_area("Text to speak", value=CLONE_DEFAULT_TEXT, max_chars=CLONE_MAX_CHARS, key="clone_text",
                            help="English; long texts are spoken sentence by sentence")
        rate = st.radio("Sample rate", rates, horizontal=True, key="clone_rate",
                        format_func=lambda r: f"{r / 1000:g} kHz" + (" (HiFi-SR)" if r == 48000 else " (vocoder)"))
        go = st.button("Synthesize", type="primary", key="clone_go")
    if go:
        st.session_state.pop("clone_result", None)
        try:
            st.session_state["clone_result"] = _clone(refs, text or "", int(rate))
        except SignalsError as exc:
            st.error(str(exc))
            return
        except Exception as exc:  # a bug, not bad input: keep the app up, the traceback goes to the server log
            log.exception("voice cloning failed")
            st.error(f"Synthesis failed unexpectedly ({type(exc).__name__}: {exc}); details are in the server log.")
            return
    result = st.session_state.get("clone_result")
    if result is not None:
        _show_clone(result)


def main() -> None:
    st.set_page_config(page_title="signals demo", layout="wide")
    st.title("signals")
    st.caption("Wearable-sensor and speech models, running on ONNX Runtime without torch.")
    har, speaker, sr, clone = st.tabs(["Activity recognition", "Speaker verification", "Super-resolution",
                                       "Voice cloning"])
    with contextlib.ExitStack() as cleanup:  # temporary upload files live for this script run only
        with har:
            har_tab(cleanup)
        with speaker:
            speaker_tab(cleanup)
        with sr:
            sr_tab(cleanup)
    with clone:
        clone_tab()


if __name__ == "__main__":  # `streamlit run app.py` (and AppTest) run this file as __main__; tests import the helpers
    main()
