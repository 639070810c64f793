"""Speech: shared audio layer and mels, GE2E speaker encoder, HiFi-SR super-resolution, SV2TTS."""
