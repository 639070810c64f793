"""Every file a command writes goes through here: checked before the work starts, written atomically.

The contract (one for every command and the app):

* the path is checked **before** any work: a folder, a parent that is a file, a device or other
  non-regular file, an unknown or unsupported format, an unwritable folder, or one of the command's
  inputs (unless ``overwrite``) is a :class:`~signals.errors.OutputError` naming the path;
* the data goes to a temporary file beside the target (``.<name>.XXXX.partial<suffix>``), which is
  renamed over the target only when everything has been written. An interrupted run (Ctrl-C,
  SIGTERM, a full disk, an error half-way) leaves the old file as it was, or nothing, never a file
  that looks complete;
* folders created for the output are removed again when the write fails.

Usage::

    with AtomicOutput(args.output, inputs=[args.input], suffixes=(".json",)) as out:
        out.tmp.write_text(...)                # or write_json / write_npy / audio_writer below

Torch-free: os, tempfile, json, numpy and (for audio) soundfile only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signals.errors import OutputError

PathLike = str | Path

# suffix -> (libsndfile format, subtype for 16-bit output, subtype for --float output or None)
AUDIO_OUTPUTS: dict[str, tuple[str, str, str | None]] = {
    ".wav": ("WAV", "PCM_16", "FLOAT"),
    ".flac": ("FLAC", "PCM_16", None),
    ".ogg": ("OGG", "VORBIS", None),
    ".oga": ("OGG", "VORBIS", None),
    ".opus": ("OGG", "OPUS", None),
    ".mp3": ("MP3", "MPEG_LAYER_III", None),
    ".aiff": ("AIFF", "PCM_16", "FLOAT"),
    ".aif": ("AIFF", "PCM_16", "FLOAT"),
}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: PathLike, *, inputs: Sequence[PathLike] = (), overwrite: bool = False,
                 suffixes: Sequence[str] | None = None, what: str = "output") -> Path:
    """Refuse an output path that cannot or must not be written; returns it as a :class:`Path`.

    A folder, an input or a device given as the output is named as such before its file type is judged.
    Nothing is left behind (a probe file is created and removed in the target's folder, when it exists,
    since permission bits do not tell whether ``/proc`` or a read-only mount accepts files). ``suffixes``
    (lower case, with the dot) are the accepted extensions; ``inputs`` are the command's input files
    (writing over one is refused unless ``overwrite``).
    """
    if path is None or str(path).strip() == "":
        raise OutputError(f"{what}: empty file name")
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name inside it")
    for src in inputs:
        if src is not None and _same_file(Path(src), path):
            if not overwrite:
                raise OutputError(f"{what} {path} is also an input of this command; choose another name, or pass "
                                  "--overwrite to replace it once the new file is complete")
    if path.exists() or path.is_symlink():
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise OutputError(f"{what} {path} cannot be written: {exc.strerror or exc}") from None
        if not stat.S_ISREG(mode):
            raise OutputError(f"{what} {path} is not a regular file (a device, pipe or socket); give a file name")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        got = path.suffix or "no extension"
        raise OutputError(f"{what} {path}: unsupported file type ({got}); use {', '.join(suffixes)}")
    # the nearest existing ancestor must be a writable folder (what does not exist yet is created)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: the folder {parent} is not writable")
    if parent == path.parent:
        # permission bits do not tell everything (root, /proc, read-only mounts): create and remove a probe
        try:
            fd, probe = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".probe", dir=parent)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise OutputError(f"{what} {path}: no file can be created in {parent} ({exc.strerror or exc})") from None
    return path


def audio_format(path: PathLike, sample_rate: int | None = None, channels: int = 1, float32: bool = False,
                 what: str = "output") -> tuple[str, str]:
    """``(format, subtype)`` libsndfile will write ``path`` with, or an :class:`OutputError` saying why not."""
    import soundfile as sf

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in AUDIO_OUTPUTS:
        raise OutputError(f"{what} {path}: unsupported audio format ({suffix or 'no extension'}); use "
                          f"{', '.join(AUDIO_OUTPUTS)}")
    fmt, subtype, float_subtype = AUDIO_OUTPUTS[suffix]
    if float32:
        if float_subtype is None:
            raise OutputError(f"{what} {path}: 32-bit float samples (--float) need .wav or .aiff, not {suffix}")
        subtype = float_subtype
    if fmt not in sf.available_formats() or not sf.check_format(fmt, subtype):
        raise OutputError(f"{what} {path}: this libsndfile cannot write {fmt}/{subtype}; use .wav or .flac")
    if subtype == "OPUS" and sample_rate is not None and sample_rate not in OPUS_RATES:
        raise OutputError(f"{what} {path}: Opus stores {OPUS_RATES} Hz only, not {sample_rate} Hz; use .wav or .flac")
    if fmt == "MP3" and sample_rate is not None and sample_rate > 48000:
        raise OutputError(f"{what} {path}: MP3 stores at most 48 kHz, not {sample_rate} Hz")
    if channels < 1:
        raise OutputError(f"{what} {path}: no channels to write")
    return fmt, subtype


class AtomicOutput:
    """Context manager: ``tmp`` is where to write; on success it is renamed to ``path``, on any failure removed.

    The temporary file is created on entry, in the target's folder (so the final rename is atomic and a
    read-only or vanished folder fails before the work starts). Errors while writing or renaming become an
    :class:`OutputError` naming ``path``; an exception of the caller's own passes through unchanged.
    """

    def __init__(self, path: PathLike, *, inputs: Sequence[PathLike] = (), overwrite: bool = False,
                 suffixes: Sequence[str] | None = None, what: str = "output") -> None:
        self.path = check_output(path, inputs=inputs, overwrite=overwrite, suffixes=suffixes, what=what)
        self.what = what
        self.tmp: Path | None = None
        self._created: list[Path] = []

    def __enter__(self) -> AtomicOutput:
        parent = self.path.parent
        missing = []
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        try:
            for folder in reversed(missing):
                folder.mkdir()
                self._created.append(folder)
            fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".partial{self.path.suffix}",
                                        dir=self.path.parent)
            os.close(fd)
        except OSError as exc:
            self._cleanup()
            raise OutputError(f"{self.what} {self.path}: no file can be created in {self.path.parent} "
                              f"({exc.strerror or exc})") from None
        self.tmp = Path(name)
        return self

    def _cleanup(self) -> None:
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                self.tmp.unlink()
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                folder.rmdir()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp made it private; the result gets the usual mode
                os.replace(self.tmp, self.path)
                return False
            except OSError as exc2:
                self._cleanup()
                raise OutputError(f"{self.what} {self.path} could not be written: {exc2.strerror or exc2}") from None
        self._cleanup()
        if isinstance(exc, OSError):  # a full disk, a vanished folder ...: name the output, not libsndfile
            raise OutputError(f"{self.what} {self.path} could not be written: {exc.strerror or exc}; "
                              "nothing was written") from None
        if exc_type is not None and exc_type.__name__ == "LibsndfileError":
            # libsndfile reports a full disk as "System error.": say what it is when the folder has no room
            why = "no space left on device" if _free_bytes(self.path.parent) < LOW_SPACE else str(exc)
            raise OutputError(f"{self.what} {self.path} could not be written: {why}; nothing was written") from None
        return False


LOW_SPACE = 1 << 20  # bytes: below this, a write error of libsndfile is taken for a full disk


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return LOW_SPACE


def write_text(path: PathLike, text: str, **kwargs: Any) -> Path:
    """Write ``text`` (UTF-8, line endings as given) atomically; ``kwargs`` as :class:`AtomicOutput`."""
    with AtomicOutput(path, **kwargs) as out:
        with open(out.tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return out.path


def write_json(path: PathLike, data: Any, indent: int | None = 2, **kwargs: Any) -> Path:
    """Write ``data`` as JSON atomically (``kwargs`` as :class:`AtomicOutput`)."""
    return write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n", **kwargs)


def write_npy(path: PathLike, array: np.ndarray, **kwargs: Any) -> Path:
    """Write one array as ``.npy`` to exactly ``path`` (numpy's ``save`` would append ``.npy``), atomically."""
    kwargs.setdefault("suffixes", (".npy",))
    with AtomicOutput(path, **kwargs) as out:
        with open(out.tmp, "wb") as fh:
            np.save(fh, np.asarray(array), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
    return out.path


def check_audio_output(path: PathLike, sample_rate: int | None = None, channels: int = 1, float32: bool = False,
                       inputs: Sequence[PathLike] = (), overwrite: bool = False, what: str = "output") -> Path:
    """:func:`check_output` then :func:`audio_format`: an audio output refused before any work (nothing created)."""
    path = check_output(path, inputs=inputs, overwrite=overwrite, what=what)
    audio_format(path, sample_rate, channels, float32, what=what)
    return path


@contextlib.contextmanager
def audio_writer(path: PathLike, sample_rate: int, channels: int = 1, float32: bool = False,
                 inputs: Sequence[PathLike] = (), overwrite: bool = False, what: str = "output") -> Iterator[Any]:
    """A ``soundfile.SoundFile`` open for writing a temporary file that becomes ``path`` when the block ends.

    Integer and lossy formats clip: callers pass float audio in [-1, 1] (see :func:`clip_for`).
    """
    import soundfile as sf

    output = AtomicOutput(path, inputs=inputs, overwrite=overwrite, what=what)  # the path first, then the format
    fmt, subtype = audio_format(path, sample_rate, channels, float32, what=what)
    with output as out:
        with sf.SoundFile(str(out.tmp), "w", samplerate=int(sample_rate), channels=int(channels), format=fmt,
                          subtype=subtype) as fh:
            yield fh


def write_audio(path: PathLike, wav: np.ndarray, sample_rate: int, float32: bool = False, **kwargs: Any) -> Path:
    """Write ``float [T]`` or ``[C, T]`` audio atomically (clipped to [-1, 1] unless float WAV/AIFF)."""
    data = np.asarray(wav, dtype=np.float32)
    data = data.T if data.ndim == 2 else data
    channels = 1 if data.ndim == 1 else data.shape[1]
    with audio_writer(path, sample_rate, channels, float32, **kwargs) as fh:
        fh.write(data if float32 else np.clip(data, -1.0, 1.0))
    return Path(path)
