"""Wideband speech for HiFi-SR from Debian packages: ``signals speech sr prepare``.

    signals speech sr prepare --out data/sr_debian [--min-bandwidth 16000] [--pack-mb 40]

Three Debian packages carry hours of real read or acted speech recorded at 44.1 kHz:

* ``tuxpaint-stamps-default`` (GPL-2): spoken descriptions of Tux Paint stamps (``*_desc[_LANG].ogg``)
  and spoken letters/digits (``*_LANG.ogg``) in a dozen languages; one group per language;
* ``klettres-data`` (GPL-2+): KLettres letters and syllables, ``<lang>/{alpha,syllab}/*.ogg``; one group
  per language;
* ``hedgewars-data`` (GFDL-1.3): the game's voice packs (``Sounds/voices/<pack>/*.ogg``); one group per pack.

Their licences forbid committing the audio, so this command builds the training set on the user's
machine: ``apt-get download NAME`` + ``dpkg-deb -x`` into a cache (or ``--debs DIR`` with already
downloaded ``.deb`` files; without ``dpkg-deb`` a pure-Python reader unpacks them). Then, per clip:
decode (soundfile), mix to mono, find its leading/trailing silence, measure its content bandwidth
(:func:`measure_clip`: the runtime's level criterion and a noise-floor criterion, the lower wins), its
tonal peak (steady lines: hum, whistles), its active speech level and the gain that brings it to
``target_dbfs``. Clips that reach ``min_bandwidth``, have no strong lines, are long enough and are not
byte-identical duplicates are kept; whole groups (one package's language, or one voice pack: a speaker
proxy) are held out for validation and test, so those scores are on unseen speakers.

Measured on Debian 12 (2 CPU cores, 148 s including the 346 MB download): 10,412 speech clips
(247.5 min) found, 4,162 (104.4 min, 26 languages) kept at the default 16 kHz; 4,817 stop below it
(English and Catalan Tux Paint, most of Greek, Bulgarian, hedgewars' 16 kHz Vorbis), 1,078 are
duplicates, 179 carry lines above 30 dB. The default 36 MB device pack holds 30.5 min.

Output folder::

    manifest.json   what was found and kept: counts, minutes per package / language / group / split,
                    bandwidth histograms, the split, the options, the package versions, timings
    clips.tsv       one row per clip found: measurements, kept or why not, split
    full/           training pack of every kept clip (all splits): index.json + audio.bin
    pack/           the device pack: train + some validation clips within --pack-mb (test stays out)

A pack stores the package's own Ogg Vorbis bytes (``--pack-codec source``; no re-encoding, ~1 MB per
minute) with each clip's trim, gain and bandwidth; :func:`signals.speech.sr.data.load_pack` decodes,
trims, normalises and resamples to 48 kHz when training starts. ``--pack-codec pcm16`` stores 48 kHz
int16 instead (6 MB per minute) for machines without soundfile.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from signals.configio import to_dict
from signals.errors import DataError, SignalsError
from signals.modelfolder import sha256 as file_sha256
from signals.speech.sr.config import PrepareConfig
from signals.speech.sr.data import PACK_AUDIO, PACK_FORMAT, PACK_INDEX, SAMPLE_RATE, resample_poly

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# sources


@dataclass(frozen=True)
class DebianPackage:
    name: str
    short: str  # prefix of clip ids and groups
    licence: str
    seen: str  # the version these rules were written against (Debian 12 "bookworm")
    what: str


PACKAGES = {p.name: p for p in (
    DebianPackage("tuxpaint-stamps-default", "tuxpaint", "GPL-2", "2022.06.04-1",
                  "spoken descriptions of Tux Paint stamps, letters and digits"),
    DebianPackage("klettres-data", "klettres", "GPL-2+", "4:22.12.3-1", "KLettres spoken letters and syllables"),
    DebianPackage("hedgewars-data", "hedgewars", "GFDL-1.3", "1.0.2-6", "Hedgewars voice packs (acted exclamations)"),
)}

# VCTK 0.92 for machines that are online (10.9 GB zip; 48 kHz FLAC, 110 speakers, CC BY 4.0).
# SHA-256 as published with torchaudio's VCTK_092 dataset; the size as served by the University of Edinburgh.
VCTK_URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip"
VCTK_SHA256 = "f96258be9fdc2cbff6559541aae7ea4f59df3fcaf5cf963aae5ca647357e359c"
VCTK_BYTES = 11_747_302_977


def download_vctk(dest: str | Path) -> Path:
    """Download VCTK 0.92 into ``dest``, check its SHA-256 and unzip it; returns the corpus folder
    (``wav48_silence_trimmed/`` inside is what ``signals speech sr train --data`` reads)."""
    import urllib.request
    import zipfile

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "VCTK-Corpus-0.92.zip"
    if not archive.is_file() or archive.stat().st_size != VCTK_BYTES or file_sha256(archive) != VCTK_SHA256:
        part = archive.with_suffix(".zip.part")
        try:
            urllib.request.urlretrieve(VCTK_URL, part)
        except OSError as exc:
            raise DataError(f"cannot download {VCTK_URL}: {exc}") from exc
        if file_sha256(part) != VCTK_SHA256:
            part.unlink()
            raise DataError(f"{VCTK_URL} did not match its published SHA-256 {VCTK_SHA256}; try again")
        part.rename(archive)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest)
    return dest


def cache_dir() -> Path:
    """``$SIGNALS_CACHE/debian`` (default ``~/.cache/signals/debian``): downloaded and unpacked packages."""
    base = os.environ.get("SIGNALS_CACHE")
    root = Path(base) if base else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "signals"
    return root / "debian"


# --------------------------------------------------------------------------------------------------
# .deb files: download, unpack, read the control file


def _ar_members(deb: Path) -> dict[str, tuple[int, int]]:
    """``{name: (offset, size)}`` of the members of a ``.deb`` (an ``ar`` archive)."""
    out = {}
    with open(deb, "rb") as fh:
        if fh.read(8) != b"!<arch>\n":
            raise DataError(f"{deb} is not a Debian package (no ar header)")
        while True:
            head = fh.read(60)
            if len(head) < 60:
                break
            name = head[:16].decode("ascii", "replace").strip().rstrip("/")
            size = int(head[48:58].decode("ascii").strip())
            out[name] = (fh.tell(), size)
            fh.seek(size + (size & 1), os.SEEK_CUR)
    return out


def _open_member(deb: Path, prefix: str) -> tarfile.TarFile:
    members = _ar_members(deb)
    name = next((n for n in members if n.startswith(prefix)), None)
    if name is None:
        raise DataError(f"{deb} has no {prefix}* member")
    if name.endswith(".zst"):
        raise DataError(f"{deb}: {name} is zstd-compressed, which Python's tarfile cannot read; install dpkg")
    offset, size = members[name]
    with open(deb, "rb") as fh:
        fh.seek(offset)
        data = fh.read(size)
    import io

    return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")


def deb_control(deb: str | Path) -> dict[str, str]:
    """The fields of a ``.deb``'s control file (Package, Version, ...), read without dpkg."""
    with _open_member(Path(deb), "control.tar") as tf:
        member = next((m for m in tf.getmembers() if m.name.lstrip("./") == "control"), None)
        if member is None:
            raise DataError(f"{deb} has no control file")
        text = tf.extractfile(member).read().decode("utf-8", "replace")
    fields, key = {}, None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    return fields


