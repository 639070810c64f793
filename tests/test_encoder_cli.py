"""``signals speech embed | verify`` and ``signals speech encoder evaluate``, run in-process on real speech."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from signals.cli import main
from signals.modelfolder import REPO_MODELS, read_config

SHIPPED = REPO_MODELS / "speaker_encoder"


@pytest.fixture
def flacs(librispeech_root):
    return sorted((librispeech_root / "train-clean-100").glob("*.flac"))[:3]


def test_embed_npy_rows_in_argument_order_and_json(tmp_path, flacs, capsys):
    from signals.speech.encoder.infer import EncoderRuntime

    out = tmp_path / "e.npy"
    order = [flacs[2], flacs[0], flacs[1]]
    assert main(["speech", "embed", *map(str, order), "--output", str(out), "--threads", "1"]) == 0
    e = np.load(out)
    assert e.shape == (3, 256) and e.dtype == np.float32
    enc = EncoderRuntime.load(threads=1)
    for row, f in zip(e, order):
        np.testing.assert_allclose(row, enc.embed_file(f), atol=1e-5)
    capsys.readouterr()
    assert main(["speech", "embed", str(flacs[0]), str(flacs[1]), "--json", "--threads", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["file"] for d in data] == [str(flacs[0]), str(flacs[1])]
    np.testing.assert_allclose(data[1]["embedding"], e[2], atol=1e-5)


def test_verify_same_and_different(tmp_path, flacs, capsys):
    from signals.speech.audio import load_audio, write_audio

    ver = read_config(SHIPPED).runtime
    wav, sr = load_audio(flacs[0])
    half = len(wav) // 2
    a = write_audio(tmp_path / "a.wav", wav[:half], sr)
    b = write_audio(tmp_path / "b.wav", wav[half:], sr)
    assert main(["speech", "verify", str(a), str(b), "--json", "--threads", "1"]) == 0
    same = json.loads(capsys.readouterr().out)
    # The shipped model has a cohort: the decision is on the S-norm score at the S-norm threshold.
    assert same["method"] == "s-norm" and same["score"] == same["snorm"]
    assert same["threshold"] == pytest.approx(ver["snorm_threshold"])
    assert same["same"] is True and same["score"] > same["threshold"] and 0 < same["cosine"] <= 1
    assert main(["speech", "verify", str(a), str(flacs[1]), "--json", "--threads", "1"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["same"] is False and diff["score"] < same["score"] and diff["cosine"] < same["cosine"]
    assert main(["speech", "verify", str(a), str(b), "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert f"cosine similarity {same['cosine']:.4f}, S-norm score {same['snorm']:.3f}; decision on s-norm " \
           f"(threshold {ver['snorm_threshold']:.4f}): same speaker" in text
    assert main(["speech", "verify", str(a), str(flacs[1]), "--raw", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert f"cosine similarity {diff['cosine']:.4f}, S-norm score {diff['snorm']:.3f}; decision on cosine " \
           f"(threshold {ver['threshold']:.4f}): different speakers" in text
    assert main(["speech", "verify", str(a), str(b), "--raw", "--json", "--threads", "1"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["method"] == "cosine" and raw["score"] == pytest.approx(same["cosine"]) and raw["same"] is True


def test_cohort_command_then_model_cohort_calibration(tmp_path, librispeech_root, capsys):
    root = librispeech_root / "train-clean-100"
    ids = sorted({f.name.split("-")[0] for f in root.glob("*.flac")})
    model = tmp_path / "model"
    shutil.copytree(SHIPPED, model)
    coh, test, trial = tmp_path / "cohort.txt", tmp_path / "test.txt", tmp_path / "trial.txt"
    coh.write_text("\n".join(ids[:3]))
    test.write_text("\n".join(ids[2:4]))  # shares ids[2] with the cohort
    trial.write_text("\n".join(ids[1:3] + ids[4:6]))  # two cohort speakers, two others
    cmd = ["speech", "encoder", "cohort", str(root), "--speakers", str(coh), "--split-halves", "--model", str(model),
           "--threads", "1"]
    assert main(cmd + ["--exclude", str(test)]) == 2
    assert "must not contain the excluded (test) speakers" in capsys.readouterr().err
    assert main(cmd + ["--licence", "CC BY 4.0"]) == 0
    assert "6 x 256 float32 embeddings of 3 speakers (3 recordings)" in capsys.readouterr().out
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["runtime"]["cohort_speakers"] == [ids[0], ids[0], ids[1], ids[1], ids[2], ids[2]]
    cohort = cfg["source"]["cohort"]
    assert cohort["data_licence"] == "CC BY 4.0" and "--split-halves" in cohort["command"]
    # the old cohort's threshold no longer applies, nor its calibration record
    assert "snorm_threshold" not in cfg["runtime"] and cfg["files"]["cohort"] == "cohort.npy"
    assert "snorm" not in json.loads((model / "metrics.json").read_text())["calibration"]
    assert np.load(model / "cohort.npy").shape == (6, 256)
    assert "## Score normalisation (S-norm)" in (model / "README.md").read_text()
    # Without an S-norm threshold verify refuses (unless --raw) and says how to calibrate.
    f = sorted(root.glob("*.flac"))
    assert main(["speech", "verify", str(f[0]), str(f[1]), "--model", str(model), "--threads", "1"]) == 2
    assert "no calibrated s-norm threshold" in capsys.readouterr().err
    out = tmp_path / "eval"
    assert main(["speech", "encoder", "evaluate", str(root), "--split-halves", "--speakers", str(trial),
                 "--model-cohort", "--model", str(model), "--calibrate", str(model), "--out", str(out),
                 "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "S-norm against a cohort of 6 embeddings" in text and "2 trial speakers are in it" in text
    rep = json.loads((out / "eer.json").read_text())
    assert rep["score"] == "s-norm" and rep["n_speakers_in_cohort"] == 2 and rep["n_target"] == 4
    cfg = json.loads((model / "config.json").read_text())
    calibration = json.loads((model / "metrics.json").read_text())["calibration"]
    assert cfg["runtime"]["snorm_threshold"] == pytest.approx(rep["threshold"])
    assert calibration["snorm"]["cohort_sha256"] == cfg["source"]["cohort"]["sha256"]
    assert main(["speech", "verify", str(f[0]), str(f[1]), "--model", str(model), "--json", "--threads", "1"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["method"] == "s-norm" and r["threshold"] == pytest.approx(rep["threshold"])
    assert main(["speech", "encoder", "evaluate", str(root), "--split-halves", "--speakers", str(test),
                 "--cohort-speakers", str(coh), "--model-cohort", "--model", str(model)]) == 2
    assert "either --cohort-speakers or --model-cohort" in capsys.readouterr().err
    from signals.errors import DataError
    from signals.speech.encoder.evaluate import calibrate

    with pytest.raises(DataError, match="use --model-cohort"):  # a cohort from DIR is not the model's cohort
        calibrate(model, {**rep, "cohort_speakers_file": str(coh)})


def test_evaluate_folder_and_calibrate(tmp_path, librispeech_root, capsys):
    from signals.speech.audio import load_audio, write_audio

    # A sub-folder-per-speaker folder: two 4 s excerpts of each of 5 real speakers.
    files = sorted((librispeech_root / "train-clean-100").glob("*.flac"))[10:15]
    data = tmp_path / "data"
    for f in files:
        wav, sr = load_audio(f)
        spk = f.name.split("-")[0]
        write_audio(data / spk / "first.wav", wav[: 4 * sr], sr)
        write_audio(data / spk / "second.wav", wav[4 * sr : 8 * sr], sr)
    model = tmp_path / "model"
    shutil.copytree(SHIPPED, model)
    out = tmp_path / "eval"
    assert main(["speech", "encoder", "evaluate", str(data), "--out", str(out), "--model", str(model),
                 "--calibrate", str(model), "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "5 speakers, 10 embeddings, 5 same-speaker / 40 different-speaker pairs" in text
    rep = json.loads((out / "eer.json").read_text())
    assert 0.0 <= rep["eer"] <= 0.2 and rep["target_mean"] > rep["nontarget_mean"]
    assert (out / "scores.png").read_bytes()[:4] == b"\x89PNG"
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["runtime"]["threshold"] == pytest.approx(rep["threshold"])
    assert "5 speakers" in json.loads((model / "metrics.json").read_text())["calibration"]["cosine"]["data"]


def test_evaluate_split_halves_with_speaker_list(tmp_path, librispeech_root, capsys):
    ids = sorted({f.name.split("-")[0] for f in (librispeech_root / "train-clean-100").glob("*.flac")})[:4]
    lst = tmp_path / "spk.txt"
    lst.write_text("\n".join(ids))
    root = str(librispeech_root / "train-clean-100")
    assert main(["speech", "encoder", "evaluate", root, "--speakers", str(lst), "--threads", "1"]) == 2
    assert "use --split-halves" in capsys.readouterr().err
    assert main(["speech", "encoder", "evaluate", root, "--speakers", str(lst), "--split-halves",
                 "--threads", "1"]) == 0
    assert "4 speakers, 8 embeddings, 4 same-speaker / 24 different-speaker pairs" in capsys.readouterr().out


def test_cli_errors_print_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    assert main(["speech", "embed", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.wav is not a readable audio file" in err and "Traceback" not in err
    assert main(["speech", "embed", str(tmp_path / "missing.flac")]) == 2
    assert "audio file not found" in capsys.readouterr().err
    assert main(["speech", "verify", str(bad), str(bad), "--model", str(tmp_path)]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_evaluate_snorm_cohort_must_be_disjoint(tmp_path, librispeech_root, capsys):
    ids = sorted({f.name.split("-")[0] for f in (librispeech_root / "train-clean-100").glob("*.flac")})
    trial, cohort = tmp_path / "trial.txt", tmp_path / "cohort.txt"
    trial.write_text("\n".join(ids[:3]))
    cohort.write_text("\n".join(ids[2:6]))  # overlaps in ids[2]
    root = str(librispeech_root / "train-clean-100")
    args = ["speech", "encoder", "evaluate", root, "--split-halves", "--speakers", str(trial), "--threads", "1"]
    assert main(args + ["--cohort-speakers", str(cohort)]) == 2
    assert "must be disjoint" in capsys.readouterr().err
    cohort.write_text("\n".join(ids[3:6]))
    out = tmp_path / "eval"
    assert main(args + ["--cohort-speakers", str(cohort), "--out", str(out)]) == 0
    assert "S-norm against a cohort of 6 embeddings" in capsys.readouterr().out
    rep = json.loads((out / "eer.json").read_text())
    assert rep["score"] == "s-norm" and rep["n_target"] == 3 and rep["n_nontarget"] == 12


EXAMPLES = REPO_MODELS.parent / "examples" / "speech"


def test_embed_output_is_exactly_the_named_npy_and_checked_first(tmp_path, capsys):
    voice = str(EXAMPLES / "voice_a_1.wav")
    # numpy's save would have written name.npy while "wrote name" was printed: a non-.npy name is refused
    assert main(["speech", "embed", voice, "-o", str(tmp_path / "name"), "--threads", "1"]) == 2
    assert "use .npy" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
    out = tmp_path / "sub" / "e.npy"
    assert main(["speech", "embed", voice, "-o", str(out), "--threads", "1"]) == 0
    assert f"wrote {out}:" in capsys.readouterr().out and np.load(out).shape == (1, 256)
    assert sorted(p.name for p in out.parent.iterdir()) == ["e.npy"]  # no temporary file left
    # an unwritable output is refused before the model runs (and leaves nothing)
    assert main(["speech", "embed", voice, "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["speech", "embed", voice, "-o", "/proc/x.npy"]) == 2
    assert "/proc/x.npy" in capsys.readouterr().err


def test_verify_refuses_noise_and_flags_short_speech(tmp_path, capsys):
    import soundfile as sf

    rng = np.random.default_rng(0)
    for name in ("n1.wav", "n2.wav"):  # the VAD alone calls loud white noise speech
        sf.write(tmp_path / name, (0.1 * rng.standard_normal(64000)).astype(np.float32), 16000)
    assert main(["speech", "verify", str(tmp_path / "n1.wav"), str(tmp_path / "n2.wav"), "--threads", "1"]) == 2
    assert "n1.wav: only 0.00 s of speech detected" in capsys.readouterr().err
    wav, sr = sf.read(EXAMPLES / "voice_a_1.wav", dtype="float32")
    sf.write(tmp_path / "s06.wav", wav[: int(0.6 * sr)], sr)
    sf.write(tmp_path / "s15.wav", wav[: int(1.5 * sr)], sr)
    other = str(EXAMPLES / "voice_a_2.wav")
    assert main(["speech", "verify", str(tmp_path / "s06.wav"), other, "--threads", "1"]) == 2
    assert "at least 1.0 s" in capsys.readouterr().err
    assert main(["speech", "verify", str(tmp_path / "s15.wav"), other, "--json", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["low_confidence"] is True and result["speech_seconds"][0] < 2.0 <= result["speech_seconds"][1]
    assert "signals: warning: " in captured.err and "s15.wav" in captured.err
    assert main(["speech", "verify", str(EXAMPLES / "voice_a_1.wav"), other, "--json", "--threads", "1"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["same"] is True and full["low_confidence"] is False


def test_numeric_options_are_range_checked(capsys):
    voice = str(EXAMPLES / "voice_a_1.wav")
    for argv, option in [(["verify", voice, voice, "--threshold", "nan"], "--threshold"),
                         (["verify", voice, voice, "--threshold", "inf"], "--threshold"),
                         (["embed", voice, "--threads", "0"], "--threads"),
                         (["embed", voice, "--threads", "-2"], "--threads")]:
        with pytest.raises(SystemExit) as exc:
            main(["speech", *argv])
        assert exc.value.code == 2 and f"argument {option}" in capsys.readouterr().err
    from signals.errors import DataError
    from signals.speech.encoder.infer import EncoderRuntime

    with pytest.raises(DataError, match="finite"):
        EncoderRuntime.load(threads=1).verify(voice, voice, threshold=float("nan"))
