"""signals: wearable-sensor and speech models you can train, ship and run.

Sub-packages map onto the systems: ``signals.har`` (FusionActNet activity recognition) and
``signals.speech`` (speaker encoder, HiFi-SR super-resolution, voice-cloning TTS). Training and
export use torch; everything under ``infer.py`` modules runs on numpy + onnxruntime alone.
"""

__version__ = "0.1.0"
