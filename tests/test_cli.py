"""The command line's shape: every domain's commands are listed, errors print without traceback."""

from __future__ import annotations

import pytest

from signals.cli import main


def test_help_lists_domains(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "har" in out and "speech" in out


def test_bare_domain_prints_help(capsys):
    assert main(["har"]) == 2
    assert "usage" in capsys.readouterr().out


def test_parser_builds_without_torch():
    import subprocess
    import sys

    # Building the CLI must not pull in torch: the runtime commands are torch-free.
    code = "import sys; from signals.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