def extract_deb(deb: str | Path, dest: str | Path, use_dpkg: bool | None = None) -> Path:
    """Unpack the files of ``deb`` under ``dest`` (``dpkg-deb -x`` when installed, else pure Python:
    regular files and folders only, nothing outside ``dest``)."""
    deb, dest = Path(deb), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if use_dpkg is None:
        use_dpkg = shutil.which("dpkg-deb") is not None
    if use_dpkg:
        res = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
        if res.returncode != 0:
            raise DataError(f"dpkg-deb -x {deb} failed: {res.stderr.strip()[-300:]}")
        return dest
    root = dest.resolve()
    with _open_member(deb, "data.tar") as tf:
        for m in tf:
            target = (dest / m.name).resolve()
            if root != target and root not in target.parents:
                continue  # never write outside dest
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(m) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    return dest


Runner = Callable[..., subprocess.CompletedProcess]


def apt_download(name: str, folder: Path, runner: Runner = subprocess.run) -> Path:
    """``apt-get download name`` into ``folder``; the ``.deb`` it wrote."""
    if runner is subprocess.run and shutil.which("apt-get") is None:
        raise DataError(f"apt-get is not installed, so {name} cannot be downloaded here: fetch its .deb on a "
                        f"Debian/Ubuntu machine (`apt-get download {name}`) and pass its folder with --debs")
    folder.mkdir(parents=True, exist_ok=True)
    res = runner(["apt-get", "download", name], cwd=folder, capture_output=True, text=True)
    if res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout or "").strip().splitlines()[-2:])
        raise DataError(f"`apt-get download {name}` failed ({tail}); run `apt-get update` or pass --debs DIR")
    deb = find_deb(name, folder)
    if deb is None:
        raise DataError(f"`apt-get download {name}` wrote no {name}_*.deb into {folder}")
    return deb


