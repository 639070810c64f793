"""signals demo: activity recognition, speaker verification, speech super-resolution and voice cloning.

    streamlit run app.py

Runs on the models shipped in ``models/`` through the torch-free runtime (numpy + onnxruntime).
Every tab works on the bundled examples (``examples/``) or on your own upload.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import streamlit as st  # noqa: E402

from signals.errors import AudioError, DataError, SignalsError  # noqa: E402
from signals.har.frontend import MAX_RATE_HZ as HAR_MAX_RATE  # noqa: E402
from signals.har.frontend import MIN_RATE_HZ as HAR_MIN_RATE  # noqa: E402
from signals.modelfolder import find_model  # noqa: E402
from signals.paths import REPO_ROOT  # noqa: E402
from signals.speech.audio import AUDIO_SUFFIXES, MIN_SAMPLE_RATE, check_sample_rate  # noqa: E402

EXAMPLES = REPO_ROOT / "examples"
log = logging.getLogger(__name__)


# the upload widgets accept every suffix the audio layer reads (signals.speech.audio.AUDIO_SUFFIXES)
AUDIO_TYPES = [s.lstrip(".") for s in AUDIO_SUFFIXES]

# --- what one upload may cost ----------------------------------------------------------------------
# The upload itself is capped by server.maxUploadSize in .streamlit/config.toml; these bound what the
# app does with an accepted one, so that memory and CPU do not grow with the upload's length and a
# corrupt header cannot make a resampler allocate gigabytes. Headers are read (soundfile.info) before
# any sample is decoded; their sample rate must lie in the audio layer's range (MIN_SAMPLE_RATE ..
# MAX_SAMPLE_RATE of signals.speech.audio, the range the command line accepts too).
AUDIO_MAX_CHANNELS = 8  # 7.1 surround; more is a broken header, not a recording
# A declared length beyond a day is a corrupt header (a 50 MB upload of 6 kbit/s Opus lasts under 19 h)
AUDIO_MAX_DECLARED_SECONDS = 24 * 3600
SPEAKER_MAX_SECONDS = 60.0  # of each voice compared: enough for a stable d-vector, and bounded memory
# Super-resolution runs at roughly real time on two CPU cores (60 s of 16 kHz input: 120 s measured on a
# busy 2-core machine), so one click is kept to a minute or two; `signals speech upsample` streams any length.
SR_MAX_SECONDS = 60.0
# Spectrograms cover at most this much: drawing two 48 kHz spectrograms costs ~7 MB per second shown (measured
# peak: +75 MB for 10 s, +220 MB for 30 s), and a longer one is too dense to read at this size anyway.
SR_PLOT_SECONDS = 10.0
COPY_BLOCK_FRAMES = 1 << 16  # frames per block when cutting an upload to its first seconds (bounded memory)

# Command-line hints in library messages -> the app control that does the same (regex, replacement)
CLI_HINTS = (
    (r"\(--sample-rate(?: HZ)?\)", '(the "Sample rate" box)'),
    (r"--sample-rate(?: HZ)?", 'the "Sample rate" box'),
    (r"--lag\b", 'the "Smoothing lag" slider'),
    # no app control: the command line writes float WAVs, the app 16-bit ones
    (r"write a \.wav with --float", "run `signals speech upsample --float` for a float WAV"),
)


class RunFiles:
    """The temporary files of one script run (uploads saved to disk, cut copies, outputs).

    Every file is registered the moment it exists and deleted when the ``with`` block ends, however
    it ends: normally, on an error, or when Streamlit stops the run for a rerun (it raises inside the
    script). Each file remembers the name of the upload it stands for, so messages can name that.
    """

    def __init__(self) -> None:
        self._paths: list[Path] = []
        self.names: dict[str, str] = {}  # temporary path -> the uploaded file's name

    def __enter__(self) -> RunFiles:
        return self

    def __exit__(self, *exc) -> None:
        for path in self._paths:
            try:
                path.unlink(missing_ok=True)
            except OSError:  # never hide the run's own outcome behind a cleanup failure
                log.warning("could not delete temporary file %s", path, exc_info=True)
        self._paths.clear()

    def new(self, suffix: str, name: str) -> Path:
        """An empty temporary file (deleted at the end of the run) that messages call ``name``."""
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="signals_")
        path = Path(tmp)
        self._paths.append(path)
        self.names[str(path)] = name
        os.close(fd)
        return path

    def save(self, upload) -> Path:
        """Uploaded bytes -> a temporary file that keeps the original suffix (the loaders look at it)."""
        path = self.new(Path(upload.name).suffix, upload.name)
        path.write_bytes(upload.getvalue())
        return path

    def message(self, exc: BaseException | str) -> str:
        """The exception's text for the app's user: upload names instead of temporary paths, app controls
        instead of command-line options."""
        text = str(exc)
        for tmp, name in sorted(self.names.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(tmp, name)
        for pattern, control in CLI_HINTS:
            text = re.sub(pattern, control, text)
        return text


def _show_error(files: RunFiles, exc: BaseException, what: str, subject: str) -> None:
    """A bad input (:class:`SignalsError`) as its message; anything else as a short note naming ``subject`` (the
    input(s) the tab was working on), its traceback in the server log. Never Streamlit's traceback box."""
    if isinstance(exc, SignalsError):
        st.error(files.message(exc))
        return
    log.error("%s of %s failed", what, subject, exc_info=exc)
    st.error(f"{what} of {subject} failed ({type(exc).__name__}: {files.message(exc)}); "
             "details are in the server log.")


