"""Where shipped models and local datasets live.

``SIGNALS_MODELS`` and ``SIGNALS_DATA`` override the defaults, which are ``models/`` in the
repository and ``../shared/data`` beside it (the layout used by the development machines).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    return Path(os.environ.get("SIGNALS_MODELS", REPO_ROOT / "models"))


def model_dir(name: str) -> Path:
    """The shipped model folder ``models/<name>``."""
    return models_dir() / name


def data_root() -> Path:
    return Path(os.environ.get("SIGNALS_DATA", REPO_ROOT.parent / "shared" / "data"))
