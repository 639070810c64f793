"""HAR loaders and the UCI HAR front end: real data where present, official formats written here."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from signals.configio import from_dict, to_dict
from signals.errors import DataError
from signals.har import data as D
from signals.har.frontend import (
    CHANNELS,
    PreprocessConfig,
    UCIHARFilter,
    filter_recording,
    sliding_windows,
)
from signals.paths import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "har"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Never read or write the user's cache from tests (one cache shared by this module's tests)."""
    monkeypatch.setenv("SIGNALS_CACHE", str(tmp_path_factory.getbasetemp() / "har-cache"))


# ---------------------------------------------------------------------------------------------
# Front end


def _raw(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 50
    acc = np.stack([np.full(n, 0.98), 0.1 * np.sin(2 * np.pi * 2 * t), 0.2 + 0.05 * t / t[-1]], 1)
    return acc + 0.02 * rng.normal(size=(n, 3)), 0.3 * rng.normal(size=(n, 3))


def test_streaming_filter_equals_one_shot_for_any_chunking():
    acc, gyro = _raw(3000)
    ref = filter_recording(acc, gyro)
    assert ref.shape == (9, 3000) and ref.dtype == np.float32
    rng = np.random.default_rng(1)
    for trial in range(3):
        f, outs, i = UCIHARFilter(), [], 0
        while i < len(acc):
            n = int(rng.integers(0, 400)) if trial or i > 300 else 1  # includes empty and 1-sample chunks
            outs.append(f.process(acc[i : i + n], gyro[i : i + n]))
            i += n
        outs.append(f.flush())
        np.testing.assert_array_equal(np.concatenate(outs, axis=1), ref)


def test_filter_separates_gravity_body_and_noise():
    n, sr = 2000, 50.0
    t = np.arange(n) / sr
    gravity = np.array([0.1, 0.2, 0.97])
    body = 0.3 * np.sin(2 * np.pi * 2.0 * t)  # 2 Hz body motion on x
    noise = 0.3 * np.sin(2 * np.pi * 24.0 * t)  # 24 Hz (above the 20 Hz cut) on y
    acc = np.tile(gravity, (n, 1))
    acc[:, 0] += body
    acc[:, 1] += noise
    gyro = np.zeros((n, 3))
    gyro[1000, 2] = 5.0  # an isolated spike: the median filter removes it
    out = filter_recording(acc, gyro).astype(np.float64)
    body_acc, body_gyro, total = out[0:3, 500:], out[3:6], out[6:9, 500:]
    # gravity is removed from body_acc, kept in total_acc
    np.testing.assert_allclose(body_acc[2].mean(), 0.0, atol=0.01)
    np.testing.assert_allclose(total[2].mean(), 0.97, atol=0.01)
    # 2 Hz motion passes into body_acc (causal filters: amplitude kept within 10 %)
    assert 0.27 < np.abs(body_acc[0]).max() < 0.33
    # 24 Hz noise is attenuated by the 20 Hz low-pass (3rd order: to well under half)
    assert np.abs(total[1] - total[1].mean()).max() < 0.15
    # the spike is gone
    assert np.abs(body_gyro).max() < 1e-6


def test_filter_rejects_bad_chunks():
    f = UCIHARFilter()
    with pytest.raises(DataError, match="shape"):
        f.process(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(DataError, match="differ in length"):
        f.process(np.zeros((10, 3)), np.zeros((9, 3)))
    bad = np.zeros((10, 3))
    bad[4, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        f.process(np.zeros((10, 3)), bad)


def test_sliding_windows_and_config_round_trip():
    x = np.arange(2 * 300, dtype=np.float32).reshape(2, 300)
    w = sliding_windows(x, 128, 64)
    assert w.shape == (3, 2, 128)  # starts 0, 64, 128 (192 + 128 > 300)
    np.testing.assert_array_equal(w[1], x[:, 64:192])
    assert sliding_windows(x[:, :100], 128, 64).shape == (0, 2, 128)
    cfg = PreprocessConfig(median_kernel=5, hop=32)
    assert from_dict(PreprocessConfig, to_dict(cfg)) == cfg
    with pytest.raises(ValueError):
        PreprocessConfig(median_kernel=4)
    with pytest.raises(ValueError):
        PreprocessConfig(noise_cutoff_hz=30.0)  # above Nyquist at 50 Hz
    with pytest.raises(ValueError):
        from_dict(PreprocessConfig, {"window": 128, "stride": 2})


# ---------------------------------------------------------------------------------------------
# 1. HAPT raw -> UCI HAR / HAPT-12


def test_hapt_example_excerpt_windows_follow_labels():
    """The shipped excerpt: 1-based inclusive labels, windows wholly inside segments, hop 64."""
    ds = D.load_hapt(EXAMPLE, task="uci-har", cache=False)
    acc = np.loadtxt(EXAMPLE / "RawData" / "acc_exp04_user02.txt")
    gyro = np.loadtxt(EXAMPLE / "RawData" / "gyro_exp04_user02.txt")
    sig = filter_recording(acc, gyro)
    # labels: LAYING 1..517 -> (517-128)//64+1 = 7 windows; WALKING 1406..2000 -> (595-128)//64+1 = 8
    assert len(ds.train) == 0 and len(ds.test) == 15  # user 2 is an official test subject
    assert ds.test.y.tolist() == [5] * 7 + [0] * 8
    assert set(ds.test.subjects.tolist()) == {2}
    np.testing.assert_array_equal(ds.test.x[0], sig[:, 0:128])
    np.testing.assert_array_equal(ds.test.x[7], sig[:, 1405:1533])  # 1-based 1406 -> index 1405
    np.testing.assert_array_equal(ds.test.x[-1], sig[:, 1405 + 7 * 64 : 1405 + 7 * 64 + 128])
    assert ds.class_names[0] == "WALKING" and ds.class_names[5] == "LAYING"
    assert ds.channel_names == CHANNELS and ds.preprocess == PreprocessConfig()

    hapt = D.load_hapt(EXAMPLE, task="hapt", cache=False)
    # LIE_TO_STAND 518..698 (181 samples) gives windows too; transitions are dynamic
    assert hapt.test.y.tolist() == [5] * 7 + [11] * 1 + [0] * 8
    assert len(hapt.class_names) == 12 and 11 in hapt.dynamic_classes and hapt.static_classes == [3, 4, 5]


def test_real_hapt_rebuild_counts_split_and_cache(hapt_root):
    t0 = time.perf_counter()
    ds = D.load_hapt(hapt_root, task="uci-har")
    t_build = time.perf_counter() - t0
    assert ds.train.x.shape == (7415, 9, 128) and ds.test.x.shape == (2996, 9, 128)
    assert (
        ds.train.x.dtype == np.float32
        and ds.train.y.dtype == np.int64
        and ds.train.subjects.dtype == np.int64
    )
    assert set(ds.test.subjects.tolist()) == set(D.UCI_HAR_TEST_SUBJECTS)
    assert set(ds.train.subjects.tolist()) == set(range(1, 31)) - set(D.UCI_HAR_TEST_SUBJECTS)
    assert np.bincount(ds.train.y, minlength=6).min() > 900 and ds.train.y.max() == 5
    assert ds.static_classes == [3, 4, 5] and ds.dynamic_classes == [0, 1, 2]
    # physics: total_acc is ~1 g in magnitude, body_acc has zero mean, LAYING moves gravity off x
    mag = np.linalg.norm(ds.train.x[:, 6:9].mean(2), axis=1)
    assert 0.9 < np.median(mag) < 1.1
    assert np.abs(ds.train.x[:, 0:3].mean()) < 0.01
    lay, stand = ds.train.x[ds.train.y == 5, 6].mean(), ds.train.x[ds.train.y == 4, 6].mean()
    assert lay < 0.5 < stand

    t0 = time.perf_counter()
    again = D.load_hapt(hapt_root, task="uci-har")
    t_cached = time.perf_counter() - t0
    np.testing.assert_array_equal(again.train.x, ds.train.x)
    np.testing.assert_array_equal(again.test.y, ds.test.y)
    assert t_cached < max(2.0, t_build / 3)

    hapt = D.load_dataset("hapt", root=hapt_root)
    assert len(hapt.class_names) == 12
    assert set(np.unique(hapt.train.y).tolist()) == set(range(12))
    # the six basic activities get exactly the UCI HAR windows; transitions add a few hundred
    assert (hapt.train.y < 6).sum() == 7415 and (hapt.test.y < 6).sum() == 2996
    assert 200 < (hapt.train.y >= 6).sum() < 1000


def _copy_hapt(tmp_path: Path) -> Path:
    raw = tmp_path / "hapt" / "RawData"
    raw.mkdir(parents=True)
    for f in (EXAMPLE / "RawData").iterdir():
        (raw / f.name).write_text(f.read_text())
    return raw


def test_hapt_malformed_inputs(tmp_path):
    raw = _copy_hapt(tmp_path)
    labels = raw / "labels.txt"
    labels.write_text("4 2 6 1 517\n4 2 13 518 698\n")
    with pytest.raises(DataError, match=r"labels\.txt: line 2: unknown activity label 13"):
        D.load_hapt(raw.parent, cache=False)
    labels.write_text("4 2 6 1 517\n4 2 1 1406 2600\n")
    with pytest.raises(DataError, match=r"line 2: segment ends at sample 2600 .* only 2000"):
        D.load_hapt(raw.parent, cache=False)
    labels.write_text("4 2 6 1 517\n4 2 1 1406\n")
    with pytest.raises(DataError, match=r"labels\.txt: line 2: expected 5 columns, found 4"):
        D.load_hapt(raw.parent, cache=False)
    labels.write_text("4 2 6 1 517\n")
    acc = raw / "acc_exp04_user02.txt"
    lines = acc.read_text().splitlines()
    lines[9] = "0.1 nan 0.3"
    acc.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"acc_exp04_user02\.txt: line 10, column 2: 'nan'"):
        D.load_hapt(raw.parent, cache=False)
    lines[9] = "0.1 0.2"
    acc.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"acc_exp04_user02\.txt: line 10: expected 3 columns, found 2"):
        D.load_hapt(raw.parent, cache=False)
    acc.unlink()
    with pytest.raises(DataError, match="acc_exp04_user02.txt is missing"):
        D.load_hapt(raw.parent, cache=False)
    with pytest.raises(DataError, match="no UCI HAPT raw data"):
        D.load_hapt(tmp_path / "nowhere", cache=False)


def test_hapt_cache_invalidated_when_files_change(tmp_path):
    raw = _copy_hapt(tmp_path)
    first = D.load_hapt(raw.parent)
    cached = D.load_hapt(raw.parent)
    # built and cached windows are the same arrays, in the same (C) memory order: float32 reductions over them
    # (the normalisation a network is trained with) give the same bits either way
    for ds in (first, cached):
        assert ds.test.x.flags["C_CONTIGUOUS"] and ds.train.x.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(first.test.x, cached.test.x)
    (raw / "labels.txt").write_text("4 2 6 1 517\n")  # drop the walking segment
    second = D.load_hapt(raw.parent)
    assert len(first.test) == 15 and len(second.test) == 7 and second.test.x.flags["C_CONTIGUOUS"]


# ---------------------------------------------------------------------------------------------
# 2. Official UCI HAR archive (written here in its exact format)


def _uci_row(values: np.ndarray) -> str:
    # The archive's style: space-separated scientific notation with 3-digit exponents and a sign
    # column, e.g. "  1.8085150e-004 -1.2300000e-002 ...".
    cells = (f"{v: .7e}" for v in values)
    return " " + " ".join(c[:-3] + c[-3] + "0" + c[-2:] for c in cells) + "\n"


def _write_uci_har(root: Path, rng) -> dict:
    base = root / "UCI HAR Dataset"
    truth = {}
    for split, n in (("train", 5), ("test", 3)):
        sig = rng.normal(size=(n, 9, 128)).astype(np.float32)
        inertial = base / split / "Inertial Signals"
        inertial.mkdir(parents=True)
        for c, stem in enumerate(CHANNELS):
            (inertial / f"{stem}_{split}.txt").write_text("".join(_uci_row(r) for r in sig[:, c]))
        y = rng.integers(1, 7, n)
        subj = rng.integers(1, 31, n)
        (base / split / f"y_{split}.txt").write_text("".join(f"{v}\n" for v in y))
        (base / split / f"subject_{split}.txt").write_text("".join(f"{v}\n" for v in subj))
        truth[split] = (sig, y - 1, subj)
    (base / "activity_labels.txt").write_text(
        "".join(f"{i + 1} {c}\n" for i, c in enumerate(D.UCI_HAR_CLASSES))
    )
    return truth


def test_uci_har_official_format(tmp_path):
    truth = _write_uci_har(tmp_path, np.random.default_rng(0))
    for root in (tmp_path, tmp_path / "UCI HAR Dataset"):
        ds = D.load_uci_har(root)
        for split in ("train", "test"):
            part = getattr(ds, split)
            sig, y, subj = truth[split]
            np.testing.assert_allclose(part.x, sig, rtol=1e-6)
            assert part.y.tolist() == y.tolist() and part.subjects.tolist() == subj.tolist()
    assert ds.channel_names == CHANNELS and ds.class_names == D.UCI_HAR_CLASSES
    assert D.load_dataset("uci-har-official", root=tmp_path).train.x.shape == (5, 9, 128)
    (tmp_path / "UCI HAR Dataset").rename(tmp_path / "archive")
    (tmp_path / "parent" / "uci-har").mkdir(parents=True)
    (tmp_path / "archive").rename(tmp_path / "parent" / "uci-har" / "UCI HAR Dataset")
    # root may also be the parent data folder, as SIGNALS_DATA is
    assert D.load_dataset("uci-har-official", root=tmp_path / "parent").test.x.shape == (3, 9, 128)


def test_uci_har_malformed(tmp_path):
    _write_uci_har(tmp_path, np.random.default_rng(1))
    base = tmp_path / "UCI HAR Dataset" / "train"
    y = base / "y_train.txt"
    good_y = y.read_text()
    y.write_text("1\n2\n7\n1\n1\n")
    with pytest.raises(DataError, match=r"y_train\.txt: line 3: unknown activity label 7"):
        D.load_uci_har(tmp_path)
    y.write_text(good_y)
    f = base / "Inertial Signals" / "body_gyro_y_train.txt"
    lines = f.read_text().splitlines(keepends=True)
    lines[1] = " ".join(lines[1].split()[:-1]) + "\n"  # a ragged row with 127 values
    f.write_text("".join(lines))
    with pytest.raises(DataError, match=r"body_gyro_y_train\.txt: line 2: expected 128 columns, found 127"):
        D.load_uci_har(tmp_path)
    f.write_text("".join(lines[:1] + lines[2:]))  # one row short: counts disagree
    with pytest.raises(DataError, match="differ in row count"):
        D.load_uci_har(tmp_path)
    with pytest.raises(DataError, match="no UCI HAR archive"):
        D.load_uci_har(tmp_path / "empty")


# ---------------------------------------------------------------------------------------------
# 3. MotionSense (written here in its exact format: pandas index column, then 12 named columns)


def _write_motionsense(root: Path, trials: dict[str, dict[int, int]]) -> Path:
    base = root / "A_DeviceMotion_data"
    for trial, subjects in trials.items():
        (base / trial).mkdir(parents=True)
        for sub, n in subjects.items():
            rows = ["," + ",".join(D.MOTIONSENSE_CHANNELS)]
            for i in range(n):
                # value encodes channel, subject and sample so the test can check the layout
                rows.append(f"{i}," + ",".join(f"{c + sub / 100 + i * 1e-4:.6f}" for c in range(12)))
            (base / trial / f"sub_{sub}.csv").write_text("\n".join(rows) + "\n")
    return base


def test_motionsense_official_format(tmp_path):
    _write_motionsense(tmp_path, {"wlk_7": {1: 300, 4: 200}, "sit_5": {1: 128, 4: 400}, "jog_16": {2: 127}})
    ds = D.load_motionsense(tmp_path, test_subjects=(4,))
    # windows: wlk sub1 3, sit sub1 1, jog sub2 0 (too short) | wlk sub4 2, sit sub4 5
    assert len(ds.train) == 4 and len(ds.test) == 7
    assert ds.train.x.shape[1:] == (12, 128)
    assert sorted(ds.train.subjects.tolist()) == [1, 1, 1, 1] and set(ds.test.subjects.tolist()) == {4}
    names = ds.class_names
    assert sorted(ds.train.y.tolist()) == sorted([names.index("wlk")] * 3 + [names.index("sit")])
    x = ds.test.x[ds.test.y == names.index("wlk")][1]  # second wlk window of subject 4: samples 64..191
    np.testing.assert_allclose(x[:, 0], np.arange(12) + 0.04 + 64e-4, atol=1e-6)
    assert ds.channel_names == D.MOTIONSENSE_CHANNELS and ds.preprocess is None
    assert [names[i] for i in ds.static_classes] == ["sit", "std"]
    assert sorted(ds.static_classes + ds.dynamic_classes) == list(range(6))


def test_motionsense_malformed(tmp_path):
    base = _write_motionsense(tmp_path, {"wlk_7": {1: 200}, "std_6": {2: 200}})
    f = base / "wlk_7" / "sub_1.csv"
    lines = f.read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[3], "NaN", 1)
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"sub_1\.csv: line 6, column 4: 'NaN'"):
        D.load_motionsense(tmp_path, test_subjects=(2,))
    lines[5] = ",".join(lines[5].split(",")[:-2])
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"sub_1\.csv: line 6: expected 13 columns, found 11"):
        D.load_motionsense(tmp_path, test_subjects=(2,))
    f.write_text(lines[0].replace(",gravity.z", "") + "\n")
    with pytest.raises(DataError, match=r"sub_1\.csv: line 1: header lacks columns \['gravity.z'\]"):
        D.load_motionsense(tmp_path, test_subjects=(2,))
    f.unlink()
    (base / "fly_3").mkdir()
    with pytest.raises(DataError, match="unknown MotionSense activity 'fly'"):
        D.load_motionsense(tmp_path, test_subjects=(2,))