def _check_audio_header(path: Path, name: str, max_channels: int = AUDIO_MAX_CHANNELS):
    """``soundfile.info`` of an upload, refused (:class:`AudioError` naming it) when its header declares a rate,
    channel count or length no recording has; nothing is decoded."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:  # LibsndfileError / RuntimeError / TypeError by format
        raise _unreadable_upload(name, exc, str(path)) from None
    _check_audio_params(name, info.samplerate, info.channels, max_channels)
    if info.frames <= 0:
        raise AudioError(f"{name} contains no audio samples")
    if info.frames / info.samplerate > AUDIO_MAX_DECLARED_SECONDS:
        raise AudioError(f"{name}: its header declares {info.frames / info.samplerate / 3600:,.0f} h of audio; "
                         "the file is corrupt")
    return info


def _unreadable_upload(name: str, exc: Exception, tmp: str | None = None) -> AudioError:
    """libsndfile's refusal of an upload, naming the upload (never the temporary file ``tmp``)."""
    why = getattr(exc, "error_string", None) or (str(exc).replace(tmp, name) if tmp else str(exc))
    return AudioError(f"{name} is not a readable audio file ({why}); use WAV, FLAC, OGG or MP3")


def _check_audio_params(name: str, rate: int, channels: int, max_channels: int = AUDIO_MAX_CHANNELS) -> None:
    check_sample_rate(int(rate), name=name)
    if not 1 <= channels <= max_channels:
        raise AudioError(f"{name} has {channels} channels; this tab takes 1-{max_channels}")


def _first_seconds(files: RunFiles, src: Path, name: str, seconds: float, mono: bool) -> Path:
    """The first ``seconds`` of ``src`` copied block by block to a temporary 32-bit float WAV (mixed to mono
    when ``mono``); memory stays at one block whatever the file's length."""
    import soundfile as sf

    dst = files.new(".wav", name)
    with sf.SoundFile(str(src)) as fin:
        limit = int(seconds * fin.samplerate)
        channels = 1 if mono else fin.channels
        with sf.SoundFile(str(dst), "w", samplerate=fin.samplerate, channels=channels, subtype="FLOAT",
                          format="WAV") as fout:
            left = limit
            while left > 0:
                block = fin.read(min(COPY_BLOCK_FRAMES, left), dtype="float32", always_2d=True)
                if not len(block):
                    break
                fout.write(block.mean(axis=1) if mono else block)
                left -= len(block)
    return dst


