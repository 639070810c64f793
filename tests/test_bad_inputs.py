"""Table-driven bad-input test (the hardening issue): every case in ``tests/bad_cases_*.py``.

Each error case must end with exit status 2 and one error line naming the input, no traceback, the old
output intact and no stray file; each ok case must give a correct result. The table format is in
``tests/badinput.py``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from badinput import FIXTURES, MODELS, REPO, Case

HERE = Path(__file__).parent


def _all_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(HERE.glob("bad_cases_*.py")):
        cases += importlib.import_module(path.stem).CASES
    ids = [c.id for c in cases]
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes, f"duplicate case ids: {dupes}"
    return cases


CASES = _all_cases()


def _tree(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder`` (folders as 'dir')."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink() or p.is_dir():
            out[rel] = "dir" if p.is_dir() else "link"
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


# Root ignores permission bits; without these two capabilities it obeys them like any user (util-linux setpriv)
DROP_DAC = "-dac_override,-dac_read_search"


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _run_isolated(argv: list[str], case: Case, cwd: Path, prefix: tuple[str, ...] = ()) -> tuple[int, str, str]:
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); "
            "from signals.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, **case.env}
    try:
        proc = subprocess.run([*prefix, sys.executable, "-c", code, *argv], capture_output=True, text=True,
                              cwd=cwd, timeout=case.timeout, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case.id}: still running after {case.timeout:.0f} s (hang)")
    return proc.returncode, proc.stdout, proc.stderr


def _run_inprocess(argv: list[str], case: Case, capsys, monkeypatch) -> tuple[int, str, str]:
    from signals.cli import main

    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys, monkeypatch):
    prefix: tuple[str, ...] = ()
    if case.obeys_permissions and _as_root():
        if not shutil.which("setpriv"):
            pytest.skip("permissions do not apply to root, and setpriv (util-linux) is not there to drop them")
        prefix = ("setpriv", "--bounding-set", DROP_DAC, "--inh-caps", DROP_DAC, "--")
    f: dict[str, Path] = {"tmp": tmp_path, "models": MODELS, "repo": REPO}
    for name, src in FIXTURES.items():
        dst = tmp_path / src.name
        shutil.copyfile(src, dst)
        f[name] = dst
    if case.setup is not None:
        case.setup(f)
    fmt = {k: str(v) for k, v in f.items()}
    argv = [a.format(**fmt) for a in case.argv]
    keep = {k: _digest(Path(k.format(**fmt)) if "{" in k or "/" in k else f[k]) for k in case.keep}
    before = _tree(tmp_path)
    monkeypatch.chdir(tmp_path)

    if case.isolate or prefix:
        rc, out, err = _run_isolated(argv, case, tmp_path, prefix)
    else:
        rc, out, err = _run_inprocess(argv, case, capsys, monkeypatch)

    assert "Traceback" not in err + out, f"{case.id}: traceback\n{err[-3000:]}"
    for k, digest in keep.items():
        path = Path(k.format(**fmt)) if "{" in k or "/" in k else f[k]
        assert _digest(path) == digest, f"{case.id}: {path} was changed or removed"
    after = _tree(tmp_path)
    allowed = {str(Path(o.format(**fmt)).relative_to(tmp_path)) for o in case.outputs} if case.expect == "ok" else set()
    # an ok case may also create the folders holding its outputs
    allowed |= {str(Path(a).parents[i]) for a in allowed for i in range(len(Path(a).parents) - 1)}
    new = {p for p in after if p not in before and p not in allowed}
    assert not new, f"{case.id}: stray files left behind: {sorted(new)}"
    changed = {p for p in before if p in after and after[p] != before[p] and p not in allowed}
    if case.expect == "error":
        assert not changed, f"{case.id}: files changed by a failed command: {sorted(changed)}"
        assert rc == 2, f"{case.id}: exit status {rc}, expected 2\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
        lines = [ln for ln in err.splitlines() if re.search(r"(^signals: error: |: error: )", ln)]
        assert len(lines) == 1, f"{case.id}: expected one error line, got:\n{err}"
        assert re.search(case.match, lines[0]), f"{case.id}: error line does not match {case.match!r}:\n{lines[0]}"
    else:
        assert rc == 0, f"{case.id}: exit status {rc}\nstderr: {err[-3000:]}"
        if case.check is not None:
            case.check(f, out)
