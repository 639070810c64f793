"""Training: validation split from training subjects, augmentation, the three stages, resume."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import signals.har.train as train_mod
from signals.har.config import FusionActNetConfig, TrainConfig
from signals.har.data import HARDataset, HARSplit
from signals.har.frontend import CHANNELS
from signals.har.train import augment, init_model, split_validation, time_scale, train, xyz_groups

CLASSES = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]
TINY_MODEL = FusionActNetConfig(branch_widths=(8, 8), guide_stem=4, guide_widths=(8,), guide_depths=(1,))


def synthetic_dataset(n_per_class: int = 6, subjects=(1, 3, 5, 6), test_subjects=(2,), t: int = 64,
                      seed: int = 0) -> HARDataset:
    """Separable fake windows: static classes differ in gravity direction, dynamic ones in frequency."""
    rng = np.random.default_rng(seed)

    def split(subs):
        xs, ys, ss = [], [], []
        time = np.arange(t) / 50.0
        for s in subs:
            for c in range(6):
                for _ in range(n_per_class):
                    x = 0.02 * rng.normal(size=(9, t))
                    if c >= 3:
                        x[6 + (c - 3)] += 1.0  # gravity on a different axis per posture
                    else:
                        x[:3] += 0.5 * np.sin(2 * np.pi * (1 + c) * time)
                        x[6] += 1.0
                    xs.append(x)
                    ys.append(c)
                    ss.append(s)
        return HARSplit(np.asarray(xs, np.float32), np.asarray(ys, np.int64), np.asarray(ss, np.int64))

    return HARDataset("synthetic", split(subjects), split(test_subjects), CLASSES, list(CHANNELS), 50.0,
                      [3, 4, 5], [0, 1, 2], None)


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(epochs=2, dynamic_epochs=1, fusion_epochs=1, batch_size=16, val_subjects=1, seeds=(0,), threads=1,
                model=TINY_MODEL)
    base.update(kw)
    return TrainConfig(**base)


def test_normalisation_does_not_depend_on_memory_layout():
    """The same windows stored [N, C, T] or [N, T, C]-strided give the same normalisation to the bit (float32
    sums round by layout: a rebuilt data set once trained a different network than its cached copy)."""
    ds = synthetic_dataset(n_per_class=40, t=128)
    x = ds.train.x + np.float32(0.8)  # an offset like gravity's, where rounding shows
    strided = np.ascontiguousarray(x.transpose(0, 2, 1)).transpose(0, 2, 1)
    assert not strided.flags["C_CONTIGUOUS"] and not np.array_equal(x.mean(axis=(0, 2)), strided.mean(axis=(0, 2)))
    a, b = (init_model(tiny_cfg(), ds, v, "cpu").members[0] for v in (x, strided))
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)


def test_validation_split_holds_out_whole_training_subjects():
    subjects = np.repeat(np.arange(1, 22), 5)
    mask = split_validation(subjects, 4, seed=0)
    held = set(subjects[mask])
    assert len(held) == 4 and held.isdisjoint(set(subjects[~mask]))
    assert np.array_equal(mask, split_validation(subjects, 4, seed=0))  # fixed, so seeds share it
    assert not split_validation(subjects, 0, 0).any()
    with pytest.raises(Exception, match="only 21"):
        split_validation(subjects, 21, 0)


def test_augmentation_rotates_all_sensors_together():
    groups = xyz_groups(list(CHANNELS))
    assert groups == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    cfg = TrainConfig(aug_rotate_deg=40.0, aug_scale=0.0, aug_jitter=0.0, aug_shift=0)
    x = torch.randn(8, 9, 32)
    gen = torch.Generator().manual_seed(0)
    y = augment(x, cfg, groups, torch.ones(9, 1), gen)
    assert not torch.allclose(x, y)
    for g in groups:  # a rotation keeps each 3-axis vector's length
        assert torch.allclose(x[:, g].norm(dim=1), y[:, g].norm(dim=1), atol=1e-5)
    # the same rotation for every sensor: inner products between sensors are preserved too
    dot_x = (x[:, [0, 1, 2]] * x[:, [6, 7, 8]]).sum(1)
    dot_y = (y[:, [0, 1, 2]] * y[:, [6, 7, 8]]).sum(1)
    assert torch.allclose(dot_x, dot_y, atol=1e-4)


def test_augmentation_shift_pads_with_edges():
    cfg = TrainConfig(aug_rotate_deg=0.0, aug_scale=0.0, aug_jitter=0.0, aug_shift=3)
    x = torch.arange(20.0).repeat(4, 9, 1)
    y = augment(x, cfg, [], torch.ones(9, 1), torch.Generator().manual_seed(1))
    d = y[:, :, 10] - x[:, :, 10]
    assert d.abs().max() <= 3 and (d != 0).any()
    assert torch.equal(y.diff(dim=-1).clamp(0, 1), y.diff(dim=-1))  # still monotone: a shift, not a shuffle


def test_time_scale_resamples_about_the_centre():
    x = torch.arange(9.0).repeat(2, 3, 1)  # a ramp: resampling by f gives a ramp of slope f about the centre
    y = time_scale(x, torch.tensor([[1.0], [0.5]]))
    assert torch.equal(y[0], x[0])  # factor 1: unchanged
    assert torch.allclose(y[1, 0], 4 + 0.5 * (torch.arange(9.0) - 4))  # slower: half the slope, same centre
    fast = time_scale(x, torch.tensor([[2.0], [2.0]]))[0, 0]
    assert fast[4] == 4 and fast[0] == 0 and fast[-1] == 8 and fast[3] == 2  # faster: edges padded


def test_cadence_augmentation_only_in_the_dynamic_stage():
    cfg = TrainConfig(aug_rotate_deg=0.0, aug_scale=0.0, aug_jitter=0.0, aug_shift=0, aug_time_scale=0.2)
    x = torch.sin(torch.arange(64.0) / 3).repeat(4, 9, 1)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(augment(x, cfg, [], torch.ones(9, 1), gen), x)  # static / fusion stages: untouched
    y = augment(x, cfg, [], torch.ones(9, 1), gen, cadence=True)
    assert not torch.allclose(y, x) and torch.allclose(y[:, :, 32], x[:, :, 32], atol=0.05)  # about the centre
    off = augment(x, replace(cfg, aug_time_scale=0.0), [], torch.ones(9, 1), gen, cadence=True)
    assert torch.equal(off, x)


def test_train_three_stages_writes_model_folder(tmp_path):
    from signals.har.export import load_model
    from signals.modelfolder import ModelFolder

    ds = synthetic_dataset()
    config, metrics = train(tiny_cfg(epochs=8, dynamic_epochs=6, fusion_epochs=3, lr=5e-3), ds, tmp_path / "m")
    folder = tmp_path / "m"
    assert (folder / "model.safetensors").is_file() and (folder / "checkpoint.pt").is_file()
    on_disk = ModelFolder.load(folder, "har").config
    assert on_disk == config and on_disk.graphs == {}  # `signals har export` adds the graphs
    assert on_disk.runtime["classes"] == CLASSES and on_disk.runtime["channels"] == list(CHANNELS)
    assert on_disk.model["static_classes"] == [3, 4, 5] and on_disk.frontend == {}
    assert on_disk.source["dataset"]["val_subjects"] and set(on_disk.source["dataset"]["val_subjects"]) <= {1, 3, 5, 6}
    assert on_disk.source["training"]["config"]["model"]["branch_widths"] == [8, 8]
    # measured results and history live beside config.json, never in it
    assert json.loads((folder / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    history = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    stages = [h["stage"] for h in history if "epoch" in h]
    assert stages == ["static"] * 8 + ["dynamic"] * 6 + ["fusion"] * 3
    assert metrics["test"]["n"] == len(ds.test.y)
    # the saved weights reproduce the in-memory model's metrics (normalisation travels with them)
    model = load_model(folder)
    p = model.predict_proba(torch.from_numpy(ds.test.x)).numpy()
    assert np.mean(p.argmax(1) == ds.test.y) == pytest.approx(metrics["test"]["accuracy"])
    # the branches were trained and not re-initialised by the fusion stage: this data is easy
    assert metrics["test"]["accuracy"] > 0.8


def test_resume_continues_after_interruption(tmp_path, monkeypatch):
    ds = synthetic_dataset(n_per_class=3)
    calls = {"n": 0}
    real = train_mod.augment

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # dies in the middle of the dynamic stage
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "augment", flaky)
    cfg = tiny_cfg(epochs=2, dynamic_epochs=2, batch_size=64)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, ds, tmp_path / "r")
    ck = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    done = [(h["stage"], h["epoch"]) for h in ck["history"] if "epoch" in h]
    assert done[:2] == [("static", 0), ("static", 1)] and ("fusion", 0) not in done
    train(cfg, ds, tmp_path / "r", resume=True)
    history = [json.loads(line) for line in (tmp_path / "r" / "train_log.jsonl").read_text().splitlines()]
    epochs = [(h["stage"], h["epoch"]) for h in history if "epoch" in h]
    assert epochs == [("static", 0), ("static", 1), ("dynamic", 0), ("dynamic", 1), ("fusion", 0)]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    from signals.errors import SignalsError

    with pytest.raises(SignalsError, match="no checkpoint"):
        train(tiny_cfg(), synthetic_dataset(n_per_class=1), tmp_path / "none", resume=True)


def test_bad_training_data_is_rejected(tmp_path):
    from signals.errors import DataError

    ds = synthetic_dataset(n_per_class=1)
    ds.train.x[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        train(tiny_cfg(), ds, tmp_path / "nan")


def test_train_on_all_training_subjects_keeps_the_last_epoch(tmp_path):
    """--val-subjects 0 (retrain on train+val with epochs chosen earlier): no selection, no val metrics."""
    ds = synthetic_dataset(n_per_class=2)
    config, metrics = train(tiny_cfg(val_subjects=0), ds, tmp_path / "all")
    assert "val" not in metrics and config.source["dataset"]["n_val"] == 0
    assert config.source["dataset"]["n_train"] == len(ds.train.y)
    history = [json.loads(line) for line in (tmp_path / "all" / "train_log.jsonl").read_text().splitlines()]
    best = [h for h in history if "best_epoch" in h]
    assert [b["best_epoch"] for b in best] == [1, 0, 0]  # the last epoch of each stage


def test_distillation_from_a_teacher_folder_with_ema(tmp_path, monkeypatch):
    """FusionActNet-Lite's recipe: soft targets of a trained folder on the same augmented batches, EMA weights."""
    from signals.errors import DataError

    ds = synthetic_dataset(n_per_class=4)
    train(tiny_cfg(epochs=4, dynamic_epochs=3, fusion_epochs=2, lr=5e-3), ds, tmp_path / "teacher")
    seen = {"static": 0, "dynamic": 0, "guide": 0, "kl": 0}
    real_load, real_kl = train_mod.load_teacher, train_mod.F.kl_div

    def hooked_teacher(*a, **k):
        teacher = real_load(*a, **k)
        for name in ("static", "dynamic", "guide"):
            getattr(teacher.members[0], name).register_forward_hook(
                lambda *_, n=name: seen.__setitem__(n, seen[n] + 1))
        return teacher

    def checked_kl(inp, target, **kw):
        assert kw.get("log_target") and inp.shape == target.shape
        np.testing.assert_allclose(target.exp().sum(-1).detach().numpy(), 1.0, rtol=1e-5)
        seen["kl"] += 1
        return real_kl(inp, target, **kw)

    monkeypatch.setattr(train_mod, "load_teacher", hooked_teacher)
    monkeypatch.setattr(train_mod.F, "kl_div", checked_kl)
    student = FusionActNetConfig(branch_widths=(4, 4), guide_stem=4, guide_widths=(4,), guide_depths=(1,))
    cfg = tiny_cfg(epochs=3, dynamic_epochs=2, fusion_epochs=1, lr=5e-3, teacher=str(tmp_path / "teacher"),
                   kd_weight=0.8, kd_temperature=3.0, ema_decay=0.9, model=student)
    config, metrics = train(cfg, ds, tmp_path / "student")
    assert all(seen.values())  # the teacher's branches and guidance net gave soft targets
    assert "distilled from" in config.description and config.model["branch_widths"] == [4, 4]
    assert config.source["training"]["config"]["teacher"] == str(tmp_path / "teacher")
    assert config.source["training"]["config"]["ema_decay"] == 0.9
    assert 0 <= metrics["val"]["accuracy"] <= 1
    # a teacher for other classes is refused
    other = synthetic_dataset(n_per_class=1)
    other.static_classes, other.dynamic_classes = [4, 5], [0, 1, 2, 3]
    with pytest.raises(DataError, match="teacher .* does not fit"):
        train(replace(cfg, epochs=1), other, tmp_path / "bad")


