"""Speaker-conditioned Tacotron 2 (SV2TTS synthesizer), read bottom-up: blocks, config, model.

Shen et al. 2018 (Tacotron 2) with the conditioning of Jia et al. 2018 (SV2TTS): the L2-normalised
256-d GE2E embedding of the reference utterance is concatenated to every encoder output, so the
attention and the decoder see "what to say" and "who says it" together.

    tokens [B, N] --embedding--> 3 x (conv5 + BN + ReLU) --> BiLSTM --> enc [B, N, 512]
    memory = concat(enc, speaker [B, 256] repeated over N)                 [B, N, 768]
    per decoder step (r mel frames):
        prenet(previous frame) + context --> attention LSTM --> location-sensitive attention
        --> context; attention LSTM out + context --> decoder LSTM --> r frames + stop logit
    postnet (5 x conv5) adds a residual to the whole mel.

Mels are the vocoder's log-mel (:data:`signals.speech.features.VOCODER_MEL`) normalised per band with
the training set's mean/std, which are buffers of the model so the exported graphs speak the
vocoder's units at their edges.

Inference is three graphs (:meth:`Tacotron2.encode`, :meth:`Tacotron2.decoder_step`,
:meth:`Tacotron2.postnet_denorm`); the loop that drives the step lives in numpy in ``infer.py``, and
:meth:`Tacotron2.infer` is the same loop in torch (the reference for the parity tests). Prenet dropout
stays on at inference (as in Tacotron 2: it is what keeps the autoregressive loop from collapsing);
its masks are explicit inputs of the step so the numpy loop draws them from a seeded generator.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from signals.speech.tts.config import TacotronConfig

# --------------------------------------------------------------------------------------------- blocks


class ConvBN(nn.Sequential):
    """``Conv1d -> BatchNorm1d`` with 'same' padding; activation and dropout are applied by the caller."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.BatchNorm1d(c_out))


class Encoder(nn.Module):
    """``tokens: Tensor[B, N]`` -> ``Tensor[B, N, encoder_dim]``."""

    def __init__(self, n_symbols: int, dim: int, n_convs: int, kernel: int, out_dim: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(n_symbols, dim, padding_idx=0)
        self.convs = nn.ModuleList(ConvBN(dim, dim, kernel) for _ in range(n_convs))
        self.lstm = nn.LSTM(dim, out_dim // 2, batch_first=True, bidirectional=True)
        self.dropout = dropout

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = self.embedding(tokens).transpose(1, 2)  # [B, C, N]
        for conv in self.convs:
            x = F.dropout(F.relu(conv(x)), self.dropout, self.training)
        x = x.transpose(1, 2)
        if lengths is None:  # inference / export: one unpadded sequence
            return self.lstm(x)[0]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


class Prenet(nn.Module):
    """Two ``Linear + ReLU + dropout`` layers; dropout is always on (training and inference).

    ``masks`` (one ``Tensor[B, d]`` of 0 / ``1/(1-p)`` per layer) replaces the internal draw, so an
    exported graph stays deterministic and the runtime owns the randomness.
    """

    def __init__(self, d_in: int, dims: tuple[int, ...], p: float):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip((d_in, *dims[:-1]), dims))
        self.p = p

    def forward(self, x: Tensor, masks: tuple[Tensor, ...] | None = None) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x))
            x = x * masks[i] if masks is not None else F.dropout(x, self.p, training=True)
        return x


