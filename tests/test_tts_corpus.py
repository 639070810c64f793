"""kokoro-teacher corpus generator: format writer/reader, voice mixing, plan/resume with a fake teacher,
and one real Kokoro utterance when the model is cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from signals.errors import DataError
from signals.paths import data_root
from signals.speech.tts import corpus as C


def _speakers() -> list[C.Speaker]:
    return [C.Speaker("kk_af_heart", "af", "american", "female", "af_heart"),
            C.Speaker("kx_bm00", "bm", "british", "male", "0.250*bm_fable+0.750*bm_lewis")]


def _row(utt="kk_af_heart_0000", speaker="kk_af_heart", text='He said "hi".', phonemes="hi sˈɛd hˈI.",
         durations=(3, 1, 2, 1, 1, 1, 1, 2, 1, 1, 1, 2, 4, 1)) -> C.Row:
    return C.Row(utt, speaker, sum(durations) * C.FRAME_SAMPLES, text, phonemes, tuple(durations))


def test_speakers_round_trip(tmp_path):
    C.write_speakers(tmp_path / "speakers.tsv", _speakers())
    assert C.read_speakers(tmp_path / "speakers.tsv") == _speakers()
    text = (tmp_path / "speakers.tsv").read_text()
    assert text.splitlines()[0] == "speaker\tgroup\taccent\tgender\tvoice" and text.endswith("\n")
    assert not list(tmp_path.glob("*.part"))


def test_metadata_writer_and_reader(tmp_path):
    path = tmp_path / "metadata.tsv"
    row = _row()
    with C.MetadataWriter(path) as w:
        w.append(row)
    assert path.read_text().splitlines() == [
        "utterance\tspeaker\tnum_samples\ttext\tphonemes\tdurations",
        'kk_af_heart_0000\tkk_af_heart\t13200\tHe said "hi".\thi sˈɛd hˈI.\t3,1,2,1,1,1,1,2,1,1,1,2,4,1',
    ]
    assert C.read_metadata(path) == [row]
    # an interrupted append leaves half a line: the reader ignores it, the next writer drops it
    with open(path, "a") as fh:
        fh.write("kk_af_heart_0001\tkk_af")
    assert C.read_metadata(path) == [row]
    row2 = _row("kk_af_heart_0001", text="Another one.")
    with C.MetadataWriter(path) as w:
        w.append(row2)
    assert C.read_metadata(path) == [row, row2]
    with pytest.raises(DataError, match="tab or line break"):
        with C.MetadataWriter(path) as w:
            w.append(_row(text="a\tb"))


def test_metadata_reader_checks_consistency(tmp_path):
    path = tmp_path / "metadata.tsv"
    with C.MetadataWriter(path) as w:
        w.append(C.Row("u", "s", 600 * 4, "Hi there.", "hˈI", (1, 1, 1, 1)))  # 4 durations, 3 symbols + 2 pads
    with pytest.raises(DataError, match="4 durations for 3 symbols"):
        C.read_metadata(path)
    path.unlink()
    with C.MetadataWriter(path) as w:
        w.append(C.Row("u", "s", 601, "Hi there.", "hˈI", (1, 1, 1, 1, 1)))
    with pytest.raises(DataError, match="num_samples"):
        C.read_metadata(path)


def test_format_matches_the_shared_corpus_reader(tmp_path):
    """What we write is what the training loader (``tts.data.read_corpus``) and the shared files use."""
    from signals.speech.tts.data import read_corpus

    C.write_speakers(tmp_path / "speakers.tsv", _speakers())
    with C.MetadataWriter(tmp_path / "metadata.tsv") as w:
        w.append(_row())
    utts, speakers = read_corpus(tmp_path)
    assert [u.utterance for u in utts] == ["kk_af_heart_0000"] and set(speakers) == {"kk_af_heart", "kx_bm00"}
    shared = data_root() / "kokoro-teacher"
    if (shared / "metadata.tsv").is_file():
        assert (tmp_path / "metadata.tsv").read_text().splitlines()[0] == (
            (shared / "metadata.tsv").read_text().split("\n", 1)[0])
        assert (tmp_path / "speakers.tsv").read_text().splitlines()[0] == (
            (shared / "speakers.tsv").read_text().split("\n", 1)[0])
        assert len(C.read_speakers(shared / "speakers.tsv")) == 100


def test_recipes_and_mixing_on_tiny_tables():
    assert C.parse_recipe("0.250*bm_fable+0.750*bm_lewis") == [(0.25, "bm_fable"), (0.75, "bm_lewis")]
    assert C.parse_recipe("af_heart") == [(1.0, "af_heart")]
    assert C.format_recipe([(0.25, "a"), (0.75, "b")]) == "0.250*a+0.750*b"
    with pytest.raises(DataError):
        C.parse_recipe("x*a+0.5*b")
    tables = {"a": np.ones((4, 3), np.float32), "b": np.arange(12, dtype=np.float32).reshape(4, 3)}
    mixed = C.mix_tables("0.250*a+0.750*b", tables)
    assert mixed.dtype == np.float32 and mixed.shape == (4, 3) and np.allclose(mixed, 0.25 + 0.75 * tables["b"])
    assert np.array_equal(C.mix_tables("a", tables), tables["a"])
    with pytest.raises(DataError, match="not loaded"):
        C.mix_tables("0.5*a+0.5*c", tables)


def test_mix_table_is_a_float64_weighted_sum():
    rng = np.random.default_rng(0)
    tables = {"a": rng.standard_normal((4, 3)).astype(np.float32), "b": rng.standard_normal((4, 3)).astype(np.float32)}
    parts = [(0.1234567, "a"), (0.8765433, "b")]
    want = (0.1234567 * tables["a"].astype(np.float64) + 0.8765433 * tables["b"].astype(np.float64)).astype(np.float32)
    assert np.array_equal(C.mix_table(parts, tables), want)


def test_draw_mix_and_replay():
    recipes = [C.format_recipe(C.draw_mix("af", np.random.default_rng(s))) for s in range(40)]
    assert recipes == [C.format_recipe(C.draw_mix("af", np.random.default_rng(s))) for s in range(40)]
    sizes = set()
    for r in recipes:
        parts = C.parse_recipe(r)
        names = [n for _, n in parts]
        sizes.add(len(parts))
        assert len(set(names)) == len(names) and set(names) <= set(C.VOICE_GROUPS["af"])
        assert abs(sum(w for w, _ in parts) - 1.0) < 0.002
    assert sizes == {2, 3}
    # the replay recovers the full-precision weights behind the rounded recipes
    speakers = C.plan_speakers([], ["af_heart", "bm_fable"], "af:3,bm:2", seed=7)
    assert [s.speaker for s in speakers] == ["kk_af_heart", "kk_bm_fable", "kx_af00", "kx_af01", "kx_af02",
                                             "kx_bm00", "kx_bm01"]
    weights, _, exact = C.replay_mixes(speakers, seed=7)
    assert exact == 5 and all(C.format_recipe(weights[s.speaker]) == s.voice for s in speakers if s.is_mix)
    assert any(w != round(w, 3) for parts in weights.values() for w, _ in parts)
    # a hand-written recipe is used as written
    edited = [*speakers[:2], C.Speaker("kx_af00", "af", "american", "female", "0.500*af_sky+0.500*af_nova")]
    weights, _, exact = C.replay_mixes(edited, seed=7)
    assert exact == 0 and weights["kx_af00"] == [(0.5, "af_sky"), (0.5, "af_nova")]


def test_plan_speakers_default_and_extension():
    sp = C.plan_speakers([], C.ENGLISH_VOICES)
    assert len(sp) == 100 and [s.speaker for s in sp[:28]] == [f"kk_{v}" for v in C.ENGLISH_VOICES]
    assert [sum(s.is_mix and s.group == g for s in sp) for g in C.VOICE_GROUPS] == [28, 24, 10, 10]
    for s in sp[28:]:
        assert {n[:2] for _, n in C.parse_recipe(s.voice)} == {s.group}  # parents from one group
        assert s.speaker.startswith(f"kx_{s.group}")
    more = C.plan_speakers(sp, C.ENGLISH_VOICES, "af:29,am:24,bf:10,bm:11")
    assert more[:100] == sp and [s.speaker for s in more[100:]] == ["kx_af28", "kx_bm10"]
    assert C.parse_mix_counts(72) == {"af": 29, "am": 23, "bf": 10, "bm": 10}  # by group size
    assert C.parse_mix_counts("10", ["af_heart", "am_adam"]) == {"af": 6, "am": 4}
    with pytest.raises(DataError, match="unknown voice"):
        C.plan_speakers([], ["xx_nobody"], 0)
    with pytest.raises(DataError, match="group"):
        C.parse_mix_counts("zz:3")


def test_default_plan_is_the_shared_corpus():
    shared = data_root() / "kokoro-teacher"
    src = data_root() / "vctk-text" / "transcripts.tsv"
    if not (shared / "metadata.tsv").is_file() or not src.is_file():
        pytest.skip(f"kokoro-teacher corpus or vctk-text not found under {data_root()}")
    assert C.plan_speakers([], C.ENGLISH_VOICES) == C.read_speakers(shared / "speakers.tsv")
    plan = C.verify_plan(shared, src)
    assert plan["mixes_replayed"] == 72 and plan["utterances_equal"] == plan["utterances"] == 3718


def test_read_sentences(tmp_path):
    tsv = tmp_path / "t.tsv"
    tsv.write_text("utterance_id\tspeaker\ttext\n1\tp\tToo short.\n2\tp\tThis one is long enough.\n"
                   "3\tq\tThis one is long enough.\n4\tq\tThis one is long  enough.\n")
    # VCTK's text is taken as written (the shared corpus kept its double spaces), duplicates dropped
    assert C.read_sentences(tsv) == ["This one is long enough.", "This one is long  enough."]
    txt = tmp_path / "t.txt"
    txt.write_text("  A plain line of text here.  \n\nshort\nA plain line of text here.\n")
    assert C.read_sentences(txt) == ["A plain line of text here."]


class FakeTeacher:
    """Kokoro's interface: a tone whose length is set by the durations (3 frames per symbol)."""

    vocab = {c: i + 1 for i, c in enumerate(" !),.?AIOQTWYabdfhijklmnpstuvwzæðŋɐɑɒɔəɛɜɡɪɹʃʊʌʒʤʧˈˌːθᵊᵻ—”")}

    def __init__(self):
        self.calls = 0

    def synthesize(self, phonemes, table):
        self.calls += 1
        durations = (2, *([3] * len(phonemes)), 1)
        n = sum(durations) * C.FRAME_SAMPLES
        audio = 0.1 * np.sin(2 * np.pi * (200 + 100 * float(table[0, 0])) * np.arange(n) / C.SAMPLE_RATE)
        return audio.astype(np.float32), durations


