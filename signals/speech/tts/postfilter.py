"""Speaker-conditioned post-filter: a small residual conv net on the synthesizer's output mel (training + export).

    signals speech tts postfilter --model models/tts --data data/tts_pack [--cache runs/pf_cache.npz]  # ~27 min, 2 CPU cores

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

L1 + MSE drives the filter to the conditional mean, i.e. towards the over-smoothed mel it is meant to
repair. ``--adversarial-weight`` adds a least-squares GAN term (and ``--feature-matching-weight`` its
feature matching) from :class:`MelDiscriminator`, a patch discriminator on (time, mel) crops that is
itself speaker-conditioned (a projection term), so what it rewards is the texture of *this* voice's
real mels. It starts after ``adversarial_after`` of the training time (the L1 phase runs 5x faster) and
is used in training only; ``--adversarial-weight 0 --feature-matching-weight 0 --seconds 600`` is the
plain filter. ``--cache F.npz`` keeps the teacher-forced outputs (6 minutes on 2 cores) for the next
filter of the same synthesizer.

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
from signals.speech.nn.losses import discriminator_loss, feature_matching_loss, generator_adv_loss
from signals.speech.tts.config import PostFilterConfig, PostFilterTrainConfig

log = logging.getLogger(__name__)

GRAPH = "postfilter"
__all__ = ["GRAPH", "MelDiscriminator", "PostFilter", "PostFilterConfig", "PostFilterTrainConfig", "export_postfilter",
           "train_postfilter"]


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


@dataclass(frozen=True)
class MelDiscriminatorConfig:
    n_mels: int = 80
    speaker_dim: int = 256
    channels: int = 32
    layers: int = 4  # strided 2-D convs over (time, mel)


class MelDiscriminator(nn.Module):
    """Speaker-conditioned patch discriminator on log-mel crops (training only; never exported).

    2-D convs over (time, mel) give a grid of patch scores; a projection term ``<h, W speaker>`` (Miyato &
    Koyama, 2018) makes "real" mean "real for this voice", so the filter is pushed towards the voice's texture,
    not any voice's. Inputs are standardised per mel bin with the training mels' statistics."""

    def __init__(self, cfg: MelDiscriminatorConfig, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        c, convs = 1, []
        for i in range(cfg.layers):
            out = cfg.channels * 2 ** min(i, 2)
            convs.append(nn.Conv2d(c, out, (3, 3), stride=(1, 2) if i == 0 else (2, 2), padding=1))
            c = out
        self.convs = nn.ModuleList(convs)
        self.proj = nn.Linear(cfg.speaker_dim, c)
        self.out = nn.Conv2d(c, 1, (3, 3), padding=1)

    def forward(self, mel: Tensor, speaker: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``mel: Tensor[B, T, n_mels]``, ``speaker: Tensor[B, speaker_dim]`` -> (patch scores ``Tensor[B, T', F']``,
        the hidden feature maps for feature matching)."""
        h = ((mel - self.mean) / self.std)[:, None]
        feats = []
        for conv in self.convs:
            h = nn.functional.leaky_relu(conv(h), 0.2)
            feats.append(h)
        score = self.out(h) + (h * self.proj(speaker)[:, :, None, None]).sum(1, keepdim=True) / h.shape[1] ** 0.5
        return score[:, 0], feats


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


