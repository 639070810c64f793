"""The GE2E speaker encoder (Wan et al. 2018; SV2TTS, Jia et al. 2018) and its loss.

Network: 40-band mel frames -> 3 x LSTM(256) -> Linear(256) -> ReLU -> L2 norm. The same network,
with the same parameter names, as Resemblyzer and Real-Time-Voice-Cloning, so their weights load
unchanged (``convert.py``).

Embeddings of one utterance are computed on 1.6 s partials (160 frames) and averaged (``infer.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from signals.speech.encoder.config import EncoderConfig


def ge2e_similarity(embeds: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """Scaled cosine similarity of every utterance to every speaker centroid.

    ``embeds: Tensor[S, U, D]`` (L2-normalised, S speakers x U utterances) -> ``Tensor[S, U, S]``.
    The centroid of an utterance's own speaker leaves that utterance out (paper, eq. 8): otherwise
    the trivial solution of matching oneself is rewarded and training is unstable.
    """
    n_spk, n_utt, _ = embeds.shape
    centroids = F.normalize(embeds.mean(dim=1), dim=-1)  # [S, D]
    excl = F.normalize((embeds.sum(dim=1, keepdim=True) - embeds) / (n_utt - 1), dim=-1)  # [S, U, D]
    sim = torch.einsum("sud,kd->suk", embeds, centroids)  # [S, U, S]
    own = (embeds * excl).sum(-1)  # [S, U]
    eye = torch.eye(n_spk, dtype=torch.bool, device=embeds.device).unsqueeze(1)  # [S, 1, S]
    sim = torch.where(eye, own.unsqueeze(-1), sim)
    # w > 0 keeps "more similar" meaning "higher score" (the paper constrains it the same way).
    return sim * w.clamp(min=1e-6) + b


def ge2e_loss(embeds: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """GE2E softmax loss, mean over all S*U utterances. ``embeds: Tensor[S, U, D]`` -> scalar."""
    n_spk, n_utt, _ = embeds.shape
    sim = ge2e_similarity(embeds, w, b).reshape(n_spk * n_utt, n_spk)
    target = torch.arange(n_spk, device=embeds.device).repeat_interleave(n_utt)
    return F.cross_entropy(sim, target)


class SpeakerEncoder(nn.Module):
    def __init__(self, config: EncoderConfig = EncoderConfig()) -> None:
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(config.n_mels, config.hidden_size, config.num_layers, batch_first=True)
        self.linear = nn.Linear(config.hidden_size, config.embedding_size)
        self.relu = nn.ReLU()
        # GE2E's learnable similarity scale/bias live in the model (as in RTVC/Resemblyzer checkpoints)
        # so one state dict carries everything training needs to resume.
        self.similarity_weight = nn.Parameter(torch.tensor([config.init_w]))
        self.similarity_bias = nn.Parameter(torch.tensor([config.init_b]))

    def forward(self, mels: Tensor) -> Tensor:
        """``mels: Tensor[B, T, n_mels]`` (linear power mel) -> L2-normalised ``Tensor[B, embedding_size]``.

        The embedding is the projection of the last layer's final hidden state, after ReLU, so its
        entries are non-negative and cosine similarities lie in [0, 1].
        """
        _, (hidden, _) = self.lstm(mels)
        raw = self.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def loss(self, embeds: Tensor) -> Tensor:
        """GE2E loss of ``embeds: Tensor[S, U, D]`` with this model's learnable w, b."""
        return ge2e_loss(embeds, self.similarity_weight, self.similarity_bias)

    @torch.inference_mode()
    def embed_partials(self, mels: Tensor, batch_size: int = 64) -> Tensor:
        """``mels: Tensor[N, T, n_mels]`` -> ``Tensor[N, D]``, in batches to bound memory."""
        return torch.cat([self(mels[i : i + batch_size]) for i in range(0, len(mels), batch_size)])
