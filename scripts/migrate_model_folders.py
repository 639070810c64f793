"""Rewrite model folders written before the one model-folder contract (signals.modelfolder, format 1).

    python scripts/migrate_model_folders.py models/har models/speaker_encoder models/super_resolution runs/har/x

ONNX graphs and weights are left byte for byte; ``config.json`` is rewritten to the common layout,
measured results move to ``metrics.json`` and a HAR training history to ``train_log.jsonl``. A HiFi-SR
folder with one ``generator`` graph (before 2026-12-07) gets its ``encoder`` + ``upsampler`` pair exported
from its own weights instead (torch needed), everything else kept; one whose upsampler still computes Snake with
``Sin`` (before the polynomial of 2026-12-07, late) gets the pair exported again the same way (faster on CPU). Each section
is checked by loading it into its config dataclass. A folder already in the new layout is left alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from signals.configio import from_dict, to_dict
from signals.modelfolder import (
    LOG_FILE,
    Graph,
    ModelConfig,
    ModelFolder,
    read_metrics,
    sha256,
    update_metrics,
    write_config,
)


def _graph(folder: Path, file: str, inputs: dict, outputs: dict, parity: float | None) -> Graph:
    return Graph(file=file, inputs={k: tuple(v) for k, v in inputs.items()},
                 outputs={k: tuple(v) for k, v in outputs.items()}, opset=17, sha256=sha256(folder / file),
                 parity_max_abs_diff=parity)


def migrate_har(folder: Path, old: dict) -> tuple[ModelConfig, dict]:
    from signals.har.config import FusionActNetConfig
    from signals.har.frontend import PreprocessConfig

    mc = from_dict(FusionActNetConfig, old["model"], str(folder), "model")
    front = from_dict(PreprocessConfig, old["preprocess"], str(folder), "preprocess") if old.get("preprocess") else None
    io = ({"x": ["batch", mc.in_channels, mc.window]}, {"probs": ["batch", mc.n_classes]})
    export = old.get("export", {})
    graphs = {"fp32": _graph(folder, old["onnx"]["fp32"], *io, export.get("parity_max_abs_diff"))}
    if old["onnx"].get("int8") and (folder / old["onnx"]["int8"]).is_file():
        graphs["int8"] = _graph(folder, old["onnx"]["int8"], *io, export.get("int8_max_abs_diff"))
    training = dict(old.get("training", {}))
    history = training.pop("history", [])
    if history:
        (folder / LOG_FILE).write_text("".join(json.dumps(row) + "\n" for row in history))
    source = {"dataset": old.get("dataset", {}), "training": training}
    if "int8_calibration_windows" in export:
        source["export"] = {"int8_calibration_windows": export["int8_calibration_windows"]}
    config = ModelConfig(
        kind="har", description="FusionActNet: static and dynamic residual 1-D CNN branches fused by a guidance net",
        model=to_dict(mc), frontend=to_dict(front) if front else {}, graphs=graphs,
        runtime={"classes": old["classes"], "channels": old["channels"], "sample_rate": float(old["sample_rate"])},
        source=source,
        licence="Apache-2.0 (weights and code); training data UCI HAPT, CC BY 4.0 (Reyes-Ortiz et al. 2016)",
    )
    return config, old.get("metrics", {})


def migrate_speaker_encoder(folder: Path, old: dict) -> tuple[ModelConfig, dict]:
    from signals.speech.encoder.config import EncoderConfig
    from signals.speech.encoder.frontend import FrontEnd

    mc = from_dict(EncoderConfig, old["model"], str(folder), "model")
    front = from_dict(FrontEnd, {**old["frontend"], "mel": old["mel"]}, str(folder), "frontend")
    onnx = old["onnx"]
    ver = dict(old.get("verification") or {})
    snorm = ver.pop("snorm", None)
    cohort = dict(old.get("cohort") or {})
    rows = cohort.pop("row_speakers", None)
    runtime = {"threshold": ver.get("threshold"), "snorm_threshold": (snorm or {}).get("threshold"),
               "cohort_speakers": rows}
    source = dict(old["source"])
    if cohort:
        source["cohort"] = cohort
    config = ModelConfig(
        kind="speaker_encoder", description=old.get("architecture", ""), model=to_dict(mc), frontend=to_dict(front),
        graphs={"encoder": _graph(folder, onnx["file"], onnx["inputs"], onnx["outputs"], onnx.get("parity_max_abs_diff"))},
        files={"cohort": cohort["file"]} if cohort else {}, runtime=runtime, source=source,
        licence=old["source"].get("licence", "unknown"),
    )
    calibration = {k: v for k, v in (("cosine", ver if ver.get("threshold") is not None else None),
                                     ("snorm", snorm)) if v}
    metrics = {k: v for k, v in (("calibration", calibration), ("evaluations", old.get("evaluations")),
                                 ("benchmark", old.get("benchmark"))) if v}
    return config, metrics


def migrate_super_resolution(folder: Path, old: dict) -> tuple[ModelConfig, dict]:
    from signals.speech.features import MelConfig
    from signals.speech.sr.frontend import FrontEnd
    from signals.speech.sr.infer import Chunking

    inf = old["inference"]
    front = FrontEnd(mel=from_dict(MelConfig, old["mel"], str(folder), "mel"),
                     bandwidth_drop_db=inf["bandwidth_drop_db"], crossover_width_hz=inf["crossover_width_hz"])
    gen = old["generator"]  # checked by the torch-side loader; the runtime only needs the graph
    from signals.speech.sr.config import GeneratorConfig

    up_ctx = from_dict(GeneratorConfig, gen, str(folder), "generator").upsampler.context_frames
    chunking = Chunking(context_frames=inf["context_frames"], upsampler_context_frames=up_ctx,
                        chunk_frames=inf["chunk_frames"], crossfade_frames=inf["crossfade_frames"])
    io = old["onnx_io"]
    graph = _graph(folder, old["onnx"], {io["input"]: ["batch", gen["n_mels"], "frames"]},
                   {io["output"]: ["batch", "samples"]}, old.get("export_parity_max_abs"))
    config = ModelConfig(
        kind="super_resolution",
        description="HiFi-SR: banded-attention conformer encoder over the 48 kHz log-mel feeding a HiFi-GAN/Snake "
                    "upsampler; any input rate 4-48 kHz -> 48 kHz",
        model=gen, frontend=to_dict(front), graphs={"generator": graph}, runtime=to_dict(chunking),
        source={"data": old.get("data", {}), "training": old.get("training", {})},
        licence="Apache-2.0 (weights); training and evaluation data CSTR VCTK 0.92, CC BY 4.0",
    )
    return config, {}


MIGRATIONS = {"har": migrate_har, "speaker_encoder": migrate_speaker_encoder,
              "super_resolution": migrate_super_resolution}


def kind_of(old: dict) -> str:
    if "classes" in old and "preprocess" in old:
        return "har"
    if old.get("name") == "speaker_encoder":
        return "speaker_encoder"
    if old.get("model") == "hifi-sr":
        return "super_resolution"
    raise SystemExit(f"unknown config layout: keys {sorted(old)}")


def _upsampler_has_sin(folder: Path, old: dict) -> bool:
    """A HiFi-SR upsampler graph exported before Snake's ``sin`` became a polynomial (slower, else the same)."""
    import onnx

    graph = old.get("graphs", {}).get("upsampler")
    if graph is None or not (folder / graph["file"]).is_file():
        return False
    return any(node.op_type == "Sin" for node in onnx.load(str(folder / graph["file"])).graph.node)


