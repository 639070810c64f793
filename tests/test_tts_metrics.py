"""TTS evaluation metrics: text normalisation, WER, the pocketsphinx recogniser, speaker similarity / SV-EER."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from signals.paths import data_root
from signals.speech.encoder.metrics import equal_error_rate
from signals.speech.tts.metrics import (
    EvalDependencyError,
    PocketSphinxASR,
    WordErrors,
    bootstrap_ci,
    clone_similarity,
    clone_sv_eer,
    corpus_wer,
    cosine,
    normalize_text,
    number_to_words,
    wer,
    word_errors,
)

# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Printing, in the only sense!", "printing in the only sense"),
        ("  Hello   WORLD.  ", "hello world"),
        ("It's a long-term solution.", "it's a long term solution"),
        ("Don’t “quote” me — please", "don't quote me please"),
        ("The students' books; 'em", "the students books em"),
        ("There was an e-mail.", "there was an email"),
        ("Mr. Smith & Dr. Jones, OK?", "mister smith and doctor jones okay"),
        ("The colours were organised at the centre.", "the colors were organized at the center"),
        ("The theatre's programme", "the theater's program"),
        ("Café naïve", "cafe naive"),
        ("word(2) <sil> [NOISE] hello", "word hello"),
        ("", ""),
        ("?!...", ""),
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,200 people", "one thousand two hundred people"),
        ("in 1984", "in nineteen eighty four"),
        ("in 1905 and 1900", "in nineteen oh five and nineteen hundred"),
        ("in 2005 and 2019", "in two thousand five and twenty nineteen"),
        ("the 21st and 2nd", "the twenty first and second"),
        ("3.5% of 1,234.5", "three point five percent of one thousand two hundred thirty four point five"),
        ("$4.50 and £1", "four dollars fifty cents and one pound"),
        ("£3.5bn", "three point five billion pounds"),
        ("at 10:30 or 7:05", "at ten thirty or seven oh five"),
        ("the 1990s and the '80s", "the nineteen nineties and the eighties"),
        ("agent 007", "agent zero zero seven"),
        ("5 to 101", "five to one hundred one"),
    ],
)
def test_normalize_numbers(text, expected):
    assert normalize_text(text) == expected


def test_normalize_is_idempotent_and_digit_free():
    text = "On 3 May 1999, 12.5% of the 2,000 Labour voters' e-mails — £40 each — arrived at 9:15."
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert not any(c.isdigit() for c in once)
    assert once == once.lower() and "  " not in once


def test_number_to_words():
    assert number_to_words(0) == "zero"
    assert number_to_words(1_000_000) == "one million"
    assert number_to_words("1,000,001") == "one million one"
    assert number_to_words(12, "ordinal") == "twelfth"
    assert number_to_words(40, "ordinal") == "fortieth"
    assert number_to_words(2000, "year") == "two thousand"
    with pytest.raises(ValueError):
        number_to_words("12a")


# --------------------------------------------------------------------------------------------------
# WER
# --------------------------------------------------------------------------------------------------


def test_wer_counts():
    e = word_errors("the cat sat on the mat", "the cat sat on mat")
    assert (e.substitutions, e.deletions, e.insertions, e.ref_words, e.hyp_words) == (0, 1, 0, 6, 5)
    assert e.wer == pytest.approx(1 / 6)
    e = word_errors("a b c", "a x c")
    assert (e.substitutions, e.deletions, e.insertions) == (1, 0, 0)
    assert wer("Hello, World!", "hello world") == 0.0  # punctuation and case do not count


def test_wer_empty_hypothesis_and_reference():
    assert wer("one two three", "") == 1.0
    assert word_errors("one two three", "").deletions == 3
    assert wer("", "") == 0.0
    assert wer("...", "") == 0.0  # nothing to say, nothing said
    with pytest.raises(ValueError, match="no reference words"):
        wer("", "spurious words")


def test_wer_insertions_can_exceed_one():
    e = word_errors("yes", "yes yes yes")
    assert (e.substitutions, e.deletions, e.insertions) == (0, 0, 2)
    assert e.wer == 2.0
    assert wer("a b", "x a y b z") == pytest.approx(1.5)


def test_wer_normalises_both_sides():
    assert wer("It cost $5 in 1984.", "it cost five dollars in nineteen eighty four") == 0.0
    assert wer("a long-term colour", "a long term color") == 0.0
    assert wer("A B", "a b", normalize=False) == 1.0  # raw: case counts
    assert wer(["a", "b"], ["a", "c"]) == 0.5  # word lists are used as given


def test_corpus_wer_is_total_errors_over_total_words():
    refs = ["one two three four five six seven eight nine ten", "hello"]
    hyps = ["one two three four five six seven eight nine ten", "goodbye"]
    total = corpus_wer(refs, hyps)
    assert isinstance(total, WordErrors)
    assert (total.errors, total.ref_words, total.utterances) == (1, 11, 2)
    assert total.wer == pytest.approx(1 / 11)  # not the mean of per-utterance rates (0.5)
    assert total.as_dict()["wer"] == pytest.approx(1 / 11)
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        corpus_wer(refs, hyps[:1])


# --------------------------------------------------------------------------------------------------
# Speaker similarity and SV-EER
# --------------------------------------------------------------------------------------------------


def test_bootstrap_ci():
    # a ratio of sums, not a mean of ratios: one long sentence with no errors weighs more than a short one
    errors, words = [0, 4, 1, 0, 2, 3, 0, 1], [20, 5, 10, 8, 6, 9, 12, 7]
    lo, hi = bootstrap_ci(errors, words)
    assert lo < sum(errors) / sum(words) < hi and 0.0 <= lo and hi < 0.5
    assert bootstrap_ci(errors, words) == (lo, hi)  # seeded: a report reproduces
    wide, narrow = bootstrap_ci([0.6, 0.9] * 4), bootstrap_ci([0.6, 0.9] * 64)
    assert wide[0] < narrow[0] < 0.75 < narrow[1] < wide[1]  # more sentences, a tighter interval
    assert bootstrap_ci([0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7))
    lo90, hi90 = bootstrap_ci(errors, words, level=0.9)
    assert lo <= lo90 and hi90 <= hi
    assert bootstrap_ci([0.5]) is None  # one sentence has no spread to resample
    with pytest.raises(ValueError, match="same length"):
        bootstrap_ci([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1, 2], level=95)


def test_cosine_and_clone_similarity():
    a = np.array([1.0, 0.0, 0.0])
    assert cosine(a, 5 * a) == pytest.approx(1.0)
    assert cosine(a, np.array([0.0, 2.0, 0.0])) == pytest.approx(0.0)
    rows = cosine(np.eye(3), np.ones((3, 3)))
    assert rows.shape == (3,) and np.allclose(rows, 1 / np.sqrt(3))
    sims = clone_similarity(np.eye(3), np.array([1.0, 1.0, 1.0]))  # one shared reference
    assert np.allclose(sims, 1 / np.sqrt(3))
    with pytest.raises(ValueError):
        cosine(np.ones(3), np.ones(4))


def _voices(n_speakers=4, per=3, dim=16, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_speakers, dim))
    names = [f"s{i}" for i in range(n_speakers) for _ in range(per)]
    emb = np.repeat(centres, per, axis=0) + noise * rng.standard_normal((n_speakers * per, dim))
    return emb, names


def test_clone_sv_eer_uses_the_encoder_eer():
    refs, ref_spk = _voices(seed=0)
    clones, clone_spk = _voices(seed=0, noise=0.2)  # same speaker centres: good clones
    res = clone_sv_eer(clones, clone_spk, refs, ref_spk)  # speaker enrolment: 12 clones x 4 speakers
    assert (res.n_target, res.n_nontarget) == (12, 36)
    assert res.eer.eer == pytest.approx(0.0)
    assert res.eer == equal_error_rate(res.scores, res.labels)
    utt = clone_sv_eer(clones, clone_spk, refs, ref_spk, enroll="utterance")  # 12 x 12 trials
    assert (utt.n_target, utt.n_nontarget) == (36, 108)
    rng = np.random.default_rng(1)  # clones unrelated to their references: EER near chance
    bad = clone_sv_eer(rng.standard_normal((40, 16)), [f"s{i % 4}" for i in range(40)], refs, ref_spk)
    assert bad.eer.eer > 0.2


def test_clone_sv_eer_errors():
    refs, ref_spk = _voices()
    with pytest.raises(ValueError, match="no reference embedding"):
        clone_sv_eer(refs[:2], ["s0", "nobody"], refs, ref_spk)
    with pytest.raises(ValueError, match="speaker IDs"):
        clone_sv_eer(refs[:2], ["s0"], refs, ref_spk)
    with pytest.raises(ValueError, match="both target and non-target"):  # a single speaker
        clone_sv_eer(refs[:3], ref_spk[:3], refs[:3], ref_spk[:3])
    with pytest.raises(ValueError, match="enroll"):
        clone_sv_eer(refs, ref_spk, refs, ref_spk, enroll="mean")


# --------------------------------------------------------------------------------------------------
# Recogniser
# --------------------------------------------------------------------------------------------------


def test_missing_pocketsphinx_names_the_eval_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # makes `import pocketsphinx` fail
    with pytest.raises(EvalDependencyError, match=r"signals\[eval\]") as info:
        PocketSphinxASR()
    assert isinstance(info.value, ImportError)


@pytest.fixture(scope="module")
def asr():
    pytest.importorskip("pocketsphinx", reason="pocketsphinx is not installed (pip install 'signals[eval]')")
    return PocketSphinxASR()


def test_pocketsphinx_transcribes_ljspeech(asr):
    root = data_root() / "ljspeech-mini"
    if not (root / "LJ001-0008.wav").is_file():
        pytest.skip(f"real dataset 'ljspeech-mini' not found at {root} (set SIGNALS_DATA to its parent folder)")
    from signals.speech.audio import load_audio

    wav, sr = load_audio(root / "LJ001-0008.wav")  # 22.05 kHz, "has never been surpassed." (1.9 s)
    assert sr == 22050
    hyp = asr.transcribe(wav, sr)
    assert "never been surpassed" in hyp
    assert wer("has never been surpassed.", hyp) <= 0.25
    # The level does not matter (peak-normalised) and [C, T] input is mixed to mono.
    assert asr.transcribe(0.05 * np.stack([wav, wav]), sr) == hyp


def test_pocketsphinx_transcript_does_not_depend_on_history(asr):
    """A reused decoder transcribes an utterance exactly as a fresh one does, whatever it heard before
    (without the front-end reset, lowres_8k.wav after lowres_16k.wav came out with 'asked' for 'ask')."""
    import soundfile as sf

    examples = Path(__file__).resolve().parents[1] / "examples" / "speech"
    first, second = (sf.read(examples / name, dtype="float32") for name in ("lowres_16k.wav", "lowres_8k.wav"))
    fresh = [PocketSphinxASR().transcribe(*x) for x in (first, second)]
    assert [asr.transcribe(*x) for x in (first, second)] == fresh
    assert [asr.transcribe(*x) for x in (second, first)] == fresh[::-1]


def test_pocketsphinx_silence_is_empty(asr):
    assert asr.transcribe(np.zeros(16000, np.float32), 16000) == ""
    assert asr.transcribe(np.zeros(0, np.float32), 16000) == ""
