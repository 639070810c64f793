"""HAR datasets as windows ``float32 [N, C, T]``, labels, subject ids and class names.

Four real layouts, each read from the folder its official distribution unpacks to:

* ``load_hapt``        UCI HAPT raw recordings (``RawData/acc_expXX_userYY.txt``, ``gyro_...``,
                       ``labels.txt``). Task ``"uci-har"`` rebuilds UCI HAR exactly as its README
                       describes (see :mod:`signals.har.frontend`); task ``"hapt"`` adds the six
                       postural transitions (12 classes). Cached as ``.npz``.
* ``load_uci_har``     the official UCI HAR archive (``UCI HAR Dataset/{train,test}/Inertial Signals``).
* ``load_motionsense`` MotionSense device-motion CSVs (``A_DeviceMotion_data/<act>_<trial>/sub_<n>.csv``).
* ``load_uea``         UEA/UCR multivariate ``.ts`` files (BasicMotions).

``load_dataset(name)`` picks one by name with its default folder under ``signals.paths.data_root()``;
``download(name, dest)`` fetches the official archive (SHA-256 checked where one is known).

Malformed files raise :class:`signals.errors.DataError` naming the file and line.

``labels.txt`` convention: ``exp user activity start end`` with **1-based, inclusive** sample
indices (MATLAB style). Consecutive segments touch (``... 1232`` then ``1233 ...``), which only an
inclusive convention explains, and with it the window counts come out at exactly 7,415 train /
2,996 test, the numbers given for this rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signals.configio import to_dict
from signals.errors import DataError
from signals.har.frontend import (
    CHANNELS,
    PreprocessConfig,
    describe_bad_row,
    filter_recording,
    sliding_windows,
)
from signals.modelfolder import sha256 as file_sha256
from signals.paths import data_root

# --------------------------------------------------------------------------------------------------
# Dataset containers


@dataclass
class HARSplit:
    x: np.ndarray  # float32 [N, C, T]
    y: np.ndarray  # int64 [N], 0-based index into HARDataset.class_names
    subjects: np.ndarray  # int64 [N]

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class HARDataset:
    name: str
    train: HARSplit
    test: HARSplit
    class_names: list[str]
    channel_names: list[str]
    sample_rate: float
    static_classes: list[int]  # indices into class_names handled by the static branch
    dynamic_classes: list[int]  # the rest; every class is in exactly one group
    preprocess: PreprocessConfig | None  # front end that produced x from raw signals (None: as shipped)


# --------------------------------------------------------------------------------------------------
# Dataset definitions

UCI_HAR_CLASSES = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]
HAPT_CLASSES = UCI_HAR_CLASSES + [
    "STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE", "LIE_TO_STAND",
]  # fmt: skip
UCI_HAR_STATIC = [3, 4, 5]  # SITTING, STANDING, LAYING; the walks (and HAPT's transitions) are dynamic
# The official UCI HAR subject split (also the HAPT README's): 9 test subjects, the other 21 train.
UCI_HAR_TEST_SUBJECTS = (2, 4, 9, 10, 12, 13, 18, 20, 24)

MOTIONSENSE_CLASSES = ["dws", "ups", "wlk", "jog", "sit", "std"]
MOTIONSENSE_STATIC = [4, 5]
MOTIONSENSE_CHANNELS = [
    "attitude.roll", "attitude.pitch", "attitude.yaw",
    "gravity.x", "gravity.y", "gravity.z",
    "rotationRate.x", "rotationRate.y", "rotationRate.z",
    "userAcceleration.x", "userAcceleration.y", "userAcceleration.z",
]  # fmt: skip
# Subject-wise split of the 24 MotionSense subjects: every 4th subject (25 %) is a test subject.
MOTIONSENSE_TEST_SUBJECTS = (4, 8, 12, 16, 20, 24)

# What the UEA .ts header does not say: sample rate, channel names, static classes.
UEA_INFO = {
    "BasicMotions": {
        "sample_rate": 10.0,
        "channels": ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
        "static": ["Standing"],
    },
}

_CACHE_VERSION = 1  # bump when the HAPT rebuild changes, to invalidate old caches


def _groups(n_classes: int, static: Sequence[int]) -> tuple[list[int], list[int]]:
    static = sorted(static)
    return static, [i for i in range(n_classes) if i not in static]


# --------------------------------------------------------------------------------------------------
# Robust numeric text reading: fast path with numpy, slow path only to name the bad line


def _locate_problem(path: Path, ncols: int, delimiter: str | None, skip: int) -> str:
    """Scan ``path`` line by line and describe the first malformed line (for the error message)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if lineno <= skip or not line.strip():
                continue
            problem = describe_bad_row(line.split(delimiter) if delimiter else line.split(), ncols, lineno)
            if problem:
                return problem
    return "unreadable content"


