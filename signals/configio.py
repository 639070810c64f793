"""The one dataclass <-> dict converter, and CLI options derived from dataclass fields.

Every config in the package is a frozen dataclass. JSON files (``config.json``, checkpoints' saved
configs, training configs) hold them as plain dicts; :func:`to_dict` and :func:`from_dict` are the
only way in and out, so every file behaves the same:

* unknown keys are refused, with a message naming the key and the file (a typo in a config must
  not silently fall back to a default);
* missing keys take the dataclass default (files written by older versions keep loading);
* nested dataclasses, ``tuple[int, ...]``, ``tuple[tuple[int, ...], ...]``, ``X | None`` and
  ``list``/``dict`` of those are rebuilt from JSON lists and dicts.

:func:`add_arguments` turns fields into argparse options whose default is "not given", and
:func:`from_args` applies the options that were given to a base config, so each default is written
once, in the dataclass. Torch-free and numpy-free.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any, TypeVar, Union

from signals.errors import ConfigError

T = TypeVar("T")


# --------------------------------------------------------------------------------------------------
# dataclass -> dict


def to_dict(obj: Any) -> Any:
    """A dataclass (or nested lists/tuples/dicts of them) as JSON-ready data: tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------------------------------
# dict -> dataclass


@cache
def _hints(cls: type) -> dict[str, Any]:
    # Field annotations are strings under `from __future__ import annotations`; resolve them once.
    return typing.get_type_hints(cls)


def _short(value: Any, limit: int = 80) -> str:
    # Values come from files that may be damaged or hostile: an error line quotes at most `limit` characters.
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _describe(where: str, path: str) -> str:
    return f"{where}: {path}" if where else path


