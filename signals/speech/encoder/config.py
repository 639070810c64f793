"""The speaker encoder's config dataclasses: the network and the training recipe. Torch-free.

Apart from ``model.py`` / ``train.py`` so the command line derives its options from these fields
(:func:`signals.configio.add_arguments`) without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EncoderConfig:
    n_mels: int = 40
    hidden_size: int = 256
    num_layers: int = 3
    embedding_size: int = 256
    # Initial GE2E similarity scale and bias (paper: w = 10, b = -5).
    init_w: float = 10.0
    init_b: float = -5.0


@dataclass(frozen=True)
class TrainConfig:
    """GE2E recipe (Wan et al. 2018; Real-Time-Voice-Cloning) and the run's speaker split."""

    steps: int = 20000
    speakers_per_batch: int = 64  # S
    utterances_per_speaker: int = 10  # U: 1.6 s crops per speaker and batch
    lr: float = 1e-4
    clip_grad_norm: float = 3.0
    # GE2E's similarity scale w and bias b learn 100x slower than the network (RTVC scales their
    # gradients by 0.01, which Adam's per-parameter normalisation undoes; a learning-rate factor does not).
    # At full rate w grows fast and the loss saturates early.
    wb_lr_scale: float = 0.01
    holdout_speakers: int = 0  # kept out entirely for the final test (OUT/test_speakers.txt)
    val_speakers: int = 0  # training speakers set aside for validation
    val_every: int = 500
    save_every: int = 500
    seed: int = 0
    model: EncoderConfig = field(default_factory=EncoderConfig)
