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


# --------------------------------------------------------------------------------------------------
# hardening: damaged and hostile folders and checkpoints (the table in bad_cases_models.py runs the CLI)


def test_missing_required_key_is_named_as_a_key():
    @dataclass(frozen=True)
    class Needs:
        a: int
        b: int = 1

    with pytest.raises(ConfigError, match=r"f.json: missing key 'sec.a' \(Needs needs: a\)"):
        from_dict(Needs, {"b": 2}, "f.json", "sec")


def test_long_values_are_cut_in_messages():
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, {"rate": "x" * 10_000}, "f.json")
    assert len(str(info.value)) < 200 and "(10002 characters)" in str(info.value)


@pytest.mark.parametrize("raw, message", [
    (b"null", "must hold a JSON object .* not null"),
    (b"[1]", "must hold a JSON object .* not a list"),
    (b'"har"', "not a string"),
    (b"\xff\xfe{}", r"is not UTF-8 text \(byte 0\)"),
    (b"[" * 50_000, "nested too deeply"),
    (b"{", "is not valid JSON"),
])
def test_read_config_refuses_what_is_not_a_config(tmp_path, raw, message):
    (tmp_path / "config.json").write_bytes(raw)
    with pytest.raises(ModelError, match=message):
        read_config(tmp_path)


def test_read_config_refuses_huge_files_before_reading_them(tmp_path, monkeypatch):
    with open(tmp_path / "config.json", "wb") as fh:
        fh.truncate(200 << 20)  # sparse: costs no disk
    monkeypatch.setattr("pathlib.Path.read_bytes", lambda self: pytest.fail("a huge config.json was read"))
    with pytest.raises(ModelError, match=r"is 200.0 MiB; a model config is a few kB"):
        read_config(tmp_path)


def test_folder_arguments_that_are_not_folders(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ModelError, match="is a file, not a model folder"):
        find_model("toy", tmp_path / "f")
    with pytest.raises(ModelError, match="is a file, not a model folder"):
        read_config(tmp_path / "f")
    with pytest.raises(ModelError, match="config.json is missing"):
        read_config(tmp_path)
    (tmp_path / "config.json").mkdir()
    with pytest.raises(ModelError, match="config.json is not a regular file"):
        read_config(tmp_path)


def test_confined_refuses_nul_and_non_strings():
    for bad in ("a\x00b", 5, None):
        with pytest.raises(ModelError, match="plain path|must be a string"):
            confined("/m", bad)


