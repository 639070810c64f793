"""Voice cloning TTS (SV2TTS): text front end, speaker-conditioned Tacotron 2, and the clone pipeline."""