def find_deb(name: str, folder: str | Path) -> Path | None:
    found = sorted(Path(folder).glob(f"{name}_*.deb"))
    return found[-1] if found else None


def fetch_package(name: str, cache: str | Path, debs: str | Path | None = None, runner: Runner = subprocess.run,
                  use_dpkg: bool | None = None) -> tuple[Path, dict[str, Any]]:
    """``(unpacked root, info)`` of package ``name``: taken from ``debs`` if its ``.deb`` is there, else
    downloaded with apt-get; unpacked once into ``cache/<name>/root`` (a marker file records the .deb)."""
    folder = Path(cache) / name
    marker = folder / "unpacked.json"
    if marker.is_file():
        return folder / "root", json.loads(marker.read_text())
    deb = find_deb(name, debs) if debs else None
    if deb is None:
        if debs:
            log.info("no %s_*.deb in %s: downloading it", name, debs)
        deb = apt_download(name, folder / "deb", runner)
    control = deb_control(deb)
    if control.get("Package") != name:
        raise DataError(f"{deb} is package {control.get('Package')!r}, not {name!r}")
    tmp = folder / "root.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    extract_deb(deb, tmp, use_dpkg)
    shutil.rmtree(folder / "root", ignore_errors=True)
    tmp.rename(folder / "root")
    info = {"package": name, "version": control.get("Version"), "deb": deb.name, "deb_bytes": deb.stat().st_size,
            "deb_sha256": file_sha256(deb), "licence": PACKAGES[name].licence if name in PACKAGES else None}
    marker.write_text(json.dumps(info, indent=1) + "\n")
    return folder / "root", info


# --------------------------------------------------------------------------------------------------
# finding the speech clips

ISO_639_1 = set(
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee "
    "el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is "
    "it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms "
    "mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk "
    "sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi "
    "yo za zh zu nds".split()
)
AUDIO = (".ogg", ".wav", ".flac")
_TUX_DESC = re.compile(r"^(?P<name>.+?)_desc(?:_(?P<lang>[a-z]{2,3}(?:_[A-Za-z]{2})?))?$")


@dataclass(frozen=True)
class Clip:
    id: str  # "<package short>:<path inside the package's sound folder, without suffix>"
    package: str
    path: Path
    language: str
    group: str  # the split unit: one package's language, or one voice pack


def _stem(path: Path) -> str:
    name = path.name
    while Path(name).suffix.lower() in AUDIO:  # a few files are called *.ogg.ogg
        name = name[: -len(Path(name).suffix)]
    return name


def _locale(lang: str) -> str | None:
    return lang if lang.split("_")[0].lower() in ISO_639_1 else None


def _locale_suffix(stem: str) -> str | None:
    """``a_filled_en_GB`` -> ``en_GB``, ``3_zh_tw`` -> ``zh_tw``, ``big_red_fr`` -> ``fr``, ``frog`` -> None."""
    parts = stem.split("_")
    if len(parts) >= 3 and parts[-2] in ISO_639_1 and re.fullmatch(r"[A-Za-z]{2}", parts[-1]):
        return f"{parts[-2]}_{parts[-1]}"
    return parts[-1] if len(parts) >= 2 and parts[-1] in ISO_639_1 else None


