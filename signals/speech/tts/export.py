"""Write the synthesizer's model folder: three ONNX graphs the numpy loop in ``infer.py`` drives.

    signals speech tts export runs/tts/best --out models/tts

=============  ==========================================================  =====================================
graph          inputs                                                      outputs
=============  ==========================================================  =====================================
``encoder``    ``tokens int64 [1, N]``, ``speaker [1, 256]``               ``memory [1, N, 768]``,
                                                                           ``processed_memory [1, N, 128]``
``decoder``    ``frame [1, 80]`` (normalised), ``prenet_mask_0/1 [1, 256]``, ``frames [1, r, 80]``, ``stop [1]``
               the 7 state tensors (:data:`~.config.STATE_NAMES`),          (logit) and the 7 next states
               ``memory``, ``processed_memory``                            (``<name>_out``)
``postnet``    ``mel [1, T, 80]`` (normalised decoder output)              ``logmel [1, T, 80]`` (the vocoder's)
=============  ==========================================================  =====================================

``decoder_int8`` is ``decoder`` with int8 weights (onnxruntime dynamic quantisation): the step the CPU
runtime loops by default, several times faster since the step is bound by reading its weights.

The weights are rounded to float16 once (stored as float16 initializers read through ``Cast``; the
arithmetic stays float32): the decoder graph alone would be 52 MB in float32, over the repository's
50 MB per file. ``model.safetensors`` (float16) is kept beside the graphs because it is the point later
training sessions resume from (``signals speech tts train --init``); the card says so.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from signals.configio import to_dict
from signals.errors import ModelError
from signals.export import (
    check_parity,
    compare,
    export_graph,
    quantize_dynamic_int8,
    round_to_fp16,
    store_initializers_fp16,
    write_folder,
)
from signals.modelfolder import ModelConfig, sha256
from signals.speech.features import VOCODER_MEL
from signals.speech.tts.config import MASK_NAMES, STATE_NAMES, SynthesisConfig
from signals.speech.tts.model import Tacotron2

KIND = "tts"
GRAPHS = ("encoder", "decoder", "postnet")
INT8_SANITY = 1.0  # largest |int8 decoder - torch| over the parity cases (normalised mel, LSTM states) still accepted


class ExportedEncoder(nn.Module):
    """tokens: Tensor[1, N] int64, speaker: Tensor[1, S] -> memory: Tensor[1, N, E+S], processed_memory: Tensor[1, N, A]"""

    def __init__(self, model: Tacotron2):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, speaker: torch.Tensor):
        return self.model.encode(tokens, speaker)


class ExportedDecoderStep(nn.Module):
    """frame [1, M], masks, 7 states, memory, processed -> frames [1, r, M], stop [1], 7 next states."""

    def __init__(self, model: Tacotron2):
        super().__init__()
        self.model = model

    def forward(self, frame, mask0, mask1, att_h, att_c, dec_h, dec_c, w, w_cum, context, memory, processed):
        frames, stop, state = self.model.decoder_step(frame, (mask0, mask1), (att_h, att_c, dec_h, dec_c, w, w_cum,
                                                                              context), memory, processed)
        return (frames, stop, *state)


class ExportedPostnet(nn.Module):
    """mel: Tensor[1, T, M] (normalised) -> logmel: Tensor[1, T, M] (the vocoder's log-mel)"""

    def __init__(self, model: Tacotron2):
        super().__init__()
        self.model = model

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.model.postnet_denorm(mel)


def _cases(model: Tacotron2, seed: int = 0) -> dict[str, list[list[np.ndarray]]]:
    """Parity inputs for each graph at several token / frame counts, from the real encoder where it matters."""
    cfg = model.cfg
    rng = np.random.default_rng(seed)
    enc, dec, post = [], [], []
    for n in (7, 23, 61):
        tokens = rng.integers(1, cfg.n_symbols, size=(1, n)).astype(np.int64)
        spk = rng.standard_normal((1, cfg.speaker_dim)).astype(np.float32)
        enc.append([tokens, spk])
        with torch.inference_mode():
            memory, processed = model.encode(torch.from_numpy(tokens), torch.from_numpy(spk))
        w = rng.dirichlet(np.ones(n))[None].astype(np.float32)
        masks = [((rng.random((1, d)) >= cfg.prenet_dropout) / (1 - cfg.prenet_dropout)).astype(np.float32)
                 for d in cfg.prenet_dims]
        state = [rng.standard_normal((1, cfg.attention_rnn_dim)).astype(np.float32) * 0.5 for _ in range(2)]
        state += [rng.standard_normal((1, cfg.decoder_rnn_dim)).astype(np.float32) * 0.5 for _ in range(2)]
        state += [w, (w * 3).astype(np.float32), rng.standard_normal((1, cfg.memory_dim)).astype(np.float32) * 0.3]
        dec.append([rng.standard_normal((1, cfg.n_mels)).astype(np.float32), *masks, *state,
                    memory.numpy(), processed.numpy()])
    for t in (12, 77, 240):
        post.append([rng.standard_normal((1, t, cfg.n_mels)).astype(np.float32)])
    return {"encoder": enc, "decoder": dec, "postnet": post}


def fold_batchnorm(model: Tacotron2) -> Tacotron2:
    """Fold every ``ConvBN``'s BatchNorm into its convolution (eval-mode arithmetic, in place).

    The ONNX exporter would fold them itself, producing weights that are no longer float16-rounded;
    folding first and rounding after keeps the stored graph exactly what torch computes."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from signals.speech.tts.model import ConvBN

    for module in model.modules():
        if isinstance(module, ConvBN) and isinstance(module[1], nn.BatchNorm1d):
            module[0] = fuse_conv_bn_eval(module[0], module[1])
            module[1] = nn.Identity()
    return model


def export(model: Tacotron2, out: str | Path, symbols: list[str], source: dict[str, Any], licence: str,
           synthesis: SynthesisConfig = SynthesisConfig(), fp16_weights: bool = True) -> ModelConfig:
    """``out/{config.json, model.safetensors, encoder.onnx, decoder.onnx, decoder_int8.onnx, postnet.onnx}``;
    parity-checked (the int8 decoder: its quantisation error recorded)."""
    cfg = model.cfg
    if len(symbols) != cfg.n_symbols:
        raise ValueError(f"{len(symbols)} symbols for a model with {cfg.n_symbols} embeddings")
    model = copy.deepcopy(model).eval().float()
    weights = copy.deepcopy(model)  # model.safetensors keeps the training layout (BatchNorm separate)
    fold_batchnorm(model)
    if fp16_weights:
        round_to_fp16(model)
    out = Path(out)
    cases = _cases(model)
    state_dims = {"attention_h": (1, cfg.attention_rnn_dim), "attention_c": (1, cfg.attention_rnn_dim),
                  "decoder_h": (1, cfg.decoder_rnn_dim), "decoder_c": (1, cfg.decoder_rnn_dim),
                  "attention_weights": (1, "tokens"), "attention_cumulative": (1, "tokens"),
                  "context": (1, cfg.memory_dim)}
    specs = {
        "encoder": (ExportedEncoder(model), {"tokens": (1, "tokens"), "speaker": (1, cfg.speaker_dim)},
                    {"memory": (1, "tokens", cfg.memory_dim), "processed_memory": (1, "tokens", cfg.attention_dim)}),
        "decoder": (ExportedDecoderStep(model),
                    {"frame": (1, cfg.n_mels), **{m: (1, d) for m, d in zip(MASK_NAMES, cfg.prenet_dims)},
                     **{n: state_dims[n] for n in STATE_NAMES},
                     "memory": (1, "tokens", cfg.memory_dim), "processed_memory": (1, "tokens", cfg.attention_dim)},
                    {"frames": (1, cfg.reduction, cfg.n_mels), "stop": (1,),
                     **{f"{n}_out": state_dims[n] for n in STATE_NAMES}}),
        "postnet": (ExportedPostnet(model), {"mel": (1, "frames", cfg.n_mels)},
                    {"logmel": (1, "frames", cfg.n_mels)}),
    }
    graphs = {}
    for name, (module, inputs, outputs) in specs.items():
        path = out / f"{name}.onnx"
        graph = export_graph(module, path, inputs=inputs, outputs=outputs, example=cases[name][0], cases=cases[name])
        if fp16_weights:
            store_initializers_fp16(path)
            err = check_parity(module, path, list(inputs), list(outputs), cases[name])
            graph = replace(graph, sha256=sha256(path), parity_max_abs_diff=err)
        graphs[name] = graph
    # The decoder step once more with int8 weights (dynamic quantisation of its MatMul/Gemm): at batch 1 the
    # step streams its 13 M weights from memory, so int8 makes it several times faster; the runtime's loop
    # uses it when present. Its difference to torch is quantisation error, recorded, not held to PARITY_ATOL;
    # what it costs in WER and similarity is measured by `signals speech tts evaluate` (see the card).
    module, inputs, outputs = specs["decoder"]
    path = quantize_dynamic_int8(out / "decoder.onnx", out / "decoder_int8.onnx")
    err = compare(module, path, list(inputs), list(outputs), cases["decoder"])
    if not err <= INT8_SANITY:
        raise ModelError(f"{path}: the int8 decoder differs from torch by {err:.2f} (> {INT8_SANITY}): quantisation failed")
    graphs["decoder_int8"] = replace(graphs["decoder"], file=path.name, sha256=sha256(path), parity_max_abs_diff=err)
    config = ModelConfig(
        kind=KIND,
        description="Speaker-conditioned Tacotron 2 (SV2TTS synthesizer): phonemes + GE2E embedding -> "
                    "HiFi-GAN V1 log-mel (22.05 kHz, 80 bands)",
        model=to_dict(cfg), frontend={"symbols": list(symbols), "mel": to_dict(VOCODER_MEL)},
        graphs=graphs, runtime=to_dict(synthesis), source=source, licence=licence,
    )
    write_folder(out, config, model=weights.half() if fp16_weights else weights)
    return config


def export_checkpoint(checkpoint: str | Path, out: str | Path, fp16_weights: bool = True,
                      synthesis: SynthesisConfig = SynthesisConfig()) -> ModelConfig:
    """Export a compact checkpoint (``runs/tts/best``) or re-export a model folder; the training step,
    validation losses and recipe go into ``source``, the run's ``train_log.jsonl`` beside the graphs."""
    import shutil

    from signals.export import atomic_file
    from signals.modelfolder import writable
    from signals.speech.tts.text import DEFAULT_SYMBOLS
    from signals.speech.tts.train import load_model

    checkpoint, out = Path(checkpoint), Path(out)
    model, state = load_model(checkpoint)
    source = {
        "synthesizer": "Tacotron 2 (Shen et al. 2018) conditioned on GE2E d-vectors as in SV2TTS (Jia et al. 2018)",
        "data": "kokoro-teacher: 2.93 h of 24 kHz speech, 100 synthetic voices of Kokoro-82M (Apache-2.0), "
                "VCTK sentences (CC BY 4.0)",
        "step": int(state["step"]),
        "validation": state.get("val"),
        "training": state.get("train"),
        "checkpoint": state.get("checkpoint", checkpoint.name),  # a re-exported folder keeps its origin
    }
    config = export(model, out, list(DEFAULT_SYMBOLS), source=source, licence="Apache-2.0", synthesis=synthesis,
                    fp16_weights=fp16_weights)
    log_file = checkpoint.parent / "train_log.jsonl"
    if log_file.is_file():
        if log_file.resolve() != (out / "train_log.jsonl").resolve():
            with atomic_file(writable(out, "train_log.jsonl")) as tmp:  # never through a link in the folder
                shutil.copyfile(log_file, tmp)
        from signals.plotting import plot_training_log

        terms = ("total", "post", "guided")
        plot_training_log(log_file, writable(out, "training_curve.png"), keys=terms, val_keys=terms,
                          title=f"Tacotron 2 on kokoro-teacher, exported at step {int(state['step']):,}")
    return config
