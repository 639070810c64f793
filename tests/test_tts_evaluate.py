"""``signals.speech.tts.evaluate``: the plan (held-out split, references, real voices), clear errors, and
one fast end-to-end evaluation of a tiny exported synthesizer with the real encoder / vocoder / HiFi-SR."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from signals.errors import ConfigError, DataError
from signals.paths import REPO_ROOT, data_root
from signals.speech.tts import evaluate as E

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(name: str) -> Path:
    path = data_root() / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name!r} not found at {path} (set SIGNALS_DATA to its parent folder)")
    return path


@pytest.fixture(scope="module")
def corpus() -> Path:
    return _data("kokoro-teacher")


# --------------------------------------------------------------------------------------------------
# the plan


def test_teacher_plan_holds_out_voices_and_references(corpus):
    from signals.speech.tts.config import SplitConfig

    voices, targets, source = E.teacher_plan(corpus, None, sentences=8, voices=4)
    assert len(voices) == 4 and len(targets) == 8
    assert {v.speaker for v in voices} <= set(SplitConfig().test_voices)
    assert {v.group for v in voices} == {"american", "british"}  # accents alternate: a prefix has both
    assert {v.accent for v in voices} == {"us", "gb"}
    assert "SplitConfig" in source
    for t in targets:  # the reference is another utterance of the same voice, never a target
        assert t.voice.reference_id != t.utterance and t.voice.reference_id.startswith(t.voice.speaker)
        assert t.audio.is_file() and t.voice.reference.is_file()
    assert len({t.utterance for t in targets}) == 8
    assert [t.voice.speaker for t in targets[:4]] == [v.speaker for v in voices]  # voices interleaved


def test_val_split_takes_the_validation_voices_only(corpus, tmp_path):
    """--split val: the held-out validation voices (not the training voices' validation sentences, not a
    test voice), from the default split and from a pack's manifest alike."""
    from signals.speech.tts.config import SplitConfig
    from signals.speech.tts.data import read_corpus, split_corpus

    voices, targets, source = E.teacher_plan(corpus, None, sentences=8, voices=None, split="val")
    assert {v.speaker for v in voices} == set(SplitConfig().val_voices) and source.startswith("val:")
    assert len(targets) == 8 and all(t.voice.reference_id != t.utterance for t in targets)
    utts, _ = read_corpus(corpus)
    labels = split_corpus(utts, SplitConfig())
    (tmp_path / "manifest.json").write_text(json.dumps({"utterances": [u.utterance for u in utts], "split": labels}))
    chosen, _, _ = E.held_out_split(corpus, tmp_path, "val")
    assert {u.speaker for u in chosen} == set(SplitConfig().val_voices)
    assert chosen == E.held_out_split(corpus, None, "val")[0]
    with pytest.raises(ConfigError, match="real voices are test speakers"):
        E.evaluate(corpus=corpus, split="val", progress=False)
    with pytest.raises(ConfigError, match="not with --split val"):
        E.evaluate(corpus=corpus, split="val", real_speakers=0, write_metrics=True, progress=False)
    with pytest.raises(ConfigError, match="choose from test, val"):
        E.evaluate(corpus=corpus, split="train", progress=False)


def test_real_targets_rotate_over_sentences(corpus):
    voices, targets, _ = E.teacher_plan(corpus, None, sentences=5, voices=None)
    real = [E.Voice(f"x:{i}", "vctk", "vctk", "us", Path("r.wav"), "r") for i in range(3)]
    out = E.real_targets(real, targets, per_voice=2)
    assert [t.utterance for t in out] == [targets[i % 5].utterance for i in (0, 1, 2, 3, 4, 0)]
    assert all(t.audio is None for t in out)


def test_real_plan_uses_encoder_test_speakers_only():
    data = data_root()
    for name in E.REAL_FOLDERS.values():
        _data(name)
    encoder = REPO_ROOT / "models" / "speaker_encoder"
    allowed = set((encoder / E.TEST_SPEAKERS_FILE).read_text().split())
    voices = E.real_plan(data, 8, E.REAL_SOURCES, encoder)
    sources = [v.source for v in voices]
    assert len(voices) == 8 and sources[:3] == ["librispeech", "ljspeech", "vctk"]
    assert sources.count("vctk") == 2 and sources.count("ljspeech") == 1
    assert all(v.speaker.split(":")[1] in allowed for v in voices if v.source == "librispeech")
    assert len({v.speaker for v in voices}) == 8 and all(v.reference.is_file() for v in voices)


def test_clear_errors(tmp_path, corpus):
    with pytest.raises(DataError, match="teacher corpus not found"):
        E.evaluate(corpus=tmp_path / "nope", progress=False)
    with pytest.raises(DataError, match="data folder not found"):
        E.evaluate(corpus=corpus, data=tmp_path / "nope", progress=False)
    with pytest.raises(DataError, match="not a TTS training pack"):
        E.evaluate(corpus=corpus, pack=tmp_path, real_speakers=0, progress=False)
    with pytest.raises(ConfigError, match="sentences"):
        E.evaluate(sentences=0, progress=False)
    with pytest.raises(ConfigError, match="sample rates"):
        E.evaluate(sample_rates=(16000,), progress=False)
    with pytest.raises(DataError, match="real-voice data folder not found"):
        E.real_plan(tmp_path, 2, ["ljspeech"], REPO_ROOT / "models" / "speaker_encoder")
    with pytest.raises(ConfigError, match="unknown real-voice source"):
        E.real_plan(tmp_path, 2, ["timit"], REPO_ROOT / "models" / "speaker_encoder")