def test_distillation_restricted_to_the_dynamic_stage(tmp_path):
    """kd_stages=("dynamic",): the static branch is trained exactly as without a teacher, the dynamic one is not."""
    from signals.har.export import load_model

    ds = synthetic_dataset(n_per_class=4)
    cfg = tiny_cfg(epochs=2, dynamic_epochs=2, fusion_epochs=1, lr=5e-3)
    train(cfg, ds, tmp_path / "plain")
    config, _ = train(replace(cfg, teacher=str(tmp_path / "plain"), kd_stages=("dynamic",)), ds, tmp_path / "kd")
    assert config.source["training"]["config"]["kd_stages"] == ["dynamic"]
    plain, kd = (load_model(tmp_path / n).members[0] for n in ("plain", "kd"))
    for a, b in zip(plain.static.parameters(), kd.static.parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(plain.dynamic.parameters(), kd.dynamic.parameters()))


def test_cv_script_finds_each_folds_teacher_in_split_runs(tmp_path):
    """scripts/har_dynamic_cv.py --teacher-from A+B: fold K's teacher from whichever part saved it; a fold with no
    (or two) saved networks is refused before any training."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("har_dynamic_cv", Path(__file__).parents[1] / "scripts" /
                                                  "har_dynamic_cv.py")
    cv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cv)
    for name in ("kdA_fold0.pt", "kdA_fold2.pt", "kdB_fold1.pt", "kdC_fold1.pt"):
        (tmp_path / name).write_bytes(b"")
    assert cv.teacher_file(tmp_path, "kdA+kdB", 0).name == "kdA_fold0.pt"
    assert cv.teacher_file(tmp_path, "kdA+kdB", 1).name == "kdB_fold1.pt"
    with pytest.raises(SystemExit, match="fold 3 needs exactly one saved network .* found 0"):
        cv.teacher_file(tmp_path, "kdA+kdB", 3)
    with pytest.raises(SystemExit, match="found 2"):
        cv.teacher_file(tmp_path, "kdB+kdC", 1)
