"""One exception family for the whole package.

The CLI catches :class:`SignalsError` and prints its message without a traceback, so every message
must name the input that is wrong and, where possible, what to do about it.
"""

from __future__ import annotations


class SignalsError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class DataError(SignalsError):
    """A data file or folder is missing, malformed or has unexpected content."""


class AudioError(DataError):
    """An audio input is unreadable, empty, silent, too short, or has an unusable format."""


class TextError(SignalsError, ValueError):
    """Text to synthesize is empty, has nothing pronounceable, or is in a script the G2P cannot read."""


class ModelError(SignalsError):
    """A model folder is missing, incomplete, or does not match the code."""


class ConfigError(SignalsError, ValueError):
    """A config file or section has an unknown key or a value of the wrong type (message names both)."""


class OutputError(SignalsError):
    """An output path that cannot or must not be written (a folder, an input, an unknown format, no space)."""