def read_numeric(path: str | Path, ncols: int, delimiter: str | None = None, skip: int = 0) -> np.ndarray:
    """A text table of ``ncols`` finite numbers per line -> float64 ``[rows, ncols]``.

    Raises DataError naming the file and the first bad line (ragged row, missing column,
    non-numeric cell, NaN/inf) or saying the file is empty.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a table of numbers")
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        with open(path, "rb") as fh:
            binary = b"\0" in fh.read(1 << 16)
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if binary:  # loadtxt would report its bytes as a ragged first line
        raise DataError(f"{path} is a binary file, not a text table of {ncols} numbers per line")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on empty files; we raise below instead
            a = np.loadtxt(path, dtype=np.float64, delimiter=delimiter, skiprows=skip, ndmin=2)
    except ValueError:
        raise DataError(f"{path}: {_locate_problem(path, ncols, delimiter, skip)}") from None
    if a.size == 0:
        raise DataError(f"{path}: file is empty (no data rows)")
    if a.shape[1] != ncols or not np.isfinite(a).all():
        raise DataError(f"{path}: {_locate_problem(path, ncols, delimiter, skip)}")
    return a


# --------------------------------------------------------------------------------------------------
# 1. UCI HAPT raw -> UCI HAR (6 classes) or HAPT (12 classes)

_RAW_RE = re.compile(r"^(acc|gyro)_exp(\d+)_user(\d+)\.txt$")


def _find_rawdata(root: Path) -> Path:
    for cand in (root / "RawData", root, *(p / "RawData" for p in sorted(root.glob("*")) if p.is_dir())):
        if (cand / "labels.txt").is_file():
            return cand
    raise DataError(
        f"no UCI HAPT raw data under {root}: expected RawData/labels.txt and RawData/acc_expXX_userYY.txt "
        "(download with signals.har.data.download('hapt', DEST))"
    )


def read_hapt_labels(path: str | Path) -> np.ndarray:
    """``labels.txt`` -> int64 [rows, 5] (exp, user, activity, start, end), validated."""
    path = Path(path)
    table = read_numeric(path, 5)
    if (table != np.round(table)).any():
        line = int(np.argwhere(table != np.round(table))[0, 0]) + 1
        raise DataError(f"{path}: line {line}: expected integers (exp user activity start end)")
    labels = table.astype(np.int64)
    for i, (_exp, _user, act, start, end) in enumerate(labels, start=1):
        if not 1 <= act <= len(HAPT_CLASSES):
            raise DataError(
                f"{path}: line {i}: unknown activity label {act} (expected 1..{len(HAPT_CLASSES)})"
            )
        if start < 1 or end < start:
            raise DataError(
                f"{path}: line {i}: bad segment [{start}, {end}] (1-based inclusive, start <= end)"
            )
    return labels


def _segment_windows(start: int, end: int, n: int, window: int, hop: int, short: bool) -> list[int]:
    """Window start indices (0-based) for the 1-based inclusive segment [start, end] of a recording of n.

    Windows lie wholly inside the segment, every ``hop`` samples from its start. With ``short`` a
    segment shorter than a window still gets one window, centred on it (HAPT transitions).
    """
    s0, e0 = start - 1, end  # 0-based half-open
    if e0 - s0 >= window:
        return list(range(s0, e0 - window + 1, hop))
    if short and n >= window:
        return [min(max((s0 + e0) // 2 - window // 2, 0), n - window)]
    return []


def _hapt_files(raw: Path, labels: np.ndarray) -> dict[int, tuple[int, Path, Path]]:
    """exp -> (user, acc file, gyro file) for every experiment that has labels."""
    files: dict[int, dict] = {}
    for p in raw.iterdir():
        m = _RAW_RE.match(p.name)
        if m:
            files.setdefault(int(m.group(2)), {})[m.group(1)] = (int(m.group(3)), p)
    out = {}
    for exp, user in sorted({(int(e), int(u)) for e, u in labels[:, :2]}):
        got = files.get(exp, {})
        for kind in ("acc", "gyro"):
            if kind not in got:
                raise DataError(
                    f"{raw}: labels.txt names experiment {exp} but {kind}_exp{exp:02d}_user{user:02d}.txt is missing"
                )
            if got[kind][0] != user:
                raise DataError(
                    f"{got[kind][1]}: labels.txt says experiment {exp} is user {user}, the file name says user {got[kind][0]}"
                )
        out[exp] = (user, got["acc"][1], got["gyro"][1])
    return out


@dataclass(frozen=True)
class HAPTRecording:
    """One HAPT experiment: its raw files and labelled segments (activity 1..12, 1-based inclusive samples)."""

    exp: int
    user: int
    acc: Path
    gyro: Path
    segments: tuple[tuple[int, int, int], ...]  # (activity, start, end) as in labels.txt

    @property
    def name(self) -> str:
        return f"exp{self.exp:02d}_user{self.user:02d}"


def hapt_recordings(root: str | Path | None = None, subjects: Sequence[int] | None = None,
                    exclude: Sequence[int] = ()) -> list[HAPTRecording]:
    """The labelled HAPT experiments under ``root`` (default ``data_root()/uci-hapt``), in experiment order.

    ``subjects``: keep only these users; ``exclude``: drop these (e.g. :data:`UCI_HAR_TEST_SUBJECTS` to
    get the training subjects' recordings).
    """
    base = Path(root) if root is not None else data_root() / SOURCES["uci-hapt"].folder
    if root is not None and (base / SOURCES["uci-hapt"].folder).is_dir():
        base = base / SOURCES["uci-hapt"].folder
    if not base.exists():
        raise DataError(f"UCI HAPT not found at {base}; pass its folder (--data) or set SIGNALS_DATA")
    raw = _find_rawdata(base)
    labels = read_hapt_labels(raw / "labels.txt")
    files = _hapt_files(raw, labels)
    keep = None if subjects is None else {int(s) for s in subjects}
    drop = {int(s) for s in exclude}
    out = []
    for exp, (user, acc, gyro) in files.items():
        if (keep is not None and user not in keep) or user in drop:
            continue
        rows = labels[labels[:, 0] == exp]
        out.append(HAPTRecording(exp, user, acc, gyro, tuple((int(a), int(s), int(e)) for _, _, a, s, e in rows)))
    return out


def _cache_dir() -> Path:
    if "SIGNALS_CACHE" in os.environ:
        return Path(os.environ["SIGNALS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "signals"


def load_hapt(
    root: str | Path,
    task: str = "uci-har",
    cfg: PreprocessConfig = PreprocessConfig(),
    test_subjects: Sequence[int] = UCI_HAR_TEST_SUBJECTS,
    cache: bool = True,
) -> HARDataset:
    """UCI HAR (``task="uci-har"``, 6 classes) or HAPT (``task="hapt"``, 12 classes) rebuilt from HAPT raw.

    Every experiment is filtered whole with :func:`signals.har.frontend.filter_recording`
    (median + 20 Hz low-pass, gravity by 0.3 Hz low-pass, body = total - gravity), then cut into
    ``cfg.window``-sample windows every ``cfg.hop`` samples, wholly inside each labelled segment.
    ``"uci-har"`` keeps segments of activities 1-6; ``"hapt"`` keeps all 12, and a transition shorter
    than a window gets one window centred on it (otherwise most STAND_TO_SIT / SIT_TO_STAND
    segments, median 166 / 129 samples, would give none). Transitions are movements, so they join
    the dynamic group. Channels: :data:`signals.har.frontend.CHANNELS`. Split by subject
    (``test_subjects``, default the official UCI HAR split).

    The result is cached as ``.npz`` in ``$SIGNALS_CACHE`` (default ``~/.cache/signals``) keyed by
    the task, config, split and the size/mtime of every input file.
    """
    if task not in ("uci-har", "hapt"):
        raise ValueError(f"unknown HAPT task {task!r}: use 'uci-har' (6 classes) or 'hapt' (12 classes)")
    raw = _find_rawdata(Path(root))
    labels_path = raw / "labels.txt"
    labels = read_hapt_labels(labels_path)
    files = _hapt_files(raw, labels)
    classes = UCI_HAR_CLASSES if task == "uci-har" else HAPT_CLASSES
    static, dynamic = _groups(len(classes), UCI_HAR_STATIC)
    test_set = {int(s) for s in test_subjects}

    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in
             [labels_path] + [f for _, a, g in files.values() for f in (a, g)]]  # fmt: skip

    def cache_path(t: str) -> Path:
        key = json.dumps([_CACHE_VERSION, t, to_dict(cfg), sorted(test_set), str(raw.resolve()), stats])
        return _cache_dir() / "har" / f"hapt-{t}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"

    arrays = None
    if cache and cache_path(task).is_file():
        try:
            with np.load(cache_path(task)) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile):
            arrays = None  # a broken cache is rebuilt, never trusted
    if arrays is None:
        # One pass over the raw files serves both tasks, so both are cached together.
        tasks = ("uci-har", "hapt") if cache else (task,)
        built = _build_hapt(labels_path, labels, files, tasks, cfg, test_set)
        arrays = built[task]
        for t in tasks if cache else ():
            path = cache_path(t)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
            os.close(fd)
            with open(tmp, "wb") as fh:
                np.savez(fh, **built[t])
            os.replace(tmp, path)

    return HARDataset(
        name=task,
        train=HARSplit(arrays["x_train"], arrays["y_train"], arrays["s_train"]),
        test=HARSplit(arrays["x_test"], arrays["y_test"], arrays["s_test"]),
        class_names=list(classes),
        channel_names=list(CHANNELS),
        sample_rate=cfg.sample_rate,
        static_classes=static,
        dynamic_classes=dynamic,
        preprocess=cfg,
    )


def _build_hapt(labels_path, labels, files, tasks, cfg, test_set) -> dict[str, dict[str, np.ndarray]]:
    """Filter every experiment once and cut the windows of each task in ``tasks``: {task: arrays}."""
    from tqdm import tqdm

    parts = {task: {"train": [], "test": []} for task in tasks}
    for exp, (user, acc_path, gyro_path) in tqdm(
        files.items(), desc="rebuilding UCI HAR from HAPT", leave=False
    ):
        acc, gyro = read_numeric(acc_path, 3), read_numeric(gyro_path, 3)
        if len(acc) != len(gyro):
            raise DataError(f"{acc_path} has {len(acc)} samples but {gyro_path} has {len(gyro)}")
        sig = filter_recording(acc, gyro, cfg)  # [9, T]
        n = sig.shape[1]
        rows = np.flatnonzero(labels[:, 0] == exp)
        for lineno in rows:
            if labels[lineno, 4] > n:
                raise DataError(
                    f"{labels_path}: line {lineno + 1}: segment ends at sample {labels[lineno, 4]} "
                    f"but {acc_path.name} has only {n} samples"
                )
        split = "test" if user in test_set else "train"
        for task in tasks:
            n_classes = len(UCI_HAR_CLASSES if task == "uci-har" else HAPT_CLASSES)
            starts, ys = [], []
            for _, _, act, start, end in labels[rows]:
                if act <= n_classes:
                    ws = _segment_windows(int(start), int(end), n, cfg.window, cfg.hop, short=task == "hapt")
                    starts += ws
                    ys += [act - 1] * len(ws)
            if starts:
                idx = np.asarray(starts)[:, None] + np.arange(cfg.window)[None, :]  # [N, window]
                x = sig[:, idx].transpose(1, 0, 2)  # [N, 9, window]
                parts[task][split].append((x, np.asarray(ys, np.int64), np.full(len(ys), user, np.int64)))
    out = {}
    for task in tasks:
        arrays = {}
        for split, p in parts[task].items():
            x = np.concatenate([a for a, _, _ in p]) if p else np.zeros((0, 9, cfg.window))
            # C order, as np.load returns the cached copy: the windows were cut as a [N, T, C]-strided view, and
            # numpy's float32 reductions (the channel normalisation) round differently on such a layout, so a
            # freshly rebuilt set trained a different network than the same set read from the cache
            arrays[f"x_{split}"] = np.ascontiguousarray(x, dtype=np.float32)
            arrays[f"y_{split}"] = np.concatenate([b for _, b, _ in p]) if p else np.zeros(0, np.int64)
            arrays[f"s_{split}"] = np.concatenate([c for _, _, c in p]) if p else np.zeros(0, np.int64)
        out[task] = arrays
    return out


# --------------------------------------------------------------------------------------------------
# 2. The official UCI HAR archive

_UCI_SIGNAL_FILES = CHANNELS  # body_acc_x ... total_acc_z, the archive's own file stems


def _find_uci_har(root: Path) -> Path:
    for cand in (
        root,
        root / "UCI HAR Dataset",
        *(p / "UCI HAR Dataset" for p in sorted(root.glob("*")) if p.is_dir()),
    ):
        if (cand / "train" / "Inertial Signals").is_dir():
            return cand
    raise DataError(
        f"no UCI HAR archive under {root}: expected 'UCI HAR Dataset/train/Inertial Signals/' "
        "(download with signals.har.data.download('uci-har-official', DEST))"
    )


def _read_int_column(path: Path, lo: int, hi: int, what: str) -> np.ndarray:
    col = read_numeric(path, 1)[:, 0]
    bad = np.flatnonzero((col != np.round(col)) | (col < lo) | (col > hi))
    if len(bad):
        raise DataError(
            f"{path}: line {bad[0] + 1}: unknown {what} {col[bad[0]]:g} (expected integers {lo}..{hi})"
        )
    return col.astype(np.int64)


def load_uci_har(root: str | Path) -> HARDataset:
    """The official UCI HAR archive: 9 inertial channels x 128 samples, 6 classes, its own split.

    ``root`` is the ``UCI HAR Dataset`` folder or a folder containing it. The signals are already
    the UCI front end's output (filtered, windowed), so ``preprocess`` is the matching
    :class:`PreprocessConfig` (the official filters' phase behaviour is not documented).
    """
    base = _find_uci_har(Path(root))
    splits = {}
    for split in ("train", "test"):
        folder = base / split
        chans = []
        for stem in _UCI_SIGNAL_FILES:
            path = folder / "Inertial Signals" / f"{stem}_{split}.txt"
            chans.append(read_numeric(path, 128))
        y = _read_int_column(folder / f"y_{split}.txt", 1, 6, "activity label")
        subjects = _read_int_column(folder / f"subject_{split}.txt", 1, 10_000, "subject id")
        lengths = {len(c) for c in chans} | {len(y), len(subjects)}
        if len(lengths) != 1:
            raise DataError(f"{folder}: signal, y_{split}.txt and subject_{split}.txt files differ in row count "
                            f"({sorted(lengths)}); the archive is incomplete")  # fmt: skip
        x = np.stack(chans, axis=1).astype(np.float32)  # [N, 9, 128]
        splits[split] = HARSplit(x, y - 1, subjects)
    static, dynamic = _groups(6, UCI_HAR_STATIC)
    return HARDataset("uci-har-official", splits["train"], splits["test"], list(UCI_HAR_CLASSES), list(CHANNELS),
                      50.0, static, dynamic, PreprocessConfig())  # fmt: skip


# --------------------------------------------------------------------------------------------------
# 3. MotionSense (device-motion data, iPhone 6s in the front pocket, 50 Hz)

_MS_TRIAL_RE = re.compile(r"^([a-z]+)_(\d+)$")
_MS_FILE_RE = re.compile(r"^sub_(\d+)\.csv$")


def read_motionsense_csv(path: str | Path) -> np.ndarray:
    """One ``sub_<n>.csv`` -> float64 [T, 12] in :data:`MOTIONSENSE_CHANNELS` order."""
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = [h.strip().strip('"') for h in fh.readline().rstrip("\n\r").split(",")]
    missing = [c for c in MOTIONSENSE_CHANNELS if c not in header]
    if missing:
        raise DataError(f"{path}: line 1: header lacks columns {missing} (found {header})")
    table = read_numeric(path, len(header), delimiter=",", skip=1)
    return table[:, [header.index(c) for c in MOTIONSENSE_CHANNELS]]


def load_motionsense(
    root: str | Path,
    test_subjects: Sequence[int] = MOTIONSENSE_TEST_SUBJECTS,
    window: int = 128,
    hop: int = 64,
) -> HARDataset:
    """MotionSense ``A_DeviceMotion_data``: 12 channels, 6 activities, windows of each trial file.

    Subject-wise split: ``test_subjects`` (default every 4th subject, 4, 8, ..., 24: 6 of 24)
    are the test set, the rest train. Channels are as shipped (attitude rad, gravity g,
    rotationRate rad/s, userAcceleration g); ``preprocess`` is None. Windows of ``window`` samples
    every ``hop`` within each ``<act>_<trial>/sub_<n>.csv`` recording.
    """
    root = Path(root)
    base = root / "A_DeviceMotion_data" if (root / "A_DeviceMotion_data").is_dir() else root
    trials = (
        sorted(p for p in base.iterdir() if p.is_dir() and _MS_TRIAL_RE.match(p.name))
        if base.is_dir()
        else []
    )
    if not trials:
        raise DataError(f"no MotionSense data under {root}: expected A_DeviceMotion_data/<act>_<trial>/sub_<n>.csv "
                        "(download with signals.har.data.download('motionsense', DEST))")  # fmt: skip
    test_set = {int(s) for s in test_subjects}
    parts: dict[str, list] = {"train": [], "test": []}
    for trial in trials:
        act = _MS_TRIAL_RE.match(trial.name).group(1)
        if act not in MOTIONSENSE_CLASSES:
            raise DataError(
                f"{trial}: unknown MotionSense activity {act!r} (expected one of {MOTIONSENSE_CLASSES})"
            )
        for csv_path in sorted(trial.iterdir()):
            m = _MS_FILE_RE.match(csv_path.name)
            if not m:
                continue
            subject = int(m.group(1))
            x = sliding_windows(read_motionsense_csv(csv_path).T.astype(np.float32), window, hop)
            if len(x):
                split = "test" if subject in test_set else "train"
                parts[split].append((x, MOTIONSENSE_CLASSES.index(act), subject))
    splits = {}
    for split, p in parts.items():
        if not p:
            raise DataError(f"{base}: no {split} windows (subjects {sorted(test_set)} are the test set)")
        splits[split] = HARSplit(
            np.concatenate([x for x, _, _ in p]),
            np.concatenate([np.full(len(x), y, np.int64) for x, y, _ in p]),
            np.concatenate([np.full(len(x), s, np.int64) for x, _, s in p]),
        )
    static, dynamic = _groups(len(MOTIONSENSE_CLASSES), MOTIONSENSE_STATIC)
    return HARDataset("motionsense", splits["train"], splits["test"], list(MOTIONSENSE_CLASSES),
                      list(MOTIONSENSE_CHANNELS), 50.0, static, dynamic, None)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# 4. UEA / UCR multivariate .ts


def read_ts(path: str | Path) -> tuple[np.ndarray, list[str], list[str]]:
    """A UEA ``.ts`` file -> (x float32 [N, C, T], labels as strings, declared class labels)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    class_labels: list[str] | None = None
    meta: dict[str, str] = {}
    series, labels = [], []
    in_data = False
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                low = line.lower()
                if low == "@data":
                    in_data = True
                elif low.startswith("@classlabel"):
                    parts = line.split()
                    if len(parts) < 3 or parts[1].lower() != "true":
                        raise DataError(f"{path}: line {lineno}: expected '@classLabel true <labels...>'")
                    class_labels = parts[2:]
                elif low.startswith("@"):
                    key, _, value = line.partition(" ")
                    meta[key[1:].lower()] = value.strip().lower()
                continue
            if meta.get("timestamps") == "true":
                raise DataError(f"{path}: time-stamped .ts files are not supported")
            dims = line.split(":")
            label = dims.pop().strip()
            if class_labels is not None and label not in class_labels:
                raise DataError(
                    f"{path}: line {lineno}: unknown class label {label!r} (declared: {class_labels})"
                )
            try:
                values = [np.array([float(v) for v in d.split(",")], np.float64) for d in dims]
            except ValueError as exc:
                raise DataError(f"{path}: line {lineno}: non-numeric value ({exc})") from None
            if any(not np.isfinite(v).all() for v in values):
                raise DataError(f"{path}: line {lineno}: missing ('?') or NaN values are not supported")
            if series and (
                len(values) != series[0].shape[0] or any(len(v) != series[0].shape[1] for v in values)
            ):
                raise DataError(f"{path}: line {lineno}: ragged series: {len(values)} dimensions of lengths "
                                f"{sorted({len(v) for v in values})}, expected {series[0].shape[0]} x {series[0].shape[1]}")  # fmt: skip
            if len({len(v) for v in values}) != 1:
                raise DataError(
                    f"{path}: line {lineno}: dimensions have different lengths {[len(v) for v in values]}"
                )
            series.append(np.stack(values))
            labels.append(label)
    if not series:
        raise DataError(f"{path}: no data rows after @data")
    if class_labels is None:
        raise DataError(f"{path}: header lacks '@classLabel true <labels...>'")
    return np.stack(series).astype(np.float32), labels, class_labels


def load_uea(root: str | Path, name: str = "BasicMotions") -> HARDataset:
    """A UEA multivariate archive problem from ``<root>/<name>_TRAIN.ts`` and ``_TEST.ts``.

    Class order is the header's ``@classLabel`` order. The .ts format carries no subject ids:
    each series gets its own id (train 0..N-1, test N..), so a "subject-wise" validation split
    degenerates to a per-series split. Sample rate, channel names and static classes come from
    :data:`UEA_INFO` (BasicMotions: 10 Hz, acc xyz + gyro xyz, Standing static); for other
    problems the rate is NaN and every class is dynamic.
    """
    root = Path(root)
    base = root / name if (root / name / f"{name}_TRAIN.ts").is_file() else root
    x_tr, l_tr, classes = read_ts(base / f"{name}_TRAIN.ts")
    x_te, l_te, classes_te = read_ts(base / f"{name}_TEST.ts")
    if classes_te != classes or x_te.shape[1:] != x_tr.shape[1:]:
        raise DataError(f"{base}: {name}_TRAIN.ts and {name}_TEST.ts disagree on classes or series shape")
    info = UEA_INFO.get(name, {})
    channels = info.get("channels") or [f"dim_{i}" for i in range(x_tr.shape[1])]
    if len(channels) != x_tr.shape[1]:
        raise DataError(
            f"{base}: {name} should have {len(channels)} dimensions, the files have {x_tr.shape[1]}"
        )
    static, dynamic = _groups(
        len(classes), [classes.index(c) for c in info.get("static", []) if c in classes]
    )
    n = len(x_tr)
    return HARDataset(
        name=name.lower(),
        train=HARSplit(
            x_tr, np.array([classes.index(c) for c in l_tr], np.int64), np.arange(n, dtype=np.int64)
        ),
        test=HARSplit(
            x_te,
            np.array([classes.index(c) for c in l_te], np.int64),
            np.arange(n, n + len(x_te), dtype=np.int64),
        ),
        class_names=list(classes),
        channel_names=list(channels),
        sample_rate=float(info.get("sample_rate", float("nan"))),
        static_classes=static,
        dynamic_classes=dynamic,
        preprocess=None,
    )


# --------------------------------------------------------------------------------------------------
# Registry and downloads


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from and where it lives under ``data_root()``."""

    folder: str  # default folder name under signals.paths.data_root()
    url: str
    sha256: str | None  # of the downloaded archive; None = no published digest known to us
    licence: str


SOURCES: dict[str, Source] = {
    "uci-hapt": Source(
        "uci-hapt",
        "https://archive.ics.uci.edu/static/public/341/smartphone+based+recognition+of+human+activities+and+postural+transitions.zip",
        None,
        "CC BY 4.0, Reyes-Ortiz, Oneto, Samà, Parra, Anguita, Neurocomputing 2016",
    ),
    "uci-har-official": Source(
        "uci-har",
        "https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip",
        "c00b803081a5c797cd5e4b83700a9810b38d53d9d84e01917e090e1fdbc81031",
        "CC BY 4.0, Anguita, Ghio, Oneto, Parra, Reyes-Ortiz, ESANN 2013",
    ),
    "motionsense": Source(
        "motionsense",
        "https://github.com/mmalekzadeh/motion-sense/raw/master/data/A_DeviceMotion_data.zip",
        None,
        "ODC-ODbL, Malekzadeh, Clegg, Cavallaro, Haddadi, IoTDI 2019",
    ),
    "basicmotions": Source(
        "uea-basicmotions",
        "https://timeseriesclassification.com/aeon-toolkit/BasicMotions.zip",
        None,
        "UEA/UCR archive, Bagnall et al.",
    ),
}

_LOADERS = {
    "uci-har": ("uci-hapt", lambda root, **kw: load_hapt(root, task="uci-har", **kw)),
    "hapt": ("uci-hapt", lambda root, **kw: load_hapt(root, task="hapt", **kw)),
    "uci-har-official": ("uci-har-official", load_uci_har),
    "motionsense": ("motionsense", load_motionsense),
    "basicmotions": ("basicmotions", lambda root, **kw: load_uea(root, name="BasicMotions", **kw)),
}
DATASETS = sorted(_LOADERS)


def load_dataset(name: str, root: str | Path | None = None, **kw) -> HARDataset:
    """Load a dataset by name (:data:`DATASETS`); ``root`` defaults to ``data_root()/<folder>``.

    ``root`` may be the dataset's folder or its parent (the folder holding ``<folder>``).

    ``"uci-har"`` and ``"hapt"`` are rebuilt from the UCI HAPT raw recordings; the official UCI HAR
    archive is ``"uci-har-official"``.
    """
    if name not in _LOADERS:
        raise DataError(f"unknown HAR dataset {name!r}; choose one of {DATASETS}")
    source, loader = _LOADERS[name]
    folder = SOURCES[source].folder
    path = Path(root) if root is not None else data_root() / folder
    if root is not None and (path / folder).is_dir():
        path = path / folder  # root is the parent data folder (like SIGNALS_DATA), not the dataset's own
    if not path.exists():
        raise DataError(f"dataset {name!r} not found at {path}; pass its folder, set SIGNALS_DATA, "
                        f"or fetch it with signals.har.data.download({source!r}, DEST)")  # fmt: skip
    return loader(path, **kw)


def _fetch(url: str, dest: Path) -> None:
    """Copy ``url`` (http(s) or file://) to ``dest`` with a progress bar."""
    from tqdm import tqdm

    with urllib.request.urlopen(url) as resp, open(dest, "wb") as out:  # noqa: S310 - fixed, known URLs
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))


def _safe_extract(zf: zipfile.ZipFile, dest: Path) -> None:
    dest = dest.resolve()
    for info in zf.infolist():
        target = (dest / info.filename).resolve()
        if not target.is_relative_to(dest):
            raise DataError(f"refusing to extract {info.filename!r}: it points outside {dest}")
    zf.extractall(dest)


def download(name: str, dest: str | Path, url: str | None = None, sha256: str | None = None) -> Path:
    """Download and unpack dataset ``name`` (a key of :data:`SOURCES` or :data:`DATASETS`) into ``dest``.

    Returns the folder to pass as ``root`` to :func:`load_dataset`. The archive's SHA-256 is checked
    against the pinned digest (``sha256`` overrides it); a mismatch raises DataError and deletes the
    file. Where no digest is known, a warning says so and gives the digest of what was downloaded.
    Nested archives (UCI HAR's ``UCI HAR Dataset.zip`` inside the download) are unpacked too.
    """
    key = {"uci-har": "uci-hapt", "hapt": "uci-hapt"}.get(name, name)
    if key not in SOURCES:
        raise DataError(f"unknown HAR dataset {name!r}; choose one of {sorted(set(SOURCES) | set(DATASETS))}")
    src = SOURCES[key]
    url = url or src.url
    expected = sha256 or src.sha256
    folder = Path(dest) / src.folder
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / (Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or f"{key}.zip")
    try:
        _fetch(url, archive)
    except OSError as exc:
        raise DataError(f"could not download {name} from {url}: {exc}") from exc
    digest = file_sha256(archive)
    if expected is None:
        warnings.warn(f"no published SHA-256 is known for {name}; the downloaded {archive.name} has "
                      f"sha256={digest} — check it against a trusted copy", stacklevel=2)  # fmt: skip
    elif digest != expected.lower():
        archive.unlink()
        raise DataError(
            f"{name}: SHA-256 mismatch for {url}: expected {expected}, got {digest} (file deleted)"
        )
    try:
        with zipfile.ZipFile(archive) as zf:
            _safe_extract(zf, folder)
        for inner in list(folder.rglob("*.zip")):  # e.g. 'UCI HAR Dataset.zip' inside the UCI download
            if inner != archive and "__MACOSX" not in inner.parts:
                with zipfile.ZipFile(inner) as zf:
                    _safe_extract(zf, inner.parent)
                inner.unlink()
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive}: not a valid zip archive ({exc})") from exc
    archive.unlink()
    shutil.rmtree(folder / "__MACOSX", ignore_errors=True)
    return folder