# ---------------------------------------------------------------------------------------------
# 4. UEA .ts


def test_uea_basicmotions_real():
    root = D.data_root() / "uea-basicmotions"
    if not root.exists():
        pytest.skip(f"real dataset 'uea-basicmotions' not found at {root} (set SIGNALS_DATA)")
    ds = D.load_dataset("basicmotions")
    assert ds.train.x.shape == (40, 6, 100) and ds.test.x.shape == (40, 6, 100)
    assert ds.class_names == ["Standing", "Running", "Walking", "Badminton"]
    assert np.bincount(ds.train.y).tolist() == [10, 10, 10, 10]
    assert ds.static_classes == [0] and ds.dynamic_classes == [1, 2, 3] and ds.sample_rate == 10.0
    assert len(set(ds.train.subjects.tolist()) | set(ds.test.subjects.tolist())) == 80
    # running shakes the watch far more than standing
    assert ds.train.x[ds.train.y == 1].std() > 3 * ds.train.x[ds.train.y == 0].std()


TS_HEADER = "#comment\n@problemName Toy\n@timeStamps false\n@univariate false\n@dimensions 2\n" \
            "@equalLength true\n@seriesLength 3\n@classLabel true a b\n@data\n"  # fmt: skip


def test_uea_generated_and_malformed(tmp_path):
    good = TS_HEADER + "1,2,3:4,5,6:a\n7,8,9:1,1,1:b\n"
    (tmp_path / "Toy_TRAIN.ts").write_text(good)
    (tmp_path / "Toy_TEST.ts").write_text(good)
    ds = D.load_uea(tmp_path, name="Toy")
    assert ds.train.x.tolist() == [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [1, 1, 1]]]
    assert ds.train.y.tolist() == [0, 1] and ds.channel_names == ["dim_0", "dim_1"]
    assert ds.static_classes == [] and ds.dynamic_classes == [0, 1]
    cases = {
        "1,2,3:4,5,6:c\n": r"Toy_TEST\.ts: line 10: unknown class label 'c'",
        "1,2,3:4,?,6:a\n": r"line 10: non-numeric value",
        "1,2,3:4,nan,6:a\n": r"line 10: missing .* or NaN",
        "1,2,3:4,5,6:a\n1,2,3:4,5:a\n": r"line 11: ragged series",
        "1,2,3:a\n1,2,3:4,5,6:a\n": r"line 11: ragged series",
    }
    for body, pattern in cases.items():
        (tmp_path / "Toy_TEST.ts").write_text(TS_HEADER + body)
        with pytest.raises(DataError, match=pattern):
            D.load_uea(tmp_path, name="Toy")


