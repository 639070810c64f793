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
from signals.speech.sr.data import SAMPLE_RATE, DegradeConfig


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


@dataclass(frozen=True)
class EnvelopeConfig:
    """The learned envelope of the generated band (:class:`signals.speech.sr.model.EnvelopeNet` and
    :func:`signals.speech.sr.postprocess.apply_envelope`).

    Why: the generator's fine structure in the band it invents is as good as noise, but its level per band
    and frame is not (an oracle that only rescales each 500 Hz band of each frame to the reference's power
    takes validation LSD at a 16 kHz input from 1.18-1.31 to 0.69-0.70). So a small convolutional net
    predicts the target's log power per band and frame from the input's log-mel, and the runtime rescales
    the generator's STFT to it. Band powers are measured on SR_MEL's framing (n_fft 1024, hop 256), so their
    frames are the mel's.
    """

    n_mels: int = 80  # input log-mel bands (SR_MEL)
    n_fft: int = 1024
    hop: int = 256
    band_hz: float = 500.0  # width of the bands whose power is predicted (0 ... 24 kHz)
    # Bands centred above this are silenced: no training clip had content there, so the net never learnt them
    # (and whatever the generator writes there is untrained). `sr train-envelope` lowers it to the last band
    # edge under the training clips' highest measured bandwidth (every source here is 44.1 kHz audio).
    max_hz: float = 22050.0
    log_floor: float = -10.0  # log10 band power floor (targets, measurements, the silenced band)
    max_gain_db: float = 60.0  # the rescaling per band and frame is clipped to +-this
    channels: int = 192
    kernel: int = 5
    dilations: tuple[int, ...] = (1, 2, 4)

    @property
    def n_bands(self) -> int:
        return int(round(SAMPLE_RATE / 2 / self.band_hz))

    @property
    def context_frames(self) -> int:
        """Frames each side that one output frame reads (input conv + dilated residual convs)."""
        return (self.kernel - 1) // 2 * (1 + sum(self.dilations))
# ~101 M parameters: an 11-layer 720-wide encoder and the HiFi-GAN V1 upsampler (512 channels).
PAPER = GeneratorConfig(d_model=720, n_layers=11, n_heads=12, ff_mult=4, attn_window=64, upsample_initial_channel=512)
GENERATORS = {"small": SMALL, "paper": PAPER}
# "full": HiFi-SR trains against MPD + MSD + MBD (MBD windows 2048/1024/512, 5 bands) and feeds all three to
# the generator loss (the released reference code leaves the MBD out of it; we do not); 72.1 M parameters,
# whose resumable state (433 MB) cannot come back from a lent GPU. "compact": the same three families with
# narrower MPD/MSD convs and the full-width MBD (4.58 M parameters): with the small generator the whole
# state is 39.5 MB (all moments) or 21.2 MB (generator moments only). "tiny": narrow convs (same structure)
# for CPU tests and CPU training.
COMPACT_DISC = DiscriminatorConfig(mpd_channels=(16, 64, 128, 256, 256), msd_width=16, mbd_channels=32)
DISCRIMINATORS = {"full": DiscriminatorConfig(), "compact": COMPACT_DISC, "tiny": TINY_DISC}
LR_SCHEDULES = ("cosine", "exp")
RUN_CONFIG = "train_config.json"  # a training run's resolved recipe, split and starting weights

# The shared VCTK excerpt: 2 utterances of each speaker held out for the test, 1 each for validation.
DEFAULT_TEST = ("p360_001", "p360_275", "p361_009", "p361_084")
DEFAULT_VAL = ("p360_354", "p361_174")


@dataclass(frozen=True)
class EnvelopeTrainConfig:
    """The recipe of ``signals speech sr train-envelope`` (:mod:`signals.speech.sr.train_envelope`)."""

    steps: int = 4000
    batch_size: int = 16
    segment: int = 24576  # crop in samples at 48 kHz (96 frames)
    lr: float = 1e-3
    warmup_steps: int = 100  # linear warm-up, then cosine decay to lr / 20
    weight_decay: float = 0.01
    eval_every: int = 500
    log_every: int = 50
    val_clips: int = 24  # validation clips of each pack (evenly spaced); folders: all their validation utterances
    seed: int = 0
    max_seconds: float = 0.0  # stop (and keep what was saved) after this much training time; 0: no limit
    net: EnvelopeConfig = EnvelopeConfig()
    # No speed perturbation: it moves a recording's band edge (a 44.1 kHz source played 8 % faster "has" content
    # to 23.8 kHz), so the net would learn power above the edge that unperturbed audio never has.
    degrade: DegradeConfig = field(default_factory=lambda: DegradeConfig(speed=(1.0, 1.0)))


