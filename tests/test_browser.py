"""The demo in a real browser: `streamlit run app.py` driven by Playwright + Chromium.

AppTest (tests/test_app.py) runs the script without a browser; this test catches what only the served app
shows: exception boxes in any tab, bad uploads going through the real upload path, and a screenshot of
every tab in test-output/browser/ (git-ignored) to look at.

Needs the `playwright` package (the `dev` extra) and a Chromium. Playwright's own browser download needs
the internet, so a system Chromium is used (Debian: `apt-get install chromium`; `.ci/run` installs it where
it can); $SIGNALS_CHROMIUM overrides the path. Without either the test skips and says why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from signals.modelfolder import REPO_MODELS
from signals.paths import REPO_ROOT

pytest.importorskip("streamlit")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

SCREENSHOTS = REPO_ROOT / "test-output" / "browser"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Chromium as root needs --no-sandbox; the rest stop it reaching for Google services, which on a closed
# network hang or fail the page load.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
TABS = ["Activity recognition", "Speaker verification", "Super-resolution", "Voice cloning"]
SERVER_START_S = 90  # streamlit imports + the first script run on a slow shared CI runner
RUN_TIMEOUT_MS = 240_000  # one script run: every tab recomputes (HAR, two embeddings, super-resolution)
HEALTH_POLL_S = 0.5


def _chromium() -> str | None:
    override = os.environ.get("SIGNALS_CHROMIUM")
    if override:
        return override if Path(override).is_file() else None
    return next((p for p in map(shutil.which, CHROMIUM_CANDIDATES) if p), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run app.py` on a free port -> (url, its temporary folder); stopped after the module."""
    if _chromium() is None:
        pytest.skip(f"no Chromium found ({', '.join(CHROMIUM_CANDIDATES)} or $SIGNALS_CHROMIUM); "
                    "install it with `apt-get install chromium`")
    port = _free_port()
    tmp = tmp_path_factory.mktemp("server_tmp")  # the app's TMPDIR: its upload copies must be gone afterwards
    log = tmp_path_factory.mktemp("server_log") / "streamlit.log"
    env = {**os.environ, "TMPDIR": str(tmp)}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start (exit {proc.poll()}):\n{log.read_text(errors='replace')}")
            time.sleep(HEALTH_POLL_S)
        yield url, tmp, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _idle(page) -> None:
    """Wait until the script run the last action started has finished."""
    page.wait_for_timeout(300)  # let a widget change reach the server and flip the state to running
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=RUN_TIMEOUT_MS)


def _no_exception(page, where: str) -> None:
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, f"{where}: exception box: {boxes.first.inner_text()}"


def _tab(page, label: str):
    page.get_by_role("tab", name=label).click()
    return page.get_by_role("tabpanel", name=label)


def _shot(page, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _expect_error(panel, text: str) -> None:
    panel.locator('[data-testid="stAlert"]', has_text=text).first.wait_for(timeout=RUN_TIMEOUT_MS)


def test_every_tab_and_bad_uploads_in_a_browser(server, tmp_path):
    url, server_tmp, proc = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    wrong_columns = tmp_path / "wrong_columns.csv"
    wrong_columns.write_text("a,b,c\n1,2,3\n4,5,6\n")
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is a text file, not audio\n" * 20)

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.goto(url, timeout=RUN_TIMEOUT_MS)
            page.get_by_role("tab", name=TABS[0]).wait_for(timeout=RUN_TIMEOUT_MS)
            _idle(page)
            assert [t.inner_text().strip() for t in page.get_by_role("tab").all()] == TABS
            for i, label in enumerate(TABS):
                _tab(page, label)
                _no_exception(page, label)
                _shot(page, f"{i + 1}-{label.lower().replace(' ', '-')}")

            if (REPO_MODELS / "har" / "config.json").is_file():
                panel = _tab(page, "Activity recognition")
                panel.get_by_text("Upload a CSV").click()
                _idle(page)
                panel.locator('input[type="file"]').set_input_files(str(wrong_columns))
                _expect_error(panel, "wrong_columns.csv: line 1: missing columns")
                _idle(page)
                _no_exception(page, "HAR upload")
                _shot(page, "5-activity-recognition-bad-csv")

            if (REPO_MODELS / "super_resolution" / "config.json").is_file():
                panel = _tab(page, "Super-resolution")
                panel.locator('[data-testid="stSelectbox"]').first.click()
                page.get_by_role("option", name="upload…").click()
                _idle(page)
                panel.locator('input[type="file"]').set_input_files(str(not_audio))
                _expect_error(panel, "notes.wav is not a readable audio file")
                _idle(page)
                _no_exception(page, "super-resolution upload")
                _shot(page, "6-super-resolution-bad-audio")
        finally:
            browser.close()

    assert proc.poll() is None, "the server died"
    left = sorted(p.name for p in server_tmp.glob("signals_*"))  # RunFiles' prefix (libraries keep their own)
    assert not left, f"the app left temporary upload files behind: {left}"