def _audio_upload(files: RunFiles, upload, max_seconds: float, mono: bool,
                  max_channels: int = AUDIO_MAX_CHANNELS) -> tuple[Path, str | None]:
    """An audio upload, header checked, as a file of at most ``max_seconds`` -> (path, note when it was cut)."""
    path = files.save(upload)
    info = _check_audio_header(path, upload.name, max_channels)
    if info.frames / info.samplerate <= max_seconds and not (mono and info.channels > 1):
        return path, None
    cut = _first_seconds(files, path, upload.name, max_seconds, mono)
    if info.frames / info.samplerate <= max_seconds:
        return cut, None
    return cut, f"{upload.name} lasts {info.duration:.0f} s: only its first {max_seconds:.0f} s are used."


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
    "har-hapt-lite": "FusionActNet-Lite HAPT (device-sized, distilled; 12 classes)",
}
# the transition models a 6-class model may be paired with in the transition-aware timeline, first present
# first: the device-sized one for the device-sized model
HAR_TRANSITIONS = {"har": ("har-hapt",), "har-lite": ("har-hapt-lite", "har-hapt")}


@st.cache_resource
def _har_runtime(name: str, int8: bool):
    from signals.har.infer import HARRuntime

    return HARRuntime.load(find_model(name), int8=int8)


@st.cache_resource
def _har_pair(name: str, transitions: str, int8: bool):
    from signals.har.infer import TransitionAwareRuntime

    return TransitionAwareRuntime.pair(_har_runtime(name, int8), _har_runtime(transitions, int8))


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


HAR_PLOT_SECONDS = 600.0  # the signal plot covers at most the first 10 minutes (30,000 points per axis)


def _har_plot(path: Path, sample_rate: float | None, segments) -> tuple[plt.Figure, float]:
    """Accelerometer over at most the first HAR_PLOT_SECONDS + the timeline -> (figure, seconds plotted)."""
    from signals.har.frontend import HAPT_RATE, iter_recording

    limit = int(HAR_PLOT_SECONDS * HAPT_RATE)
    chunks, n = [], 0
    source = iter_recording(path, sample_rate=sample_rate)  # streamed at HAPT_RATE; stop once the plot is full
    try:
        for acc, _ in source:
            chunks.append(acc[: limit - n])
            n += len(chunks[-1])
            if n >= limit:
                break
    finally:
        source.close()  # closes the CSV now rather than when the generator is collected
    acc = np.concatenate(chunks) if chunks else np.zeros((0, 3))
    seconds = len(acc) / HAPT_RATE
    t = np.arange(len(acc)) / HAPT_RATE
    shown = [s for s in segments if s.start_s < seconds]
    labels = sorted({s.label for s in shown})
    cmap = plt.cm.tab10 if len(labels) <= 10 else plt.cm.tab20  # HAPT: up to 12 classes
    colors = {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 4.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for i, axis in enumerate("xyz"):
        ax1.plot(t, acc[:, i], lw=0.7, label=f"acc {axis}")
    ax1.set(ylabel="acceleration (g)")
    ax1.legend(loc="upper right", fontsize=8, ncol=3)
    for s in shown:
        end = min(s.end_s, seconds)
        ax2.axvspan(s.start_s, end, color=colors[s.label], alpha=0.35 + 0.65 * s.confidence)
        ax1.axvspan(s.start_s, end, color=colors[s.label], alpha=0.08)
    ax2.set(yticks=[], xlabel="time (s)", ylabel="activity")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[lab]) for lab in labels]
    ax2.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=max(1, min(6, len(labels))),
               fontsize=8)
    fig.tight_layout()
    return fig, seconds