def _onnx(path, inputs: dict, outputs: dict):
    """A tiny Identity graph (first input -> every output) with the given names and dims."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def info(name, dims):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))

    first = next(iter(inputs))
    nodes = [helper.make_node("Identity", [first], [o]) for o in outputs]
    graph = helper.make_graph(nodes, "g", [info(k, v) for k, v in inputs.items()],
                              [info(k, v) for k, v in outputs.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _graph_folder(tmp_path, declared_in, declared_out, actual_in=None, actual_out=None, digest=True):
    from signals.modelfolder import sha256

    tmp_path.mkdir()
    _onnx(tmp_path / "g.onnx", actual_in or declared_in, actual_out or declared_out)
    spec = Graph("g.onnx", declared_in, declared_out, sha256=sha256(tmp_path / "g.onnx") if digest else None)
    write_config(tmp_path, ModelConfig(kind="toy", graphs={"main": spec}, weights=None))
    return ModelFolder.load(tmp_path, "toy")


def test_session_verifies_sha256_names_and_shapes(tmp_path):
    pytest.importorskip("onnxruntime")
    good = _graph_folder(tmp_path / "good", {"x": ("batch", 3)}, {"y": ("batch", 3)})
    assert [i.name for i in good.session("main").get_inputs()] == ["x"]
    # a byte changed after export: refused before onnxruntime parses it
    path = good.path / "g.onnx"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match=r"g.onnx does not match the sha256 recorded for the 'main' graph"):
        good.session("main")
    # no sha256 recorded: onnxruntime's parse error becomes a ModelError naming the file
    broken = _graph_folder(tmp_path / "broken", {"x": ("batch", 3)}, {"y": ("batch", 3)}, digest=False)
    (broken.path / "g.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelError, match=r"could not load ONNX model .*broken/g.onnx"):
        broken.session("main")
    names = _graph_folder(tmp_path / "names", {"x": ("batch", 3)}, {"y": ("batch", 3)}, actual_in={"z": ("batch", 3)})
    with pytest.raises(ModelError, match=r"expected inputs \['x'\] .* the graph has \['z'\]"):
        names.session("main")
    shapes = _graph_folder(tmp_path / "shapes", {"x": ("batch", 3)}, {"y": ("batch", 3)},
                           actual_in={"x": ("batch", 4)}, actual_out={"y": ("batch", 4)})
    with pytest.raises(ModelError, match=r"tensor 'x' has shape \['batch', 4\] in the graph, config.json declares"):
        shapes.session("main")
    rank = _graph_folder(tmp_path / "rank", {"x": ("batch", 3)}, {"y": ("batch", 3)},
                         actual_in={"x": ("batch", 3, 1)}, actual_out={"y": ("batch", 3, 1)})
    with pytest.raises(ModelError, match=r"tensor 'x' has shape"):
        rank.session("main")


def test_files_that_are_not_regular_are_never_opened(tmp_path):
    import os

    _folder(tmp_path)
    folder = ModelFolder.load(tmp_path, "toy")
    (tmp_path / "g.onnx").unlink()
    os.mkfifo(tmp_path / "g.onnx")  # opening it would block forever
    with pytest.raises(ModelError, match=r"g.onnx is not a regular file"):
        folder.session("main")
    (tmp_path / "g.onnx").unlink()
    (tmp_path / "g.onnx").symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(ModelError, match=r"g.onnx is not a regular file"):
        folder.file("g.onnx")


def test_writes_into_a_folder_replace_links_instead_of_following_them(tmp_path):
    """A folder linking to files elsewhere (a cache, the shipped models, ~/.bashrc) gets files of its own;
    the targets are never written."""
    torch = pytest.importorskip("torch")
    from signals.export import save_weights, write_folder
    from signals.modelfolder import writable

    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("config.json", "model.safetensors", "g.onnx"):
        (outside / name).write_text("precious\n")
    m = tmp_path / "m"
    m.mkdir()
    for name in ("config.json", "model.safetensors", "g.onnx"):
        (m / name).symlink_to(outside / name)
    cfg = ModelConfig(kind="toy", graphs={"main": Graph("g.onnx", {"x": ("batch",)}, {"y": ("batch",)})})
    write_folder(m, cfg, model=torch.nn.Linear(2, 1))
    save_weights(torch.nn.Linear(2, 1), m)
    assert all((outside / n).read_text() == "precious\n" for n in ("config.json", "model.safetensors", "g.onnx"))
    assert not (m / "config.json").is_symlink() and not (m / "model.safetensors").is_symlink()
    assert read_config(m) == cfg
    assert sorted(p.name for p in m.iterdir()) == ["config.json", "g.onnx", "model.safetensors"]  # no temporaries
    (m / "sub").symlink_to(outside)
    with pytest.raises(ModelError, match="linked folder that leads outside"):
        writable(m, "sub/x.onnx")
    with pytest.raises(ModelError, match="plain path inside"):
        write_folder(m, ModelConfig(kind="toy", weights="../outside/w.safetensors"), model=torch.nn.Linear(2, 1))
    assert not (outside / "w.safetensors").exists()


# --------------------------------------------------------------------------------------------------
# checkpoints: data only, never code


class _Payload:
    """Unpickling this would create ``marker``: what a crafted checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (self.marker,))


def _crafted(path, marker, **extra):
    torch = pytest.importorskip("torch")
    torch.save({"model": _Payload(marker), "config": {}, **extra}, path)
    return path


def test_crafted_checkpoint_never_runs(tmp_path):
    from signals.torchutils import load_checkpoint, safe_load

    marker = tmp_path / "PWNED"
    path = _crafted(tmp_path / "evil.pt", marker)
    with pytest.raises(ModelError, match=r"evil.pt is not a signals training checkpoint: it holds Python objects"):
        load_checkpoint(path)
    with pytest.raises(ModelError, match=r"evil.pt is not a test file"):
        safe_load(path, "a test file")
    assert not marker.exists()
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ModelError, match=r"text.pt is not a signals training checkpoint") as info:
        load_checkpoint(tmp_path / "text.pt")
    assert "\n" not in str(info.value)  # torch's messages run to many lines; ours is one
    assert load_checkpoint(tmp_path / "absent.pt") is None


def test_crafted_checkpoint_never_runs_on_har_resume(tmp_path):
    pytest.importorskip("torch")
    from test_har_train import synthetic_dataset, tiny_cfg

    from signals.har.train import train

    marker = tmp_path / "PWNED"
    out = tmp_path / "run"
    out.mkdir()
    _crafted(out / "checkpoint.pt", marker, task_index=0, stage_state={}, history=[])
    with pytest.raises(ModelError, match=r"checkpoint.pt is not a HAR training checkpoint: it holds Python objects"):
        train(tiny_cfg(), synthetic_dataset(n_per_class=1), out, resume=True)
    assert not marker.exists()


def test_crafted_checkpoint_never_runs_on_encoder_resume(tmp_path):
    """The encoder resumes whenever OUT/checkpoint.pt exists; the file is read before any data is."""
    pytest.importorskip("torch")
    from signals.cli import main

    marker = tmp_path / "PWNED"
    out = tmp_path / "run"
    out.mkdir()
    _crafted(out / "checkpoint.pt", marker)
    (tmp_path / "data").mkdir()
    assert main(["speech", "encoder", "train", str(tmp_path / "data"), "--out", str(out), "--steps", "1"]) == 2
    assert not marker.exists()


