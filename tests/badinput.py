"""The table format of ``tests/test_bad_inputs.py``: one :class:`Case` per bad input (or per input that must
give a correct result), grouped by area in ``tests/bad_cases_<area>.py`` modules that each export ``CASES``.

A case runs ``signals ARGV`` in a fresh temporary folder that holds copies of the example inputs (see
:data:`FIXTURES`); ``{name}`` in ``argv`` is replaced by the fixture's path. For an ``error`` case the
harness checks: exit status 2, an error line (``signals: error: …`` or argparse's ``error: …``) that
matches ``match``, no traceback, every ``keep`` file byte-identical, and no new file left in the folder.
For an ``ok`` case: status 0 and ``check(fixtures, stdout)`` passes; only ``outputs`` may be new.
``isolate=True`` runs it in a subprocess with a memory cap and a timeout (for inputs that once ran away
with memory or hung).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"

# name -> file copied into each case's folder (the folder itself is {tmp}; {models} is the checkout's models/)
FIXTURES: dict[str, Path] = {
    "wav": REPO / "examples/speech/lowres_16k.wav",       # 16 kHz speech
    "voice_a": REPO / "examples/speech/voice_a_1.wav",
    "voice_b": REPO / "examples/speech/voice_b_1.wav",
    "csv": REPO / "examples/har/exp04_user02.csv",          # HAR recording with a time column
}


@dataclass(frozen=True)
class Case:
    id: str                                   # pytest id: area-what, e.g. "upsample-output-is-folder"
    argv: tuple[str, ...]                      # after "signals"; {tmp}, {models} and fixture names formatted in
    match: str = ""                            # regex the error line must match (name the input!)
    expect: str = "error"                      # "error" (exit 2) or "ok" (exit 0)
    setup: Callable[[dict[str, Path]], None] | None = None  # make extra files in f["tmp"] before the run
    keep: tuple[str, ...] = ()                 # fixture names / paths (formatted) that must not change
    outputs: tuple[str, ...] = ()              # paths (formatted) an ok case may create
    check: Callable[[dict[str, Path], str], None] | None = None  # extra assertions for ok cases (f, stdout)
    isolate: bool = False                     # subprocess with a memory cap and timeout
    timeout: float = 120.0
    env: dict[str, str] = field(default_factory=dict)
    obeys_permissions: bool = False           # permission cases: as root, run without DAC capabilities