def _har_rate(rate: float) -> float | None:
    """The sample-rate box -> ``sample_rate`` for the loaders (None: from the time column).

    The box takes the range the command line's --sample-rate does (signals.har.frontend's MIN_RATE_HZ ..
    MAX_RATE_HZ): beyond it the resampler to 50 Hz would make (or drop) thousands of samples per recorded
    one; 0.001 Hz or 1e12 Hz once took the server down. The widget's bounds cannot say "0 or at least
    MIN_RATE_HZ", and a value that slipped through would be costly, so it is checked here too."""
    if rate == 0:
        return None
    if not (np.isfinite(rate) and HAR_MIN_RATE <= rate <= HAR_MAX_RATE):
        raise DataError(f"sample rate {rate:g} Hz is out of range: use {HAR_MIN_RATE:g}-{HAR_MAX_RATE:,.0f} Hz, "
                        "or 0 to read it from the time column")
    return float(rate)


def har_tab(files: RunFiles) -> None:
    st.subheader("Human activity recognition — FusionActNet")
    st.caption("Smartphone accelerometer (g) + gyroscope (rad/s) at any rate → a timeline of activities. "
               "UCI HAR front end (median + Butterworth filters, gravity split), 2.56 s windows, 50 % overlap.")
    if _missing_model("har", "signals har train && signals har export"):
        return
    source = st.radio("Recording", ["Example: HAPT experiment 4, user 2 (40 s)", "Upload a CSV"], horizontal=True)
    rate = 0.0
    if source.startswith("Example"):
        path = EXAMPLES / "har" / "exp04_user02.csv"
        st.caption("Ground truth: LAYING 0–10.3 s, LIE_TO_STAND 10.3–14 s, unlabelled movement, WALKING from 28.1 s.")
    else:
        st.caption("Columns `acc_x,acc_y,acc_z` (g), `gyro_x,gyro_y,gyro_z` (rad/s) and optionally `time` (s).")
        upload = st.file_uploader("CSV recording", type=["csv", "txt"])
        rate = st.number_input(f"Sample rate (Hz; 0 = from the time column; at most {HAR_MAX_RATE:,.0f})",
                               min_value=0.0, max_value=HAR_MAX_RATE, value=0.0, key="har_rate")
        if upload is None:
            return
        path = files.save(upload)
    subject = path.name if source.startswith("Example") else upload.name
    models = _har_models()
    name = models[st.selectbox("Model", list(models))]
    int8 = st.toggle("int8 model", value=False)
    try:
        from signals.har.infer import format_timeline, predict_recording

        sample_rate = _har_rate(rate)
        runtime = _har_runtime(name, int8)
        partner = next((t for t in HAR_TRANSITIONS.get(name, ()) if t in models.values()), None)
        if partner:
            if st.toggle(f"Mark postural transitions (transition-aware decoding with models/{partner})", value=True,
                         help="Both models run on every window: this model says which activity, the 12-class "
                              "HAPT model where a sit-to-stand or lie-to-sit happens; each change of activity is "
                              "placed in the middle of the transition (see models/har/README.md)."):
                runtime = _har_pair(name, partner, int8)
        hmm = runtime.labels.smoothing
        smooth = st.toggle("Smoothed timeline (HMM, fixed-lag Viterbi)", value=hmm is not None, disabled=hmm is None,
                           help="Transition costs fitted on the training subjects' recordings; off: one label per "
                                "window (raw argmax).")
        lag = None
        if smooth and hmm is not None:
            lag = st.slider("Smoothing lag (windows of 1.28 s: how late each label is decided)", 0, 16, hmm.lag)
        segments = predict_recording(runtime, path, sample_rate=sample_rate, smoothing=smooth, lag=lag)
        fig, seconds = _har_plot(path, sample_rate, segments)
        st.pyplot(fig)
        plt.close(fig)  # pyplot keeps every figure alive until closed: one leaked per rerun otherwise
        total = segments[-1].end_s if segments else 0.0
        if total > seconds + 1:
            st.caption(f"The plot shows the first {seconds / 60:.0f} min of {total / 60:.0f} min; "
                       "the timeline below covers the whole recording.")
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message in the tab, never a traceback box
        _show_error(files, exc, "Activity recognition", subject)
        return
    st.code(format_timeline(segments), language=None)


