"""``signals har train | evaluate | export | predict`` in-process on a tiny generated HAPT folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from signals.cli import main

USERS = (1, 2, 3, 5, 6)  # 2 is an official UCI HAR test subject, the rest are training subjects
SEG = 300  # samples per labelled segment -> 3 windows of 128 with hop 64


def write_hapt(root: Path, seed: int = 0) -> Path:
    """A generated dataset in the official UCI HAPT raw layout (RawData/acc_*, gyro_*, labels.txt)."""
    rng = np.random.default_rng(seed)
    raw = root / "RawData"
    raw.mkdir(parents=True)
    labels = []
    t = np.arange(SEG) / 50.0
    for exp, user in enumerate(USERS, start=1):
        acc, gyro, pos = [], [], 1
        for act in range(1, 7):
            a = 0.01 * rng.normal(size=(SEG, 3))
            g = 0.01 * rng.normal(size=(SEG, 3))
            if act >= 4:  # postures: gravity along a different axis
                a[:, act - 4] += 1.0
            else:  # walks: 1 / 2 / 3 Hz bouncing
                a[:, 0] += 1.0 + 0.4 * np.sin(2 * np.pi * act * t)
                g[:, 1] += 0.5 * np.cos(2 * np.pi * act * t)
            acc.append(a)
            gyro.append(g)
            labels.append((exp, user, act, pos, pos + SEG - 1))
            pos += SEG
        np.savetxt(raw / f"acc_exp{exp:02d}_user{user:02d}.txt", np.concatenate(acc), fmt="%.6f")
        np.savetxt(raw / f"gyro_exp{exp:02d}_user{user:02d}.txt", np.concatenate(gyro), fmt="%.6f")
    np.savetxt(raw / "labels.txt", np.asarray(labels), fmt="%d")
    return root


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SIGNALS_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny model trained, evaluated and exported through the CLI, shared by the tests below."""
    import os

    tmp = tmp_path_factory.mktemp("har_cli")
    old = os.environ.get("SIGNALS_CACHE")
    os.environ["SIGNALS_CACHE"] = str(tmp / "cache")
    try:
        data = write_hapt(tmp / "hapt")
        out = tmp / "model"
        rc = main(["har", "train", "--dataset", "uci-har", "--data", str(data), "--out", str(out),
                   "--epochs", "1", "--widths", "8", "8", "--val-subjects", "1", "--batch-size", "16",
                   "--threads", "1", "--seed", "3"])
        assert rc == 0
        assert main(["har", "export", "--model", str(out), "--data", str(data), "--calib-windows", "32"]) == 0
    finally:
        if old is None:
            os.environ.pop("SIGNALS_CACHE", None)
        else:
            os.environ["SIGNALS_CACHE"] = old
    return data, out