def cached_teacher_forced_outputs(model: nn.Module, pack: Any, idx: np.ndarray, cache: str | Path | None,
                                  key: dict, progress: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`teacher_forced_outputs`, kept in the ``.npz`` file ``cache`` when given (the slow part: reused by a
    second filter trained on the same synthesizer, utterances and seed; ``key`` records which, and a cache
    made for another key is recomputed and overwritten, never used)."""
    import json
    import zipfile

    if cache is not None and Path(cache).is_file():
        try:
            with np.load(cache) as z:
                if str(z["key"]) == json.dumps(key, sort_keys=True):
                    starts = np.concatenate([[0], np.cumsum(z["lengths"])])
                    pred, true = z["pred"], z["true"]  # each access of an npz member reads it again: once
                    return [(pred[a:b], true[a:b]) for a, b in zip(starts[:-1], starts[1:])]
            log.warning("%s was made for another synthesizer or subset: recomputing it", cache)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:  # truncated, foreign, not an npz
            log.warning("%s is not a readable teacher-forced cache (%s): recomputing it", cache, e)
    out = teacher_forced_outputs(model, pack, idx, progress)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(cache).with_suffix(".tmp.npz")
        np.savez(tmp, key=json.dumps(key, sort_keys=True), lengths=np.array([len(p) for p, _ in out]),
                 pred=np.concatenate([p for p, _ in out]), true=np.concatenate([t for _, t in out]))
        tmp.replace(cache)
    return out


def _weights_digest(model: nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers: what the teacher-forced cache belongs to (a copied folder
    keeps it, another run at the same step does not)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _recon_loss(mel: Tensor, target: Tensor) -> Tensor:
    """L1 + MSE in log-mel units: the filter's fit to the true mel (and, on its input, the unfiltered baseline)."""
    return (mel - target).abs().mean() + ((mel - target) ** 2).mean()


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
                     pf_cfg: PostFilterConfig = PostFilterConfig(), progress: bool = True,
                     cache: str | Path | None = None) -> tuple[PostFilter, dict]:
    """Train a post-filter for the synthesizer of model folder ``model_dir`` on pack ``data``'s training split.
    ``cache``: an ``.npz`` file keeping the teacher-forced outputs for the next run
    (:func:`cached_teacher_forced_outputs`)."""
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
    key = {"synthesizer": _weights_digest(model), "synthesizer_step": state.get("step"),
           "utterances": [int(i) for i in idx], "pack": str(Path(data).resolve())}
    cache_out = cached_teacher_forced_outputs(model, pack, idx, cache, key, progress)
    cache_s = time.time() - t0
    pf = PostFilter(pf_cfg)
    opt = torch.optim.Adam(pf.parameters(), lr=cfg.lr)
    adversarial = cfg.adversarial_weight > 0 or cfg.feature_matching_weight > 0
    if adversarial:
        true = np.concatenate([t for _, t in cache_out])
        disc = MelDiscriminator(MelDiscriminatorConfig(pf_cfg.n_mels, pf_cfg.speaker_dim, cfg.disc_channels),
                                true.mean(0), true.std(0) + 1e-3)
        d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.9))
    floor = float(np.log(1e-5))
    t0, step, adv_steps, window = time.time(), 0, 0, []
    bar = tqdm(desc="post-filter", unit="step", disable=not progress)
    while time.time() - t0 < cfg.seconds:
        x, y, e = _batch(cache_out, idx, pack, by_speaker, cfg, rng, floor)
        out = pf(x, e)
        recon = _recon_loss(out, y)
        loss, adv, d_loss = recon, 0.0, 0.0
        if adversarial and time.time() - t0 >= cfg.adversarial_after * cfg.seconds:
            # least-squares GAN (the HiFi-GAN losses of signals.speech.nn, one discriminator): the discriminator
            # first, on a detached output
            d_real, real_feats = disc(y, e)
            d_fake, _ = disc(out.detach(), e)
            d_total = discriminator_loss([d_real], [d_fake])
            d_opt.zero_grad(set_to_none=True)
            d_total.backward()
            d_opt.step()
            g_score, fake_feats = disc(out, e)
            g_adv = generator_adv_loss([g_score])
            fm = feature_matching_loss([real_feats], [fake_feats]) / len(fake_feats)  # mean over layers
            loss = recon + cfg.adversarial_weight * g_adv + cfg.feature_matching_weight * fm
            adv, d_loss = float(g_adv.detach()), float(d_total.detach())
            adv_steps += 1
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        with torch.no_grad():
            base = float(_recon_loss(x, y))
        window = (window + [(float(recon.detach()), base, adv, d_loss)])[-200:]
        bar.update(1)
        if step % 50 == 0:
            post = {"loss": np.mean([w[0] for w in window]), "unfiltered": np.mean([w[1] for w in window])}
            if adversarial and window[-1][3] > 0:
                post.update(g_adv=np.mean([w[2] for w in window]), d=np.mean([w[3] for w in window]))
            bar.set_postfix({k: f"{v:.4f}" for k, v in post.items()})
    bar.close()

    def last(k: int) -> float | None:
        return round(float(np.mean([w[k] for w in window])), 4) if window else None

    info = {"config": to_dict(pf_cfg), "training": to_dict(cfg), "synthesizer_step": state.get("step"),
            "steps": step, "cache_seconds": round(cache_s, 1), "train_seconds": round(time.time() - t0, 1),
            "loss_last_200": last(0), "unfiltered_last_200": last(1)}
    if adversarial:
        info.update(adversarial_steps=adv_steps, generator_adversarial_last_200=last(2),
                    discriminator_last_200=last(3))
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

