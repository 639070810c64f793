"""``signals speech sr prepare``: Debian packages built here (tiny, generated audio), clip rules, bandwidth
measurement, selection, held-out groups, the training pack and its decoder, the manifest and the CLI.

The packages are real ``.deb`` files: built with ``dpkg-deb --build`` where dpkg is installed, else written
by a small ``ar`` + tar writer below (the layout dpkg-deb produces). ``apt-get download`` is exercised
through a stand-in runner, so no network is needed."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from signals.errors import DataError
from signals.speech.sr import corpus as C
from signals.speech.sr.config import PrepareConfig
from signals.speech.sr.data import SAMPLE_RATE, decode_clip, load_pack, load_training_data, read_pack_index

SR = 44100


def speech(seconds: float, seed: int, top_hz: float = 20000.0, pause: float = 0.3, hiss_db: float | None = None,
           tone_hz: float | None = None) -> np.ndarray:
    """Speech-like 44.1 kHz test clip: pause, a voiced part with harmonics + noise up to ``top_hz``, pause.
    ``hiss_db``: stationary white noise at that level (dBFS) everywhere; ``tone_hz``: a steady whistle."""
    from scipy.signal import butter, sosfiltfilt

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 120 + 20 * seed + 30 * np.sin(2 * np.pi * 2 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 60))
    x = 0.2 * voice / np.abs(voice).max() + 0.03 * rng.standard_normal(n)
    x = sosfiltfilt(butter(10, min(top_hz, 0.98 * SR / 2), fs=SR, output="sos"), x)
    x *= 0.5 * (1 - np.cos(2 * np.pi * np.arange(n) / n))  # an utterance envelope
    p = np.zeros(int(pause * SR))
    x = np.concatenate([p, x, p])
    if hiss_db is not None:
        x = x + 10 ** (hiss_db / 20) * rng.standard_normal(len(x))
    if tone_hz is not None:
        x = x + 0.05 * np.sin(2 * np.pi * tone_hz * np.arange(len(x)) / SR)
    return x.astype(np.float32)


def audio_bytes(x: np.ndarray, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, SR, format=fmt, subtype="VORBIS" if fmt == "OGG" else "PCM_16")
    return buf.getvalue()


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members:
        head = f"{name:<16}{int(time.time()):<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
        out += [head, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def _tar(files: dict[str, bytes], compression: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}") as tf:
        for path, data in files.items():
            info = tarfile.TarInfo("./" + path)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_deb(folder: Path, name: str, files: dict[str, bytes], version: str = "1.0-1") -> Path:
    """A real .deb of ``files`` (paths inside the package): dpkg-deb --build if installed, else ar + tar."""
    control = (f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: test <t@example.org>\n"
               f"Description: test package\n test\n")
    deb = folder / f"{name}_{version}_all.deb"
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("dpkg-deb"):
        root = folder / f"{name}.tree"
        for path, data in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
        (root / "DEBIAN").mkdir(parents=True, exist_ok=True)
        (root / "DEBIAN" / "control").write_text(control)
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(deb)], check=True,
                       capture_output=True)
        shutil.rmtree(root)
    else:
        deb.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.gz", _tar({"control": control.encode()}, "gz")),
                             ("data.tar.xz", _tar(files, "xz"))]))
    return deb


TUX = "usr/share/tuxpaint/stamps/animals"
KLE = "usr/share/klettres"
HW = "usr/share/games/hedgewars/Data/Sounds/voices"


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> Path:
    """Three tiny packages laid out like the real ones (generated audio, 44.1 kHz)."""
    folder = tmp_path_factory.mktemp("debs")
    wide = {lang: audio_bytes(speech(1.2, i)) for i, lang in enumerate(("fr", "ru", "es", "de"))}
    tux = {
        f"{TUX}/frog.ogg": audio_bytes(speech(0.8, 9), "OGG"),  # the croak: a sound effect, not speech
        f"{TUX}/frog_desc.ogg": audio_bytes(speech(1.0, 1), "OGG"),  # English description (Ogg Vorbis)
        f"{TUX}/frog_desc_fr.wav": wide["fr"],
        f"{TUX}/frog-1_desc_fr.wav": wide["fr"],  # a byte-identical duplicate
        f"{TUX}/frog_desc_ru.wav": wide["ru"],
        f"{TUX}/frog_desc_es.wav": wide["es"],
        f"{TUX}/frog_desc_ca.wav": audio_bytes(speech(1.2, 5, top_hz=8000)),  # band-limited: dropped
        f"{TUX}/cat_desc_ca.wav": audio_bytes(speech(1.2, 6, top_hz=8000)),
        f"{TUX}/cat_desc_pt_BR.ogg.ogg": audio_bytes(speech(1.0, 7), "OGG"),  # double suffix, region code
        f"{TUX}/cat_desc_es.wav": audio_bytes(speech(0.1, 8, pause=0.0)),  # too short
    }
    kle = {
        f"{KLE}/de/alpha/a.wav": wide["de"],
        f"{KLE}/de/syllab/ba.wav": audio_bytes(speech(1.0, 10)),
        # band-limited speech under stationary hiss: the level criterion alone would call it wideband
        f"{KLE}/en/alpha/a.wav": audio_bytes(speech(1.2, 11, top_hz=9000, hiss_db=-62)),
        f"{KLE}/it/alpha/b.wav": audio_bytes(speech(1.0, 12, tone_hz=17000.0)),  # a steady whistle
    }
    hw = {f"{HW}/{voice}/{word}.wav": audio_bytes(speech(0.9, 20 + i + 3 * j))
          for i, voice in enumerate(("Default", "Pirate", "Default_uk", "Robot")) for j, word in enumerate(("Ow", "Yes"))}
    build_deb(folder, "tuxpaint-stamps-default", tux, "2022.06.04-1")
    build_deb(folder, "klettres-data", kle, "4:22.12.3-1")
    build_deb(folder, "hedgewars-data", hw, "1.0.2-6")
    return folder


# ---------------------------------------------------------------------------------------------- .deb handling


@pytest.mark.parametrize("use_dpkg", [False, True])
def test_extract_and_control_of_a_built_deb(debs, tmp_path, use_dpkg):
    if use_dpkg and not shutil.which("dpkg-deb"):
        pytest.skip("dpkg-deb is not installed here (the pure-Python path is tested)")
    deb = C.find_deb("klettres-data", debs)
    assert C.deb_control(deb)["Version"] == "4:22.12.3-1"
    root = C.extract_deb(deb, tmp_path / "x", use_dpkg=use_dpkg)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav")) == [
        f"{KLE}/de/alpha/a.wav", f"{KLE}/de/syllab/ba.wav", f"{KLE}/en/alpha/a.wav", f"{KLE}/it/alpha/b.wav"]
    with pytest.raises(DataError, match="not a Debian package"):
        C.deb_control(root / KLE / "de/alpha/a.wav")


def test_fetch_package_downloads_with_apt_once_and_checks_the_package(debs, tmp_path):
    calls = []

    def fake_apt(cmd, cwd, **kw):  # stands in for `apt-get download NAME`
        calls.append(cmd)
        shutil.copy(C.find_deb(cmd[-1], debs), cwd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    root, info = C.fetch_package("hedgewars-data", tmp_path / "cache", runner=fake_apt)
    assert calls == [["apt-get", "download", "hedgewars-data"]]
    assert info["version"] == "1.0.2-6"
    assert len(list((root / HW).rglob("*.wav"))) == 8 and info["licence"] == "GFDL-1.3"
    root2, _ = C.fetch_package("hedgewars-data", tmp_path / "cache", runner=fake_apt)
    assert root2 == root and len(calls) == 1  # unpacked once

    def failing(cmd, cwd, **kw):
        return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package hedgewars-data")

    with pytest.raises(DataError, match="Unable to locate package"):
        C.fetch_package("hedgewars-data", tmp_path / "cache2", runner=failing)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(C.find_deb("klettres-data", debs), wrong / "hedgewars-data_1.0_all.deb")
    with pytest.raises(DataError, match="not 'hedgewars-data'"):
        C.fetch_package("hedgewars-data", tmp_path / "cache3", debs=wrong)


def test_apt_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(C.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="apt-get is not installed.*--debs"):
        C.apt_download("klettres-data", tmp_path)


def test_vctk_download_checks_its_sha256(tmp_path, monkeypatch):
    import urllib.request

    assert C.VCTK_URL.endswith("/10283/3443/VCTK-Corpus-0.92.zip") and len(C.VCTK_SHA256) == 64
    monkeypatch.setattr(urllib.request, "urlretrieve", lambda url, path: Path(path).write_bytes(b"not the corpus"))
    with pytest.raises(DataError, match="SHA-256"):
        C.download_vctk(tmp_path)
    assert not list(tmp_path.glob("*.zip*"))


# ---------------------------------------------------------------------------------------------- clip rules


@pytest.mark.parametrize("name, lang", [
    ("frog_desc.ogg", "en"), ("frog_desc_fr.ogg", "fr"), ("frog-1_desc_da.ogg.ogg", "da"),
    ("butterfly_desc_pt_BR.wav", "pt_BR"), ("a_filled_en_GB.ogg", "en_GB"), ("3_zh_tw.ogg", "zh_tw"),
    ("big_red_fr.ogg", "fr"), ("frog.ogg", None), ("tree_oak.ogg", None), ("frog-1.ogg", None),
])
def test_tuxpaint_speech_files_and_languages(name, lang):
    assert C.tuxpaint_language(Path(name)) == lang


def test_content_bandwidth_ignores_stationary_hiss():
    wide = speech(1.5, 0).astype(np.float64)
    hissy = speech(1.5, 0, top_hz=9000, hiss_db=-62).astype(np.float64)
    assert C.content_bandwidth(wide, SR) > 18000
    assert C.content_bandwidth(hissy, SR) < 11000
    from signals.speech.sr.postprocess import detect_bandwidth

    assert detect_bandwidth(hissy, SR) > 20000  # what the level criterion alone would say
    assert C.content_bandwidth(speech(1.5, 0, pause=0.0)[2000:-2000], SR) is None  # no pauses: no floor


# ---------------------------------------------------------------------------------------------- prepare


@pytest.fixture(scope="module")
def prepared(debs, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    cfg = PrepareConfig(workers=1, val_groups=("tuxpaint/ru",), test_groups=("hedgewars/Default_uk",),
                        exclude_groups=("hedgewars/Robot",), pack_mb=0.6, pack_val_minutes=1.0)
    manifest = C.prepare(out / "sr", cfg, cache=out / "cache", debs=debs, progress=False)
    return out / "sr", manifest


def test_prepare_keeps_wideband_speech_and_says_why_the_rest_went(prepared):
    out, m = prepared
    rows = {r["id"]: r for r in (json.loads(json.dumps(x)) for x in _tsv(out / "clips.tsv"))}
    assert m["found"]["clips"] == len(rows) == 9 + 4 + 8  # the croak is not speech
    why = {k: r["reason"] for k, r in rows.items()}
    t = "tuxpaint:animals/"
    assert why[t + "frog-1_desc_fr"] == "" and why[t + "frog_desc_fr"] == f"duplicate of {t}frog-1_desc_fr"
    assert why[t + "frog_desc_ca"].startswith("bandwidth below 16000")
    assert why[t + "cat_desc_es"].startswith("shorter than")
    assert why["klettres:en/alpha/a"].startswith("bandwidth below")  # hiss is not content
    assert why["klettres:it/alpha/b"].startswith("tonal lines")
    assert why["hedgewars:Robot/Ow"] == "excluded group"
    assert rows[t + "cat_desc_pt_BR"]["language"] == "pt_BR" and rows[t + "frog_desc"]["language"] == "en"
    kept = [r for r in rows.values() if r["kept"] == "True"]
    assert m["kept"]["clips"] == len(kept) == 5 + 2 + 6
    assert all(float(r["bandwidth_hz"]) >= 16000 for r in kept)
    assert m["split"]["val_groups"] == ["tuxpaint/ru"] and m["split"]["test_groups"] == ["hedgewars/Default_uk"]
    assert m["kept"]["per_split"]["test"]["clips"] == 2 and m["kept"]["per_split"]["val"]["clips"] == 1
    assert set(m["kept"]["per_language"]) == {"de", "en", "es", "fr", "pt_BR", "ru", "uk"}
    assert m["packages"]["klettres-data"]["version"] == "4:22.12.3-1"
    assert sum(m["bandwidth_histogram"]["kept"].values()) == 13 and m["seconds"]["total"] > 0


def _tsv(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in lines[1:]]


def test_packs_decode_to_trimmed_normalised_48k_clips(prepared):
    out, m = prepared
    full = read_pack_index(out / "full")
    assert full["summary"]["clips"] == 13 and full["codec"] == "source"
    corpus = load_pack(out / "full")
    assert set(corpus.split.values()) == {"train", "val", "test"}
    for entry in full["clips"]:
        wav = corpus.wavs[entry["id"]]
        assert abs(len(wav) / SAMPLE_RATE - entry["seconds"]) < 0.01  # trimmed (pauses gone) and at 48 kHz
        assert entry["seconds"] < 1.3 + 0.2
        from signals.speech.sr.corpus import active_level_db

        assert abs(active_level_db(wav, SAMPLE_RATE) - (-26.0)) < 1.5
        assert corpus.bandwidth[entry["id"]] == entry["bandwidth_hz"]
    some = {e["id"] for e in full["clips"][::3]}  # ids: only those clips are decoded, the same audio
    part = load_pack(out / "full", ids=some)
    assert set(part.wavs) == some and all(np.array_equal(part.wavs[u], corpus.wavs[u]) for u in some)
    # the device pack: no test clips, within its size, validation first then training clips
    dev = read_pack_index(out / "pack")
    assert dev["summary"]["bytes"] <= 0.6e6 and dev["summary"]["per_split"]["test"]["clips"] == 0
    assert dev["summary"]["per_split"]["val"]["clips"] == 1 and dev["summary"]["per_split"]["train"]["clips"] >= 2
    train = load_training_data(out / "pack")
    assert set(train.split.values()) <= {"train", "val"} and len(train.wavs) == dev["summary"]["clips"]


def test_pcm16_pack_matches_the_source_pack(prepared, tmp_path):
    out, _ = prepared
    rows = [{**r, "split": "train", "kept": True, "seconds": float(r["seconds"]), "rate": int(r["rate"]),
             "start": int(r["start"]), "stop": int(r["stop"]), "gain_db": float(r["gain_db"]),
             "bandwidth_hz": float(r["bandwidth_hz"])}
            for r in _tsv(out / "clips.tsv") if r["id"] in ("tuxpaint:animals/frog_desc", "klettres:de/alpha/a")]
    C.write_pack(tmp_path / "src", rows, "source")
    C.write_pack(tmp_path / "pcm", rows, "pcm16")
    a, b = load_pack(tmp_path / "src"), load_pack(tmp_path / "pcm", workers=2)
    for k in a.wavs:
        assert np.max(np.abs(a.wavs[k] - b.wavs[k])) < 2e-4
    assert read_pack_index(tmp_path / "pcm")["clips"][0]["rate"] == SAMPLE_RATE
    with pytest.raises(DataError, match="unknown codec"):
        decode_clip(b"", {"codec": "mp9", "id": "x"})
    with pytest.raises(DataError, match="not a training pack"):
        read_pack_index(tmp_path)


def test_default_groups_and_size_preference():
    rows = [{"id": f"{p}:{g}/{i}", "package": p, "group": f"{p}/{g}", "seconds": 60.0 if g != "big" else 600.0,
             "bandwidth_hz": 20000.0 if i % 2 else 16500.0, "bytes": 1000, "split": "train"}
            for p in ("a", "b") for g in ("big", "g1", "g2", "g3") for i in range(4)]
    val, test = C.choose_groups(rows, PrepareConfig())
    assert len(val) == len(test) == 2 and not set(val) & set(test) and not any(g.endswith("big") for g in val + test)
    assert C.choose_groups(rows, PrepareConfig()) == (val, test)  # seeded
    with pytest.raises(DataError, match="not found"):
        C.choose_groups(rows, PrepareConfig(val_groups=("a/nope",)))
    chosen = C.select_for_pack(rows, PrepareConfig(pack_mb=0.016, prefer_bandwidth=18000), lambda r: r["bytes"])
    assert len(chosen) == 16 and all(r["bandwidth_hz"] == 20000.0 for r in chosen)  # the wider half first
    assert len({r["group"] for r in chosen}) == 8  # every group represented


def test_cli_prepare(debs, tmp_path, capsys):
    from signals.cli import main

    rc = main(["speech", "sr", "prepare", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c"), "--debs",
               str(debs), "--packages", "klettres-data", "--workers", "1", "--quiet", "--val-groups", "klettres/de"])
    assert rc == 0
    text = capsys.readouterr().out  # progress lines (logging), then the JSON report
    report = json.loads(text[text.index("\n{") + 1:])
    assert report["kept"]["clips"] == 2 and report["per_split"]["val"]["clips"] == 2
    assert (tmp_path / "o" / "manifest.json").is_file() and (tmp_path / "o" / "pack" / "index.json").is_file()
    rc = main(["speech", "sr", "prepare", "--out", str(tmp_path / "o2"), "--cache", str(tmp_path / "c"),
               "--packages", "no-such-package", "--quiet"])
    assert rc == 2 and "unknown package" in capsys.readouterr().err