def test_train_and_export_write_the_model_folder(trained):
    _, out = trained
    for name in ("config.json", "model.safetensors", "fusionactnet.onnx", "fusionactnet.int8.onnx"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "har" and cfg["runtime"]["classes"][0] == "WALKING"
    assert cfg["model"]["static_classes"] == [3, 4, 5] and cfg["model"]["branch_widths"] == [8, 8]
    assert cfg["frontend"]["window"] == 128 and cfg["source"]["dataset"]["name"] == "uci-har"
    assert cfg["source"]["training"]["config"]["seeds"] == [3]
    # --epochs 1 caps the later stages; --lr was not given, so the recipe's learning rates stay
    assert cfg["source"]["training"]["config"]["dynamic_epochs"] == 1
    assert cfg["source"]["training"]["config"]["lr"] == cfg["source"]["training"]["config"]["fusion_lr"] == 2e-3
    assert cfg["graphs"]["fp32"]["parity_max_abs_diff"] <= 1e-4
    assert "metrics" not in cfg and "test" in json.loads((out / "metrics.json").read_text())
    assert (out / "train_log.jsonl").is_file()


@pytest.mark.parametrize("backend", [[], ["--backend", "onnx"], ["--int8"]])
def test_evaluate_writes_json_and_png(trained, tmp_path, capsys, backend):
    data, out = trained
    js, png = tmp_path / "m.json", tmp_path / "cm.png"
    rc = main(["har", "evaluate", "--model", str(out), "--dataset", "uci-har", "--data", str(data),
               "--json", str(js), "--png", str(png), *backend])
    assert rc == 0
    m = json.loads(js.read_text())
    assert m["n"] == 18  # user 2: 6 segments x 3 windows
    assert 0 <= m["accuracy"] <= 1 and "macro_f1" in m
    assert set(m["per_class"]) == {"WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING",
                                   "LAYING"}
    assert np.asarray(m["confusion_matrix"]).sum() == 18
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "accuracy=" in capsys.readouterr().out


def test_onnx_and_torch_evaluate_agree(trained, tmp_path):
    data, out = trained
    got = {}
    for b in ("torch", "onnx"):
        main(["har", "evaluate", "--model", str(out), "--data", str(data), "--backend", b,
              "--json", str(tmp_path / f"{b}.json")])
        got[b] = json.loads((tmp_path / f"{b}.json").read_text())["confusion_matrix"]
    assert got["torch"] == got["onnx"]


@pytest.mark.parametrize("int8", [[], ["--int8"]])
def test_predict_recording(trained, tmp_path, capsys, int8):
    data, out = trained
    js = tmp_path / "pred.json"
    rc = main(["har", "predict", str(data / "RawData" / "acc_exp02_user02.txt"), "--model", str(out),
               "--json", str(js), "--threads", "1", *int8])
    assert rc == 0
    doc = json.loads(js.read_text())
    classes = json.loads((out / "config.json").read_text())["runtime"]["classes"]
    assert doc["segments"] and all(s["label"] in classes for s in doc["segments"])
    assert "activity" in capsys.readouterr().out


def test_fit_smoothing_and_evaluate_recordings(trained, tmp_path, capsys):
    import shutil

    data, out = trained
    model = tmp_path / "model"
    shutil.copytree(out, model)
    # before fitting: only the raw timeline is scored
    js = tmp_path / "rec.json"
    assert main(["har", "evaluate-recordings", "--model", str(model), "--data", str(data), "--json", str(js)]) == 0
    m = json.loads(js.read_text())
    assert "smoothed" not in m and m["subjects"] == [2, 4, 9, 10, 12, 13, 18, 20, 24]
    assert m["recordings"] == 1 and m["labelled_samples"] == 6 * SEG  # user 2's one experiment
    assert main(["har", "fit-smoothing", "--model", str(model), "--data", str(data), "--lag", "2"]) == 0
    assert "training subjects 1,3,5,6" in capsys.readouterr().out
    cfg = json.loads((model / "config.json").read_text())
    hmm = cfg["runtime"]["smoothing"]
    assert hmm["lag"] == 2 and len(hmm["transitions"]) == 6 and cfg["source"]["smoothing"]["subjects"] == [1, 3, 5, 6]
    # per experiment 6 segments of 300 samples -> 27 windows, 5 changes of activity, in order 1..6
    a = np.asarray(hmm["transitions"])
    assert all(a[i, i + 1] > a[i, (i + 2) % 6] for i in range(5))
    assert main(["har", "evaluate-recordings", "--model", str(model), "--data", str(data), "--json", str(js),
                 "--record", "--tolerance", "3"]) == 0
    text = capsys.readouterr().out
    assert "raw" in text and "smoothed" in text and "±3 s" in text
    m = json.loads(js.read_text())
    for v in ("raw", "smoothed"):
        assert 0 <= m[v]["sample_accuracy"] <= 1 and m[v]["segments"]["n_reference"] == 6
        assert np.asarray(m[v]["confusion_matrix"]).sum() == 6 * SEG
    assert m["lag"] == 2 and m["per_recording"][0]["recording"] == "exp02_user02"
    row = m["per_recording"][0]
    for v in ("raw", "smoothed"):  # per-recording wrong samples agree with the pooled confusion (one recording)
        cm = np.asarray(m[v]["confusion_matrix"])
        assert row[v]["wrong"] == cm.sum() - np.trace(cm)
        assert (f"most wrong samples ({v}, {row[v]['wrong']:,} in all): exp02_user02" in text) == (row[v]["wrong"] > 0)
    assert json.loads((model / "metrics.json").read_text())["recordings_fp32"]["lag"] == 2
    # other subjects, another lag, the int8 graph
    assert main(["har", "evaluate-recordings", "--model", str(model), "--data", str(data), "--subjects", "1", "3",
                 "--lag", "0", "--int8", "--json", str(js)]) == 0
    m = json.loads(js.read_text())
    assert m["recordings"] == 2 and m["lag"] == 0 and m["graph"] == "int8"
    assert main(["har", "evaluate-recordings", "--model", str(model), "--data", str(data), "--subjects", "99"]) == 2
    assert "no HAPT recordings of subjects [99]" in capsys.readouterr().err


def test_bad_inputs_print_clear_errors(trained, tmp_path, capsys):
    _, out = trained
    assert main(["har", "evaluate", "--model", str(tmp_path / "missing")]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert main(["har", "train", "--dataset", "no-such-set", "--out", str(tmp_path / "x")]) == 2
    assert "unknown HAR dataset" in capsys.readouterr().err
    assert main(["har", "train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["har", "predict", str(tmp_path / "nothing.txt"), "--model", str(out)]) == 2
    assert "nothing.txt" in capsys.readouterr().err
    assert main(["har", "export", "--model", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_har_commands_parse_without_torch():
    code = ("import sys; from signals.cli import build_parser; p = build_parser(); "
            "[p.parse_args(a) for a in (['har', 'train', '--epochs', '1'], ['har', 'evaluate', '--int8'], "
            "['har', 'export'], ['har', 'predict', 'r.txt', '--sample-rate', '50', '--no-smoothing'], "
            "['har', 'evaluate-recordings', '--lag', '3'], ['har', 'fit-smoothing'])]; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.slow
def test_torchrun_ddp_two_processes(tmp_path):
    """``torchrun --nproc_per_node=2 -m signals.har.train`` (Gloo on CPU) through the same entry point."""
    import os

    data = write_hapt(tmp_path / "hapt")
    out = tmp_path / "ddp"
    env = dict(os.environ, SIGNALS_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "signals.har.train", "--dataset", "uci-har", "--data", str(data), "--out", str(out),
           "--epochs", "2", "--widths", "8", "8", "--val-subjects", "1", "--batch-size", "8", "--device", "cpu"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["source"]["training"]["world_size"] == 2
    assert (out / "model.safetensors").is_file()


def test_report_names_the_recordings_that_hold_the_errors():
    from signals.har.evaluate import worst_recordings

    def row(name: str, raw: int, smoothed: int) -> dict:  # one recording of 100 labelled samples
        return {"recording": name, "raw": {"wrong": raw, "accuracy": 1 - raw / 100},
                "smoothed": {"wrong": smoothed, "accuracy": 1 - smoothed / 100}}

    m = {"per_recording": [row("a", 10, 0), row("b", 30, 5), row("c", 0, 0), row("d", 5, 0), row("e", 1, 0)]}
    raw, smoothed = worst_recordings(m)
    assert raw == "most wrong samples (raw, 46 in all): b 30 (65%; acc 0.700), a 10 (22%; acc 0.900), d 5 (11%; acc 0.950)"
    assert smoothed == "most wrong samples (smoothed, 5 in all): b 5 (100%; acc 0.950)"
    assert worst_recordings({"per_recording": [row("a", 0, 0)]}) == []


def test_evaluate_recordings_with_transitions(trained, tmp_path, capsys):
    """--transitions: the decoder takes a transition model's classes and HMM; scoring stays on the 6 activities."""
    import shutil

    from test_har_transitions import transition_model

    data, out = trained
    model = tmp_path / "model"
    shutil.copytree(out, model)
    classes = json.loads((model / "config.json").read_text())["runtime"]["classes"]
    shift = transition_model(tmp_path / "shift", classes=(*classes, "STAND_TO_SIT"))
    js = tmp_path / "rec.json"
    assert main(["har", "evaluate-recordings", "--model", str(model), "--data", str(data), "--transitions",
                 str(shift), "--json", str(js), "--record"]) == 0
    text = capsys.readouterr().out
    assert f"+ transitions from {shift}" in text and "recordings_fp32_with_shift" in text
    m = json.loads(js.read_text())
    assert m["transitions"] == str(shift) and m["classes"] == classes and m["lag"] == 3
    for v in ("raw", "smoothed"):
        assert np.asarray(m[v]["confusion_matrix"]).shape == (6, 6)
        assert np.asarray(m[v]["confusion_matrix"]).sum() == m["labelled_samples"] == 6 * SEG
        t = m[v]["transitions"]  # the generated recordings have no labelled transition
        assert t["n_reference"] == 0 and t["matched"] == 0 and t["n_predicted"] >= 0
    assert "postural transitions (smoothed): 0 of 0" in text
    stored = json.loads((model / "metrics.json").read_text())
    assert stored["recordings_fp32_with_shift"]["transitions"] == str(shift) and "recordings_fp32" not in stored
    bad = transition_model(tmp_path / "bad", classes=("WALKING", "STAND_TO_SIT"))
    assert main(["har", "evaluate-recordings", "--model", str(model), "--data", str(data), "--transitions",
                 str(bad)]) == 2
    assert "has no class 'WALKING_UPSTAIRS'" in capsys.readouterr().err
