"""Speaker-conditioned post-filter: a small residual conv net on the synthesizer's output mel (training + export).

    signals speech tts postfilter --model models/tts --data data/tts_pack            # ~16 min on 2 CPU cores

Why: the clones' similarity to their voice (0.76 on the validation voices at step 3,750) is lost in the
predicted mel itself, not in the free-running loop: the synthesizer teacher-forced scores the same
(``scripts/tts_similarity_sources.py``). The post-net sees no speaker, so the voice's fine spectral detail
has to survive the whole decoder. This filter gets the d-vector directly:

    mel_out = mel + Conv(tanh(Conv(tanh(Conv(mel) + Linear(speaker)))))     # last conv zero-initialised

It is trained with the synthesizer frozen, on that synthesizer's teacher-forced post-net output for a
subset of the training utterances (computed once), to match the true mel (L1 + MSE, log-mel units), the
d-vector being another recording of the same voice half of the time, as in the synthesizer's training.
Nothing in its loss involves the speaker encoder's similarity. It is tied to the synthesizer it was
trained on: a re-exported synthesizer drops it (``export`` writes a new folder) until this runs again.
Small enough for a CPU: ~0.6 M parameters.

The folder gains ``postfilter.onnx`` (``mel [1, T, 80]``, ``speaker [1, 256]`` -> ``mel_out``) and a
``postfilter`` entry in ``config.json``'s graphs and source; the runtime applies it after the post-net.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from signals.configio import to_dict
from signals.errors import ModelError

log = logging.getLogger(__name__)

GRAPH = "postfilter"


@dataclass(frozen=True)
class PostFilterConfig:
    n_mels: int = 80
    speaker_dim: int = 256
    channels: int = 256
    kernel: int = 5
    hidden_layers: int = 1  # convs between the input and the output conv


@dataclass(frozen=True)
class PostFilterTrainConfig:
    utterances: int = 640  # training utterances whose teacher-forced output is computed (the slow part on a CPU)
    seconds: float = 600.0  # training wall time
    batch_size: int = 16
    crop_frames: int = 160
    lr: float = 3e-4
    embed_swap_prob: float = 0.5  # condition on another recording of the same voice this often
    seed: int = 0


class PostFilter(nn.Module):
    def __init__(self, cfg: PostFilterConfig = PostFilterConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        pad = cfg.kernel // 2
        self.speaker = nn.Linear(cfg.speaker_dim, cfg.channels)
        self.inp = nn.Conv1d(cfg.n_mels, cfg.channels, cfg.kernel, padding=pad)
        self.hidden = nn.ModuleList(nn.Conv1d(cfg.channels, cfg.channels, cfg.kernel, padding=pad)
                                    for _ in range(cfg.hidden_layers))
        self.out = nn.Conv1d(cfg.channels, cfg.n_mels, cfg.kernel, padding=pad)
        nn.init.zeros_(self.out.weight)  # starts as the identity: the synthesizer's own output
        nn.init.zeros_(self.out.bias)

    @property
    def receptive_field(self) -> int:
        """Frames each side that change an output frame."""
        return (self.cfg.hidden_layers + 2) * (self.cfg.kernel // 2)

    def forward(self, mel: Tensor, speaker: Tensor) -> Tensor:
        """``mel: Tensor[B, T, n_mels]`` (the vocoder's log-mel), ``speaker: Tensor[B, speaker_dim]`` -> ``Tensor[B, T, n_mels]``."""
        h = torch.tanh(self.inp(mel.transpose(1, 2)) + self.speaker(speaker)[:, :, None])
        for conv in self.hidden:
            h = torch.tanh(conv(h))
        return mel + self.out(h).transpose(1, 2)


def teacher_forced_mel(model: nn.Module, pack: Any, i: int, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted log-mel [T, n_mels], true log-mel [T, n_mels])`` of pack utterance ``i``, the synthesizer
    teacher-forced (true previous frames) and conditioned on ``embedding``; eval mode, its prenet dropout on
    as at inference. ``T``: the utterance's frames rounded down to the reduction factor."""
    mel = pack.mel(int(i)).astype(np.float32)
    t = (len(mel) // model.cfg.reduction) * model.cfg.reduction
    tokens = torch.from_numpy(pack.token_ids(int(i)))[None]
    with torch.no_grad():
        res = model(tokens, torch.tensor([tokens.shape[1]]), torch.from_numpy(np.asarray(embedding, np.float32))[None],
                    model.normalize(torch.from_numpy(mel[:t])[None]))
        pred = model.denormalize(res["mel_post"])[0].numpy()
    return pred.astype(np.float32), mel[:t]


def teacher_forced_outputs(model: nn.Module, pack: Any, idx: np.ndarray,
                           progress: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`teacher_forced_mel` of utterances ``idx``, each on its own d-vector."""
    from tqdm import tqdm

    return [teacher_forced_mel(model, pack, int(i), pack.embeddings[int(i)])
            for i in tqdm(idx, desc="teacher-forced outputs", unit="utt", leave=False, disable=not progress)]


def _batch(cache, idx, pack, by_speaker, cfg: PostFilterTrainConfig, rng: np.random.Generator, floor: float):
    xs, ys, es = [], [], []
    for j in rng.integers(0, len(cache), cfg.batch_size):
        pred, true = cache[j]
        i = int(idx[j])
        src = i
        if rng.random() < cfg.embed_swap_prob:
            src = int(rng.choice(by_speaker[int(pack.speakers[i])]))
        a = int(rng.integers(0, max(1, len(pred) - cfg.crop_frames)))
        p, t = pred[a:a + cfg.crop_frames], true[a:a + cfg.crop_frames]
        if len(p) < cfg.crop_frames:
            pad = ((0, cfg.crop_frames - len(p)), (0, 0))
            p, t = np.pad(p, pad, constant_values=floor), np.pad(t, pad, constant_values=floor)
        xs.append(p)
        ys.append(t)
        es.append(pack.embeddings[src].astype(np.float32))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)), torch.from_numpy(np.stack(es))


def train_postfilter(model_dir: str | Path, data: str | Path, cfg: PostFilterTrainConfig = PostFilterTrainConfig(),
                     pf_cfg: PostFilterConfig = PostFilterConfig(), progress: bool = True) -> tuple[PostFilter, dict]:
    """Train a post-filter for the synthesizer of model folder ``model_dir`` on pack ``data``'s training split."""
    from tqdm import tqdm

    from signals.speech.tts.data import Pack
    from signals.speech.tts.train import check_pack_fits, load_model

    pack = Pack.load(data)
    model, state = load_model(model_dir)
    check_pack_fits(model.cfg, pack)
    if pack.embeddings.shape[1] != pf_cfg.speaker_dim or model.cfg.n_mels != pf_cfg.n_mels:
        raise ModelError(f"post-filter sizes ({pf_cfg.n_mels} mels, {pf_cfg.speaker_dim}-d speaker) do not fit the "
                         f"synthesizer ({model.cfg.n_mels}) or the pack ({pack.embeddings.shape[1]})")
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    train_idx = pack.indices("train")
    idx = rng.choice(train_idx, min(cfg.utterances, len(train_idx)), replace=False)
    by_speaker: dict[int, list[int]] = {}
    for i in train_idx:
        by_speaker.setdefault(int(pack.speakers[i]), []).append(int(i))
    t0 = time.time()
    cache = teacher_forced_outputs(model, pack, idx, progress)
    cache_s = time.time() - t0
    pf = PostFilter(pf_cfg)
    opt = torch.optim.Adam(pf.parameters(), lr=cfg.lr)
    floor = float(np.log(1e-5))
    t0, step, window = time.time(), 0, []
    bar = tqdm(desc="post-filter", unit="step", disable=not progress)
    while time.time() - t0 < cfg.seconds:
        x, y, e = _batch(cache, idx, pack, by_speaker, cfg, rng, floor)
        out = pf(x, e)
        loss = (out - y).abs().mean() + ((out - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        with torch.no_grad():
            base = float((x - y).abs().mean() + ((x - y) ** 2).mean())
        window = (window + [(float(loss.detach()), base)])[-200:]
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean([w[0] for w in window]):.4f}", unfiltered=f"{np.mean([w[1] for w in window]):.4f}")
    bar.close()
    info = {"config": to_dict(pf_cfg), "training": to_dict(cfg), "synthesizer_step": state.get("step"),
            "steps": step, "cache_seconds": round(cache_s, 1), "train_seconds": round(time.time() - t0, 1),
            "loss_last_200": round(float(np.mean([w[0] for w in window])), 4) if window else None,
            "unfiltered_last_200": round(float(np.mean([w[1] for w in window])), 4) if window else None}
    return pf.eval(), info


class _Exported(nn.Module):
    def __init__(self, pf: PostFilter) -> None:
        super().__init__()
        self.pf = pf

    def forward(self, mel: Tensor, speaker: Tensor) -> Tensor:
        return self.pf(mel, speaker)


def export_postfilter(pf: PostFilter, folder: str | Path, info: dict) -> Any:
    """Write ``postfilter.onnx`` into the synthesizer's model ``folder`` and register it in ``config.json``."""
    from dataclasses import replace

    from signals.export import export_graph
    from signals.modelfolder import ModelFolder, write_config

    mf = ModelFolder.load(folder, "tts")
    rng = np.random.default_rng(0)
    n, s = pf.cfg.n_mels, pf.cfg.speaker_dim
    cases = [[rng.normal(-5, 2, (1, t, n)).astype(np.float32), rng.standard_normal((1, s)).astype(np.float32)]
             for t in (7, 40, 203)]
    graph = export_graph(_Exported(pf), Path(folder) / f"{GRAPH}.onnx", inputs={"mel": (1, "frames", n), "speaker": (1, s)},
                         outputs={"mel_out": (1, "frames", n)}, example=cases[1], cases=cases)
    config = replace(mf.config, graphs={**mf.config.graphs, GRAPH: graph},
                     source={**mf.config.source, GRAPH: {**info, "receptive_field": pf.receptive_field}})
    write_config(folder, config)
    return graph

