"""Speaker-consistency loss for the synthesizer (training only).

The synthesizer is trained to match the teacher's mel frame by frame; nothing in that loss says "sound
like this voice", and the clones' similarity to their references (0.75 at step 3,750) stays well under
the teacher audio's own (0.87). YourTTS (Casanova et al. 2022, arXiv 2112.02418) adds a *speaker
consistency loss*: a frozen speaker encoder embeds the generated speech and the loss is one minus its
cosine to the target speaker's embedding. Here the generated "speech" is the predicted log-mel, so the
frozen GE2E encoder (``models/speaker_encoder``, the one that made the conditioning d-vectors) reads it
through a fixed, differentiable conversion from the vocoder's mel (22.05 kHz, 80 log-magnitude bands,
hop 256) to its own input (16 kHz, 40 power bands, hop 160):

    log-mel --exp--> band magnitudes --pinv(filterbank)--> linear magnitude spectrum (clipped at 0)
      --interpolate to the encoder's STFT bins--> power --encoder filterbank--> 40 bands --> 10 ms frames

On 24 teacher clips the encoder's embedding of the converted mel has cosine 0.945 to its embedding of
the audio itself (same frames, no VAD): the conversion keeps the voice. Both sides of the loss (the
prediction and the target mel of the same utterance) go through the same conversion, so what it does
not keep cancels. The encoder sees one centred crop of ``partial_frames`` (1.6 s) per utterance, as in
its training.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from signals.speech.encoder.model import SpeakerEncoder
from signals.speech.features import ENCODER_MEL, VOCODER_MEL, MelConfig, mel_filterbank

# The pseudo-inverse spreads each band's magnitude over its bins, which halves the power a band carries
# (median energy ratio 0.51 against the encoder's own mel on 24 teacher clips); the encoder reads linear
# power, so its operating point needs the level put back.
PINV_POWER_LOSS = 0.51


def _interp_matrix(f_from: np.ndarray, f_to: np.ndarray) -> np.ndarray:
    """``[len(f_to), len(f_from)]``: linear interpolation between frequency grids."""
    w = np.zeros((len(f_to), len(f_from)), np.float64)
    step = f_from[1] - f_from[0]
    for i, f in enumerate(f_to):
        j = min(int(f // step), len(f_from) - 2)
        t = (f - f_from[j]) / step
        w[i, j], w[i, j + 1] = 1.0 - t, t
    return w


class VocoderMelToEncoderMel(nn.Module):
    """``logmel: Tensor[B, T, 80]`` (``VOCODER_MEL`` units) -> ``Tensor[B, T', 40]`` (the encoder's input),
    ``T' = floor((T - 1) * hop_src / sr_src / (hop_dst / sr_dst)) + 1``. Float32 whatever the autocast."""

    def __init__(self, src: MelConfig = VOCODER_MEL, dst: MelConfig = ENCODER_MEL) -> None:
        super().__init__()
        if src.log is not True or src.power != 1.0 or dst.log is not False or dst.power != 2.0:
            raise ValueError("VocoderMelToEncoderMel converts a log-magnitude mel into a linear power mel")
        fb_src, fb_dst = mel_filterbank(src), mel_filterbank(dst)
        f_src = np.arange(fb_src.shape[1]) * src.sample_rate / src.n_fft
        f_dst = np.arange(fb_dst.shape[1]) * dst.sample_rate / dst.n_fft
        # a sinusoid's STFT magnitude grows with the window's sum (Hann: length / 2)
        gain = dst.win / src.win / math.sqrt(PINV_POWER_LOSS)
        self.register_buffer("pinv", torch.from_numpy(np.linalg.pinv(fb_src)).float(), persistent=False)
        self.register_buffer("bins", torch.from_numpy(gain * _interp_matrix(f_src, f_dst)).float(), persistent=False)
        self.register_buffer("fb", torch.from_numpy(fb_dst).float(), persistent=False)
        self.frame_ratio = (src.hop_length / src.sample_rate) / (dst.hop_length / dst.sample_rate)

    def n_frames(self, n_src: Tensor) -> Tensor:
        return torch.floor((n_src - 1).clamp(min=0) * self.frame_ratio).long() + 1

    def forward(self, logmel: Tensor) -> Tensor:
        with torch.autocast(device_type=logmel.device.type, enabled=False):
            mag = torch.exp(logmel.float())                          # [B, T, 80]
            spec = F.relu(mag @ self.pinv.T)                         # [B, T, 513]
            power = (spec @ self.bins.T) ** 2                         # [B, T, 201]
            mel = power @ self.fb.T                                   # [B, T, 40]
            t_out = int(self.n_frames(torch.tensor(mel.shape[1])))
            return F.interpolate(mel.transpose(1, 2), size=t_out, mode="linear",
                                 align_corners=True).transpose(1, 2)  # [B, T', 40]


class SpeakerConsistencyLoss(nn.Module):
    """``1 - cos(E(pred), E(target))`` averaged over the batch, ``E`` the frozen speaker encoder on a centred
    ``partial_frames`` crop of each utterance's converted mel (zero-padded past its end).

    ``pred, target: Tensor[B, T, 80]`` in ``VOCODER_MEL`` units; ``lengths: Tensor[B]`` valid frames."""

    def __init__(self, encoder: SpeakerEncoder, partial_frames: int = 160) -> None:
        super().__init__()
        self.encoder = encoder.requires_grad_(False)
        # cuDNN's LSTM backward runs only in training mode; the encoder has no dropout, so train() changes
        # nothing else, and its weights are frozen
        self.encoder.train()
        self.convert = VocoderMelToEncoderMel()
        self.partial_frames = partial_frames

    def train(self, mode: bool = True) -> SpeakerConsistencyLoss:  # the encoder stays as set above
        self.training = mode
        return self

    def _crops(self, mel: Tensor, lengths: Tensor) -> Tensor:
        p = self.partial_frames
        start = ((lengths - p) // 2).clamp(min=0)                       # [B]
        idx = start[:, None] + torch.arange(p, device=mel.device)[None]   # [B, P]
        valid = (idx < lengths[:, None]).unsqueeze(-1)
        idx = idx.clamp(max=mel.shape[1] - 1)
        crop = torch.gather(mel, 1, idx.unsqueeze(-1).expand(-1, -1, mel.shape[2]))
        return crop * valid

    def forward(self, pred: Tensor, target: Tensor, lengths: Tensor) -> Tensor:
        n = self.convert.n_frames(lengths.to(pred.device))
        with torch.autocast(device_type=pred.device.type, enabled=False):
            with torch.no_grad():
                e_target = self.encoder(self._crops(self.convert(target), n))
            e_pred = self.encoder(self._crops(self.convert(pred), n))
            return (1.0 - (e_pred * e_target).sum(-1)).mean()


def load_speaker_loss(encoder_dir: str, device: torch.device, partial_frames: int = 160) -> SpeakerConsistencyLoss:
    """The loss with the torch encoder of model folder ``encoder_dir`` (``config.json`` + ``model.safetensors``)."""
    from signals.speech.encoder.export import load_model

    return SpeakerConsistencyLoss(load_model(encoder_dir), partial_frames).to(device)
