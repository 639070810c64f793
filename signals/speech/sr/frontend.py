"""HiFi-SR's front end: which inputs are accepted, and the 48 kHz log-mel the generator reads.

Numpy only. The pipeline per channel is: check the input (:func:`check_input`) -> resample to
``sample_rate`` (soxr) -> ``mel`` (:data:`signals.speech.features.SR_MEL`, the same function training
uses) -> generator -> crossover that keeps the input below its detected bandwidth
(:mod:`signals.speech.sr.postprocess`). The runtime reads these settings from ``config.json["frontend"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from signals.errors import AudioError
from signals.speech.features import SR_MEL, MelConfig
from signals.speech.sr.config import EnvelopeConfig
from signals.speech.sr.postprocess import BANDWIDTH_DROP_DB, CROSSOVER_WIDTH_HZ

SAMPLE_RATE = SR_MEL.sample_rate  # HiFi-SR's output rate, 48 kHz: spelt once, here


@dataclass(frozen=True)
class FrontEnd:
    mel: MelConfig = SR_MEL  # log-mel of the input resampled to mel.sample_rate (the output rate)
    min_rate: int = 4000  # lowest input rate: below it the input carries too little to extend
    max_channels: int = 2  # mono or stereo; each channel is super-resolved on its own
    # At or above this detected bandwidth the input already fills a 48 kHz signal: passed through unchanged.
    full_band_hz: float = 23500.0
    bandwidth_drop_db: float = BANDWIDTH_DROP_DB  # see postprocess.BandwidthEstimator
    crossover_width_hz: float = CROSSOVER_WIDTH_HZ  # transition band of the input/generated crossover
    # With the crossover: the generator's frame-locked pattern (lines at multiples of rate / hop) is removed
    # by subtracting each frame-grid phase's mean over 2 r + 1 frames (postprocess.remove_frame_periodic);
    # r = 0 keeps the generated band as the generator wrote it. Chosen per model on validation audio.
    frame_comb_radius: int = 0
    # With the crossover: gain (dB) on the generated band, after the frame comb. An under-trained generator
    # writes that band too quietly, and the comb takes the lines' energy with it; 0 keeps it as generated.
    # Chosen per model on validation audio (scripts/sr_frame_comb_sweep.py).
    generated_gain_db: float = 0.0
    # With the crossover: the generated band fades in over the first and out over the last this many frames
    # of a signal, where the generator's padding leaves a transient (a faint tick at every file's or, in
    # voice cloning, every sentence's edges). 0: no fade.
    edge_fade_frames: int = 4
    # With the crossover: the learned envelope of the generated band (the folder's ``envelope`` graph predicts
    # each band's power per frame from the mel; postprocess.apply_envelope rescales the generated band to it).
    # It sets the band's level, so generated_gain_db is not applied when it is present. None: no such graph.
    envelope: EnvelopeConfig | None = None

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    @property
    def min_seconds(self) -> float:
        """Shortest input: one analysis frame at the output rate."""
        return self.mel.n_fft / self.mel.sample_rate


def check_input(name: str, sample_rate: int, channels: int, n_samples: int, front: FrontEnd = FrontEnd()) -> None:
    """Refuse inputs HiFi-SR cannot take (too many channels, too low a rate, too short), naming ``name``."""
    if channels > front.max_channels:
        raise AudioError(f"{name} has {channels} channels; super-resolution takes mono or stereo. "
                         "Mix down or split the channels first.")
    if sample_rate < front.min_rate:
        raise AudioError(f"{name} is sampled at {sample_rate} Hz; the lowest supported input rate is "
                         f"{front.min_rate} Hz")
    if n_samples <= 0:
        raise AudioError(f"{name} contains no audio samples")
    if n_samples / sample_rate < front.min_seconds:
        raise AudioError(f"{name} is too short: {n_samples / sample_rate:.3f} s, at least {front.min_seconds:.2f} s "
                         "is needed")
