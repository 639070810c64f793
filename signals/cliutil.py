"""Small argparse helpers shared by the domain CLIs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def add_group(parser: argparse.ArgumentParser, title: str = "commands") -> argparse._SubParsersAction:
    """Sub-commands of ``parser``; running the bare group prints its help (see ``signals.cli.main``)."""
    parser.set_defaults(_parser=parser)
    return parser.add_subparsers(title=title, metavar="COMMAND")


def add_command(group: argparse._SubParsersAction, name: str, help_text: str, func) -> argparse.ArgumentParser:
    """A leaf command whose handler is ``func(args) -> int | None``."""
    parser = group.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=func)
    return parser


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts that must be at least 1 (threads, sizes): a clear usage error otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def setup_logging() -> None:
    """Library modules report progress with ``logging``; the command line shows it on stdout, as printed lines."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)


def run_handler(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command handler the way ``signals`` does: progress logged, user errors printed, status 2."""
    from signals.errors import SignalsError

    setup_logging()
    try:
        return int(func(args) or 0)
    except SignalsError as exc:
        print(f"signals: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("signals: interrupted", file=sys.stderr)
        return 130


def standalone(add_arguments: Callable[[argparse.ArgumentParser], object], func, description: str,
               argv: Sequence[str] | None = None) -> int:
    """``python -m signals.<pkg>.train`` (and torchrun): one command's options and handler, without ``signals``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_handler(func, parser.parse_args(argv))
