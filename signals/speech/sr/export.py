"""Export the HiFi-SR generator to ONNX and write the model folder, through :mod:`signals.export`.

    signals speech sr export --weights runs/sr/generator_best.safetensors --out models/super_resolution
    signals speech sr export-envelope --weights runs/sr_env/envelope_best.safetensors --model models/super_resolution

The generator graph maps ``mel: float32[batch, 80, frames]`` (the SR_MEL log-mel of the input resampled to 48 kHz)
to ``audio: float32[batch, frames * 256]``; batch and frames are dynamic. Parity with PyTorch is checked
on several lengths before the folder is written. ``export-envelope`` adds the learned envelope of the
generated band to a folder: ``envelope.onnx`` (``mel`` -> ``band_power: float32[batch, n_bands, frames]``),
its weights, ``frontend.envelope`` and its training record under ``source.envelope``; the generator and its
files are left as they are (the envelope belongs to that generator: it is validated through its runtime).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from signals.configio import from_dict, to_dict
from signals.errors import ConfigError, ModelError
from signals.export import export_graph, save_weights, write_folder
from signals.modelfolder import LOG_FILE, Graph, ModelConfig, ModelFolder, read_log, sha256, write_config
from signals.speech.nn.layers import polynomial_snake
from signals.speech.sr.config import SMALL, EnvelopeConfig, GeneratorConfig
from signals.speech.sr.frontend import FrontEnd
from signals.speech.sr.infer import ENCODER_ONNX, KIND, UPSAMPLER_ONNX, Chunking
from signals.speech.sr.model import EnvelopeNet, Generator
from signals.torchutils import load_safetensors

DESCRIPTION = ("HiFi-SR: banded-attention conformer encoder over the 48 kHz log-mel feeding a HiFi-GAN/Snake "
               "upsampler; any input rate 4-48 kHz -> 48 kHz")


class Exported(nn.Module):
    """The whole generator: ``mel: Tensor[B, n_mels, F]`` -> ``audio: Tensor[B, F * hop]`` (what the two graphs
    compute together; the reference for tests)."""

    def __init__(self, gen: Generator):
        super().__init__()
        self.gen = gen

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.gen(mel).squeeze(1)


class ExportedEncoder(Exported):
    """The encoder graph: ``mel: Tensor[B, n_mels, F]`` -> ``latent: Tensor[B, C0, F]`` (conformer + conv_pre)."""

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.gen.encode(mel)


class ExportedUpsampler(Exported):
    """The upsampler graph: ``latent: Tensor[B, C0, F]`` -> ``audio: Tensor[B, F * hop]``.

    Split from the encoder because their receptive fields differ by 10x (171 vs 14 frames each side): the
    runtime gives the cheap encoder long context and the expensive upsampler only what it needs.
    """

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.gen.upsample(latent).squeeze(1)


def parity_cases(n_mels: int, lengths: tuple[int, ...] = (40, 203), seed: int = 0) -> list[list[np.ndarray]]:
    """Random log-mels (around the SR_MEL range) of several lengths: exercises the dynamic frames axis."""
    rng = np.random.default_rng(seed)
    return [[(rng.standard_normal((1, n_mels, n)) * 2.0 - 6.0).astype(np.float32)] for n in lengths]


def weights_config(weights: str | Path) -> GeneratorConfig:
    """The generator config stored in a training ``.safetensors`` file's metadata (else the small preset)."""
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        meta = f.metadata() or {}
    return from_dict(GeneratorConfig, json.loads(meta["config"]), str(weights), "config") if "config" in meta else SMALL


