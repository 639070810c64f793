"""The ``signals`` command line. Sub-commands map one-to-one onto the package's roles.

    signals har {train,evaluate,export,predict}
    signals speech {embed,verify,upsample}  and  signals speech {encoder,sr} {train,evaluate,export,...}

Each domain registers its own commands (``signals/har/cli.py``, ``signals/speech/cli.py``); handlers
import their implementation lazily so ``signals --help`` and the torch-free commands stay fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

from signals import __version__
from signals.cliutil import run_handler


def _walk(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(command path, help) for every leaf command below ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                path = f"{prefix} {name}".strip()
                children = list(_walk(sub, path))
                yield from children or [(path, helps.get(name, ""))]


def build_parser() -> argparse.ArgumentParser:
    from signals.har.cli import register as register_har
    from signals.speech.cli import register as register_speech

    parser = argparse.ArgumentParser(
        prog="signals",
        description="Train, export and run FusionActNet (activity recognition) and speech models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"signals {__version__}")
    domains = parser.add_subparsers(title="domains", dest="domain", metavar="{har,speech}")
    register_har(domains.add_parser("har", help="human activity recognition (FusionActNet)"))
    register_speech(domains.add_parser("speech", help="speaker encoder, super-resolution, voice cloning"))

    # `signals --help` lists every command, grouped by domain.
    lines, current = ["commands:"], None
    for path, help_text in _walk(parser):
        domain = path.split()[0]
        if domain != current:
            lines.append(f"  {domain}")
            current = domain
        lines.append(f"    signals {path:<28} {help_text}")
    parser.epilog = "\n".join(lines)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # A domain or group without a command: show what it offers.
        target = getattr(args, "_parser", parser)
        target.print_help()
        return 2
    return run_handler(func, args)


if __name__ == "__main__":
    sys.exit(main())
