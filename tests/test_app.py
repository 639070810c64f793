"""The Streamlit demo runs end to end on the shipped models (or says what is missing) without errors."""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from signals.modelfolder import REPO_MODELS
from signals.paths import REPO_ROOT

pytest.importorskip("streamlit")

TABS = ["Activity recognition", "Speaker verification", "Super-resolution", "Voice cloning"]
CLONE_MODELS = ("tts", "vocoder", "speaker_encoder")
VOICES = REPO_ROOT / "examples" / "speech"


def _app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)


def _run_app():
    return _app().run()


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _needs_clone_models() -> None:
    missing = [n for n in CLONE_MODELS if not (REPO_MODELS / n / "config.json").is_file()]
    if missing:
        pytest.skip(f"no shipped model folder for {', '.join(missing)}")


def _wav_bytes(wav: np.ndarray, sr: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wav, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_app_runs_without_exceptions():
    at = _run_app()
    _ok(at)
    assert [t.label for t in at.tabs] == TABS


def test_app_shows_results_for_shipped_models():
    at = _run_app()
    shipped = {name: (REPO_MODELS / name / "config.json").is_file()
               for name in ("har", "speaker_encoder", "super_resolution", "tts", "vocoder")}
    warnings = " ".join(w.value for w in at.warning)
    for name, present in shipped.items():
        assert (f"models/{name}" in warnings) != present, (name, warnings)
    if shipped["har"]:
        assert any("activity" in c.value for c in at.code), "HAR timeline missing"
    if shipped["speaker_encoder"]:
        assert any(m.label == "cosine similarity" for m in at.metric)


def _errors(at) -> list[str]:
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]


def _upload(at, label: str, name: str, data: bytes):
    next(u for u in at.file_uploader if u.label == label).set_value((name, data, "audio/wav")).run()
    return _errors(at)