def run_provenance(weights: str | Path) -> tuple[dict[str, Any], str]:
    """``(source, licence)`` for the model folder of ``weights`` written by a training run: read from the run
    folder beside them (``train_config.json``, ``train_log.jsonl``, the pack's ``index.json``); ``({},
    "unknown")`` for weights from elsewhere.

    ``source.training`` holds the recipe, the weights' step and their validation row; ``source.data`` the
    corpus (for a pack: the Debian packages with versions and licences, the held-out groups). Fine-tuned
    weights (``init_weights`` a model folder's) inherit that folder's ``data.test_utterances`` (what
    ``evaluate --held-out`` scores: nothing in the lineage trained on them) and its provenance as ``init``.
    """
    from safetensors import safe_open

    from signals.speech.sr.config import RUN_CONFIG
    from signals.speech.sr.data import is_pack, read_pack_index

    weights = Path(weights)
    run = weights.parent
    if not weights.is_file() or not (run / RUN_CONFIG).is_file():
        return {}, "unknown"
    log_file = run / LOG_FILE
    try:  # a run folder written by `sr train`, possibly cut short or edited by hand
        tc = json.loads((run / RUN_CONFIG).read_text())
        rows = read_log(log_file) if log_file.is_file() else []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read the training record beside {weights} ({RUN_CONFIG} / {LOG_FILE}): {exc}; "
                         "repair or remove it to export without provenance") from None
    with safe_open(str(weights), "pt") as f:
        step = int((f.metadata() or {}).get("step", -1))
    val = next(({k: v for k, v in r.items() if k.startswith("val_")} for r in rows
                if r.get("step") == step and "val_lsd_8k" in r and not r.get("init")), {})
    keys = ("steps", "batch_size", "lr", "lr_schedule", "warmup_steps", "above_band_weight", "disc_start",
            "disc_warmup", "discriminator", "seed", "degrade", "loss", "discriminator_config")
    training = {"step": step, **{k: tc[k] for k in keys if k in tc}, "init_weights": tc.get("init_weights"),
                "selected_by": "best validation LSD (mean of 8 and 16 kHz inputs)" if "best" in weights.stem
                else "latest step", "validation": val}
    split = tc.get("split", {})
    data: dict[str, Any] = {"corpus": tc.get("data"), "train_clips": split.get("train")}
    licences = []
    if tc.get("data") and is_pack(tc["data"]):
        index = read_pack_index(tc["data"])
        data.update(packages=index.get("packages", {}), val_groups=index.get("val_groups", []),
                    test_groups=index.get("test_groups", []), minutes=index.get("summary", {}).get("per_split"))
        licences = [f"{name} {p.get('version', '')} ({p.get('licence', '?')})"
                    for name, p in index.get("packages", {}).items()]
    else:
        data.update(val_utterances=split.get("val", []), test_utterances=split.get("test", []))
    source: dict[str, Any] = {"data": data, "training": training}
    licence = "Apache-2.0 (weights)"
    if licences:
        licence += "; training audio (never redistributed, rebuilt by `signals speech sr prepare`): Debian " + \
                   ", ".join(licences)
    parent = Path(tc["init_weights"]).parent if tc.get("init_weights") else None
    if parent is not None and (parent / "config.json").is_file():
        pc = ModelFolder.load(parent, KIND).config
        init = Path(tc["init_weights"])
        source["init"] = {"folder": str(parent), "weights_sha256": sha256(init) if init.is_file() else None,
                          "source": pc.source}
        if not data.get("test_utterances"):
            data["test_utterances"] = (pc.source.get("data") or {}).get("test_utterances", [])
        licence += f"; initialised from {parent} ({pc.licence})"
    return source, licence


def load_model(model_dir: str | Path | ModelFolder) -> Generator:
    """The PyTorch generator of a model folder (config.json + model.safetensors), in eval mode."""
    folder = model_dir if isinstance(model_dir, ModelFolder) else ModelFolder.load(model_dir, KIND)
    gen = Generator(folder.section("model", GeneratorConfig))
    return load_safetensors(gen, folder.file(folder.config.weights or "model.safetensors", must_exist=False)).eval()


