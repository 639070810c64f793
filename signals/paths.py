"""Where the checkout and local datasets live.

``SIGNALS_DATA`` overrides the data default, ``../shared/data`` beside the repository (the layout used
by the development machines). Model folders are found by :func:`signals.modelfolder.find_model`.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    return Path(os.environ.get("SIGNALS_DATA", REPO_ROOT.parent / "shared" / "data"))