def tuxpaint_language(path: Path) -> str | None:
    """Language of a Tux Paint speech file, ``None`` for sound effects: ``frog_desc.ogg`` (English),
    ``frog_desc_fr.ogg``, ``a_filled_en_GB.ogg``, ``3_ja.ogg``; ``frog.ogg`` is the frog's croak."""
    stem = _stem(path)
    m = _TUX_DESC.match(stem)
    if m:
        return _locale(m.group("lang")) if m.group("lang") else "en"
    return _locale_suffix(stem)


def find_clips(name: str, root: str | Path) -> list[Clip]:
    """The speech clips of unpacked package ``name`` under ``root``, sorted by id."""
    root = Path(root)
    short = PACKAGES[name].short if name in PACKAGES else name
    clips = []

    def add(path: Path, base: Path, language: str, group: str) -> None:
        rel = path.relative_to(base).as_posix()
        rel = rel[: len(rel) - len(path.name)] + _stem(path)
        clips.append(Clip(f"{short}:{rel}", name, path, language, f"{short}/{group}"))

    if name == "tuxpaint-stamps-default":
        base = root / "usr/share/tuxpaint/stamps"
        for path in sorted(base.rglob("*")):
            if path.suffix.lower() in AUDIO and path.is_file() and (lang := tuxpaint_language(path)):
                add(path, base, lang, lang)
    elif name == "klettres-data":
        base = root / "usr/share/klettres"
        for path in sorted(base.glob("*/*/*")):
            if path.suffix.lower() in AUDIO and path.is_file():
                lang = path.relative_to(base).parts[0]
                add(path, base, lang, lang)
    elif name == "hedgewars-data":
        base = root / "usr/share/games/hedgewars/Data/Sounds/voices"
        for path in sorted(base.glob("*/*")):
            if path.suffix.lower() in AUDIO and path.is_file():
                voice = path.parent.name
                suffix = voice.rsplit("_", 1)[-1] if "_" in voice else ""
                add(path, base, _locale(suffix) or "en", voice)
    else:
        raise DataError(f"no clip rules for package {name!r} (known: {', '.join(PACKAGES)})")
    return sorted(clips, key=lambda c: c.id)


# --------------------------------------------------------------------------------------------------
# measuring one clip


