"""HiFi-SR's discriminators: MPD + MSD + MBD from the shared speech layer (:mod:`signals.speech.nn`).

HiFi-SR trains against all three families with :data:`DiscriminatorConfig`'s defaults (MBD windows
2048/1024/512, 5 bands) and feeds all three to the generator loss (the released reference code leaves
the MBD out of it; we do not). :data:`TINY_DISC` is the narrow set for CPU tests and CPU training.
"""

from signals.speech.nn.discriminators import (
    TINY_DISC,
    BandSTFTDiscriminator,
    DiscriminatorConfig,
    Discriminators,
    MultiBandDiscriminator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    PeriodDiscriminator,
    ScaleDiscriminator,
)

__all__ = [
    "TINY_DISC", "BandSTFTDiscriminator", "DiscriminatorConfig", "Discriminators", "MultiBandDiscriminator",
    "MultiPeriodDiscriminator", "MultiScaleDiscriminator", "PeriodDiscriminator", "ScaleDiscriminator",
]
