"""Our torch-free pipeline reproduces Resemblyzer (preprocess_wav + VoiceEncoder.embed_utterance) on real speech.

Runs where ``resemblyzer`` is installed (the ``dev``/``reference`` extra) and the shared LibriSpeech subset exists.
"""

from __future__ import annotations

import numpy as np
import pytest

resemblyzer = pytest.importorskip("resemblyzer")


@pytest.fixture
def files(librispeech_root):
    return sorted((librispeech_root / "train-clean-100").glob("*.flac"))[::50]  # 6 speakers spread over the subset


def test_embeddings_match_resemblyzer(files):
    from resemblyzer import VoiceEncoder, preprocess_wav

    from signals.speech.encoder.infer import EncoderRuntime

    ref_encoder = VoiceEncoder(device="cpu", verbose=False)
    ours = EncoderRuntime.load(threads=1)
    for f in files:
        ref = ref_encoder.embed_utterance(preprocess_wav(f))
        got = ours.embed_file(f)
        cos = float(np.dot(ref, got) / (np.linalg.norm(ref) * np.linalg.norm(got)))
        assert cos >= 0.999, f"{f.name}: cosine {cos:.6f} with Resemblyzer"


def test_preprocessing_and_mel_match_resemblyzer(files):
    from resemblyzer import audio as ref_audio

    from signals.speech.audio import load_audio
    from signals.speech.encoder.frontend import preprocess
    from signals.speech.features import ENCODER_MEL, mel_numpy

    for f in files[:3]:
        ref = ref_audio.preprocess_wav(f)
        wav, sr = load_audio(f)
        got = preprocess(wav, sr)
        assert got.shape == ref.shape, f.name  # the same VAD decisions, window for window
        np.testing.assert_allclose(got, ref, atol=1e-6)
        ref_mel = ref_audio.wav_to_mel_spectrogram(ref)  # [frames, 40]
        np.testing.assert_allclose(mel_numpy(got, ENCODER_MEL).T, ref_mel, rtol=1e-3, atol=1e-6 * ref_mel.max())
