"""The app's activity-recognition tab: the shipped HAR models to pick from and the smoothed timeline."""

from __future__ import annotations

import pytest

from signals.modelfolder import REPO_MODELS
from signals.paths import REPO_ROOT

pytest.importorskip("streamlit")


def _timeline(at) -> str:
    return next(c.value for c in at.code if "activity" in c.value)


def test_har_tab_offers_the_shipped_models_and_the_smoothed_timeline():
    from streamlit.testing.v1 import AppTest

    if not (REPO_MODELS / "har" / "config.json").is_file():
        pytest.skip("no shipped HAR model")
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()
    assert not at.exception and not at.error
    model = next(s for s in at.selectbox if s.label == "Model")
    shipped = [n for n in ("har", "har-lite", "har-hapt", "har-hapt-lite") if (REPO_MODELS / n / "config.json").is_file()]
    assert len(model.options) == len(shipped)
    smooth = next(t for t in at.toggle if t.label.startswith("Smoothed timeline"))
    smoothed = _timeline(at)
    if not smooth.value:
        pytest.skip("models/har has no smoothing HMM")
    lag = next(s for s in at.slider if s.label.startswith("Smoothing lag"))
    assert lag.value == 8
    smooth.set_value(False).run()
    assert not at.exception and not at.error
    raw = _timeline(at)
    assert len(raw.splitlines()) > len(smoothed.splitlines())  # the example flickers without smoothing
    if "har-hapt" in shipped:
        model = next(s for s in at.selectbox if s.label == "Model")  # widgets are found again after a rerun
        model.set_value(next(o for o in model.options if "HAPT" in o)).run()
        next(t for t in at.toggle if t.label.startswith("Smoothed timeline")).set_value(True).run()
        assert not at.exception and not at.error
        assert "LIE_TO_STAND" in _timeline(at)  # the example's postural transition (10.3-14.0 s)


def _errors(at) -> list[str]:
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]


def test_har_tab_bad_uploads_and_bounded_sample_rate(tmp_path, monkeypatch):
    """Bad CSVs are messages naming the uploaded file (never the temporary copy, never a CLI flag); the
    sample-rate box is bounded; the temporary copies are gone after every run."""
    import tempfile

    from streamlit.testing.v1 import AppTest

    if not (REPO_MODELS / "har" / "config.json").is_file():
        pytest.skip("no shipped HAR model")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # AppTest runs the script in this process
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)
    at.session_state["har_rate"] = 0.0
    at.run()
    next(r for r in at.radio if r.label == "Recording").set_value("Upload a CSV").run()
    rate = at.number_input(key="har_rate")
    assert (rate.min, rate.max) == (0.0, 10_000.0)  # 1e12 Hz once took the server down

    def upload(name: str, data: bytes):
        next(u for u in at.file_uploader if u.label == "CSV recording").set_value((name, data, "text/csv")).run()
        return _errors(at)

    errors = upload("wrong_columns.csv", b"a,b,c\n1,2,3\n")
    assert any(e.startswith("wrong_columns.csv: line 1: missing columns") for e in errors), errors
    errors = upload("binary.csv", bytes(range(256)) * 40)
    assert any("binary.csv" in e for e in errors), errors

    rows = (REPO_ROOT / "examples" / "har" / "exp04_user02.csv").read_text().splitlines()
    no_time = "\n".join(",".join(r.split(",")[1:]) for r in rows).encode()  # same data, no time column
    errors = upload("no_time.csv", no_time)
    assert any("no_time.csv" in e and 'the "Sample rate" box' in e for e in errors), errors
    assert not any("--" in e or "signals_" in e for e in errors), errors  # no CLI flag, no temporary path

    at.number_input(key="har_rate").set_value(50.0).run()
    assert not _errors(at)
    assert "WALKING" in _timeline(at)
    assert not list(tmp_path.glob("signals_*")), "temporary upload copies left behind"
