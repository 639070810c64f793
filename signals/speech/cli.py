"""``signals speech ...``: each speech model registers its own commands here."""

from __future__ import annotations

import argparse

from signals.cliutil import add_group


def register(parser: argparse.ArgumentParser) -> None:
    from signals.speech.encoder.cli import register as register_encoder
    from signals.speech.sr.cli import register as register_sr

    group = add_group(parser)
    register_encoder(group)  # embed, verify, encoder {train,evaluate,export,convert}
    register_sr(group)  # upsample, sr {train,evaluate,export}
