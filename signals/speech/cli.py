"""``signals speech ...``: each speech model registers its own commands here."""

from __future__ import annotations

import argparse

from signals.cliutil import add_group


def register(parser: argparse.ArgumentParser) -> None:
    from signals.speech.encoder.cli import register as register_encoder
    from signals.speech.sr.cli import register as register_sr
    from signals.speech.tts.cli import register as register_tts
    from signals.speech.vocoder.cli import register as register_vocoder

    group = add_group(parser)
    register_encoder(group)  # embed, verify, encoder {train,evaluate,export,convert}
    register_sr(group)  # upsample, sr {train,evaluate,export}
    register_tts(group)  # clone, tts {corpus,prepare,train,export}
    register_vocoder(group)  # vocoder {convert,export,evaluate}