def _header_rate(wav: bytes, rate: int) -> bytes:
    """A WAV whose header claims ``rate`` Hz (soundfile refuses to write absurd rates itself)."""
    import struct

    channels, bits = struct.unpack_from("<H", wav, 22)[0], struct.unpack_from("<H", wav, 34)[0]
    out = bytearray(wav)
    struct.pack_into("<II", out, 24, rate, rate * channels * bits // 8)
    return bytes(out)


def test_uploads_leave_no_temporary_files(tmp_path, monkeypatch):
    if not (REPO_MODELS / "super_resolution" / "config.json").is_file():
        pytest.skip("no shipped super-resolution model")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # AppTest runs the script in this process
    at = _run_app()
    next(s for s in at.selectbox if s.label == "Input").set_value("upload…").run()  # the super-resolution tab
    assert not _upload(at, "Audio file", "low.wav", (VOICES / "lowres_8k.wav").read_bytes())
    assert any(d.label == "Download 48 kHz WAV" for d in at.get("download_button"))
    assert not list(tmp_path.glob("signals_*"))
    assert _upload(at, "Audio file", "bad.wav", b"not audio" * 100)  # an error path deletes too
    assert not list(tmp_path.glob("signals_*"))


def test_bad_audio_uploads_are_messages_naming_the_file(tmp_path, monkeypatch):
    """Speaker and super-resolution tabs: unreadable, absurd-rate and wrong-channel uploads are st.error messages
    naming the uploaded file (not the temporary copy), never an exception box; nothing is left in the temp folder."""
    shipped = {n: (REPO_MODELS / n / "config.json").is_file() for n in ("speaker_encoder", "super_resolution")}
    if not all(shipped.values()):
        pytest.skip(f"needs shipped models {shipped}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    voice = (VOICES / "voice_a_1.wav").read_bytes()
    one_hz = _header_rate(voice, 1)  # once drove the speaker tab past 4 GiB (resampled 1 Hz -> 16 kHz)
    t = np.arange(16000) / 16000
    surround = _wav_bytes(np.stack([0.1 * np.sin(2 * np.pi * 440 * t)] * 3, axis=1).astype(np.float32), 16000)

    at = _run_app()
    next(s for s in at.selectbox if s.label == "Input").set_value("upload…").run()  # SR: no example run per rerun
    for name, data, expect in [("notes.wav", b"this is a text file" * 50, "notes.wav is not a readable audio file"),
                               ("one_hz.wav", one_hz, "one_hz.wav declares a sample rate of 1 Hz"),
                               ("surround.wav", surround, "surround.wav has 3 channels")]:
        errors = _upload(at, "Audio file", name, data)
        assert any(e.startswith(expect) for e in errors), (name, errors)
        assert not any("signals_" in e for e in errors), errors

    at.selectbox(key="a").set_value("upload…").run()
    for name, data, expect in [("notes.wav", b"this is a text file" * 50, "notes.wav is not a readable audio file"),
                               ("one_hz.wav", one_hz, "one_hz.wav declares a sample rate of 1 Hz"),
                               ("empty.wav", _wav_bytes(np.zeros(0, np.float32), 16000), "empty.wav contains no audio")]:
        errors = _upload(at, "Voice A file", name, data)
        assert any(e.startswith(expect) for e in errors), (name, errors)
        assert not any("signals_" in e for e in errors), errors
    assert not list(tmp_path.glob("signals_*"))


def test_clone_tab_bundled_voice_and_bad_text():
    _needs_clone_models()
    at = _run_app()
    assert at.radio(key="clone_rate").value == (
        48000 if (REPO_MODELS / "super_resolution" / "config.json").is_file() else 22050)
    at.text_area(key="clone_text").set_value("Good morning.")
    at.button(key="clone_go").click().run()
    _ok(at)
    res = at.session_state["clone_result"]
    assert res["sample_rate"] == at.radio(key="clone_rate").value
    assert res["references"] == ["voice_a_1.wav", "voice_a_2.wav"]
    assert res["wav"].dtype == np.float32 and len(res["wav"]) > 0.3 * res["sample_rate"]
    assert len(at.dataframe) == 1 and list(at.dataframe[0].value["sentence"]) == ["Good morning."]
    assert any(d.key == "clone_download" for d in at.get("download_button"))
    assert at.get("imgs") or at.get("image"), "alignment / mel figure missing"

    # punctuation only: a message, not an exception, and the previous result is gone
    at.text_area(key="clone_text").set_value("?!... --")
    at.button(key="clone_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("nothing to pronounce" in e.value for e in at.error), [e.value for e in at.error]
    assert "clone_result" not in at.session_state
    assert not at.dataframe


def test_clone_tab_uploaded_references():
    _needs_clone_models()
    at = _app()
    at.session_state["clone_source"] = "Upload"  # the radio's choice, so that the first run shows the uploader
    at.run()
    at.file_uploader(key="clone_upload").set_value(("notes.wav", b"this is not audio" * 50, "audio/wav"))
    at.button(key="clone_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("notes.wav is not a readable audio file" in e.value for e in at.error), [e.value for e in at.error]

    t = np.arange(int(0.2 * 16000)) / 16000
    short = _wav_bytes((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    at.file_uploader(key="clone_upload").set_value(("short.wav", short, "audio/wav"))
    at.button(key="clone_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("short.wav is too short" in e.value for e in at.error), [e.value for e in at.error]

    # two good files, one longer than the 30 s the app reads, at 22.05 kHz
    import soundfile as sf

    wav, sr = sf.read(VOICES / "voice_b_1.wav", dtype="float32")
    long = _wav_bytes(np.tile(wav, 8), sr)  # about 37 s
    at.file_uploader(key="clone_upload").set_value([("b1.wav", (VOICES / "voice_b_1.wav").read_bytes(), "audio/wav"),
                                                    ("b_long.wav", long, "audio/wav")])
    at.radio(key="clone_rate").set_value(22050)
    at.text_area(key="clone_text").set_value("Hi.")
    at.button(key="clone_go").click().run()
    _ok(at)
    res = at.session_state["clone_result"]
    assert res["sample_rate"] == 22050 and res["references"] == ["b1.wav", "b_long.wav"]
    assert any("b_long.wav: only the first 30 s" in i.value for i in at.info)


def test_app_helpers():
    import importlib.util

    spec = importlib.util.spec_from_file_location("signals_app", REPO_ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)  # main() runs only as __main__
    from signals.errors import AudioError, TextError

    stereo = np.stack([np.full(48000, 0.1, np.float32), np.full(48000, 0.3, np.float32)], axis=1)
    wav, sr, cut = app._read_reference(_wav_bytes(stereo, 16000), "x.wav", max_seconds=2.0)
    assert sr == 16000 and cut and wav.shape == (32000,) and np.allclose(wav, 0.2, atol=1e-3)
    wav, sr, cut = app._read_reference(_wav_bytes(stereo, 16000), "x.wav")
    assert not cut and wav.shape == (48000,)
    with pytest.raises(AudioError, match="empty.wav is not a readable audio file"):
        app._read_reference(b"", "empty.wav")
    # the text box's max_chars is enforced by the browser (and Streamlit truncates); _clone checks too
    with pytest.raises(AudioError, match="upload at least one recording"):
        app._clone([], "Hello.", 22050)
    with pytest.raises(TextError, match="at most 1,000"):
        app._clone([("a.wav", b"")], "Hello there. " * 100, 22050)
    with pytest.raises(AudioError, match="slow.wav declares a sample rate of 1 Hz"):
        app._read_reference(_header_rate(_wav_bytes(stereo, 16000), 1), "slow.wav")


class _Upload:
    """What st.file_uploader returns, as far as the app uses it."""

    def __init__(self, name: str, data: bytes):
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


def test_app_upload_files_are_checked_cut_and_deleted(tmp_path, monkeypatch):
    import importlib.util

    import soundfile as sf

    from signals.errors import AudioError, DataError

    spec = importlib.util.spec_from_file_location("signals_app", REPO_ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    t = np.arange(5 * 16000) / 16000
    stereo = np.stack([0.1 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 440 * t)], axis=1)
    data = _wav_bytes(stereo.astype(np.float32), 16000)

    with app.RunFiles() as files:
        # longer than allowed: only the first seconds are copied (block by block), mono on request
        path, note = app._audio_upload(files, _Upload("long.wav", data), max_seconds=2.0, mono=True)
        info = sf.info(str(path))
        assert (info.frames, info.channels, info.samplerate) == (32000, 1, 16000)
        assert note == "long.wav lasts 5 s: only its first 2 s are used."
        path, note = app._audio_upload(files, _Upload("ok.wav", data), max_seconds=10.0, mono=False)
        assert note is None and sf.info(str(path)).channels == 2
        with pytest.raises(AudioError, match="stereo.wav has 2 channels; this tab takes 1-1"):
            app._audio_upload(files, _Upload("stereo.wav", data), max_seconds=10.0, mono=False, max_channels=1)
        with pytest.raises(AudioError, match="fast.wav declares a sample rate of 1,?000,?000 Hz"):
            app._audio_upload(files, _Upload("fast.wav", _header_rate(data, 1_000_000)), 10.0, mono=True)
        # messages name the upload, not its temporary copy, and the app's control, not the CLI flag
        exc = DataError(f"{path}: no 'time' column to infer the sample rate from; give the rate (--sample-rate HZ)")
        assert files.message(exc) == ("ok.wav: no 'time' column to infer the sample rate from; give the rate "
                                      '(the "Sample rate" box)')
        assert len(list(tmp_path.glob("signals_*"))) == 5
    assert not list(tmp_path.glob("signals_*"))

    with pytest.raises(RuntimeError), app.RunFiles() as files:  # an error on the way out deletes too
        files.save(_Upload("x.csv", b"time,acc_x\n"))
        raise RuntimeError("boom")
    assert not list(tmp_path.glob("signals_*"))

    assert app._har_rate(0.0) is None and app._har_rate(50.0) == 50.0
    for bad in (0.001, 1.0, 1e12, float("nan")):  # 1 Hz: below the command line's range too
        with pytest.raises(DataError, match="out of range"):
            app._har_rate(bad)


def test_app_is_torch_free():
    """The whole app, voice cloning included, runs with every `import torch` failing."""
    _needs_clone_models()
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchaudio'):\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(REPO_ROOT / 'app.py')!r}, default_timeout=180).run()\n"
        "at.radio(key='clone_rate').set_value(22050)\n"
        "at.text_area(key='clone_text').set_value('Yes.')\n"
        "at.button(key='clone_go').click().run()\n"
        "print([e.value for e in at.exception], [e.value for e in at.error], 'clone_result' in at.session_state,"
        " 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[] [] True False", out.stdout + out.stderr


def test_har_tab_marks_postural_transitions_with_the_hapt_model():
    if not all((REPO_MODELS / n / "config.json").is_file() for n in ("har", "har-hapt")):
        pytest.skip("needs shipped models/har and models/har-hapt")
    at = _run_app()
    _ok(at)
    toggle = next(t for t in at.toggle if t.label.startswith("Mark postural transitions"))
    assert toggle.value  # on by default for a 6-class model when the HAPT model is there
    timeline = next(c.value for c in at.code if "activity" in c.value)
    assert "after" in timeline.splitlines()[0] and "LIE_TO_STAND" in timeline
    toggle.set_value(False).run()
    _ok(at)
    timeline = next(c.value for c in at.code if "activity" in c.value)
    assert "after" not in timeline and "LIE_TO_STAND" not in timeline


def test_har_tab_pairs_lite_with_the_device_sized_transition_model():
    if not all((REPO_MODELS / n / "config.json").is_file() for n in ("har", "har-lite", "har-hapt-lite")):
        pytest.skip("needs shipped models/har, models/har-lite and models/har-hapt-lite")
    at = _run_app()
    model = next(s for s in at.selectbox if s.label == "Model")
    model.set_value(next(o for o in model.options if o.startswith("FusionActNet-Lite ("))).run()
    _ok(at)
    toggle = next(t for t in at.toggle if t.label.startswith("Mark postural transitions"))
    assert toggle.value and toggle.label.endswith("models/har-hapt-lite)")
    assert "LIE_TO_STAND" in next(c.value for c in at.code if "activity" in c.value)
