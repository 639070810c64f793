"""The voice-cloning synthesizer's config dataclasses: network, data split, training recipe, runtime, and the
speaker-conditioned post-filter (``postfilter.py``). Torch-free.

Apart from ``model.py`` / ``train.py`` so that ``cli.py`` derives its options from these fields
(:func:`signals.configio.add_arguments`) and ``infer.py`` reads them without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signals.speech.features import MelConfig
from signals.speech.tts.text import DEFAULT_SYMBOLS

# Names and order of the decoder state carried between steps: the decoder graph's inputs (and, with
# an ``_out`` suffix, its outputs), and the prenet dropout masks the runtime draws.
STATE_NAMES = ("attention_h", "attention_c", "decoder_h", "decoder_c", "attention_weights",
               "attention_cumulative", "context")
MASK_NAMES = ("prenet_mask_0", "prenet_mask_1")


@dataclass(frozen=True)
class TacotronConfig:
    """Tacotron 2 sizes (Shen et al. 2018) with SV2TTS speaker conditioning."""

    n_symbols: int = len(DEFAULT_SYMBOLS)
    symbol_dim: int = 512
    encoder_convs: int = 3
    encoder_kernel: int = 5
    encoder_dim: int = 512  # BiLSTM output (2 x 256)
    encoder_dropout: float = 0.5
    speaker_dim: int = 256  # GE2E embedding, concatenated to every encoder output
    prenet_dims: tuple[int, ...] = (256, 256)
    prenet_dropout: float = 0.5  # on at inference too: it keeps the autoregressive loop from collapsing
    attention_rnn_dim: int = 768  # Tacotron 2 uses 1024; 768 keeps a checkpoint within a device's 64 MiB return
    attention_dim: int = 128
    location_filters: int = 32
    location_kernel: int = 31
    decoder_rnn_dim: int = 768
    rnn_dropout: float = 0.1  # on the two decoder LSTMs' outputs during training
    n_mels: int = 80  # the vocoder's mel (signals.speech.features.VOCODER_MEL)
    reduction: int = 2  # mel frames per decoder step (SV2TTS uses 2)
    postnet_dim: int = 512
    postnet_layers: int = 5
    postnet_kernel: int = 5
    postnet_dropout: float = 0.5

    @property
    def memory_dim(self) -> int:
        return self.encoder_dim + self.speaker_dim


# The configuration the unit tests build in milliseconds.
TINY = TacotronConfig(symbol_dim=32, encoder_dim=32, speaker_dim=8, prenet_dims=(16, 16), attention_rnn_dim=32,
                      attention_dim=16, location_filters=4, location_kernel=5, decoder_rnn_dim=32, n_mels=8,
                      postnet_dim=16)


@dataclass(frozen=True)
class SplitConfig:
    """Which corpus utterances are held out. Voices: stock and mixed, every accent/gender group."""

    test_voices: tuple[str, ...] = ("kk_af_sarah", "kk_am_michael", "kk_bf_lily", "kx_af03", "kx_am03", "kx_bm02")
    val_voices: tuple[str, ...] = ("kk_af_nova", "kk_bm_lewis", "kx_af07", "kx_bf01")
    val_sentences_per_voice: int = 2  # of every training voice: "seen voice, unseen sentence" validation
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """Teacher-forced training with a guided-attention loss centred on the corpus's true alignment."""

    model: TacotronConfig = field(default_factory=TacotronConfig)
    batch_size: int = 96
    lr: float = 1e-3
    lr_min: float = 1e-5
    warmup_steps: int = 300
    resume_warmup_steps: int = 50  # re-warm after resuming without Adam's moments (its estimates rebuild first)
    decay_start: int = 1500  # exponential decay after this step ...
    decay_half_life: int = 3000  # ... halving the rate every this many steps
    weight_decay: float = 1e-6
    grad_clip: float = 1.0
    mel_weight: float = 1.0  # MSE + L1 of the decoder's mel (before the postnet)
    post_weight: float = 1.0  # ... and after it
    stop_weight: float = 1.0
    guided_weight: float = 2.0
    guided_sigma: float = 1.5  # width of the alignment prior, in tokens
    stop_pos_weight: float = 5.0  # BCE weight of the rare "stop" frames
    embed_swap_prob: float = 0.5  # condition on another utterance of the same voice this often (cloning is cross-utterance)
    speaker_weight: float = 0.0  # speaker-consistency loss (speaker_loss.py): 1 - cos of the frozen encoder's embeddings
    speaker_encoder: str = ""  # the encoder folder that loss reads ("": $SIGNALS_MODELS or the checkout's models/)
    max_steps: int = 100_000
    max_seconds: float = 0.0  # stop after this wall time (0: no limit)
    val_every: int = 250
    log_every: int = 25
    save_optimizer: bool = False  # keep Adam's moments in checkpoints (3x larger; a device returns <= 64 MiB)
    seed: int = 0
    bf16: bool = True  # autocast on CUDA only
    compile: bool = False  # torch.compile the decoder step (the latency-bound loop; falls back to eager if it fails)


@dataclass(frozen=True)
class SynthesisConfig:
    """How the runtime drives the decoder loop; stored in the model folder's ``runtime`` section."""

    stop_threshold: float = 0.5  # sigmoid(stop logit) above this ends the utterance
    max_steps_per_token: float = 8.0  # length guard: never more decoder steps than this x tokens (+ min_steps)
    min_steps: int = 10
    seed: int = 0  # prenet dropout masks are drawn from this seed: the same text gives the same audio
    max_chars: int = 200  # sentence pieces longer than this are split (constant memory on long texts)
    pause_seconds: float = 0.25  # silence inserted between sentences


@dataclass(frozen=True)
class TTSFrontend:
    """The model folder's ``frontend`` section: the symbol table (ids = positions) and the mel the model predicts."""

    symbols: tuple[str, ...]
    mel: MelConfig


@dataclass(frozen=True)
class PostFilterConfig:
    """Sizes of the speaker-conditioned post-filter (``postfilter.py``)."""

    n_mels: int = 80
    speaker_dim: int = 256
    channels: int = 256
    kernel: int = 5
    hidden_layers: int = 1  # convs between the input and the output conv


@dataclass(frozen=True)
class PostFilterTrainConfig:
    """How ``signals speech tts postfilter`` trains it."""

    utterances: int = 640  # training utterances whose teacher-forced output is computed (the slow part on a CPU)
    seconds: float = 1200.0  # training wall time
    batch_size: int = 16
    crop_frames: int = 160
    lr: float = 3e-4
    embed_swap_prob: float = 0.5  # condition on another recording of the same voice this often
    seed: int = 0
    # Adversarial term (0: off, the plain L1 + MSE filter). L1/MSE targets the conditional mean, which is the
    # over-smoothed mel the synthesizer already makes; a speaker-conditioned discriminator rewards the fine
    # spectral texture of the voice instead (the GAN post-filter of Kaneko et al., ICASSP 2017). Its weight is
    # relative to the L1 + MSE term (~0.6 in log-mel units), as the mel : adversarial ratio of HiFi-GAN.
    # 0.6 chosen on the validation voices from 0 / 0.3 / 0.6 / 1.0 (models/tts/README.md).
    adversarial_weight: float = 0.6
    feature_matching_weight: float = 0.6
    disc_channels: int = 16
    disc_lr: float = 2e-4
    adversarial_after: float = 0.25  # fraction of the training time spent on L1 + MSE alone first (5x faster steps)