def export_graphs(gen: Generator, out: str | Path) -> dict[str, Graph]:
    """``out/encoder.onnx`` and ``out/upsampler.onnx`` from ``gen`` (eval, float32), parity-checked; their
    ``config.json`` entries. Two rewrites make them faster in onnxruntime on CPU, both checked against ``gen``
    itself: 1-D convolutions are stored as 2-D ones, and the upsampler's Snake computes ``sin^2`` by polynomial
    (:func:`~signals.speech.nn.layers.polynomial_snake`)."""
    gcfg, out = gen.cfg, Path(out)
    c0 = gcfg.upsample_initial_channel
    mels = parity_cases(gcfg.n_mels)
    with torch.inference_mode():
        latents = [[gen.encode(torch.from_numpy(m[0])).numpy()] for m in mels]
    return {
        "encoder": export_graph(ExportedEncoder(gen), out / ENCODER_ONNX, inputs={"mel": ("batch", gcfg.n_mels, "frames")},
                                outputs={"latent": ("batch", c0, "frames")}, example=[torch.randn(1, gcfg.n_mels, 64)],
                                cases=mels, conv2d=True),
        "upsampler": export_graph(ExportedUpsampler(polynomial_snake(gen)), out / UPSAMPLER_ONNX,
                                  inputs={"latent": ("batch", c0, "frames")}, outputs={"audio": ("batch", "samples")},
                                  example=[torch.randn(1, c0, 64)], cases=latents, conv2d=True,
                                  reference=ExportedUpsampler(gen)),
    }


def chunking(gcfg: GeneratorConfig) -> Chunking:
    """The runtime's chunking for a generator config (context = the receptive fields)."""
    return Chunking(context_frames=gcfg.context_frames, upsampler_context_frames=gcfg.upsampler.context_frames)


def export(weights: str | Path, out: str | Path, gcfg: GeneratorConfig | None = None,
           source: dict[str, Any] | None = None, licence: str = "unknown",
           frame_comb_radius: int = 0, generated_gain_db: float = 0.0) -> ModelConfig:
    """Load generator weights, write ``out/{config.json, model.safetensors, encoder.onnx, upsampler.onnx}``;
    returns the config.

    ``source``: provenance for config.json (data split, training recipe); ``data.test_utterances`` is what
    ``signals speech sr evaluate --held-out`` evaluates on. ``frame_comb_radius``: the front end's
    frame-locked-line removal (:func:`signals.speech.sr.postprocess.remove_frame_periodic`; 0: off);
    ``generated_gain_db``: its gain on the generated band (0: as generated).
    """
    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"generator weights not found: {weights}")
    gcfg = gcfg or weights_config(weights)
    gen = load_safetensors(Generator(gcfg), weights).eval().float()
    out = Path(out)
    graphs = export_graphs(gen, out)
    front = FrontEnd(frame_comb_radius=frame_comb_radius, generated_gain_db=generated_gain_db)
    config = ModelConfig(kind=KIND, description=DESCRIPTION, model=to_dict(gcfg), frontend=to_dict(front),
                         graphs=graphs, runtime=to_dict(chunking(gcfg)),
                         source=source or {}, licence=licence)
    write_folder(out, config, gen, metadata={"config": json.dumps(to_dict(gcfg))})
    return config


def export_generator_graphs(model_dir: str | Path) -> ModelConfig:
    """Export a HiFi-SR folder's ``encoder`` + ``upsampler`` graphs again from its own ``model.safetensors``, with
    this code's rewrites (:func:`export_graphs`); a folder that holds one ``generator`` graph (the layout before
    2026-12-07) gets the pair instead, and ``generator.onnx`` is removed. Every other section and file stays
    (``runtime`` gains ``upsampler_context_frames`` where it lacks it)."""
    from dataclasses import replace

    folder = ModelFolder.load(model_dir, KIND)
    old = folder.config.graphs.get("generator")
    gen = load_model(folder)
    graphs = {**export_graphs(gen, folder.path), **{k: v for k, v in folder.config.graphs.items()
                                                     if k not in ("generator", "encoder", "upsampler")}}
    runtime = {"upsampler_context_frames": gen.cfg.upsampler.context_frames, **folder.config.runtime}
    config = replace(folder.config, graphs=graphs, runtime=to_dict(from_dict(Chunking, runtime, str(folder.config_path),
                                                                              "runtime")))
    write_config(folder.path, config)
    if old is not None:
        (folder.path / old.file).unlink(missing_ok=True)
    return config