# --------------------------------------------------------------------------------------------------
# Speaker verification


@st.cache_resource
def _encoder():
    from signals.speech.encoder.infer import EncoderRuntime

    return EncoderRuntime.load()


def _pick_audio(label: str, default: int, key: str, files: RunFiles, names: list[str]) -> Path | None:
    """A bundled voice or an upload (header checked, mono, at most SPEAKER_MAX_SECONDS) -> its file; its name
    is appended to ``names`` (for messages)."""
    options = sorted(p.name for p in (EXAMPLES / "speech").glob("voice_*.wav"))
    choice = st.selectbox(label, options + ["upload…"], index=default, key=key)
    if choice != "upload…":
        path = EXAMPLES / "speech" / choice
        names.append(choice)
        st.audio(str(path))
        return path
    upload = st.file_uploader(f"{label} file", type=AUDIO_TYPES, key=key + "_up")
    if upload is None:
        return None
    names.append(upload.name)
    path, note = _audio_upload(files, upload, SPEAKER_MAX_SECONDS, mono=True)
    if note:
        st.info(note)
    return path


def speaker_tab(files: RunFiles) -> None:
    st.subheader("Speaker verification — GE2E speaker encoder")
    st.caption("256-d voice embeddings (3-layer LSTM over 40-band mels, Resemblyzer weights). "
               "Same speaker when the S-norm score (cosine normalised against an impostor cohort) passes a "
               "threshold calibrated on non-test speakers.")
    if _missing_model("speaker_encoder", "signals speech encoder convert"):
        return
    col_a, col_b = st.columns(2)
    names: list[str] = []
    try:
        with col_a:
            a = _pick_audio("Voice A", 0, "a", files, names)
        with col_b:
            b = _pick_audio("Voice B", 1, "b", files, names)
        if a is None or b is None:
            return
        enc = _encoder()
        result = enc.verify(a, b)
    except Exception as exc:  # noqa: BLE001 - a bad upload is a message in the tab, not a traceback box
        _show_error(files, exc, "Speaker verification", " and ".join(names))
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
        plt.close(fig)  # pyplot keeps every figure alive until closed: one leaked per rerun otherwise


# --------------------------------------------------------------------------------------------------
# Super-resolution


@st.cache_resource
def _upsampler():
    from signals.speech.sr.infer import load

    return load()


def _read_start(path: Path, seconds: float) -> tuple[np.ndarray, int]:
    """At most the first ``seconds`` of an audio file, mixed to mono -> (float32 [T], rate); nothing more is decoded."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as fh:
        rate = int(fh.samplerate)
        wav = fh.read(frames=int(seconds * rate), dtype="float32", always_2d=True)
    return wav.mean(axis=1), rate


@st.cache_data(max_entries=8, show_spinner=False)
def _upsample_example(name: str, mtime: float) -> tuple[bytes, dict]:
    """A bundled example upsampled once per server, not on every rerun (any widget change reruns every tab);
    ``mtime`` keys the cache to the file's version. Returns the 48 kHz WAV's bytes and upsample_file's info."""
    with RunFiles() as files:
        out_path = files.new(".wav", f"{Path(name).stem}_48k.wav")
        info = _upsampler().upsample_file(EXAMPLES / "speech" / name, out_path)
        return out_path.read_bytes(), info


