"""GE2E speaker encoder (SV2TTS / Resemblyzer network)."""
