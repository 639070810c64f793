"""``signals har ...`` commands (filled in by the HAR implementation)."""

from __future__ import annotations

import argparse

from signals.cliutil import add_group


def register(parser: argparse.ArgumentParser) -> None:
    add_group(parser)
