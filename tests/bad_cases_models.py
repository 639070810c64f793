"""Bad model folders and checkpoints (the hardening issue): every runtime, through the CLI commands that load it.

Each ``setup`` builds a damaged copy of a shipped folder at ``{tmp}/m``: ``config.json`` is copied (and
edited), every other file is a symbolic link to the shipped one, so no case copies megabytes of graphs, and
the shipped files themselves are checked to be left alone (``keep``). A model folder is untrusted input:
each case must end in one ``signals: error:`` line naming the folder or file, exit status 2, and nothing
may be created or run (a crafted checkpoint's payload would create a marker file in ``{tmp}``, which the
harness reports as a stray file).
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from badinput import MODELS, Case

Fixtures = dict[str, Path]
Edit = Callable[[dict[str, Any]], Any]

# The commands that load each runtime, with the model folder given as {tmp}/m.
PREDICT = ("har", "predict", "{csv}", "--model", "{tmp}/m")
EMBED = ("speech", "embed", "{voice_a}", "--model", "{tmp}/m")
VERIFY = ("speech", "verify", "{voice_a}", "{voice_b}", "--model", "{tmp}/m")
UPSAMPLE = ("speech", "upsample", "{wav}", "-o", "{tmp}/out.wav", "--model", "{tmp}/m")
CLONE = ("speech", "clone", "--reference", "{voice_a}", "--text", "Hello.", "-o", "{tmp}/out.wav")
CLONE_TTS = (*CLONE, "--model", "{tmp}/m")
CLONE_VOCODER = (*CLONE, "--vocoder-model", "{tmp}/m")
CLONE_ENCODER = (*CLONE, "--encoder-model", "{tmp}/m")
CLONE_SR = (*CLONE, "--sample-rate", "48000", "--sr-model", "{tmp}/m")

# runtime -> (shipped folder, the command that loads it, its first graph's role)
RUNTIMES = {
    "har": ("har", PREDICT, "fp32"),
    "embed": ("speaker_encoder", EMBED, "encoder"),
    "upsample": ("super_resolution", UPSAMPLE, "encoder"),
    "clone": ("tts", CLONE_TTS, "encoder"),
    "vocoder": ("vocoder", CLONE_VOCODER, "generator"),
}
def folder(name: str, edit: Edit | None = None, raw: bytes | None = None,
           files: dict[str, bytes | str | None] | None = None) -> Callable[[Fixtures], None]:
    """A setup making ``{tmp}/m``: shipped folder ``name`` with ``config.json`` edited by ``edit`` (returns
    the new data or changes it in place) or replaced by ``raw`` bytes; ``files``: name -> new content
    (bytes), a link target (str, formatted with the fixtures), or None to remove the file."""

    def setup(f: Fixtures) -> None:
        dst = f["tmp"] / "m"
        dst.mkdir()
        for src in (MODELS / name).iterdir():
            if src.name != "config.json":
                (dst / src.name).symlink_to(src)
        if raw is not None:
            (dst / "config.json").write_bytes(raw)
        else:
            data = json.loads((MODELS / name / "config.json").read_text())
            data = (edit(data) or data) if edit else data
            (dst / "config.json").write_text(json.dumps(data))
        for fname, content in (files or {}).items():
            path = dst / fname
            if path.is_symlink() or path.exists():
                path.unlink()
            if isinstance(content, bytes):
                path.write_bytes(content)
            elif isinstance(content, str):
                path.symlink_to(content.format(**{k: str(v) for k, v in f.items()}))

    return setup


def setting(*path: str, value: Any = KeyError) -> Edit:
    """An edit setting ``config[path...]`` to ``value`` (deleting the key when ``value`` is KeyError)."""

    def edit(data: dict[str, Any]) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return edit


def no_sha(role: str) -> Edit:
    return setting("graphs", role, "sha256", value=None)


def truncated(name: str, role: str, size: int = 4096, keep_sha: bool = True) -> Callable[[Fixtures], None]:
    """The first ``size`` bytes of shipped graph ``role`` of ``name`` (an interrupted download)."""
    spec = json.loads((MODELS / name / "config.json").read_text())["graphs"][role]
    with open(MODELS / name / spec["file"], "rb") as fh:
        head = fh.read(size)
    return folder(name, None if keep_sha else no_sha(role), files={spec["file"]: head})


def graph_file(name: str, role: str) -> str:
    return json.loads((MODELS / name / "config.json").read_text())["graphs"][role]["file"]


def crafted_checkpoint(payload: str) -> Callable[[Fixtures], None]:
    """``{tmp}/ckpt.pt``: a torch checkpoint whose unpickling would run code: ``touch`` a marker file in
    ``{tmp}`` (which the harness would report as a stray file), through ``pathlib.Path.touch`` or
    ``os.system``."""

    def setup(f: Fixtures) -> None:
        import torch

        marker = f["tmp"] / "PWNED"

        class Payload:
            def __reduce__(self):
                if payload == "system":
                    return (os.system, (f"touch {marker}",))
                return (pathlib.Path.touch, (marker,))

        torch.save({"model": Payload(), "config": {}, "step": 1}, f["tmp"] / "ckpt.pt")

    return setup


def checkpoint_bytes(data: bytes) -> Callable[[Fixtures], None]:
    def setup(f: Fixtures) -> None:
        (f["tmp"] / "ckpt.pt").write_bytes(data)

    return setup


def plain_checkpoint(state: dict[str, Any]) -> Callable[[Fixtures], None]:
    def setup(f: Fixtures) -> None:
        import torch

        torch.save(state, f["tmp"] / "ckpt.pt")

    return setup


def fifo(name: str, fname: str, edit: Edit | None = None) -> Callable[[Fixtures], None]:
    """Shipped folder ``name`` whose ``fname`` is a named pipe: opening it would block forever."""
    base = folder(name, edit)

    def setup(f: Fixtures) -> None:
        base(f)
        path = f["tmp"] / "m" / fname
        path.unlink()
        os.mkfifo(path)

    return setup


def huge_config(f: Fixtures) -> None:
    (f["tmp"] / "m").mkdir()
    with open(f["tmp"] / "m" / "config.json", "wb") as fh:
        block = b" " * (1 << 20)
        for _ in range(100):  # 100 MB of whitespace
            fh.write(block)


def empty_folder(f: Fixtures) -> None:
    (f["tmp"] / "m").mkdir()


def config_is_folder(f: Fixtures) -> None:
    (f["tmp"] / "m" / "config.json").mkdir(parents=True)


def outside_victim(f: Fixtures) -> None:
    """``{tmp}/outside/victim.txt`` and a har-lite folder at ``{tmp}/a/b/m`` whose config names its
    weights ``../../outside/victim.txt`` (the tester's case for ``signals har export``)."""
    (f["tmp"] / "outside").mkdir()
    (f["tmp"] / "outside" / "victim.txt").write_text("do not touch\n")
    dst = f["tmp"] / "a" / "b" / "m"
    dst.mkdir(parents=True)
    for src in (MODELS / "har-lite").iterdir():
        if src.name != "config.json":
            (dst / src.name).symlink_to(src)
    data = json.loads((MODELS / "har-lite" / "config.json").read_text())
    data["weights"] = "../../outside/victim.txt"
    (dst / "config.json").write_text(json.dumps(data))


def check_relinked(f: Fixtures, stdout: str) -> None:
    """After ``har export`` in place: the linked graph became a file of the folder's own, the shipped file
    it pointed to is unchanged (``keep``), the stale int8 link is gone and config.json names one graph."""
    m = f["tmp"] / "m"
    assert (m / "fusionactnet.onnx").is_file() and not (m / "fusionactnet.onnx").is_symlink()
    assert not (m / "fusionactnet.int8.onnx").exists() and not (m / "fusionactnet.int8.onnx").is_symlink()
    assert list(json.loads((m / "config.json").read_text())["graphs"]) == ["fp32"]
    assert not [p.name for p in m.iterdir() if ".partial" in p.name or p.name.endswith(".tmp")]


def _wrong_kind_cases() -> list[Case]:
    return [
        Case("model-upsample-har-folder", ("speech", "upsample", "{wav}", "-o", "{tmp}/out.wav", "--model",
                                           "{models}/har"), match=r"models/har holds a 'har' model, not a 'super_resolution'"),
        Case("model-predict-vocoder-folder", ("har", "predict", "{csv}", "--model", "{models}/vocoder"),
             match=r"models/vocoder holds a 'vocoder' model, not a 'har'"),
        Case("model-embed-tts-folder", ("speech", "embed", "{voice_a}", "--model", "{models}/tts"),
             match=r"models/tts holds a 'tts' model"),
        Case("model-verify-sr-folder", ("speech", "verify", "{voice_a}", "{voice_b}", "--model",
                                        "{models}/super_resolution"), match=r"super_resolution holds"),
        Case("model-clone-encoder-folder", (*CLONE, "--model", "{models}/speaker_encoder"),
             match=r"speaker_encoder holds a 'speaker_encoder' model, not a 'tts'"),
        Case("model-clone-vocoder-is-tts", (*CLONE, "--vocoder-model", "{models}/tts"),
             match=r"models/tts holds a 'tts' model, not a 'vocoder'"),
        Case("model-clone-encoder-is-har", (*CLONE, "--encoder-model", "{models}/har"),
             match=r"models/har holds a 'har' model, not a 'speaker_encoder'"),
        Case("model-clone-sr-is-vocoder", (*CLONE_SR[:-1], "{models}/vocoder"),
             match=r"models/vocoder holds a 'vocoder' model, not a 'super_resolution'"),
    ]


def _config_cases() -> list[Case]:
    cases = [
        Case("model-config-null", UPSAMPLE, setup=folder("super_resolution", raw=b"null"),
             match=r"m/config.json must hold a JSON object .*not null"),
        Case("model-config-list", PREDICT, setup=folder("har", raw=b"[]"), match=r"m/config.json must hold a JSON object"),
        Case("model-config-string", EMBED, setup=folder("speaker_encoder", raw=b'"speaker_encoder"'),
             match=r"m/config.json must hold a JSON object .*not a string"),
        Case("model-config-number", CLONE_VOCODER, setup=folder("vocoder", raw=b"1e999"),
             match=r"m/config.json must hold a JSON object"),
        Case("model-config-not-json", CLONE_TTS, setup=folder("tts", raw=b"{'kind': 'tts'}"),
             match=r"m/config.json is not valid JSON"),
        Case("model-config-not-utf8", PREDICT, setup=folder("har", raw=b'{"kind": "har\xff\xfe"}'),
             match=r"m/config.json is not UTF-8"),
        Case("model-config-nested-deeply", UPSAMPLE, setup=folder("super_resolution", raw=b"[" * 100_000),
             match=r"m/config.json is not a signals config.json: nested too deeply"),
        Case("model-config-huge", PREDICT, setup=huge_config, match=r"m/config.json is 100.0 MiB"),
        Case("model-config-is-folder", EMBED, setup=config_is_folder, match=r"m is not a model folder: config.json is not a regular file"),
        Case("model-config-no-kind", VERIFY, setup=folder("speaker_encoder", setting("kind")), match=r"m/config.json has no 'kind'"),
        Case("model-config-kind-number", UPSAMPLE, setup=folder("super_resolution", setting("kind", value=3)),
             match=r"m/config.json: kind: expected a string, got 3"),
        Case("model-config-newer-format", PREDICT, setup=folder("har", setting("format", value=2)), match=r"upgrade signals"),
        Case("model-config-unknown-top-key", CLONE_TTS, setup=folder("tts", setting("grpahs", value={})),
             match=r"m/config.json: unknown key 'grpahs'"),
        Case("model-empty-folder", UPSAMPLE, setup=empty_folder, match=r"m is not a model folder: config.json is missing"),
        Case("model-folder-is-file", ("speech", "upsample", "{wav}", "-o", "{tmp}/out.wav", "--model", "{voice_a}"),
             match=r"voice_a_1.wav is a file, not a model folder"),
        Case("model-folder-missing", ("har", "predict", "{csv}", "--model", "{tmp}/nothing"),
             match=r"model folder not found: .*nothing"),
        # a whole section of the wrong type, for every runtime
        Case("model-har-runtime-list", PREDICT, setup=folder("har", setting("runtime", value=[])),
             match=r"m/config.json: runtime: expected a mapping, got \[\]"),
        Case("model-har-frontend-string", PREDICT, setup=folder("har", setting("frontend", value="x")),
             match=r"frontend: expected a mapping, got 'x'"),
        Case("model-embed-runtime-null", EMBED, setup=folder("speaker_encoder", setting("runtime", value=None)),
             match=r"runtime: expected a mapping, got None"),
        Case("model-upsample-model-string", UPSAMPLE, setup=folder("super_resolution", setting("model", value="big")),
             match=r"model: expected a mapping, got 'big'"),
        Case("model-clone-graphs-string", CLONE_TTS, setup=folder("tts", setting("graphs", value="x")),
             match=r"graphs: expected a mapping, got 'x'"),
        Case("model-vocoder-frontend-list", CLONE_VOCODER, setup=folder("vocoder", setting("frontend", value=[1])),
             match=r"frontend: expected a mapping, got \[1\]"),
        # a key missing or of the wrong type inside a section
        Case("model-har-runtime-no-classes", PREDICT, setup=folder("har", setting("runtime", "classes")),
             match=r"m/config.json: missing key 'runtime.classes'"),
        Case("model-upsample-runtime-missing", UPSAMPLE, setup=folder("super_resolution", setting("runtime")),
             match=r"missing key 'runtime.context_frames'"),
        Case("model-vocoder-frontend-missing", CLONE_VOCODER, setup=folder("vocoder", setting("frontend")),
             match=r"missing key 'frontend.sample_rate'"),
        Case("model-upsample-n-mels-string", UPSAMPLE, setup=folder("super_resolution", setting("model", "n_mels", value="80")),
             match=r"model.n_mels: expected an integer, got '80'"),
        Case("model-embed-threshold-string", VERIFY,
             setup=folder("speaker_encoder", setting("runtime", "threshold", value="high")),
             match=r"runtime.threshold: .*'high'"),
        Case("model-clone-model-unknown-key", CLONE_TTS, setup=folder("tts", setting("model", "n_mel", value=80)),
             match=r"unknown key 'model.n_mel'"),
        Case("model-har-long-value-is-cut", PREDICT, setup=folder("har", setting("runtime", "classes", value="x" * 100_000)),
             match=r"runtime.classes: expected a list, got 'x{70,}\.\.\. \(100002 characters\)"),
    ]
    for rid, (name, argv, role) in RUNTIMES.items():
        cases += [
            Case(f"model-{rid}-graph-missing-inputs", argv, setup=folder(name, setting("graphs", role, "inputs")),
                 match=rf"missing key 'graphs.{role}.inputs'"),
            Case(f"model-{rid}-graph-file-number", argv, setup=folder(name, setting("graphs", role, "file", value=5)),
                 match=rf"graphs.{role}.file: expected a string, got 5"),
            Case(f"model-{rid}-graph-renamed-input", argv,
                 setup=folder(name, setting("graphs", role, "inputs", value={"input": ["batch", 3]})),
                 # the vocoder reads the graph's mel dims before its names (see its infer.py)
                 match=rf"the {role} graph must map|the graph takes None mel bands"),
        ]
    return cases


def _graph_file_cases() -> list[Case]:
    cases = []
    for rid, (name, argv, role) in RUNTIMES.items():
        fname = graph_file(name, role)
        cases += [
            Case(f"model-{rid}-graph-truncated", argv, setup=truncated(name, role),
                 match=rf"m/{fname} does not match the sha256 recorded for the '{role}' graph"),
            Case(f"model-{rid}-graph-truncated-no-sha", argv, setup=truncated(name, role, keep_sha=False),
                 match=rf"could not load ONNX model .*m/{fname}"),
            Case(f"model-{rid}-graph-not-onnx", argv, setup=folder(name, no_sha(role), files={fname: b"hello\n"}),
                 match=rf"could not load ONNX model .*m/{fname}"),
            Case(f"model-{rid}-graph-empty", argv, setup=folder(name, no_sha(role), files={fname: b""}),
                 match=rf"could not load ONNX model .*m/{fname}"),
            Case(f"model-{rid}-graph-missing", argv, setup=folder(name, files={fname: None}),
                 match=rf"m: {fname} is missing \(named in config.json\)"),
            Case(f"model-{rid}-sha256-mismatch", argv, setup=folder(name, setting("graphs", role, "sha256", value="0" * 64)),
                 match=rf"m/{fname} does not match the sha256"),
            Case(f"model-{rid}-graph-absolute", argv, setup=folder(name, setting("graphs", role, "file", value="/etc/shadow")),
                 match=r"m/config.json: file name '/etc/shadow' must be a plain path inside the model folder"),
            Case(f"model-{rid}-graph-dotdot", argv,
                 setup=folder(name, setting("graphs", role, "file", value="../../etc/passwd")),
                 match=r"file name '../../etc/passwd' must be a plain path inside the model folder"),
            Case(f"model-{rid}-graph-links-to-passwd", argv, setup=folder(name, files={fname: "/etc/passwd"}),
                 match=rf"m/{fname} does not match the sha256"),
            Case(f"model-{rid}-graph-links-to-dev-zero", argv, setup=folder(name, files={fname: "/dev/zero"}),
                 match=rf"m/{fname} is not a regular file"),
            Case(f"model-{rid}-graph-is-fifo", argv, setup=fifo(name, fname), match=rf"m/{fname} is not a regular file",
                 isolate=True, timeout=60),
        ]
    cases += [
        # a graph of another model: the tensor names do not match config.json
        Case("model-upsample-graph-of-encoder", UPSAMPLE,
             setup=folder("super_resolution", no_sha("encoder"),
                          files={"encoder.onnx": "{models}/speaker_encoder/speaker_encoder.onnx"}),
             match=r"m/encoder.onnx: expected inputs \['mel'\] and outputs \['latent'\], the graph has \['mels'\]"),
        # the SR upsampler in place of the SR encoder: right file names, wrong tensors
        Case("model-upsample-graphs-swapped", UPSAMPLE,
             setup=folder("super_resolution", no_sha("encoder"),
                          files={"encoder.onnx": "{models}/super_resolution/upsampler.onnx"}),
             match=r"m/encoder.onnx: expected inputs \['mel'\] and outputs \['latent'\], the graph has \['latent'\]"),
        # the same input name (80 mel bands): the recorded sha256 tells them apart
        Case("model-vocoder-graph-of-sr", CLONE_VOCODER,
             setup=folder("vocoder", files={"vocoder.onnx": "{models}/super_resolution/encoder.onnx"}),
             match=r"m/vocoder.onnx does not match the sha256 recorded for the 'generator' graph"),
        # same names, other sizes: HAPT's 12-class graph in a 6-class folder
        Case("model-har-graph-of-other-dataset", PREDICT,
             setup=folder("har", no_sha("fp32"), files={"fusionactnet.onnx": "{models}/har-hapt/fusionactnet.onnx"}),
             match=r"m/fusionactnet.onnx: tensor 'probs' has shape \['batch', 12\] in the graph, config.json declares "
                   r"\['batch', 6\]"),
        Case("model-har-int8-missing", (*PREDICT, "--int8"), setup=folder("har", files={"fusionactnet.int8.onnx": None}),
             match=r"fusionactnet.int8.onnx is missing"),
        # the speaker encoder's other file, the S-norm cohort
        Case("model-embed-cohort-outside", VERIFY,
             setup=folder("speaker_encoder", setting("files", "cohort", value="/etc/shadow")),
             match=r"file name '/etc/shadow' must be a plain path"),
        Case("model-embed-cohort-dotdot", EMBED,
             setup=folder("speaker_encoder", setting("files", "cohort", value="splits/../../../x.npy")),
             match=r"file name 'splits/../../../x.npy' must be a plain path"),
        Case("model-embed-cohort-missing", VERIFY, setup=folder("speaker_encoder", files={"cohort.npy": None}),
             match=r"m: cohort.npy is missing"),
        Case("model-embed-cohort-not-npy", VERIFY, setup=folder("speaker_encoder", files={"cohort.npy": b"\x93NUMPY junk"}),
             match=r"m/cohort.npy is not a readable .npy array"),
        Case("model-embed-cohort-pickle", VERIFY,
             setup=folder("speaker_encoder", files={"cohort.npy": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01."}),
             match=r"m/cohort.npy is not a readable .npy array"),
        Case("model-embed-cohort-null-name", EMBED,
             setup=folder("speaker_encoder", setting("files", "cohort", value="a\x00b")),
             match=r"must be a plain path"),
        Case("model-clone-encoder-graph-truncated", CLONE_ENCODER, setup=truncated("speaker_encoder", "encoder"),
             match=r"m/speaker_encoder.onnx does not match the sha256"),
        Case("model-clone-sr-graph-not-onnx", CLONE_SR,
             setup=folder("super_resolution", no_sha("upsampler"), files={"upsampler.onnx": b"not a graph"}),
             match=r"could not load ONNX model .*m/upsampler.onnx"),
    ]
    return cases


def _export_cases() -> list[Case]:
    keep = tuple(f"{{models}}/har-lite/{n}" for n in ("fusionactnet.onnx", "fusionactnet.int8.onnx", "model.safetensors"))
    return [
        # signals har export writes into the folder: nothing may land outside it, nor through its links
        Case("model-har-export-weights-outside", ("har", "export", "--model", "{tmp}/a/b/m", "--no-int8"),
             setup=outside_victim, keep=("{tmp}/outside/victim.txt",),
             match=r"file name '../../outside/victim.txt' must be a plain path inside the model folder"),
        Case("model-har-export-weights-missing", ("har", "export", "--model", "{tmp}/m", "--no-int8"),
             setup=folder("har-lite", files={"model.safetensors": None}), match=r"m/model.safetensors"),
        Case("model-har-export-weights-damaged", ("har", "export", "--model", "{tmp}/m", "--no-int8"),
             setup=folder("har-lite", files={"model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}junk"}),
             match=r"m/model.safetensors"),
        Case("model-har-export-replaces-links", ("har", "export", "--model", "{tmp}/m", "--no-int8"),
             setup=folder("har-lite"), expect="ok", keep=keep, check=check_relinked,
             outputs=("{tmp}/m/fusionactnet.onnx", "{tmp}/m/config.json"), timeout=300),
        # checkpoints never run code: the payload would touch {tmp}/PWNED (a stray file for the harness)
        Case("model-encoder-export-crafted-touch", ("speech", "encoder", "export", "{tmp}/ckpt.pt", "--out", "{tmp}/out"),
             setup=crafted_checkpoint("touch"), match=r"ckpt.pt is not a signals training checkpoint: it holds Python "
                                                      r"objects or code"),
        Case("model-encoder-export-crafted-system", ("speech", "encoder", "export", "{tmp}/ckpt.pt", "--out", "{tmp}/out"),
             setup=crafted_checkpoint("system"), match=r"ckpt.pt is not a signals training checkpoint: it holds Python "
                                                       r"objects or code"),
        Case("model-encoder-export-not-torch", ("speech", "encoder", "export", "{tmp}/ckpt.pt", "--out", "{tmp}/out"),
             setup=checkpoint_bytes(b"hello\n"), match=r"ckpt.pt is not a signals training checkpoint"),
        Case("model-encoder-export-empty", ("speech", "encoder", "export", "{tmp}/ckpt.pt", "--out", "{tmp}/out"),
             setup=checkpoint_bytes(b""), match=r"ckpt.pt is not a signals training checkpoint"),
        Case("model-encoder-export-not-a-dict", ("speech", "encoder", "export", "{tmp}/ckpt.pt", "--out", "{tmp}/out"),
             setup=plain_checkpoint([1, 2, 3]), match=r"ckpt.pt is not a signals training checkpoint: it holds a list"),
        Case("model-encoder-export-foreign-dict", ("speech", "encoder", "export", "{tmp}/ckpt.pt", "--out", "{tmp}/out"),
             setup=plain_checkpoint({"state_dict": {}}), match=r"ckpt.pt is not a speaker-encoder training checkpoint"),
        Case("model-encoder-export-missing", ("speech", "encoder", "export", "{tmp}/nothing.pt", "--out", "{tmp}/out"),
             match=r"checkpoint not found: .*nothing.pt"),
        Case("model-encoder-export-folder", ("speech", "encoder", "export", "{tmp}", "--out", "{tmp}/out"),
             match=r"is not a file"),
    ]


CASES: list[Case] = [*_wrong_kind_cases(), *_config_cases(), *_graph_file_cases(), *_export_cases()]