def _fake_voices(folder: Path, names=C.ENGLISH_VOICES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        np.full(C.VOICE_SHAPE, i / 10, dtype="<f4").tofile(folder / f"{name}.bin")
    return folder


def _sentences(path: Path, n: int = 30) -> Path:
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    lines = [f"The {words[i % 12]} team saw {words[(i * 5) % 12]} number {i} today." for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_generate_resume_and_extend_with_a_fake_teacher(tmp_path):
    voices = ["af_heart", "af_sky", "bm_fable"]
    vdir = _fake_voices(tmp_path / "voices")
    src = _sentences(tmp_path / "sentences.txt")
    out = tmp_path / "corpus"
    kw = dict(voices=voices, mixes="af:1", voices_dir=vdir, progress=False)

    t = FakeTeacher()
    counts = C.generate(out, src, per_speaker=2, limit=3, teacher=t, **kw)
    assert counts["written"] == 3 and counts["planned"] == 8 and t.calls == 3
    rows = C.read_metadata(out / "metadata.tsv")
    assert [r.utterance for r in rows] == ["kk_af_heart_0000", "kk_af_sky_0000", "kk_bm_fable_0000"]

    counts = C.generate(out, src, per_speaker=2, teacher=t, **kw)  # resume
    assert counts == {"speakers": 4, "planned": 8, "done_before": 3, "written": 5, "skipped_text": 0}
    rows = C.read_metadata(out / "metadata.tsv")
    assert len(rows) == 8 and len({r.text for r in rows}) == 8
    assert C.generate(out, src, per_speaker=2, teacher=t, **kw)["written"] == 0  # nothing left
    speakers = C.read_speakers(out / "speakers.tsv")
    assert [s.speaker for s in speakers] == ["kk_af_heart", "kk_af_sky", "kk_bm_fable", "kx_af00"]

    for r in rows:
        audio, sr = sf.read(C.audio_path(out, r.speaker, r.utterance), dtype="float32")
        assert sr == 24000 and audio.ndim == 1 and audio.size == r.num_samples
        assert sum(r.durations) * 600 == r.num_samples and len(r.durations) == len(r.phonemes) + 2
    assert not list(out.rglob("*.part"))

    # a lost audio file is rewritten from its metadata row (same text, no duplicate row)
    lost = rows[4]
    C.audio_path(out, lost.speaker, lost.utterance).unlink()
    assert C.generate(out, src, per_speaker=2, teacher=t, **kw)["written"] == 1
    assert C.read_metadata(out / "metadata.tsv") == rows

    # extend: one more mix and one more utterance each; old rows untouched, no sentence repeated
    counts = C.generate(out, src, per_speaker=3, teacher=t, **{**kw, "mixes": "af:1,bm:1"})
    assert counts["speakers"] == 5 and counts["planned"] == 15 and counts["written"] == 7
    rows2 = C.read_metadata(out / "metadata.tsv")
    assert rows2[:8] == rows and len({r.text for r in rows2}) == 15


def test_generate_skips_unpronounceable_sentences(tmp_path):
    vdir = _fake_voices(tmp_path / "voices", ["af_heart"])
    src = tmp_path / "s.txt"
    src.write_text("................................\nThis sentence can be spoken aloud.\n")
    for seed in range(3):  # whatever the shuffle, the punctuation line is never planned
        counts = C.generate(tmp_path / f"c{seed}", src, utterances=1, voices=["af_heart"], mixes=0, seed=seed,
                            voices_dir=vdir, progress=False, teacher=FakeTeacher())
        assert counts["written"] == 1
        (row,) = C.read_metadata(tmp_path / f"c{seed}" / "metadata.tsv")
        assert row.text == "This sentence can be spoken aloud."


def test_out_of_sentences_is_a_clear_error(tmp_path):
    vdir = _fake_voices(tmp_path / "voices", ["af_heart"])
    src = _sentences(tmp_path / "s.txt", n=2)
    with pytest.raises(DataError, match="out of sentences"):
        C.generate(tmp_path / "c", src, utterances=3, voices=["af_heart"], mixes=0, voices_dir=vdir,
                   progress=False, teacher=FakeTeacher())


def _cached_kokoro() -> tuple[Path, Path]:
    cache = C.cache_dir()
    model, voices = cache / C.KOKORO_FILE, cache / "voices"
    if not model.is_file() or not (voices / "af_heart.bin").is_file():
        pytest.skip(f"Kokoro model/voices not cached in {cache} (run `signals speech tts corpus` once to download)")
    try:
        import onnx  # noqa: F401
    except ImportError:
        if not (cache / C.KOKORO_DURATIONS_FILE).is_file():
            pytest.skip("adding Kokoro's duration output needs onnx (the corpus extra)")
    return cache, voices


def test_real_kokoro_reproduces_a_shared_utterance(tmp_path):
    """The generator on one short sentence: kk_af_heart_0000 of the shared corpus, same format and numbers."""
    cache, voices = _cached_kokoro()
    text = "We were a little bit nervous."
    src = tmp_path / "s.txt"
    src.write_text(text + "\n")
    out = tmp_path / "corpus"
    counts = C.generate(out, src, utterances=1, voices=["af_heart"], mixes=0, cache=cache, voices_dir=voices,
                        progress=False)
    assert counts["written"] == 1
    (row,) = C.read_metadata(out / "metadata.tsv")
    assert row.utterance == "kk_af_heart_0000" and row.text == text
    audio, sr = sf.read(C.audio_path(out, row.speaker, row.utterance), dtype="float32")
    assert sr == 24000 and audio.size == row.num_samples
    shared = data_root() / "kokoro-teacher"
    if not (shared / "metadata.tsv").is_file():
        return
    ref_row = next(r for r in C.read_metadata(shared / "metadata.tsv") if r.utterance == "kk_af_heart_0000")
    assert ref_row.text == text
    assert (row.phonemes, row.durations, row.num_samples) == (ref_row.phonemes, ref_row.durations, ref_row.num_samples)
    ref, _ = sf.read(C.audio_path(shared, row.speaker, row.utterance), dtype="float32")
    _, speech_l1 = C.mel_distance(audio, ref)
    assert speech_l1 < 0.05  # both Opus-coded from the same samples (Opus alone: ~0.05 from the raw audio)