class LocationSensitiveAttention(nn.Module):
    """Additive attention whose energies also see the previous and cumulative alignments.

    The location features are what make Tacotron 2's alignment move forward monotonically.
    """

    def __init__(self, query_dim: int, memory_dim: int, attn_dim: int, n_filters: int, kernel: int):
        super().__init__()
        self.query = nn.Linear(query_dim, attn_dim, bias=False)
        self.memory = nn.Linear(memory_dim, attn_dim, bias=False)
        self.location_conv = nn.Conv1d(2, n_filters, kernel, padding=kernel // 2, bias=False)
        self.location_dense = nn.Linear(n_filters, attn_dim, bias=False)
        self.v = nn.Linear(attn_dim, 1, bias=True)
        # How location_features computes: "conv" (the exported graphs, eager training) or "unfold" (the
        # same linear map as one matmul over sliding windows; set by train.compile_decoder_step, because
        # inductor's conv-backward lowering fixes the sequence length and would recompile every batch).
        self.location_mode = "conv"

    def location_features(self, weights_cat: Tensor) -> Tensor:
        """``weights_cat [B, 2, N]`` (previous and cumulative alignment) -> ``Tensor[B, N, attn_dim]``."""
        if self.location_mode == "conv":
            return self.location_dense(self.location_conv(weights_cat).transpose(1, 2))
        k = self.location_conv.kernel_size[0]
        windows = F.pad(weights_cat, (k // 2, k // 2)).unfold(2, k, 1)  # [B, 2, N, K]
        # dense o conv (both bias-free) as one [A, 2, K] kernel
        kernel = torch.einsum("af,fck->ack", self.location_dense.weight, self.location_conv.weight)
        return torch.einsum("bcnk,ack->bna", windows, kernel.to(windows.dtype))

    def process_memory(self, memory: Tensor) -> Tensor:
        """``Tensor[B, N, memory_dim]`` -> ``Tensor[B, N, attn_dim]`` (once per utterance)."""
        return self.memory(memory)

    def forward(self, query: Tensor, memory: Tensor, processed: Tensor, weights_cat: Tensor,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``query [B, Q]``, ``weights_cat [B, 2, N]`` -> ``(context [B, memory_dim], weights [B, N])``."""
        loc = self.location_features(weights_cat)
        energies = self.v(torch.tanh(self.query(query).unsqueeze(1) + loc + processed)).squeeze(-1).float()
        if mask is not None:
            energies = energies.masked_fill(~mask, -1e9)
        weights = torch.softmax(energies, dim=-1)
        context = torch.bmm(weights.unsqueeze(1).to(memory.dtype), memory).squeeze(1)
        return context, weights


class Postnet(nn.Module):
    """Five ``conv5 + BN`` layers (tanh between) predicting a residual: ``Tensor[B, T, M]`` -> same."""

    def __init__(self, n_mels: int, dim: int, n_layers: int, kernel: int, dropout: float):
        super().__init__()
        chans = [n_mels, *[dim] * (n_layers - 1), n_mels]
        self.convs = nn.ModuleList(ConvBN(a, b, kernel) for a, b in zip(chans[:-1], chans[1:]))
        self.dropout = dropout

    def forward(self, mel: Tensor) -> Tensor:
        x = mel.transpose(1, 2)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = torch.tanh(x)
            x = F.dropout(x, self.dropout, self.training)
        return x.transpose(1, 2)


# --------------------------------------------------------------------------------------------- model



class Tacotron2(nn.Module):
    def __init__(self, cfg: TacotronConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg.n_symbols, cfg.symbol_dim, cfg.encoder_convs, cfg.encoder_kernel,
                               cfg.encoder_dim, cfg.encoder_dropout)
        self.prenet = Prenet(cfg.n_mels, cfg.prenet_dims, cfg.prenet_dropout)
        self.attention_rnn = nn.LSTMCell(cfg.prenet_dims[-1] + cfg.memory_dim, cfg.attention_rnn_dim)
        self.attention = LocationSensitiveAttention(cfg.attention_rnn_dim, cfg.memory_dim, cfg.attention_dim,
                                                    cfg.location_filters, cfg.location_kernel)
        self.decoder_rnn = nn.LSTMCell(cfg.attention_rnn_dim + cfg.memory_dim, cfg.decoder_rnn_dim)
        self.mel_proj = nn.Linear(cfg.decoder_rnn_dim + cfg.memory_dim, cfg.n_mels * cfg.reduction)
        self.stop_proj = nn.Linear(cfg.decoder_rnn_dim + cfg.memory_dim, 1)
        self.postnet = Postnet(cfg.n_mels, cfg.postnet_dim, cfg.postnet_layers, cfg.postnet_kernel,
                               cfg.postnet_dropout)
        # Per-band log-mel statistics of the training set (set by train.py before the first step).
        self.register_buffer("mel_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("mel_std", torch.ones(cfg.n_mels))

    # -- pieces shared by training and the exported graphs

    def normalize(self, mel: Tensor) -> Tensor:
        return (mel - self.mel_mean) / self.mel_std

    def denormalize(self, mel: Tensor) -> Tensor:
        return mel * self.mel_std + self.mel_mean

    def encode(self, tokens: Tensor, speaker: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``tokens [B, N]``, ``speaker [B, S]`` -> ``(memory [B, N, E+S], processed_memory [B, N, A])``."""
        enc = self.encoder(tokens, lengths)
        spk = F.normalize(speaker.float(), dim=-1).to(enc.dtype)
        memory = torch.cat([enc, spk.unsqueeze(1).expand(-1, enc.shape[1], -1)], dim=-1)
        return memory, self.attention.process_memory(memory)

    def initial_state(self, memory: Tensor) -> tuple[Tensor, ...]:
        b, n, _ = memory.shape
        z = memory.new_zeros
        return (z(b, self.cfg.attention_rnn_dim), z(b, self.cfg.attention_rnn_dim), z(b, self.cfg.decoder_rnn_dim),
                z(b, self.cfg.decoder_rnn_dim), z(b, n), z(b, n), z(b, self.cfg.memory_dim))

    def step(self, prenet_out: Tensor, state: tuple[Tensor, ...], memory: Tensor, processed: Tensor,
             mask: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One decoder step: ``prenet_out [B, P]`` -> ``(decoder output [B, D + E + S], new state)``."""
        att_h, att_c, dec_h, dec_c, w, w_cum, context = state
        att_h, att_c = self.attention_rnn(torch.cat([prenet_out, context], -1), (att_h, att_c))
        att_h_d = F.dropout(att_h, self.cfg.rnn_dropout, self.training)
        context, w = self.attention(att_h_d, memory, processed, torch.stack([w, w_cum], 1), mask)
        w = w.to(w_cum.dtype)
        w_cum = w_cum + w
        dec_h, dec_c = self.decoder_rnn(torch.cat([att_h_d, context], -1), (dec_h, dec_c))
        dec_h_d = F.dropout(dec_h, self.cfg.rnn_dropout, self.training)
        return torch.cat([dec_h_d, context], -1), (att_h, att_c, dec_h, dec_c, w, w_cum, context)

    def project(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder outputs ``[..., D + E + S]`` -> ``(frames [..., r * n_mels], stop logit [...])``."""
        return self.mel_proj(out), self.stop_proj(out).squeeze(-1)

    # -- training

    def forward(self, tokens: Tensor, token_lengths: Tensor, speaker: Tensor, mel: Tensor) -> dict[str, Tensor]:
        """Teacher-forced pass.

        ``tokens [B, N]``, ``token_lengths [B]``, ``speaker [B, S]``, ``mel [B, T, M]`` (normalised,
        ``T`` a multiple of the reduction factor) -> ``mel [B, T, M]``, ``mel_post [B, T, M]``,
        ``stop [B, T/r]`` logits and ``alignments [B, T/r, N]``.
        """
        b, t, m = mel.shape
        r = self.cfg.reduction
        if t % r:
            raise ValueError(f"mel length {t} is not a multiple of the reduction factor {r}")
        memory, processed = self.encode(tokens, speaker, token_lengths)
        mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < token_lengths[:, None]
        # Decoder input of step s is the last frame of step s-1 (a zero "go" frame first).
        prev = torch.cat([mel.new_zeros(b, 1, m), mel[:, r - 1 :: r][:, :-1]], 1)
        pre = self.prenet(prev)  # [B, T/r, P], all steps at once
        state = self.initial_state(memory)
        outs, aligns = [], []
        for s in range(t // r):
            out, state = self.step(pre[:, s], state, memory, processed, mask)
            outs.append(out)
            aligns.append(state[4])
        frames, stop = self.project(torch.stack(outs, 1))
        mel_out = frames.reshape(b, t, m)
        return {"mel": mel_out, "mel_post": mel_out + self.postnet(mel_out), "stop": stop,
                "alignments": torch.stack(aligns, 1)}

    # -- inference (the exported graphs and the reference loop)

    def decoder_step(self, prev_frame: Tensor, masks: tuple[Tensor, ...], state: tuple[Tensor, ...],
                     memory: Tensor, processed: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """The step graph: ``prev_frame [B, M]`` (normalised) -> ``(frames [B, r, M], stop logit [B], state)``."""
        out, state = self.step(self.prenet(prev_frame, masks), state, memory, processed)
        frames, stop = self.project(out)
        return frames.reshape(-1, self.cfg.reduction, self.cfg.n_mels), stop, state

    def postnet_denorm(self, mel: Tensor) -> Tensor:
        """The postnet graph: normalised decoder mel ``[B, T, M]`` -> the vocoder's log-mel ``[B, T, M]``."""
        return self.denormalize(mel + self.postnet(mel))

    def prenet_masks(self, batch: int, generator: torch.Generator | None = None,
                     device: torch.device | None = None) -> tuple[Tensor, ...]:
        p = self.cfg.prenet_dropout
        return tuple((torch.rand(batch, d, generator=generator, device=device) >= p).float() / (1 - p)
                     for d in self.cfg.prenet_dims)

    @torch.inference_mode()
    def infer(self, tokens: Tensor, speaker: Tensor, max_steps: int = 1000, stop_threshold: float = 0.5,
              seed: int = 0, min_steps: int = 10) -> tuple[Tensor, Tensor]:
        """Free-running synthesis of one utterance: ``tokens [1, N]`` -> ``(log-mel [1, T, M], alignments [T/r, N])``."""
        gen = torch.Generator().manual_seed(seed)
        memory, processed = self.encode(tokens, speaker)
        state = self.initial_state(memory)
        frame = memory.new_zeros(1, self.cfg.n_mels)
        frames, aligns = [], []
        for step in range(max_steps):
            out, stop, state = self.decoder_step(frame, self.prenet_masks(1, gen), state, memory, processed)
            frames.append(out)
            aligns.append(state[4][0])
            frame = out[:, -1]
            if step + 1 >= min_steps and torch.sigmoid(stop).item() > stop_threshold:
                break
        mel = torch.cat(frames, 1)
        return self.postnet_denorm(mel), torch.stack(aligns)


# --------------------------------------------------------------------------------------------- losses


def guided_attention_targets(durations: Tensor, n_steps: int, reduction: int, sigma: float) -> Tensor:
    """Penalty map ``W [B, n_steps, N]`` from per-token mel-frame ``durations [B, N]`` (0 on padding).

    ``W[s, n] = 1 - exp(-(n - c_s)^2 / (2 sigma^2))`` where ``c_s`` is the token the corpus says is
    spoken during decoder step ``s`` - Tachibana et al.'s guided attention, centred on the teacher's
    true alignment path instead of the diagonal.
    """
    b, n = durations.shape
    ends = torch.cumsum(durations, 1)  # [B, N]
    frame = torch.arange(n_steps, device=durations.device) * reduction + (reduction - 1) / 2  # step centres
    owner = torch.searchsorted(ends.float().contiguous(), frame.float().expand(b, -1).contiguous(), right=True)
    owner = torch.minimum(owner, (durations > 0).sum(1, keepdim=True) - 1)
    tok = torch.arange(n, device=durations.device).float()
    return 1.0 - torch.exp(-((tok[None, None, :] - owner[..., None].float()) ** 2) / (2 * sigma**2))


def guided_attention_loss(alignments: Tensor, targets: Tensor, step_mask: Tensor) -> Tensor:
    """Expected off-path attention mass per valid decoder step: ``alignments, targets [B, S, N]``, ``step_mask [B, S]``."""
    per_step = (alignments.float() * targets).sum(-1)
    return (per_step * step_mask).sum() / step_mask.sum().clamp(min=1)


def masked_mel_loss(pred: Tensor, target: Tensor, frame_mask: Tensor) -> Tensor:
    """MSE + L1 over valid frames: ``pred, target [B, T, M]``, ``frame_mask [B, T]``."""
    m = frame_mask.unsqueeze(-1).float()
    denom = m.sum().clamp(min=1) * pred.shape[-1]
    diff = (pred.float() - target) * m
    return (diff.pow(2).sum() + diff.abs().sum()) / denom
