"""Small argparse helpers shared by the domain CLIs."""

from __future__ import annotations

import argparse
import math
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


def int_range(lo: int, hi: int | None = None):
    """argparse ``type=`` for a whole number in ``[lo, hi]`` (no upper end when ``hi`` is None).

    Every numeric option is range checked at parse time, so a bad value is a usage error naming the option
    before any model or file is opened.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            span = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its own messages
    parse.span = f">= {lo}" if hi is None else f"{lo}..{hi}"  # shown in --help by configio.add_arguments
    return parse


def float_range(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False):
    """argparse ``type=`` for a finite number in ``[lo, hi]`` (``lo_open`` / ``hi_open``: excluding that end).

    ``nan`` and ``inf`` parse as floats but decide nothing: they are always refused.
    """
    if math.isinf(lo) and math.isinf(hi):
        span = "a finite number"
    else:
        span = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        above = value > lo if lo_open else value >= lo
        below = value < hi if hi_open else value <= hi
        if not (math.isfinite(value) and above and below):
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value

    parse.__name__ = "number"
    parse.span = None if math.isinf(lo) and math.isinf(hi) else span.removeprefix("a number in ")
    return parse


positive_int = int_range(1)  # counts that must be at least 1 (threads, sizes)
nonnegative_int = int_range(0)  # counts where 0 means "none"
finite_float = float_range(-math.inf, math.inf)


def warn(message: str) -> None:
    """A warning line on stderr (stdout stays the result, e.g. JSON that a script parses)."""
    print(f"signals: warning: {message}", file=sys.stderr)


def setup_logging() -> None:
    """Library modules report progress with ``logging``; the command line shows it on stdout, as printed lines."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)


def _terminate(signum, frame) -> None:
    # SIGTERM unwinds like Ctrl-C, so atomic outputs (signals.outputs) remove their temporary files
    raise KeyboardInterrupt


def run_handler(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command handler the way ``signals`` does: progress logged, user errors printed, status 2;
    Ctrl-C and SIGTERM unwind (temporary outputs removed) and exit 130."""
    import signal
    import threading

    from signals.errors import SignalsError

    setup_logging()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(func(args) or 0)
    except SignalsError as exc:
        print(f"signals: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("signals: interrupted; no output was left half-written", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def standalone(add_arguments: Callable[[argparse.ArgumentParser], object], func, description: str,
               argv: Sequence[str] | None = None) -> int:
    """``python -m signals.<pkg>.train`` (and torchrun): one command's options and handler, without ``signals``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_handler(func, parser.parse_args(argv))
