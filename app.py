"""signals demo: activity recognition, speaker verification and speech super-resolution.

    streamlit run app.py

Runs on the models shipped in ``models/`` through the torch-free runtime (numpy + onnxruntime).
Every tab works on the bundled examples (``examples/``) or on your own upload.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import streamlit as st  # noqa: E402

from signals.errors import SignalsError  # noqa: E402
from signals.modelfolder import find_model  # noqa: E402
from signals.paths import REPO_ROOT  # noqa: E402

EXAMPLES = REPO_ROOT / "examples"


def _save_upload(upload) -> Path:
    """Uploaded bytes -> a temporary file that keeps the original suffix (the loaders look at it)."""
    suffix = Path(upload.name).suffix
    tmp = tempfile.NamedTemporaryFile(delete=False, suffix=suffix, prefix="signals_")
    tmp.write(upload.getvalue())
    tmp.close()
    return Path(tmp.name)


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


@st.cache_resource
def _har_runtime(int8: bool):
    from signals.har.infer import HARRuntime

    return HARRuntime.load(int8=int8)


def _har_plot(path: Path, sample_rate: float | None, segments) -> plt.Figure:
    from signals.har.frontend import iter_recording

    chunks = list(iter_recording(path, sample_rate=sample_rate))
    acc = np.concatenate([a for a, _ in chunks])
    t = np.arange(len(acc)) / 50.0
    labels = sorted({s.label for s in segments})
    colors = {lab: plt.cm.tab10(i % 10) for i, lab in enumerate(labels)}
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


def har_tab() -> None:
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
        path = _save_upload(upload)
    int8 = st.toggle("int8 model", value=False)
    try:
        from signals.har.infer import format_timeline, predict_recording

        segments = predict_recording(_har_runtime(int8), path, sample_rate=sample_rate)
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


def _pick_audio(label: str, default: int, key: str) -> Path | None:
    options = sorted(p.name for p in (EXAMPLES / "speech").glob("voice_*.wav"))
    choice = st.selectbox(label, options + ["upload…"], index=default, key=key)
    if choice != "upload…":
        path = EXAMPLES / "speech" / choice
        st.audio(str(path))
        return path
    upload = st.file_uploader(f"{label} file", type=["wav", "flac", "ogg", "mp3"], key=key + "_up")
    return _save_upload(upload) if upload is not None else None


def speaker_tab() -> None:
    st.subheader("Speaker verification — GE2E speaker encoder")
    st.caption("256-d voice embeddings (3-layer LSTM over 40-band mels, Resemblyzer weights). "
               "Same speaker when the S-norm score (cosine normalised against an impostor cohort) passes a "
               "threshold calibrated on non-test speakers.")
    if _missing_model("speaker_encoder", "signals speech encoder convert"):
        return
    col_a, col_b = st.columns(2)
    with col_a:
        a = _pick_audio("Voice A", 0, "a")
    with col_b:
        b = _pick_audio("Voice B", 1, "b")
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


def sr_tab() -> None:
    st.subheader("Speech super-resolution — HiFi-SR")
    st.caption("Any input rate (4–48 kHz) → 48 kHz: a transformer over the low-resolution mel feeding a "
               "HiFi-GAN upsampler; the input's own band is kept and only the missing band is generated.")
    if _missing_model("super_resolution", "signals speech sr train"):
        return
    options = sorted(p.name for p in (EXAMPLES / "speech").glob("lowres_*.wav"))
    choice = st.selectbox("Input", options + ["upload…"])
    if choice == "upload…":
        upload = st.file_uploader("Audio file", type=["wav", "flac", "ogg", "mp3"])
        if upload is None:
            return
        path = _save_upload(upload)
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


def main() -> None:
    st.set_page_config(page_title="signals demo", layout="wide")
    st.title("signals")
    st.caption("Wearable-sensor and speech models, running on ONNX Runtime without torch.")
    har, speaker, sr = st.tabs(["Activity recognition", "Speaker verification", "Super-resolution"])
    with har:
        har_tab()
    with speaker:
        speaker_tab()
    with sr:
        sr_tab()


main()
