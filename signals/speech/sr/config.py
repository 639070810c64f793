"""HiFi-SR's config dataclasses: the generator's sizes and the training recipe. Torch-free, so the command
line derives its options from these fields (:func:`signals.configio.add_arguments`) and the runtime
reads the model folder's ``model`` section without importing torch; :mod:`signals.speech.sr.model` and
:mod:`signals.speech.sr.train` import them from here.

The training recipe names its generator and discriminators by preset (:data:`GENERATORS`,
:data:`DISCRIMINATORS`, the ``--config`` / ``--disc`` choices); the run folder and the exported model
folder store the full generator config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from signals.speech.nn.config import TINY_DISC, DiscriminatorConfig, HiFiGANConfig
from signals.speech.sr.data import DegradeConfig


@dataclass(frozen=True)
class GeneratorConfig:
    """The HiFi-SR generator (:class:`signals.speech.sr.model.Generator`): conformer encoder + HiFi-GAN body."""

    n_mels: int = 80  # input log-mel bands (SR_MEL)
    # transformer encoder
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    ff_mult: int = 4
    conv_kernel: int = 15  # depthwise conv over frames (odd)
    attn_window: int = 32  # each frame attends to +-attn_window frames (finite receptive field)
    dropout: float = 0.0
    # HiFi-GAN upsampler
    upsample_initial_channel: int = 128
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)  # product = mel hop (256)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilations: tuple[tuple[int, ...], ...] = field(default=((1, 3, 5), (1, 3, 5), (1, 3, 5)))

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)

    @property
    def upsampler(self) -> HiFiGANConfig:
        """The HiFi-GAN body behind the encoder: Snake activations, fed ``d_model`` channels."""
        return HiFiGANConfig(
            in_channels=self.d_model, upsample_initial_channel=self.upsample_initial_channel,
            upsample_rates=self.upsample_rates, upsample_kernel_sizes=self.upsample_kernel_sizes,
            resblock_kernel_sizes=self.resblock_kernel_sizes, resblock_dilations=self.resblock_dilations,
            activation="snake",
        )

    @property
    def context_frames(self) -> int:
        """Frames on each side that can influence one output frame (for chunked inference)."""
        # encoder blocks + its pre conv, then the upsampler's own (conv_pre, stages, conv_post)
        return self.n_layers * (self.attn_window + self.conv_kernel // 2) + 1 + self.upsampler.context_frames


SMALL = GeneratorConfig()
# ~101 M parameters: an 11-layer 720-wide encoder and the HiFi-GAN V1 upsampler (512 channels).
PAPER = GeneratorConfig(d_model=720, n_layers=11, n_heads=12, ff_mult=4, attn_window=64, upsample_initial_channel=512)
GENERATORS = {"small": SMALL, "paper": PAPER}
# "full": HiFi-SR trains against MPD + MSD + MBD (MBD windows 2048/1024/512, 5 bands) and feeds all three to
# the generator loss (the released reference code leaves the MBD out of it; we do not). "tiny": narrow convs
# (same structure) for CPU tests and CPU training.
DISCRIMINATORS = {"full": DiscriminatorConfig(), "tiny": TINY_DISC}

# The shared VCTK excerpt: 2 utterances of each speaker held out for the test, 1 each for validation.
DEFAULT_TEST = ("p360_001", "p360_275", "p361_009", "p361_084")
DEFAULT_VAL = ("p360_354", "p361_174")


@dataclass(frozen=True)
class TrainConfig:
    generator: str = "small"  # a GENERATORS preset: "small" (2 M parameters, CPU-trainable) | "paper" (~101 M)
    discriminator: str = "full"  # a DISCRIMINATORS preset: "full" | "tiny" (narrow convs: CPU tests)
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

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise ValueError(f"unknown generator {self.generator!r}: use one of {tuple(GENERATORS)}")
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"unknown discriminator {self.discriminator!r}: use one of {tuple(DISCRIMINATORS)}")
