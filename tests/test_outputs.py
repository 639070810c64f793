"""signals.outputs: every output checked before the work and written atomically."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from signals.errors import OutputError
from signals.outputs import (
    AtomicOutput,
    audio_format,
    audio_writer,
    check_output,
    write_audio,
    write_json,
    write_npy,
)


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_write_replaces_only_when_complete(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), AtomicOutput(target) as out:
        out.tmp.write_text("half")
        raise RuntimeError("boom")  # the caller's own error passes through unchanged
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["out.json"]  # no temporary file left
    write_json(target, {"a": 1})
    assert target.read_text().strip() == '{\n  "a": 1\n}'
    assert _listing(tmp_path) == ["out.json"]


def test_interrupt_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.wav"
    write_audio(target, np.zeros(1600, np.float32) + 0.1, 16000)
    before = target.read_bytes()
    with pytest.raises(KeyboardInterrupt), audio_writer(target, 16000) as fh:
        fh.write(np.zeros(800, np.float32))
        raise KeyboardInterrupt
    assert target.read_bytes() == before
    assert _listing(tmp_path) == ["a.wav"]


def test_created_folders_removed_on_failure(tmp_path):
    target = tmp_path / "x" / "y" / "out.npy"
    with pytest.raises(ValueError), AtomicOutput(target) as out:
        assert out.tmp.parent == target.parent
        raise ValueError
    assert _listing(tmp_path) == []
    write_npy(target, np.arange(3))
    assert np.load(target).tolist() == [0, 1, 2]


def test_write_npy_writes_exactly_the_name(tmp_path):
    with pytest.raises(OutputError, match="npy"):
        write_npy(tmp_path / "name", np.zeros(2))
    assert write_npy(tmp_path / "e.npy", np.zeros(2)).name == "e.npy"


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "folder", "is a folder"),
    (lambda p: p / "file.txt" / "out.json", "is a file, not a folder"),
    (lambda p: p / "file.txt" / "deeper" / "out.json", "is a file, not a folder"),
    (lambda p: "", "empty file name"),
])
def test_refused_paths(tmp_path, make, match):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError, match=match):
        check_output(make(tmp_path))


def test_device_and_proc_refused():
    with pytest.raises(OutputError, match="not a regular file"):
        check_output("/dev/null")
    with pytest.raises(OutputError, match="/proc/x.json"), AtomicOutput("/proc/x.json"):
        pass


def test_input_refused_unless_overwrite(tmp_path):
    src = tmp_path / "in.json"
    src.write_text("keep")
    with pytest.raises(OutputError, match="also an input"):
        check_output(src, inputs=[src])
    write_json(src, [1], inputs=[src], overwrite=True)
    assert json.loads(src.read_text()) == [1]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_output(ro / "x.wav")
    finally:
        ro.chmod(0o700)


def test_audio_formats(tmp_path):
    assert audio_format("a.wav") == ("WAV", "PCM_16")
    assert audio_format("a.WAV", float32=True) == ("WAV", "FLOAT")
    assert audio_format("a.flac") == ("FLAC", "PCM_16")
    with pytest.raises(OutputError, match="--float"):
        audio_format("a.flac", float32=True)
    with pytest.raises(OutputError, match="unsupported audio format"):
        audio_format("a.xyz")
    with pytest.raises(OutputError, match="no extension"):
        audio_format(tmp_path / "noext")
    with pytest.raises(OutputError, match="Opus"):
        audio_format("a.opus", sample_rate=22050)
    wav = 0.3 * np.sin(np.linspace(0, 400, 16000)).astype(np.float32)
    for name in ("a.ogg", "a.flac", "a.wav"):
        write_audio(tmp_path / name, wav, 16000)
        back, sr = sf.read(tmp_path / name)
        assert sr == 16000 and abs(len(back) - len(wav)) < 2000
    assert sorted(_listing(tmp_path)) == ["a.flac", "a.ogg", "a.wav"]


def test_result_has_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "p.json", {})
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.fixture
def full_disk(tmp_path):
    """A 64 kB tmpfs (needs root and mount rights: skipped elsewhere)."""
    import subprocess

    folder = tmp_path / "full"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root?)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_is_named_and_keeps_the_old_file(full_disk):
    target = full_disk / "out.wav"
    target.write_text("old")
    with pytest.raises(OutputError, match="no space left"):
        write_audio(target, np.zeros(10 * 16000, np.float32), 16000)  # 320 kB of 16-bit samples
    assert target.read_text() == "old"
    assert _listing(full_disk) == ["out.wav"]
    with pytest.raises(OutputError, match="out.npy"):
        write_npy(full_disk / "out.npy", np.zeros(100_000))
    assert _listing(full_disk) == ["out.wav"]