def sr_tab(files: RunFiles) -> None:
    st.subheader("Speech super-resolution — HiFi-SR")
    st.caption("Any input rate (4–48 kHz) → 48 kHz: a transformer over the low-resolution mel feeding a "
               "HiFi-GAN upsampler; the input's own band is kept and only the missing band is generated, "
               "its level per band and frame set by a small learned envelope net.")
    if _missing_model("super_resolution", "signals speech sr train"):
        return
    options = sorted(p.name for p in (EXAMPLES / "speech").glob("lowres_*.wav"))
    choice = st.selectbox("Input", options + ["upload…"])
    name = choice
    try:
        if choice == "upload…":
            upload = st.file_uploader("Audio file", type=AUDIO_TYPES)
            st.caption(f"Mono or stereo, {MIN_SAMPLE_RATE:,} Hz or more; the first {SR_MAX_SECONDS:.0f} s are "
                       "upsampled (`signals speech upsample` takes any length).")
            if upload is None:
                return
            name = upload.name
            path, note = _audio_upload(files, upload, SR_MAX_SECONDS, mono=False, max_channels=2)
            if note:
                st.info(note)
        else:
            name, path = choice, EXAMPLES / "speech" / choice
        # Streamed file to file (constant memory in the length); only the played and plotted parts are read back.
        out_path = files.new(".wav", f"{Path(name).stem}_48k.wav")
        with st.spinner("Upsampling…"):
            if choice == "upload…":
                info = _upsampler().upsample_file(path, out_path)
            else:
                output, info = _upsample_example(choice, path.stat().st_mtime)
                out_path.write_bytes(output)
        rate_out = _upsampler().sample_rate
        for warning in info.get("warnings", ()):  # clipping (the app writes 16-bit output)
            st.warning(files.message(warning))
        from signals.speech.audio import resample

        wav, sr = _read_start(path, SR_MAX_SECONDS)
        out, _ = _read_start(out_path, SR_PLOT_SECONDS)
        output = out_path.read_bytes()  # a 16-bit WAV of at most SR_MAX_SECONDS (11.5 MB stereo)
    except Exception as exc:  # noqa: BLE001 - a bad upload is a message in the tab, not a traceback box
        _show_error(files, exc, "Super-resolution", name)
        return
    col_in, col_out = st.columns(2)
    with col_in:
        st.markdown(f"**Input** — {sr:,} Hz")
        st.audio(_wav_bytes(wav, sr), format="audio/wav")
    with col_out:
        st.markdown(f"**Output** — {rate_out:,} Hz, {info['seconds']:.1f} s")
        st.audio(output, format="audio/wav")
        st.download_button(f"Download {rate_out // 1000} kHz WAV", output, file_name=f"{Path(name).stem}_48k.wav",
                           mime="audio/wav")
    plotted = min(SR_PLOT_SECONDS, len(wav) / sr)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
    _spectrogram(axes[0], resample(wav[: int(plotted * sr)], sr, rate_out), rate_out,
                 f"input ({sr} Hz, resampled to {rate_out / 1000:g} kHz)")
    _spectrogram(axes[1], out, rate_out, f"HiFi-SR output ({rate_out / 1000:g} kHz)")
    fig.tight_layout()
    st.pyplot(fig)
    plt.close(fig)
    if info["seconds"] > plotted + 1:
        st.caption(f"Spectrograms of the first {plotted:.0f} s of {info['seconds']:.0f} s.")


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

    try:
        with sf.SoundFile(io.BytesIO(data)) as fh:
            rate = int(fh.samplerate)
            _check_audio_params(name, rate, int(fh.channels))  # before decoding: a 1 Hz header is refused here
            limit = int(max_seconds * rate)
            wav = fh.read(frames=limit + 1, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        raise _unreadable_upload(name, exc) from exc
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
    with RunFiles() as files:  # temporary upload files live for this script run only, however it ends
        with har:
            har_tab(files)
        with speaker:
            speaker_tab(files)
        with sr:
            sr_tab(files)
    with clone:
        clone_tab()


if __name__ == "__main__":  # `streamlit run app.py` (and AppTest) run this file as __main__; tests import the helpers
    main()
