"""The Streamlit demo runs end to end on the shipped models (or says what is missing) without errors."""

from __future__ import annotations

import pytest

from signals.modelfolder import REPO_MODELS
from signals.paths import REPO_ROOT

pytest.importorskip("streamlit")


def _run_app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)
    return at.run()


def test_app_runs_without_exceptions():
    at = _run_app()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.label for t in at.tabs] == ["Activity recognition", "Speaker verification", "Super-resolution"]
    assert not at.error, [e.value for e in at.error]


def test_app_shows_results_for_shipped_models():
    at = _run_app()
    shipped = {name: (REPO_MODELS / name / "config.json").is_file()
               for name in ("har", "speaker_encoder", "super_resolution")}
    warnings = " ".join(w.value for w in at.warning)
    for name, present in shipped.items():
        assert (f"models/{name}" in warnings) != present, (name, warnings)
    if shipped["har"]:
        assert any("activity" in c.value for c in at.code), "HAR timeline missing"
    if shipped["speaker_encoder"]:
        assert any(m.label == "cosine similarity" for m in at.metric)
