"""HiFi-SR's training recipe as a frozen dataclass. Torch-free, so the command line derives its options
from these fields (:func:`signals.configio.add_arguments`) without importing torch.

The generator and discriminators are chosen by preset name (``signals.speech.sr.model.CONFIGS``,
``"full"``/``"tiny"`` discriminators); the exported model folder stores the full generator config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signals.speech.sr.data import DegradeConfig

# The shared VCTK excerpt: 2 utterances of each speaker held out for the test, 1 each for validation.
DEFAULT_TEST = ("p360_001", "p360_275", "p361_009", "p361_084")
DEFAULT_VAL = ("p360_354", "p361_174")


@dataclass(frozen=True)
class TrainConfig:
    generator: str = "small"  # "small" (2 M parameters, CPU-trainable) | "paper" (~101 M)
    discriminator: str = "full"  # "full" | "tiny" (narrow convs: CPU tests)
    steps: int = 20000
    max_seconds: float = 0.0  # stop after this wall time (0: no limit)
    batch_size: int = 16
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.01
    lr_decay: float = 0.999  # multiplied in every 1000 steps (HiFi-GAN decays 0.999 per epoch)
    grad_clip: float = 1000.0
    disc_start: int = 0  # steps of mel-only warm-up before the adversarial terms switch on
    disc_warmup: int = 0  # then this many steps train D only, so fresh discriminators do not jolt a trained G
    seed: int = 1234
    test: tuple[str, ...] = DEFAULT_TEST  # utterance ids held out for evaluation
    # hold out every utterance of these speakers too (VCTK SR split: p360 p361 p362 p363 p364 p374 p376 s5)
    test_speakers: tuple[str, ...] = ()
    val: tuple[str, ...] = DEFAULT_VAL  # utterance ids for validation (training speakers)
    log_every: int = 50
    eval_every: int = 500
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
