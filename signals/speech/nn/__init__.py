"""The shared speech layer: building blocks of every waveform generator and its GAN training.

* :mod:`~signals.speech.nn.config` - :class:`HiFiGANConfig`, :class:`DiscriminatorConfig`,
  :class:`LossConfig` (torch-free, like every package's ``config.py``).
* :mod:`~signals.speech.nn.layers` - :class:`Snake`, HiFi-GAN's :class:`ResBlock` and :class:`MRF`.
* :mod:`~signals.speech.nn.generator` - :class:`HiFiGANGenerator` (the body: ``conv_pre``,
  transposed-conv upsampling + MRF stages, ``conv_post``; LeakyReLU or Snake).
* :mod:`~signals.speech.nn.discriminators` - MPD, MSD, multi-band STFT discriminators.
* :mod:`~signals.speech.nn.losses` - LSGAN, feature matching, multi-scale mel L1.

Used by HiFi-SR (:mod:`signals.speech.sr`) and the TTS vocoder (:mod:`signals.speech.vocoder`). Every
module but ``config`` needs torch; this file imports none of them, so a torch-free ``config.py``
(e.g. :mod:`signals.speech.sr.config`) can import :mod:`signals.speech.nn.config`.
"""