def migrate(folder: Path) -> str:
    old = json.loads((folder / "config.json").read_text())
    # HiFi-SR graphs exported again from the folder's own weights (needs torch): one generator graph (before
    # 2026-12-07) becomes encoder + upsampler; an upsampler with Sin (before that evening) the polynomial Snake
    split = "generator" in old.get("graphs", {})
    if old.get("kind") == "super_resolution" and (split or _upsampler_has_sin(folder, old)):
        from signals.speech.sr.export import export_generator_graphs

        export_generator_graphs(folder)
        if split:
            return f"{folder}: super_resolution generator graph split into encoder.onnx + upsampler.onnx"
        return (f"{folder}: super_resolution encoder.onnx + upsampler.onnx exported again (faster on CPU; the same "
                "output within the recorded parity)")
    if "kind" in old:
        return f"{folder}: already format {old.get('format')}"
    kind = kind_of(old)
    config, metrics = MIGRATIONS[kind](folder, old)
    write_config(folder, config)
    if metrics:
        update_metrics(folder, **{**metrics, **read_metrics(folder)})
    ModelFolder.load(folder, kind)  # reads back: every file name confined, every section typed
    if kind == "super_resolution":
        return migrate(folder)  # then the graph split
    return f"{folder}: {kind} migrated"


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(migrate(Path(arg)))
