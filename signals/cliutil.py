"""Small argparse helpers shared by the domain CLIs."""

from __future__ import annotations

import argparse


def add_group(parser: argparse.ArgumentParser, title: str = "commands") -> argparse._SubParsersAction:
    """Sub-commands of ``parser``; running the bare group prints its help (see ``signals.cli.main``)."""
    parser.set_defaults(_parser=parser)
    return parser.add_subparsers(title=title, metavar="COMMAND")


def add_command(group: argparse._SubParsersAction, name: str, help_text: str, func) -> argparse.ArgumentParser:
    """A leaf command whose handler is ``func(args) -> int | None``."""
    parser = group.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=func)
    return parser
