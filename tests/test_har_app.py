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
    shipped = [n for n in ("har", "har-lite", "har-hapt") if (REPO_MODELS / n / "config.json").is_file()]
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