# --------------------------------------------------------------------------------------------------
# end to end on a tiny synthesizer


@pytest.fixture(scope="module")
def tiny_tts(tmp_path_factory) -> Path:
    """A tiny Tacotron with the real contract (80 mels, 256-d speaker) whose stop token never fires:
    every sentence runs to a short length guard, so the chain's audio length is known and small."""
    import torch

    from signals.speech.tts.config import TINY, SynthesisConfig
    from signals.speech.tts.export import export
    from signals.speech.tts.model import Tacotron2
    from signals.speech.tts.text import DEFAULT_SYMBOLS

    torch.manual_seed(0)
    model = Tacotron2(replace(TINY, n_mels=80, speaker_dim=256)).eval()
    with torch.no_grad():
        model.stop_proj.bias.fill_(-30.0)
        model.mel_mean.copy_(torch.linspace(-3.5, -8.0, 80))  # speech-like log-mel levels: the clones pass the VAD
    out = tmp_path_factory.mktemp("tts") / "tts"
    export(model, out, list(DEFAULT_SYMBOLS), source={"test": True, "step": 0}, licence="MIT",
           synthesis=SynthesisConfig(max_steps_per_token=1.5, min_steps=10))
    return out


def test_evaluate_tiny_model(tiny_tts, tmp_path, corpus):
    pytest.importorskip("pocketsphinx", reason="pocketsphinx is not installed (pip install 'signals[eval]')")
    for name in ("librispeech-mini", "ljspeech-mini"):
        _data(name)
    out = tmp_path / "eval"
    report = E.evaluate(tiny_tts, corpus=corpus, sentences=2, voices=2, real_speakers=2, real_sentences=1,
                        real_sources=("librispeech", "ljspeech"), out=out, wavs=1, alignments=2,
                        threads=1, write_metrics=True, progress=False, command="test")
    names = [r["name"] for r in report["rows"]]
    assert names == ["teacher", "copy_synthesis", "clone_teacher", "clone_teacher_48k", "clone_real", "clone_real_48k"]
    rows = {r["name"]: r for r in report["rows"]}
    for r in report["rows"]:
        assert r["utterances"] == 2 and r["speakers"] == 2
        assert math.isfinite(r["wer"]["wer"]) and r["wer"]["ref_words"] > 0
        assert r["similarity"]["n"] == 2 and r["embedding_failures"] == 0
        assert all(-1.0 <= r["similarity"][s] <= 1.0 for s in ("mean", "min", "max"))
        lo, hi = r["similarity"]["ci95"]
        assert r["similarity"]["min"] <= lo <= r["similarity"]["mean"] <= hi <= r["similarity"]["max"]
        lo, hi = r["wer"]["ci95"]
        assert 0.0 <= lo <= hi and lo <= r["wer"]["wer"] <= hi
        assert r["sv_eer"]["n_target"] == 2 and r["sv_eer"]["n_nontarget"] == 2
        assert 0.0 <= r["sv_eer"]["eer"] <= 1.0 and math.isfinite(r["sv_eer"]["threshold"])
    assert set(rows["teacher"]["wer_by_group"]) == {"american", "british"}
    assert set(rows["clone_real"]["wer_by_group"]) == {"librispeech", "ljspeech"}
    assert rows["teacher"]["sample_rate"] == 24000 and rows["clone_teacher_48k"]["sample_rate"] == 48000
    assert rows["teacher"]["similarity"]["mean"] > 0.6  # the same real voice, another sentence
    assert rows["clone_teacher"]["length_guard_hits"] == 2  # the stop token never fires
    assert report["length_guard"] == {**report["length_guard"], "sentences": 4, "hits": 4}
    assert "cannot be measured" in report["mos"]
    # files: report, plots and WAVs
    saved = json.loads((out / "report.json").read_text())
    assert saved["rows"][0]["wer"] == report["rows"][0]["wer"] and len(saved["utterances"]) == 4
    for key in ("alignment", "mel_clone_vs_teacher", "spectrogram_sr"):
        assert (out / report["files"][key]).stat().st_size > 1000
    assert report["files"]["wavs"] and all((out / w).is_file() for w in report["files"]["wavs"])
    # metrics.json, never config.json
    metrics = json.loads((tiny_tts / "metrics.json").read_text())["evaluation"]
    assert metrics["command"] == "test" and set(metrics["rows"]) == set(names)
    assert metrics["rows"]["clone_teacher"]["wer_ci95"] == rows["clone_teacher"]["wer"]["ci95"]
    assert "evaluation" not in json.loads((tiny_tts / "config.json").read_text())
    # the printed table
    text = E.format_report(report)
    for r in report["rows"]:
        assert r["label"] in text
    assert "MOS" in text and "NOT met" in text


def test_evaluate_22k_only_without_real_voices(tiny_tts, corpus):
    pytest.importorskip("pocketsphinx", reason="pocketsphinx is not installed (pip install 'signals[eval]')")
    report = E.evaluate(tiny_tts, corpus=corpus, sentences=1, voices=1, real_speakers=0, sample_rates=(22050,),
                        threads=1, progress=False)
    assert [r["name"] for r in report["rows"]] == ["teacher", "copy_synthesis", "clone_teacher"]
    assert all(r["sv_eer"] is None for r in report["rows"])  # one voice: no non-target trials
    assert report["files"] == {} and np.isfinite(report["rows"][2]["wer"]["wer"])
    assert report["rows"][2]["utterances"] == 1 and report["rows"][2]["length_guard_hits"] == 1
    assert "SV-EER" in E.format_report(report)
