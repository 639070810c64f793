"""The mel is defined once: numpy (runtime) and torch (training) must agree."""

from __future__ import annotations

import numpy as np
import pytest

from signals.speech.features import ENCODER_MEL, SR_MEL, MelConfig, mel_numpy


@pytest.mark.parametrize("cfg", [ENCODER_MEL, SR_MEL], ids=["encoder", "sr"])
def test_numpy_and_torch_mels_agree(cfg: MelConfig):
    torch = pytest.importorskip("torch")
    from signals.speech.features import mel_torch

    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal((2, cfg.sample_rate // 2))).astype(np.float32)
    a = mel_numpy(wav, cfg)
    b = mel_torch(torch.from_numpy(wav), cfg).numpy()
    assert a.shape == b.shape == (2, cfg.n_mels, cfg.n_frames(wav.shape[-1]))
    if cfg.log:
        np.testing.assert_allclose(a, b, atol=1e-3)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6 * float(a.max()))


def test_encoder_mel_matches_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    wav = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=400, hop_length=160, n_mels=40, pad_mode="constant")
    np.testing.assert_allclose(mel_numpy(wav, ENCODER_MEL), ref, rtol=1e-3, atol=1e-6 * float(ref.max()))


def test_too_short_signal_is_a_clear_error():
    cfg = MelConfig(sample_rate=16000, n_fft=400, hop_length=160, center=False)
    with pytest.raises(ValueError, match="shorter than one"):
        mel_numpy(np.zeros(100, np.float32), cfg)


@pytest.mark.parametrize("cfg", [ENCODER_MEL, SR_MEL, MelConfig(22050, 1024, 256, n_mels=80, htk=True, norm=None)])
def test_filterbank_matches_librosa(cfg: MelConfig):
    librosa = pytest.importorskip("librosa")
    from signals.speech.features import mel_filterbank

    ref = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
                              htk=cfg.htk, norm=cfg.norm)
    np.testing.assert_allclose(mel_filterbank(cfg), ref, rtol=1e-4, atol=1e-7)


def test_mel_config_json_round_trip_refuses_unknown_keys():
    """MelConfig goes through the one converter (signals.configio): unknown keys name the key and file."""
    import json

    from signals.configio import from_dict, to_dict
    from signals.errors import ConfigError

    for cfg in (ENCODER_MEL, SR_MEL):
        assert from_dict(MelConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    with pytest.raises(ConfigError, match=r"config\.json: unknown key 'frontend\.mel\.n_mel'"):
        from_dict(MelConfig, {**to_dict(SR_MEL), "n_mel": 80}, "config.json", "frontend.mel")
