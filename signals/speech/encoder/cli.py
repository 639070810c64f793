"""Commands of this speech model (filled in by its implementation)."""

from __future__ import annotations

import argparse


def register(group: argparse._SubParsersAction) -> None:
    """Add this model's commands to ``signals speech``."""
