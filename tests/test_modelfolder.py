"""The shared contracts: config (de)serialisation, CLI options from dataclasses, the model folder, lookup."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field

import pytest

from signals.configio import add_arguments, from_args, from_dict, to_dict
from signals.errors import ConfigError, ModelError
from signals.modelfolder import (
    REPO_MODELS,
    Graph,
    ModelConfig,
    ModelFolder,
    confined,
    find_model,
    read_config,
    read_metrics,
    update_metrics,
    write_config,
)


@dataclass(frozen=True)
class Inner:
    a: int = 1
    widths: tuple[int, ...] = (8, 16)


@dataclass(frozen=True)
class Outer:
    rate: float = 2.0
    inner: Inner = field(default_factory=Inner)
    pairs: tuple[tuple[int, int], ...] = ((1, 2), (3, 4))
    span: tuple[float, float] = (0.5, 1.5)
    name: str | None = None
    flag: bool = False
    names: tuple[str, ...] = ("x",)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be positive, got {self.rate}")


def test_round_trip_through_json_rebuilds_tuples_and_nested_dataclasses():
    cfg = Outer(rate=3.0, inner=Inner(a=2, widths=(4,)), name="n", flag=True)
    data = json.loads(json.dumps(to_dict(cfg)))
    assert data["inner"] == {"a": 2, "widths": [4]} and data["pairs"] == [[1, 2], [3, 4]]
    assert from_dict(Outer, data) == cfg
    assert from_dict(Outer, {}) == Outer()  # missing keys: the defaults
    assert from_dict(Outer, {"rate": 1}) == Outer(rate=1.0)  # an int where a float is expected is fine


@pytest.mark.parametrize("data, message", [
    ({"rat": 1.0}, r"f.json: unknown key 'sec.rat' \(Outer has: rate, inner,"),
    ({"inner": {"b": 1}}, r"f.json: unknown key 'sec.inner.b' \(Inner has: a, widths\)"),
    ({"rate": "fast"}, r"f.json: sec.rate: expected a number, got 'fast'"),
    ({"inner": {"a": 1.5}}, r"sec.inner.a: expected an integer"),
    ({"span": [1.0]}, r"sec.span: expected 2 values, got 1"),
    ({"flag": 1}, r"sec.flag: expected true or false"),
    ({"rate": -1.0}, r"f.json: sec: rate must be positive"),
])
def test_unknown_keys_and_wrong_types_name_the_key_and_the_file(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data, "f.json", "sec")
    with pytest.raises(ValueError):  # ConfigError is a ValueError too
        from_dict(Outer, data)


def test_cli_options_come_from_the_fields_with_their_defaults_once():
    p = argparse.ArgumentParser()
    add_arguments(p, Outer, names={"rate": "--speed"}, help={"rate": "how fast"}, skip=["name"],
                  choices={"names": ("x", "y")})
    text = p.format_help()
    assert "--speed SPEED" in text and "how fast (default: 2.0)" in text
    assert "--name " not in text and "--inner" not in text and "--pairs" not in text  # not typeable: skipped
    assert from_args(Outer, p.parse_args([])) == Outer()  # nothing given: the dataclass defaults
    got = from_args(Outer, p.parse_args(["--speed", "4", "--flag", "--span", "1", "2", "--names", "y", "x"]))
    assert got == Outer(rate=4.0, flag=True, span=(1.0, 2.0), names=("y", "x"))
    assert from_args(Outer, p.parse_args(["--names"])).names == ()
    with pytest.raises(SystemExit):
        p.parse_args(["--names", "z"])


def _folder(tmp_path, **kw):
    (tmp_path / "g.onnx").write_bytes(b"not really a graph")
    cfg = ModelConfig(kind="toy", model=to_dict(Outer()), graphs={"main": Graph("g.onnx", {"x": ("batch", 3)},
                                                                               {"y": ("batch",)})},
                      weights=None, **kw)
    write_config(tmp_path, cfg)
    return cfg


def test_model_folder_reads_config_once_typed_and_checks_it(tmp_path):
    cfg = _folder(tmp_path, runtime={"classes": ["a"]}, licence="MIT")
    folder = ModelFolder.load(tmp_path, "toy")
    assert folder.config == cfg == read_config(tmp_path)
    assert folder.section("model", Outer) == Outer()
    assert folder.graph("main").inputs == {"x": ("batch", 3)}
    with pytest.raises(ModelError, match="names no 'other' graph"):
        folder.graph("other")
    with pytest.raises(ModelError, match="holds a 'toy' model, not a 'har' model"):
        ModelFolder.load(tmp_path, "har")
    data = json.loads((tmp_path / "config.json").read_text())
    for change, message in [
        ({"model": {"rat": 1}}, None),  # the model section is checked by the section's own class
        ({"modle": {}}, r"unknown key 'modle'"),
        ({"format": 99}, "upgrade signals"),
        ({"graphs": {"main": {**data["graphs"]["main"], "file": "../../etc/passwd"}}}, "plain path inside"),
        ({"files": {"cohort": "/etc/passwd"}}, "plain path inside"),
        ({"weights": "C:\\\\w.bin"}, "plain path inside"),
    ]:
        (tmp_path / "config.json").write_text(json.dumps({**data, **change}))
        if message is None:
            with pytest.raises(ModelError, match=r"config.json: unknown key 'model.rat'"):
                ModelFolder.load(tmp_path).section("model", Outer)
        else:
            with pytest.raises(ModelError, match=message):
                ModelFolder.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"classes": []}))
    with pytest.raises(ModelError, match="has no 'kind'"):
        ModelFolder.load(tmp_path)


def test_confined_names():
    for good in ("a.onnx", "sub/b.npy"):
        assert confined("/m", good).name == good.split("/")[-1]
    for bad in ("", "/abs", "../x", "a/../../x", "..\\x", "C:x"):
        with pytest.raises(ModelError):
            confined("/m", bad)


def test_metrics_are_kept_apart_from_config(tmp_path):
    cfg = _folder(tmp_path)
    assert read_metrics(tmp_path) == {}
    update_metrics(tmp_path, test={"accuracy": 0.5})
    update_metrics(tmp_path, val={"accuracy": 0.7})
    assert read_metrics(tmp_path) == {"test": {"accuracy": 0.5}, "val": {"accuracy": 0.7}}
    assert read_config(tmp_path) == cfg


def test_lookup_order_and_error_names_every_place(tmp_path, monkeypatch):
    monkeypatch.delenv("SIGNALS_MODELS", raising=False)
    (tmp_path / "toy").mkdir()
    assert find_model("toy", tmp_path / "toy") == tmp_path / "toy"  # --model first
    with pytest.raises(ModelError, match="given with --model"):
        find_model("toy", tmp_path / "missing")
    monkeypatch.setenv("SIGNALS_MODELS", str(tmp_path))
    assert find_model("toy") == tmp_path / "toy"  # then $SIGNALS_MODELS/<name>
    if (REPO_MODELS / "har").is_dir():
        assert find_model("har") == REPO_MODELS / "har"  # then the checkout's models/<name>
    with pytest.raises(ModelError) as info:
        find_model("nothing-here")
    msg = str(info.value)
    assert "--model" in msg and f"{tmp_path}/nothing-here" in msg and str(REPO_MODELS / "nothing-here") in msg
    monkeypatch.delenv("SIGNALS_MODELS")
    with pytest.raises(ModelError, match=r"\$SIGNALS_MODELS is not set"):
        find_model("nothing-here")


@pytest.mark.parametrize("name", ["har", "speaker_encoder", "super_resolution"])
def test_shipped_folders_follow_the_contract(name):
    from signals.modelfolder import sha256

    folder = REPO_MODELS / name
    if not (folder / "config.json").is_file():
        pytest.skip(f"no shipped model at {folder}")
    mf = ModelFolder.load(folder, name)
    assert mf.config.format == 1 and mf.config.licence != "unknown" and mf.config.description
    assert mf.config.graphs and all(sha256(folder / g.file) == g.sha256 for g in mf.config.graphs.values())
    assert all(g.parity_max_abs_diff is not None for g in mf.config.graphs.values())
    raw = json.loads((folder / "config.json").read_text())
    assert not {"metrics", "evaluations", "benchmark", "history"} & set(raw)  # results live in metrics.json