ENVELOPE_ONNX, ENVELOPE_WEIGHTS = "envelope.onnx", "envelope.safetensors"


def export_envelope(weights: str | Path, model_dir: str | Path) -> Graph:
    """Add the envelope net ``weights`` (from ``sr train-envelope``) to the HiFi-SR folder ``model_dir``.

    Writes ``envelope.onnx`` (parity checked), ``envelope.safetensors``, ``graphs.envelope``,
    ``files.envelope_weights``, ``frontend.envelope`` (which the runtime then uses instead of
    ``generated_gain_db``; that stays, for ``--no-envelope``) and ``source.envelope`` (the run's recipe, data, chosen step and
    its validation row, when the run folder is beside the weights). Returns the graph entry.
    """
    from dataclasses import replace

    from safetensors import safe_open

    from signals.speech.sr.data import is_pack, read_pack_index
    from signals.speech.sr.train_envelope import RUN_CONFIG

    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"envelope weights not found: {weights}")
    folder = ModelFolder.load(model_dir, KIND)
    with safe_open(str(weights), "pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise ModelError(f"{weights} carries no envelope config in its metadata: is it from `sr train-envelope`?")
    try:
        ecfg = from_dict(EnvelopeConfig, json.loads(meta["config"]), str(weights), "config")
    except ConfigError as exc:
        raise ModelError(f"{exc}: {weights} is not an envelope net's weights (from `sr train-envelope`)") from None
    net = load_safetensors(EnvelopeNet(ecfg), weights).eval().float()
    front = folder.section("frontend", FrontEnd)
    if (ecfg.n_fft, ecfg.hop, ecfg.n_mels) != (front.mel.n_fft, front.mel.hop_length, front.mel.n_mels):
        raise ModelError(f"{weights}: the envelope frames as n_fft {ecfg.n_fft} / hop {ecfg.hop} / {ecfg.n_mels} mels, "
                         f"{folder.path}'s mel as {front.mel.n_fft} / {front.mel.hop_length} / {front.mel.n_mels}")
    graph = export_graph(net, folder.path / ENVELOPE_ONNX, inputs={"mel": ("batch", ecfg.n_mels, "frames")},
                         outputs={"band_power": ("batch", ecfg.n_bands, "frames")},
                         example=[torch.randn(1, ecfg.n_mels, 64)], cases=parity_cases(ecfg.n_mels))
    save_weights(net, folder.path, ENVELOPE_WEIGHTS, metadata={"config": meta["config"]})
    record: dict[str, Any] = {"weights_sha256": sha256(weights), "step": int(meta.get("step", -1))}
    run = weights.parent
    if (run / RUN_CONFIG).is_file():
        record["training"] = json.loads((run / RUN_CONFIG).read_text())
        if (run / LOG_FILE).is_file():
            rows = read_log(run / LOG_FILE)
            record["validation"] = next((r for r in rows if r.get("step") == record["step"] and "val_lsd_mean" in r),
                                        {})
            record["baseline"] = next((r for r in rows if r.get("baseline")), {})
    config = folder.config
    licence = config.licence
    packs = [d for d in (record.get("training") or {}).get("data", []) if Path(d).is_dir() and is_pack(d)]
    if packs:  # the audio the envelope learnt from: never redistributed, rebuilt by `sr prepare`
        packages = {name: p for d in packs for name, p in read_pack_index(d).get("packages", {}).items()}
        record["packages"] = packages
        note = "envelope net trained on Debian " + ", ".join(
            f"{name} {p.get('version', '')} ({p.get('licence', '?')})" for name, p in sorted(packages.items()))
        if note not in licence:
            licence += f"; {note} (audio never redistributed, rebuilt by `signals speech sr prepare`)"
    config = replace(config, licence=licence, graphs={**config.graphs, "envelope": graph},
                     files={**config.files, "envelope_weights": ENVELOPE_WEIGHTS},
                     frontend=to_dict(replace(front, envelope=ecfg)),
                     source={**config.source, "envelope": record})
    write_config(folder.path, config)
    return graph