@dataclass(frozen=True)
class PrepareConfig:
    """``signals speech sr prepare``: which Debian packages, which clips to keep, the split and the device pack.

    A clip's *bandwidth* is the lower of two measurements at its own rate: the runtime's level criterion
    (:func:`signals.speech.sr.postprocess.detect_bandwidth` on the trimmed clip, ``drop_db``) and the
    content criterion (the highest frequency where speech frames stand ``snr_db`` above the clip's own
    noise floor, when the clip has non-silent pauses to measure that floor in), so stationary hiss does
    not count as content.
    """

    packages: tuple[str, ...] = ("tuxpaint-stamps-default", "klettres-data", "hedgewars-data")
    min_bandwidth: float = 16000.0  # keep clips whose measured bandwidth reaches this (Hz)
    drop_db: float = 60.0  # level criterion: within this many dB of the 0-4 kHz level (the runtime's)
    snr_db: float = 6.0  # content criterion: speech frames at least this far above the noise floor
    min_seconds: float = 0.25  # shorter clips (after trimming silence) are dropped
    trim_db: float = 40.0  # leading/trailing frames this far below the loudest are silence
    target_dbfs: float = -26.0  # active-speech level after loudness normalisation
    peak_dbfs: float = -1.0  # ... unless that would push the peak above this
    max_tonal_db: float = 30.0  # drop clips with steady lines (hum, whistles) this far above the local median
    # hedgewars/Robot: a processed (robot) voice; klettres/en: speech band-limited near 10 kHz under broadband
    # hiss, clicks and hum lines, which the level criterion alone takes for content (inspected spectrograms)
    exclude_groups: tuple[str, ...] = ("hedgewars/Robot", "klettres/en")
    # Held-out groups (a group is one package's language, or one hedgewars voice pack): languages and
    # voices no training clip shares. Empty = chosen by `seed` (one test and one val group per package).
    val_groups: tuple[str, ...] = ()
    test_groups: tuple[str, ...] = ()
    seed: int = 0
    # The device pack: at most this many MB (10^6 bytes) of audio. 36 MB + a resumable state of 21.3 MB + the
    # soundfile wheels (1.6 MB) + the code (2.3 MiB without models/) stay under a lent GPU's 64 MiB upload.
    pack_mb: float = 36.0
    pack_codec: str = "source"  # "source": the package's own Ogg/WAV bytes; "pcm16": 48 kHz int16 (no decoder needed)
    pack_val_minutes: float = 3.0  # validation audio inside the device pack
    prefer_bandwidth: float = 18000.0  # when not all fits, clips reaching this go first
    workers: int = 2  # processes that decode and measure clips

    def __post_init__(self) -> None:
        if self.pack_codec not in ("source", "pcm16"):
            raise ValueError(f"unknown pack codec {self.pack_codec!r}: use 'source' or 'pcm16'")


@dataclass(frozen=True)
class TrainConfig:
    generator: str = "small"  # a GENERATORS preset: "small" (2 M parameters, CPU-trainable) | "paper" (~101 M)
    discriminator: str = "compact"  # a DISCRIMINATORS preset: "full" | "compact" | "tiny" (narrow convs: CPU tests)
    steps: int = 20000  # the run's planned total (the cosine schedule ends here); resume with the same value
    max_seconds: float = 0.0  # stop after this wall time (0: no limit): one lent-GPU session
    batch_size: int = 16
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.01
    lr_schedule: str = "cosine"  # "cosine": warm-up, then cosine from lr to lr * lr_min at `steps` | "exp"
    warmup_steps: int = 200  # linear warm-up from 0 (both optimisers)
    lr_min: float = 0.05  # cosine floor as a fraction of lr
    lr_decay: float = 0.999  # "exp": multiplied in every 1000 steps (HiFi-GAN decays 0.999 per epoch)
    grad_clip: float = 1000.0
    # Above each clip's measured bandwidth the target holds no recorded content (the Debian clips stop at
    # 16-22 kHz). There the mel loss counts with this weight (1: the recorded silence is the target, 0: free)
    # and, when it is below 1, both discriminator inputs are low-passed at the bandwidth, so real and fake
    # differ only where the target has content. With L1 on log-mels a small weight makes the generator fill a
    # band where enough clips have content (a weighted median) and keep silent above the corpus's top.
    above_band_weight: float = 0.1
    val_clips: int = 48  # validation clips scored at every evaluation (evenly spaced among the validation split)
    # Optimiser moments kept in out/last: "all" | "generator" | "none" (checkpoint.py). "generator" (small +
    # compact: 21.3 MB, 2 shards) fits a lent GPU's 64 MiB upload beside a 36 MB pack; D's AdamW restarts
    # on resume with its own warm-up. "all" is 39.7 MB.
    state_moments: str = "generator"
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
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr schedule {self.lr_schedule!r}: use one of {LR_SCHEDULES}")
        if self.state_moments not in ("all", "generator", "none"):
            raise ValueError(f"state_moments must be 'all', 'generator' or 'none', not {self.state_moments!r}")
        if not 0.0 <= self.above_band_weight <= 1.0:
            raise ValueError(f"above_band_weight must be within [0, 1], not {self.above_band_weight}")