# ---------------------------------------------------------------------------------------------
# Registry and download


def test_load_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="unknown HAR dataset 'wisdm'"):
        D.load_dataset("wisdm")
    with pytest.raises(DataError, match="not found at"):
        D.load_dataset("motionsense", root=tmp_path / "missing")


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def test_download_verifies_sha256_and_unpacks_nested_zip(tmp_path):
    inner = _zip_bytes({"UCI HAR Dataset/README.txt": b"hello"})
    outer = tmp_path / "uci.zip"
    outer.write_bytes(_zip_bytes({"UCI HAR Dataset.zip": inner, "__MACOSX/._x": b""}))
    url = outer.as_uri()
    digest = hashlib.sha256(outer.read_bytes()).hexdigest()

    folder = D.download("uci-har-official", tmp_path / "dest", url=url, sha256=digest)
    assert (folder / "UCI HAR Dataset" / "README.txt").read_bytes() == b"hello"
    assert not list(folder.glob("*.zip")) and not (folder / "__MACOSX").exists()

    with pytest.raises(DataError, match="SHA-256 mismatch"):
        D.download("uci-har-official", tmp_path / "dest2", url=url, sha256="0" * 64)
    with pytest.warns(UserWarning, match=f"no published SHA-256 .* sha256={digest}"):
        D.download("motionsense", tmp_path / "dest3", url=url)
    with pytest.raises(DataError, match="could not download"):
        D.download("basicmotions", tmp_path / "dest4", url=(tmp_path / "absent.zip").as_uri())
    with pytest.raises(DataError, match="unknown HAR dataset"):
        D.download("nope", tmp_path)
    assert D.SOURCES["uci-har-official"].url.startswith("https://archive.ics.uci.edu/")