def test_foreign_checkpoint_is_a_clear_error_on_har_resume(tmp_path):
    torch = pytest.importorskip("torch")
    from test_har_train import synthetic_dataset, tiny_cfg

    from signals.har.train import train

    out = tmp_path / "run"
    out.mkdir()
    torch.save({"model": {"w": torch.zeros(1)}, "task_index": 0, "stage_state": {}, "history": []},
               out / "checkpoint.pt")
    with pytest.raises(ModelError, match=r"checkpoint.pt cannot be resumed: it is not a checkpoint of this model"):
        train(tiny_cfg(), synthetic_dataset(n_per_class=1), out, resume=True)


def test_checkpoints_hold_plain_data_only(tmp_path):
    import pathlib

    import numpy as np
    torch = pytest.importorskip("torch")
    from signals.torchutils import load_checkpoint, plain, save_checkpoint

    state = {"step": np.int64(3), "loss": np.float32(0.5), "path": pathlib.Path("runs/x"), "config": Inner(a=2),
             "rows": [{"acc": np.float64(0.25)}], "pair": (1, 2), "w": torch.ones(2)}
    save_checkpoint(tmp_path / "c.pt", state)
    got = load_checkpoint(tmp_path / "c.pt")
    assert got["step"] == 3 and type(got["step"]) is int and type(got["loss"]) is float
    assert got["path"] == "runs/x" and got["config"] == {"a": 2, "widths": [8, 16]}
    assert got["rows"] == [{"acc": 0.25}] and got["pair"] == (1, 2) and torch.equal(got["w"], torch.ones(2))
    with pytest.raises(TypeError, match=r"state\['bad'\]: a .*object cannot go into a checkpoint"):
        plain({"bad": object()})
    # files written before save_checkpoint made its data plain (numpy scalars in the history) still load
    torch.save({"history": [{"acc": np.float64(0.5), "n": np.int64(2)}]}, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt")["history"] == [{"acc": 0.5, "n": 2}]


def test_compact_checkpoints_are_confined_and_checked(tmp_path):
    torch = pytest.importorskip("torch")
    from signals.torchutils import load_compact, save_compact

    save_compact(tmp_path / "last", {"w": torch.ones(3)}, {"step": 5})
    tensors, state = load_compact(tmp_path / "last")
    assert state["step"] == 5 and torch.equal(tensors["w"], torch.ones(3))
    state_file = tmp_path / "last" / "state.json"
    for data, message in [({"step": 1, "shards": ["../../etc/passwd"]}, "must be a plain path"),
                          ({"step": 1, "shards": ["missing.safetensors"]}, "missing.safetensors is missing"),
                          ({"step": 1}, "no list of 'shards'"),
                          ([1], "no list of 'shards'")]:
        state_file.write_text(json.dumps(data))
        with pytest.raises(ModelError, match=message):
            load_compact(tmp_path / "last")
    state_file.write_text("{")
    with pytest.raises(ModelError, match="state.json is not a checkpoint state written by signals"):
        load_compact(tmp_path / "last")
    (tmp_path / "last" / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    state_file.write_text(json.dumps({"step": 1, "shards": ["junk.safetensors"]}))
    with pytest.raises(ModelError, match="junk.safetensors is damaged"):
        load_compact(tmp_path / "last")


def test_conv1d_as_conv2d_keeps_every_kind_of_convolution_exact(tmp_path):
    """Dilation, stride, groups, padding, no bias, and a weight shared by two convolutions (left 1-D:
    rewriting one user would change the other): the rewritten graph computes the same."""
    import numpy as np
    import onnx
    import torch
    from torch import nn

    from signals.export import export_graph

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv1d(4, 8, 5, dilation=3, padding=6)
            self.b = nn.Conv1d(8, 8, 3, stride=2, groups=4, bias=False)
            self.c = nn.Conv1d(8, 4, 1)
            self.e = nn.Conv1d(4, 4, 3, padding=1)  # applied twice: one initializer, two users
            self.d = nn.Conv2d(4, 4, 3, padding=1)  # already 2-D: untouched

        def forward(self, x):
            y = self.e(self.e(self.c(self.b(torch.sin(self.a(x))))))
            return y + self.d(y[:, :, None, :])[:, :, 0, :]

    torch.manual_seed(0)
    net = Net().eval()
    cases = [[np.random.default_rng(i).standard_normal((2, 4, n)).astype(np.float32)] for i, n in enumerate((9, 40))]
    for conv2d in (False, True):
        graph = export_graph(net, tmp_path / f"n{conv2d}.onnx", inputs={"x": ("batch", 4, "t")},
                             outputs={"y": ("batch", 4, "t2")}, example=[torch.randn(1, 4, 16)], cases=cases,
                             conv2d=conv2d)
        assert graph.parity_max_abs_diff < 1e-5
        g = onnx.load(str(tmp_path / f"n{conv2d}.onnx")).graph
        dims = {i.name: len(i.dims) for i in g.initializer}
        ranks = sorted(dims[n.input[1]] for n in g.node if n.op_type == "Conv")
        assert ranks == ([3, 3, 3, 3, 3, 4] if not conv2d else [3, 3, 4, 4, 4, 4])