def _convert(tp: Any, value: Any, where: str, path: str) -> Any:
    """``value`` (JSON data) as type ``tp``; raises ConfigError naming ``where`` and the key path."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (Union, types.UnionType):  # Optional[X], X | None, X | Y
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{_describe(where, path)}: {_short(value)} fits none of {tp}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_describe(where, path)}: expected a list, got {_short(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where, f"{path}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{_describe(where, path)}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, where, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_describe(where, path)}: expected a list, got {_short(value)}")
        item = args[0] if args else Any
        return [_convert(item, v, where, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{_describe(where, path)}: expected a mapping, got {_short(value)}")
        item = args[1] if len(args) == 2 else Any
        return {k: _convert(item, v, where, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{_describe(where, path)}: expected a number, got {_short(value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{_describe(where, path)}: expected an integer, got {_short(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{_describe(where, path)}: expected true or false, got {_short(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{_describe(where, path)}: expected a string, got {_short(value)}")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | T, where: str = "", path: str = "") -> T:
    """``data`` (e.g. a section of a JSON file) as the frozen dataclass ``cls``.

    ``where`` names the file (or other source) in error messages, ``path`` the section inside it:
    ``from_dict(PreprocessConfig, d, "models/har/config.json", "frontend")`` refuses an unknown key
    with "models/har/config.json: unknown key 'frontend.stride' (PreprocessConfig has: ...)".
    An instance of ``cls`` is returned unchanged.
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_describe(where, path or cls.__name__)}: expected a mapping for {cls.__name__}, "
                          f"got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in data if k not in names]
    if unknown:
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"{where + ': ' if where else ''}unknown key {_short(key)} ({cls.__name__} has: {', '.join(names)})")
    # A required field that is absent is named as the key it is (not as the TypeError of __init__).
    required = [f.name for f in dataclasses.fields(cls) if f.init and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and f.name not in data]
    if required:
        key = f"{path}.{required[0]}" if path else required[0]
        raise ConfigError(f"{where + ': ' if where else ''}missing key {key!r} ({cls.__name__} needs: "
                          f"{', '.join(required)})")
    hints = _hints(cls)
    kwargs = {k: _convert(hints[k], v, where, f"{path}.{k}" if path else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:  # __post_init__ checks (and what a
        # check computing with a value of the right type but an absurd size raises)
        raise ConfigError(f"{_describe(where, path or cls.__name__)}: {exc}") from exc


# --------------------------------------------------------------------------------------------------
# dataclass fields -> argparse options


def _element(tp: Any) -> tuple[Callable[[str], Any] | None, str | None]:
    """(argparse type, nargs) for a field type; (None, None) if it cannot be given on a command line."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _element(rest[0]) if len(rest) == 1 else (None, None)
    if origin is tuple and args:
        inner = args[0]
        if inner in (int, float, str) and (len(args) == 2 and args[1] is Ellipsis or all(a is inner for a in args)):
            return inner, "*" if args[-1] is Ellipsis else len(args)
        return None, None
    if tp in (int, float, str):
        return tp, None
    return None, None


def _checked(conv: Callable[[str], Any]) -> Callable[[str], Any]:
    """The argparse type of a config number: counts, sizes, steps and seeds are never negative, and a float
    must be finite (``nan`` would pass every comparison the code makes); a field with another range gets its
    own type through ``add_arguments(types=...)``."""
    from signals.cliutil import finite_float, nonnegative_int

    return {int: nonnegative_int, float: finite_float}.get(conv, conv)


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    names: Mapping[str, str] | None = None,
    help: Mapping[str, str] | None = None,  # noqa: A002 - argparse's own word
    choices: Mapping[str, Iterable[Any]] | None = None,
    types: Mapping[str, Callable[[str], Any]] | None = None,
    base: Any = None,
) -> None:
    """Add ``--field-name`` options for the fields of ``cls`` (``only`` these, minus ``skip``).

    Options default to "not given" (``argparse.SUPPRESS``); the help text shows the dataclass default
    (or ``base``'s value). ``names`` maps a field to a different option string (``{"aug_rotate_deg":
    "--rotate-deg"}``); ``help`` gives the text and ``choices`` the allowed values. ``bool`` fields become
    ``--name / --no-name``; ``tuple[X, ...]`` fields take zero or more values. Fields that cannot be typed
    on a command line are skipped. Numbers are range checked when parsed: ``int`` fields are ``>= 0`` and
    ``float`` fields finite unless ``types`` gives the field its own argparse type (e.g.
    :func:`signals.cliutil.int_range`), whose range, if it has a ``span``, is shown in the help.
    """
    base = base if base is not None else _defaults(cls)
    hints, names, help, choices = _hints(cls), dict(names or {}), dict(help or {}), dict(choices or {})
    types = dict(types or {})
    wanted = set(only) if only is not None else None
    for f in dataclasses.fields(cls):
        if not f.init or f.name in set(skip) or (wanted is not None and f.name not in wanted):
            continue
        opt = names.get(f.name, "--" + f.name.replace("_", "-"))
        default = getattr(base, f.name, None) if base is not None else None
        text = help.get(f.name, "")
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        text = f"{text} (default: {shown})".strip() if default is not None else text
        tp = hints[f.name]
        if tp is bool:
            parser.add_argument(opt, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=text)
            continue
        conv, nargs = _element(tp)
        if conv is None:
            continue
        conv = types.get(f.name) or _checked(conv)
        if getattr(conv, "span", None):
            text = f"{text} (range {conv.span})".strip()
        allowed = list(choices[f.name]) if f.name in choices else None
        metavar = None if allowed else opt.lstrip("-").replace("-", "_").upper()  # as argparse names --opt
        parser.add_argument(opt, dest=f.name, type=conv, nargs=nargs, default=argparse.SUPPRESS, help=text,
                            choices=allowed, metavar=metavar)


def _defaults(cls: type) -> Any:
    try:
        return cls()
    except TypeError:  # fields without defaults: nothing to show
        return None


def from_args(cls: type[T], args: argparse.Namespace | Mapping[str, Any], base: T | None = None) -> T:
    """``base`` (default ``cls()``) with every field of ``cls`` that was given on the command line."""
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    base = base if base is not None else cls()
    changes = {f.name: given[f.name] for f in dataclasses.fields(cls)
               if f.init and f.name in given and given[f.name] is not None}
    for k, v in changes.items():
        if isinstance(v, list):
            changes[k] = tuple(v)
    return dataclasses.replace(base, **changes)
