"""Text front end: hibari G2P (the corpus's alphabet), normalisation, splitting, errors."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from signals.errors import SignalsError, TextError
from signals.paths import data_root
from signals.speech.tts import text as T


def kokoro_teacher() -> Path:
    root = data_root() / "kokoro-teacher"
    if not (root / "metadata.tsv").is_file():
        pytest.skip(f"kokoro-teacher corpus not found at {root} (set SIGNALS_DATA to its parent folder)")
    return root


def test_symbol_table_and_layout_are_the_trained_ones():
    assert T.DEFAULT_SYMBOLS[:2] == (T.PAD, T.BOUNDARY) and len(T.DEFAULT_SYMBOLS) == 60
    assert all(v in T.DEFAULT_SYMBOLS for v in T.FALLBACKS.values())
    ids = T.phonemes_to_ids("ðə kˈæt.")
    b = T.DEFAULT_SYMBOLS.index(T.BOUNDARY)
    assert ids[0] == ids[-1] == b and len(ids) == len("ðə kˈæt.") + 2
    assert [T.DEFAULT_SYMBOLS[i] for i in ids[1:-1]] == list("ðə kˈæt.")
    # symbols the corpus never used fall back onto trained ones
    assert T.phonemes_to_ids("a;b") == T.phonemes_to_ids("a,b")


def test_corpus_sentences_reproduce_their_phonemes():
    root = kokoro_teacher()
    lines = (root / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, ln.split("\t"))) for ln in lines[1:]]
    sample = random.Random(0).sample(rows, 300)
    sample += [r for r in rows if " - " in r["text"]][:3]  # hibari drops a spaced hyphen: so must we
    bad = [(r["text"], r["phonemes"], got) for r in sample
           if (got := T.g2p(r["text"], T.accent_for_group(r["speaker"].split("_")[1]))) != r["phonemes"]]
    assert not bad, bad[:5]


def test_g2p_accents():
    assert T.g2p("Hello there.") == "həlˈO ðˈɛɹ."
    assert T.g2p("Hello there.", accent="gb") == "həlˈQ ðˈɛː."
    assert T.g2p("Hello there.", accent="en-GB") == T.g2p("Hello there.", accent="british")
    with pytest.raises(TextError, match="unknown accent"):
        T.g2p("Hello.", accent="fr")
    assert T.accent_for_group("af") == "us" and T.accent_for_group("bm") == "gb"


@pytest.mark.parametrize(
    "text, expect",
    [
        ("It cost $9.99 on the 3rd of May.", ["nˈIn dˈɑləɹz", "nˈIndi nˈIn sˈɛnts", "θˈɜɹd"]),
        ("It cost £5 and 50% more.", ["fˈIv pˈWndz", "fˈɪfti pəɹsˈɛnt"]),
        ("Dr. Smith met Mr. Jones at 7:30 pm.", ["dˈɑktəɹ", "mˈɪstəɹ", "sˈɛvən θˈɜɹTi pˌiˈɛm"]),
        ("He came 21st, in 1990.", ["twˈɛnti fˈɜɹst", "nˌIntˈin nˈIndi"]),
        ("Use tools, e.g. hammers, i.e. heavy ones.", ["fɔɹ ɪɡzˈæmpəl hˈæməɹz", "ðæt ɪz hˈɛvi"]),
        ("Mail bob@example.org today.", ["bˈɑb æt ɪɡzˈæmpəl dˈɑt ˈɔɹɡ"]),
        ("It rose 10-15% and fell -$5.", ["tˈɛn tə fˌɪftˈin pəɹsˈɛnt", "mˈInəs fˈIv dˈɑləɹz"]),
        ("It is 20 ℃ today 😀.", ["twˈɛnti dəɡɹˈiz sˈɛlsiəs tədˈA."]),
        # hibari reads every lowercase "no." as "number"; only a following digit makes it one
        ("I said no. Room no. 12 and No. 5, not nos. 3.", ["sˈɛd nˈO.", "ɹˈum nˈʌmbəɹ twˈɛlv", "nˈʌmbəɹ fˈIv",
                                                          "nˈʌmbəɹz θɹˈi"]),
        # hibari keeps a currency across punctuation ("forty dollars people"): such amounts are spelled first
        ("It cost $30.50, 40 people paid £1, €0.05; 2 did not.", ["θˈɜɹTi dˈɑləɹz ænd fˈɪfti sˈɛnts, fˈɔɹTi pˈipᵊl",
                                                                 "wˈʌn pˈWnd, fˈIv sˈɛnts; tˈu dˈɪd"]),
        ("Approx. 30 min. later it weighs 5 lbs. and 3 oz. more.", ["əpɹˈɑksəmətli θˈɜɹTi mˈɪnəts lˈATəɹ",
                                                                    "fˈIv pˈWndz ænd θɹˈi ˈWnsᵻz mˈɔɹ."]),
        ("Tag it #cats, not #1.", ["tˈæɡ ɪt kˈæts", "nˈʌmbəɹ wˈʌn"]),
    ],
)
def test_normalisation(text, expect):
    ps = T.g2p(text)
    for e in expect:
        assert e in ps, (text, ps, e)


def test_normalize_text_and_compatibility_forms():
    assert T.normalize("Ｈｅｌｌｏ\u200b ﬁne [world]") == "Hello fine (world)"
    assert T.normalize("approx. 5 km") == "approximately 5 kilometers"
    assert T.normalize("Plain words stay.") == "Plain words stay."


def test_g2p_normalises_exactly_once(monkeypatch):
    import hibari.g2p

    hn = sys.modules["hibari.g2p.normalize"]

    calls = []
    original = hn.normalize

    def counting(text):
        calls.append(text)
        return original(text)

    monkeypatch.setattr(hn, "normalize", counting)
    monkeypatch.setattr(hibari.g2p, "normalize", counting)
    T.g2p("Dr. Smith paid $5 at 7:30 pm.")
    assert len(calls) == 1


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_is_an_error(text):
    with pytest.raises(TextError, match="empty"):
        T.g2p(text)
    with pytest.raises(TextError, match="empty"):
        T.text_to_ids(text)


@pytest.mark.parametrize("text", ["...", "!?!", "— , ; :", "$"])
def test_punctuation_only_is_an_error(text):
    with pytest.raises(TextError, match="nothing to pronounce"):
        T.g2p(text)
    with pytest.raises(TextError, match="nothing to pronounce"):
        T.text_to_ids(text)


@pytest.mark.parametrize(
    "text, script",
    [("Привет, мир.", "Cyrillic"), ("你好世界", "CJK"), ("مرحبا بالعالم", "Arabic"), ("こんにちは", "Japanese"),
     ("Hello, Привет!", "Cyrillic"), ("πr²", "Greek")],
)
def test_unsupported_script_names_the_script(text, script):
    with pytest.raises(TextError, match=script) as err:
        T.text_to_ids(text)
    assert isinstance(err.value, SignalsError) and isinstance(err.value, ValueError)
    with pytest.raises(TextError, match=script):
        T.g2p(text)


def test_latin_accents_are_fine():
    assert T.g2p("Café naïve résumé.")


def test_split_sentences_keeps_punctuation_and_abbreviations():
    text = 'Dr. Smith met J. K. Rowling at No. 5 Main St. today. Then he left! "Did he?" she asked.\n\nYes… ok.'
    assert T.split_sentences(text) == [
        "Dr. Smith met J. K. Rowling at No. 5 Main St. today.",
        "Then he left!",
        '"Did he?" she asked.',
        "Yes… ok.",
    ]
    # hard-wrapped lines are one sentence; a stray closing quote stays with its sentence
    assert T.split_sentences("This line\nwraps here. )") == ["This line wraps here. )"]


def test_split_long_sentence_at_commas_then_words():
    sentence = ", ".join(f"clause number {i} goes on a little" for i in range(20)) + "."
    pieces = T.split_sentences(sentence, max_chars=100)
    assert len(pieces) > 1 and all(len(p) <= 100 for p in pieces)
    assert all(p.endswith((",", ".")) for p in pieces)  # cut after commas, punctuation kept
    assert " ".join(pieces) == sentence
    words = "word " * 100
    pieces = T.split_sentences(words, max_chars=50)
    assert all(len(p) <= 50 for p in pieces) and " ".join(pieces).split() == words.split()


def test_20000_character_text_splits_and_every_piece_encodes():
    rng = random.Random(0)
    vocab = "the quick brown fox jumps over a lazy dog and then runs far away into woods".split()
    sentences = []
    while sum(len(s) + 1 for s in sentences) < 20_000:
        n = rng.choice([5, 12, 40, 90])  # some sentences far over max_chars
        words = [rng.choice(vocab) for _ in range(n)]
        for i in range(7, n, 9):
            words[i] += ","
        sentences.append(" ".join(words).capitalize() + rng.choice([".", "!", "?"]))
    text = " ".join(sentences)[:20_000]
    assert len(text) == 20_000
    pieces = T.split_sentences(text)
    assert all(len(p) <= T.DEFAULT_MAX_CHARS for p in pieces)
    assert " ".join(pieces).split() == text.split()
    ids = T.text_to_ids(text)
    assert len(ids) == len(pieces)
    b = T.DEFAULT_SYMBOLS.index(T.BOUNDARY)
    assert all(x[0] == x[-1] == b and 3 <= len(x) <= T.MAX_PHONEMES + 2 for x in ids)
    # one 20,000-character 'word' is cut too
    assert len(T.text_to_ids("a" * 20_000)) == 100


def test_punctuation_only_pieces_are_skipped():
    assert len(T.text_to_ids("Hello there. ... Goodbye now.")) == 2


def test_runtime_is_torch_free():
    code = ("import sys; from signals.speech.tts.text import text_to_ids; text_to_ids('Hello, 5 people.'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