def content_bandwidth(x: np.ndarray, sr: int, snr_db: float = 6.0, n_fft: int = 2048) -> float | None:
    """Upper edge (Hz) of the band, continuous from 4 kHz up, where speech stands ``snr_db`` above the
    clip's own noise floor.

    Frames whose 0.1-4 kHz level is within 35 dB of the loudest are speech; frames 45 dB or more below it
    (but not digital silence) are the floor. Per bin, the *median* over speech frames (so a few clicks
    do not count) is compared with the median over floor frames, both smoothed over ~200 Hz; walking up
    from 4 kHz, the band ends where fewer than half of the bins in a 1 kHz window pass. ``None`` when
    the clip has too few pause frames to measure its floor (tightly cut clips, codecs that gate pauses
    to zero): then only the level criterion applies.
    """
    from scipy import signal as sps

    f, _, z = sps.stft(np.asarray(x, dtype=np.float64), fs=sr, nperseg=n_fft, noverlap=n_fft * 3 // 4)
    p = np.abs(z) ** 2
    level = 10 * np.log10(p[(f >= 100) & (f <= 4000)].sum(axis=0) + 1e-30)
    total = 10 * np.log10(p.sum(axis=0) + 1e-30)
    loud = level >= level.max() - 35
    quiet = (level <= level.max() - 45) & (total > -200)
    if quiet.sum() < 4 or loud.sum() < 2:
        return None
    k = max(1, int(round(200.0 / (sr / n_fft))))
    kernel = np.ones(k) / k
    speech = np.convolve(np.median(p[:, loud], axis=1), kernel, "same")
    floor = np.convolve(np.median(p[:, quiet], axis=1), kernel, "same")
    ok = 10 * np.log10((speech + 1e-30) / (floor + 1e-30)) >= snr_db
    w = max(1, int(round(1000.0 / (sr / n_fft))))
    share = np.convolve(ok.astype(float), np.ones(w) / w, "same")  # share of passing bins within +-500 Hz
    start = int(np.searchsorted(f, 4000.0))
    fails = np.nonzero(share[start:] < 0.5)[0]
    return float(f[start + fails[0]]) if fails.size else float(f[-1])


def active_level_db(x: np.ndarray, sr: int, frame_ms: float = 25.0, range_db: float = 30.0) -> float:
    """RMS level (dBFS) of the frames within ``range_db`` of the loudest: the level of the speech itself."""
    frame = max(1, int(sr * frame_ms / 1000))
    n = max(1, len(x) // frame)
    e = np.mean(np.square(np.pad(x, (0, max(0, n * frame - len(x))))[: n * frame].reshape(n, frame),
                          dtype=np.float64), axis=1)
    db = 10 * np.log10(e + 1e-20)
    return float(10 * np.log10(np.mean(e[db >= db.max() - range_db]) + 1e-20))


def band_levels_db(x: np.ndarray, sr: int, edges: tuple[float, ...] = (8000, 12000, 16000, 20000)) -> list[float | None]:
    """Mean power of each band between ``edges`` relative to the 0.1-4 kHz band (dB); None above Nyquist."""
    from scipy import signal as sps

    f, psd = sps.welch(np.asarray(x, dtype=np.float64), fs=sr, nperseg=min(2048, max(16, len(x))))
    ref = psd[(f >= 100) & (f <= 4000)].mean() + 1e-30
    out: list[float | None] = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (f >= lo) & (f < hi)
        out.append(round(float(10 * np.log10(psd[sel].mean() / ref + 1e-30)), 1) if sel.any() and hi <= sr / 2 else None)
    return out


def measure_clip(path: str | Path, cfg: PrepareConfig = PrepareConfig()) -> dict[str, Any]:
    """Decode one clip and measure it (at its own rate). Never raises: problems go into ``error``."""
    from signals.speech.audio import SILENCE_PEAK, load_audio, silence_bounds
    from signals.speech.sr.postprocess import detect_bandwidth

    path = Path(path)
    out: dict[str, Any] = {"bytes": path.stat().st_size, "sha1": hashlib.sha1(path.read_bytes()).hexdigest()}
    try:
        import soundfile as sf

        info = sf.info(str(path))
        x, sr = load_audio(path)
    except SignalsError as exc:
        return {**out, "error": str(exc)}
    out.update(rate=sr, channels=int(info.channels), seconds_raw=round(len(x) / sr, 3))
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak < SILENCE_PEAK:
        return {**out, "error": "silent"}
    start, stop = silence_bounds(x, sr, cfg.trim_db)
    pad = int(0.05 * sr)  # keep 50 ms of the edges: onsets and fades are speech too
    start, stop = max(0, start - pad), min(len(x), stop + pad)
    xt = x[start:stop]
    bw_level = detect_bandwidth(xt, sr, drop_db=cfg.drop_db)
    bw_content = content_bandwidth(x, sr, cfg.snr_db)
    bandwidth = min(bw_level, bw_content) if bw_content is not None else bw_level
    from signals.speech.sr.metrics import tonal_peak_db

    tonal = tonal_peak_db(xt, sr, 4000.0, bandwidth)
    level = active_level_db(xt, sr)
    peak_t = float(np.max(np.abs(xt)))
    gain = min(cfg.target_dbfs - level, cfg.peak_dbfs - 20 * np.log10(peak_t + 1e-12))
    out.update(start=int(start), stop=int(stop), seconds=round((stop - start) / sr, 3),
               bw_level_hz=round(bw_level), bw_content_hz=None if bw_content is None else round(bw_content),
               bandwidth_hz=round(bandwidth), tonal_db=round(tonal, 1), level_dbfs=round(level, 2), peak_dbfs=round(20 * np.log10(peak_t), 2),
               gain_db=round(float(gain), 3), band_db_8_12_16_20=band_levels_db(xt, sr))
    return out


def _measure_job(args: tuple[str, PrepareConfig]) -> dict[str, Any]:
    return measure_clip(*args)


# --------------------------------------------------------------------------------------------------
# selection, split, packs


def _reason(row: dict[str, Any], cfg: PrepareConfig, seen: dict[str, str]) -> str:
    """Why a measured clip is dropped ('' = kept). ``seen`` maps file hashes to the first clip id."""
    if row.get("error"):
        return row["error"]
    if row["group"] in cfg.exclude_groups:
        return "excluded group"
    if row["sha1"] in seen:
        return f"duplicate of {seen[row['sha1']]}"
    if row["seconds"] < cfg.min_seconds:
        return f"shorter than {cfg.min_seconds} s"
    if row["bandwidth_hz"] < cfg.min_bandwidth:
        return f"bandwidth below {cfg.min_bandwidth:.0f} Hz"
    if row["tonal_db"] > cfg.max_tonal_db:
        return f"tonal lines above {cfg.max_tonal_db:.0f} dB"
    return ""


def choose_groups(rows: list[dict[str, Any]], cfg: PrepareConfig) -> tuple[list[str], list[str]]:
    """(val groups, test groups): the configured ones, else one of each per package, drawn with ``seed``
    among groups holding 1-15 % of their package's kept minutes (held-out sets big enough to score,
    small enough not to starve training)."""
    if cfg.val_groups or cfg.test_groups:
        known = {r["group"] for r in rows}
        missing = [g for g in (*cfg.val_groups, *cfg.test_groups) if g not in known]
        if missing:
            raise DataError(f"held-out group(s) not found among the kept clips: {', '.join(missing)} "
                            f"(groups: {', '.join(sorted(known))})")
        return list(cfg.val_groups), list(cfg.test_groups)
    rng = np.random.default_rng(cfg.seed)
    minutes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        minutes[r["package"]][r["group"]] += r["seconds"] / 60
    val, test = [], []
    for package in sorted(minutes):
        groups = minutes[package]
        total = sum(groups.values())
        eligible = sorted(g for g, m in groups.items() if 0.01 * total <= m <= 0.15 * total) or sorted(groups)
        if len(eligible) >= 3:  # never hold out a package's only groups
            pick = rng.choice(len(eligible), size=2, replace=False)
            test.append(eligible[int(pick[0])])
            val.append(eligible[int(pick[1])])
    return val, test


def _round_robin(rows: list[dict[str, Any]], rng: np.random.Generator) -> list[dict[str, Any]]:
    """Interleave groups (each shuffled), so a size cap keeps every group represented."""
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_group[r["group"]].append(r)
    queues = []
    for g in sorted(by_group):
        items = by_group[g]
        queues.append([items[int(i)] for i in rng.permutation(len(items))])
    out = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def _encoded(row: dict[str, Any], codec: str) -> tuple[bytes, dict[str, Any]]:
    """The bytes a pack stores for a clip and the decoding fields of its index entry."""
    if codec == "source":
        data = Path(row["path"]).read_bytes()
        return data, {"codec": "source", "rate": row["rate"], "start": row["start"], "stop": row["stop"],
                      "gain_db": row["gain_db"]}
    from signals.speech.audio import load_audio

    x, sr = load_audio(row["path"])
    x = x[row["start"] : row["stop"]] * np.float32(10 ** (row["gain_db"] / 20))
    y = resample_poly(x, sr, SAMPLE_RATE, 8.0)
    pcm = np.clip(np.round(y * 32767.0), -32768, 32767).astype("<i2")
    return pcm.tobytes(), {"codec": "pcm16", "rate": SAMPLE_RATE, "start": 0, "stop": len(pcm), "gain_db": 0.0}


def write_pack(folder: str | Path, rows: list[dict[str, Any]], codec: str = "source",
               meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``rows`` (measured, kept, with ``split``) as a pack; atomic. Returns its summary."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    entries, offset = [], 0
    with open(tmp / PACK_AUDIO, "wb") as fh:
        for r in rows:
            data, dec = _encoded(r, codec)
            fh.write(data)
            entries.append({"id": r["id"], "offset": offset, "nbytes": len(data), **dec,
                            "seconds": r["seconds"], "bandwidth_hz": r["bandwidth_hz"], "group": r["group"],
                            "language": r["language"], "package": r["package"], "split": r["split"]})
            offset += len(data)
    summary = {"clips": len(entries), "bytes": offset, "minutes": round(sum(e["seconds"] for e in entries) / 60, 2),
               "per_split": {s: {"clips": sum(e["split"] == s for e in entries),
                                 "minutes": round(sum(e["seconds"] for e in entries if e["split"] == s) / 60, 2)}
                             for s in ("train", "val", "test")}}
    index = {"format": PACK_FORMAT, "sample_rate": SAMPLE_RATE, "codec": codec, **(meta or {}), "summary": summary,
             "clips": entries}
    (tmp / PACK_INDEX).write_text(json.dumps(index, indent=0) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return summary


def select_for_pack(rows: list[dict[str, Any]], cfg: PrepareConfig, codec_bytes: Callable[[dict], int]) -> list[dict]:
    """The device pack's clips: validation clips up to ``pack_val_minutes`` (groups interleaved), then training
    clips, those reaching ``prefer_bandwidth`` first, groups interleaved, while they fit ``pack_mb``."""
    rng = np.random.default_rng(cfg.seed + 1)
    budget = int(cfg.pack_mb * 1e6)
    chosen, used, val_s = [], 0, 0.0
    for r in _round_robin([r for r in rows if r["split"] == "val"], rng):
        if val_s + r["seconds"] > cfg.pack_val_minutes * 60:
            continue
        chosen.append(r)
        val_s += r["seconds"]
        used += codec_bytes(r)
    train = [r for r in rows if r["split"] == "train"]
    first = [r for r in train if r["bandwidth_hz"] >= cfg.prefer_bandwidth]
    rest = [r for r in train if r["bandwidth_hz"] < cfg.prefer_bandwidth]
    for r in _round_robin(first, rng) + _round_robin(rest, rng):
        n = codec_bytes(r)
        if used + n <= budget:
            chosen.append(r)
            used += n
    return sorted(chosen, key=lambda r: r["id"])


def _histogram(values: list[float], step: float = 1000.0, lo: float = 0.0, hi: float = 24000.0) -> dict[str, int]:
    edges = np.arange(lo, hi + step, step)
    counts, _ = np.histogram(np.clip(values, lo, hi - 1), bins=edges)
    return {f"{int(a / 1000)}-{int(b / 1000)}k": int(c) for a, b, c in zip(edges[:-1], edges[1:], counts) if c}


def _summary(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        d = out.setdefault(r[key], {"clips": 0, "minutes": 0.0})
        d["clips"] += 1
        d["minutes"] += r["seconds"] / 60
    return {k: {"clips": v["clips"], "minutes": round(v["minutes"], 2)} for k, v in sorted(out.items())}


TSV_COLUMNS = ("id", "package", "group", "language", "kept", "reason", "split", "rate", "channels", "seconds_raw",
               "seconds", "start", "stop", "bw_level_hz", "bw_content_hz", "bandwidth_hz", "tonal_db", "level_dbfs", "peak_dbfs", "gain_db",
               "band_db_8_12_16_20", "bytes", "path")


def prepare(out: str | Path, cfg: PrepareConfig = PrepareConfig(), cache: str | Path | None = None,
            debs: str | Path | None = None, pack: str | Path | None = None, runner: Runner = subprocess.run,
            progress: bool = True) -> dict[str, Any]:
    """Fetch, find, measure, select, split and pack; returns the manifest (also ``out/manifest.json``)."""
    from tqdm import tqdm

    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache) if cache else cache_dir()
    packages, clips = {}, []
    for name in cfg.packages:
        if name not in PACKAGES:
            raise DataError(f"unknown package {name!r}: this command knows {', '.join(PACKAGES)}")
        root, info = fetch_package(name, cache, debs, runner)
        found = find_clips(name, root)
        packages[name] = {**info, "clips_found": len(found)}
        clips += found
        log.info("%s %s: %d speech clips", name, info.get("version"), len(found))
    if not clips:
        raise DataError(f"no speech clips found in {', '.join(cfg.packages)}")
    t_fetch = time.time() - t0

    jobs = [(str(c.path), cfg) for c in clips]
    if cfg.workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(cfg.workers) as ex:
            measured = list(tqdm(ex.map(_measure_job, jobs, chunksize=16), total=len(jobs), desc="measure",
                                 mininterval=5.0, disable=not progress))
    else:
        measured = [_measure_job(j) for j in tqdm(jobs, desc="measure", mininterval=5.0, disable=not progress)]
    t_measure = time.time() - t0 - t_fetch

    rows, seen = [], {}
    for c, m in zip(clips, measured):
        row = {"id": c.id, "package": c.package, "group": c.group, "language": c.language, "path": str(c.path), **m}
        row["reason"] = _reason(row, cfg, seen)
        row["kept"] = not row["reason"]
        if "sha1" in row and row["sha1"] not in seen and not row.get("error"):
            seen[row["sha1"]] = c.id
        rows.append(row)
    kept = [r for r in rows if r["kept"]]
    if not kept:
        raise DataError(f"no clip reaches {cfg.min_bandwidth:.0f} Hz; lower --min-bandwidth")
    val_groups, test_groups = choose_groups(kept, cfg)
    for r in rows:
        r["split"] = ("test" if r["group"] in test_groups else "val" if r["group"] in val_groups else "train") \
            if r["kept"] else ""
    meta = {"packages": {k: {f: v[f] for f in ("version", "licence", "deb_sha256")} for k, v in packages.items()},
            "val_groups": val_groups, "test_groups": test_groups}
    full = write_pack(out / "full", kept, cfg.pack_codec, meta)
    if cfg.pack_codec == "source":
        def size(r: dict) -> int:
            return int(r["bytes"])
    else:
        def size(r: dict) -> int:
            return int(round(r["seconds"] * SAMPLE_RATE * 2))
    device_rows = select_for_pack(kept, cfg, size)
    device = write_pack(Path(pack) if pack else out / "pack", device_rows, cfg.pack_codec, meta)
    t_pack = time.time() - t0 - t_fetch - t_measure

    with open(out / "clips.tsv", "w") as fh:
        fh.write("\t".join(TSV_COLUMNS) + "\n")
        for r in rows:
            fh.write("\t".join("" if r.get(k) is None else json.dumps(r[k]) if isinstance(r.get(k), list)
                               else str(r[k]) for k in TSV_COLUMNS) + "\n")
    reasons = Counter(r["reason"].split(" of ")[0] if r["reason"].startswith("duplicate") else r["reason"]
                      for r in rows if not r["kept"])
    in_device = {r["id"] for r in device_rows}
    manifest = {
        "options": to_dict(cfg),
        "packages": packages,
        "found": {"clips": len(rows), "minutes": round(sum(r.get("seconds_raw", 0) for r in rows) / 60, 2)},
        "kept": {"clips": len(kept), "minutes": round(sum(r["seconds"] for r in kept) / 60, 2),
                 "per_package": _summary(kept, "package"), "per_language": _summary(kept, "language"),
                 "per_group": _summary(kept, "group"), "per_split": _summary(kept, "split")},
        "dropped": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "bandwidth_histogram": {
            "found": _histogram([r["bandwidth_hz"] for r in rows if "bandwidth_hz" in r]),
            "kept": _histogram([r["bandwidth_hz"] for r in kept]),
            "device_pack": _histogram([r["bandwidth_hz"] for r in kept if r["id"] in in_device]),
        },
        "split": {"val_groups": val_groups, "test_groups": test_groups, "unit": "group (package/language or voice)"},
        "full_pack": {"folder": str(out / "full"), **full},
        "device_pack": {"folder": str(Path(pack) if pack else out / "pack"), **device,
                        "per_language": _summary([r for r in kept if r["id"] in in_device], "language")},
        "seconds": {"fetch": round(t_fetch, 1), "measure": round(t_measure, 1), "pack": round(t_pack, 1),
                    "total": round(time.time() - t0, 1)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
