"""Text front end of the synthesizer: English text -> phoneme strings -> symbol IDs.

    normalize("Dr. Smith paid $5 at 7:30 pm.")  -> 'Dr Smith paid $5 at seven thirty P.M.'
    g2p("Hello there.")                          -> 'həlˈO ðˈɛɹ.'          (one sentence)
    g2p("Hello there.", accent="gb")             -> 'həlˈQ ðˈɛː.'
    split_sentences(long_text, max_chars=200)    -> ['First sentence.', 'Second one, ...', ...]
    phonemize(long_text)                         -> one phoneme string per piece
    text_to_ids(long_text)                       -> one ID list per piece, ``[BOUNDARY, *symbols, BOUNDARY]``

The G2P is PyPI ``hibari-tts`` 0.2.1 (offline, Apache-2.0: misaki's lexicons, a perceptron tagger
and a small ONNX net for unknown words; torch-free). The alphabet is Kokoro's / misaki's, which is
what the ``kokoro-teacher`` corpus was made with: ``g2p(text, accent)`` reproduces the corpus's
``phonemes`` column exactly (American G2P for the ``a*`` voice groups, British for ``b*``; measured on
all 3,718 rows). The symbol table itself is stored in the TTS model folder's ``config.json``;
:data:`DEFAULT_SYMBOLS` is the table new models are built with.

Normalisation: hibari already reads cardinals, ordinals, years, decimals, ``$/£/€`` amounts and
percentages in its lexicon layer, and its text pass expands times, dates, units, titles,
abbreviations, other currencies, Roman numerals and symbols. :func:`normalize` runs that pass once
(the G2P is then called with its own normalisation off, so nothing is normalised twice), after a
small pre-pass for what hibari misreads: Unicode compatibility forms (full-width letters, ligatures),
invisible characters, ``e.g.``/``i.e.``/``a.k.a.``, e-mail and web addresses, ``-$5``, ``10-15%``
and square/curly brackets. None of these change any sentence of the VCTK text the corpus used.

Token layout (the corpus's, so its per-token durations line up one to one):
``[BOUNDARY, *symbols of the phoneme string, BOUNDARY]``; ``PAD`` (ID 0) only fills batches.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

from signals.errors import TextError

PAD = "<pad>"
BOUNDARY = "<b>"

# Every symbol of the kokoro-teacher corpus's phoneme strings (58), in code-point order.
CORPUS_SYMBOLS = tuple(" !),.?AIOQTWYabdfhijklmnpstuvwzæðŋɐɑɒɔəɛɜɡɪɹʃʊʌʒʤʧˈˌːθᵊᵻ—”")
DEFAULT_SYMBOLS: tuple[str, ...] = (PAD, BOUNDARY, *CORPUS_SYMBOLS)

# Symbols the G2P can write that the corpus never used: mapped onto the nearest trained symbol
# (punctuation with the same prosodic role) instead of an untrained embedding. The last four come
# only from hibari's out-of-vocabulary net (espeak-style readings of unknown, often foreign, words).
FALLBACKS: dict[str, str] = {
    ";": ",", ":": ",", "…": ".", "“": "”", '"': "”", "(": ",", "–": "—", "-": "—",
    "ɾ": "T", "ʔ": "t", "ʀ": "ɹ", "y": "u",
}

ACCENTS = ("us", "gb")
_ACCENT_ALIASES = {"us": "us", "en-us": "us", "american": "us", "gb": "gb", "uk": "gb", "en-gb": "gb", "british": "gb"}

# Pieces longer than this many characters are split (at clause punctuation, then between words).
# The corpus's sentences are 20-200 characters, so this keeps inference inside the training range.
DEFAULT_MAX_CHARS = 200
# A hard guard on one piece's phoneme string (Kokoro's own limit is 510 tokens; hibari splits at 400).
MAX_PHONEMES = 400


def phonemes_to_ids(phonemes: str, symbols: Sequence[str] = DEFAULT_SYMBOLS) -> list[int]:
    """``"ðə kˈæt"`` -> ``[id(BOUNDARY), id('ð'), ..., id(BOUNDARY)]``.

    Unknown symbols are mapped through :data:`FALLBACKS`, else dropped; a string with no known
    symbol raises :class:`~signals.errors.TextError` (a ``ValueError``).
    """
    index = {s: i for i, s in enumerate(symbols)}
    ids = []
    for ch in phonemes:
        ch = ch if ch in index else FALLBACKS.get(ch, "")
        if ch in index:
            ids.append(index[ch])
    if not any(symbols[i].strip() for i in ids):
        raise TextError(f"no pronounceable symbol in phoneme string {phonemes!r}")
    return [index[BOUNDARY], *ids, index[BOUNDARY]]


# -- accents and the G2P ---------------------------------------------------------------------


def canonical_accent(accent: str) -> str:
    """``"us"``/``"gb"`` (also ``en-us``, ``american``, ``en-gb``, ``uk``, ``british``)."""
    acc = _ACCENT_ALIASES.get(str(accent).strip().lower())
    if acc is None:
        raise TextError(f"unknown accent {accent!r}: use 'us' (American English) or 'gb' (British English)")
    return acc


def accent_for_group(group: str) -> str:
    """The corpus's rule: Kokoro voice groups ``a*`` (American) -> ``"us"``, ``b*`` (British) -> ``"gb"``."""
    if group[:1] == "a":
        return "us"
    if group[:1] == "b":
        return "gb"
    raise TextError(f"voice group {group!r} is not English: expected af, am, bf or bm")


@functools.lru_cache(maxsize=2)
def _g2p_model(accent: str):
    from hibari.g2p import G2P

    return G2P(british=accent == "gb")


# -- normalisation ---------------------------------------------------------------------------

_INVISIBLE = {"\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}
_BRACKETS = str.maketrans({"[": "(", "{": "(", "]": ")", "}": ")"})
_SPELLED = {"℃": "°C", "℉": "°F"}
_RE_EG = re.compile(r"(?<![\w.])e\.\s?g\.(?=\W|$)", re.IGNORECASE)
_RE_IE = re.compile(r"(?<![\w.])i\.\s?e\.(?=\W|$)", re.IGNORECASE)
_RE_AKA = re.compile(r"(?<![\w.])a\.k\.a\.?(?=\W|$)", re.IGNORECASE)
_RE_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)")
_RE_URL = re.compile(r"(?<!\w)(?:https?://|www\.)[^\s<>\"”]*[^\s<>\"”.,;:!?)\]}']")
_RE_NEG_MONEY = re.compile(r"(?<![\w.\-])-(?=[$£€]\d)")
_RE_PCT_RANGE = re.compile(r"(?<![\w.\-])(\d+(?:\.\d+)?)\s?[-–]\s?(\d+(?:\.\d+)?)\s?%")
_RE_WS = re.compile(r"\s+")
# hibari's abbreviation table reads every lowercase "no." as "number" ("I said no." -> "I said number."),
# and drops the sentence's full stop with it; "No. 5" / "no. 5" (a digit follows) keep that reading
_RE_NO_WORD = re.compile(r"(?<![\w.])(no|nos)\.(?!\s?\d)")
# hibari (as misaki) keeps a currency across punctuation: "$30, 40 people" -> "thirty dollars, forty dollars
# people". An amount that punctuation follows is spelled here, so no currency is left to carry.
_RE_MONEY_PUNCT = re.compile(r"(?<![\w.])([$£€])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d\d))?(?=[,;:]\s)")
_MONEY_UNITS = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
                "€": ("euro", "euros", "cent", "cents")}
# a unit's full stop inside a sentence ("5 lbs. and 3 oz.") would be read as the sentence's end (a pause)
_RE_UNIT_DOT = re.compile(r"(?<=\d )(lbs?|oz|mins?|secs?|hrs?|ft|km|kg|cm|mm|mi|yds?)\.(?=\s+[a-z0-9])")
_RE_APPROX = re.compile(r"(?<![\w.])approx\.(?=\s)", re.IGNORECASE)  # hibari knows only the lowercase one
_RE_HASHTAG = re.compile(r"(?<![\w&#])#(?=[A-Za-z])")  # "#topic": the lexicon reads "#" as "hashtag" before it


@functools.lru_cache(maxsize=1)
def _read_symbols() -> frozenset[str]:
    from hibari.g2p.normalize import SYMBOLS

    return frozenset(SYMBOLS)


def _fold_char(ch: str) -> str:
    if ch in _SPELLED:
        return _SPELLED[ch]
    cat = unicodedata.category(ch)
    if ch in _INVISIBLE or cat == "Cf":
        return ""
    if cat in ("Cc", "Zl", "Zp") or (cat == "So" and ch not in _read_symbols()):
        return " "  # control characters, emoji and pictographs hibari has no reading for
    if "\uff00" <= ch <= "\uffef" or cat[0] == "L" or cat in ("Nd", "Nl"):
        folded = unicodedata.normalize("NFKC", ch)
        if folded != ch and (folded.isascii() or "\uff00" <= ch <= "\uffef"):
            return folded
    return ch


def _clean(text: str) -> str:
    """NFC, compatibility forms folded (full-width letters, ligatures), invisible characters and
    unreadable pictographs (emoji) removed."""
    text = unicodedata.normalize("NFC", text)
    if not text.isascii():
        text = "".join(_fold_char(ch) for ch in text)
    return text


def _spell_address(address: str) -> str:
    address = re.sub(r"^https?://", "", address)
    address = re.sub(r"^www\.", "W W W dot ", address)
    address = address.replace("@", " at ").replace(".", " dot ").replace("/", " slash ")
    return _RE_WS.sub(" ", address).strip()


def _spell_money(m: re.Match) -> str:
    one, many, sub_one, sub_many = _MONEY_UNITS[m.group(1)]
    whole, cents = m.group(2), int(m.group(3) or 0)
    words = [] if whole == "0" and cents else [f"{whole} {one if whole == '1' else many}"]
    if cents:
        words.append(f"{cents} {sub_one if cents == 1 else sub_many}")
    return " and ".join(words)


def _prenormalize(text: str) -> str:
    """What hibari's own pass misreads; each rule is a no-op on ordinary prose."""
    text = text.translate(_BRACKETS)
    if "." in text:
        text = _RE_EG.sub("for example", text)
        text = _RE_IE.sub("that is", text)
        text = _RE_AKA.sub("also known as", text)
        text = _RE_UNIT_DOT.sub(r"\1", text)
        text = _RE_APPROX.sub("approximately", text)
    if "@" in text:
        text = _RE_EMAIL.sub(lambda m: _spell_address(m.group(0)), text)
    if "www." in text or "://" in text:
        text = _RE_URL.sub(lambda m: _spell_address(m.group(0)), text)
    text = _RE_NEG_MONEY.sub("minus ", text)
    text = _RE_MONEY_PUNCT.sub(_spell_money, text)
    if "no" in text:
        text = _RE_NO_WORD.sub(r"\1 .", text)  # the G2P reads "no ." as the word and the full stop
    if "#" in text:
        text = _RE_HASHTAG.sub("", text)
    return _RE_PCT_RANGE.sub(r"\1 to \2%", text)


def normalize(text: str) -> str:
    """English text as the G2P reads it: numbers left as digits for the lexicon's number reader
    (``"$9.99"`` becomes "nine dollars and ninety-nine cents" there), everything else expanded."""
    from hibari.g2p.normalize import normalize as hibari_normalize

    return hibari_normalize(_prenormalize(_clean(text)))


# -- checks ----------------------------------------------------------------------------------

_SCRIPT_NAMES = {
    "CJK": "CJK (Chinese/Japanese ideographs)",
    "HIRAGANA": "Japanese (hiragana)",
    "KATAKANA": "Japanese (katakana)",
    "HANGUL": "Korean (Hangul)",
    "ARABIC-INDIC": "Arabic",
    "EXTENDED": "Arabic",  # EXTENDED ARABIC-INDIC DIGIT
}
_LATIN_EXTRAS = {"\u00b5", "\u00aa", "\u00ba"}  # micro sign, ordinal indicators: read by hibari


def _script(ch: str) -> str | None:
    """The script of a letter or digit that the English G2P cannot read; None if it can."""
    cat = unicodedata.category(ch)
    if not (cat[0] == "L" or cat == "Nd"):
        return None
    if ch.isascii() or ch in _LATIN_EXTRAS or "\u2100" <= ch <= "\u214f":  # letterlike symbols: Ω, K, ℃
        return None
    name = unicodedata.name(ch, "")
    first = name.split(" ", 1)[0]
    if first in ("LATIN", "MODIFIER") or not first:
        return None
    return _SCRIPT_NAMES.get(first, first.capitalize())


def _shorten(text: str, n: int = 60) -> str:
    text = _RE_WS.sub(" ", text).strip()
    return text if len(text) <= n else text[: n - 3] + "..."


def check_script(text: str) -> None:
    """Raise :class:`TextError` naming the script(s) if ``text`` has letters outside Latin."""
    text = _clean(text)
    if text.isascii():
        return
    found = Counter(s for s in map(_script, text) if s)
    if not found:
        return
    scripts = [s for s, _ in found.most_common()]
    example = next(ch for ch in text if _script(ch) == scripts[0])
    raise TextError(
        f"text {_shorten(text)!r} contains {' and '.join(scripts)} script (e.g. {example!r}); the English "
        "G2P reads only English in Latin script: translate or transliterate it first"
    )


def _check_not_empty(text: str) -> None:
    if not isinstance(text, str):
        raise TextError(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise TextError("text is empty: give at least one English word to speak")


def has_pronounceable(phonemes: str) -> bool:
    """True if a phoneme string has at least one phoneme (not just spaces and punctuation)."""
    return any(ch.isalpha() for ch in phonemes)


# -- G2P -------------------------------------------------------------------------------------


def _g2p_piece(text: str, accent: str) -> str:
    """Phonemes of one piece of text (already cleaned and checked); may be punctuation only."""
    return _g2p_model(accent)(normalize(text), normalize_text=False)


def g2p(text: str, accent: str = "us") -> str:
    """Phoneme string of one sentence (no splitting), in the Kokoro/misaki alphabet.

    Raises :class:`TextError` for empty text, text with nothing pronounceable (punctuation only) and
    text in a script other than Latin.
    """
    _check_not_empty(text)
    acc = canonical_accent(accent)
    check_script(text)
    phonemes = _g2p_piece(text, acc)
    if not has_pronounceable(phonemes):
        raise TextError(f"text {_shorten(text)!r} has nothing to pronounce (only punctuation or symbols)")
    return phonemes


# -- sentence splitting ----------------------------------------------------------------------

_SENT_END = re.compile(r"(?<=[.!?…])[\"”’')\]]*\s+(?=\S)")
_CLAUSE = re.compile(r"(?<=[,;:—–])\s+|\s+(?=[—–-]\s)")
_PARAGRAPH = re.compile(r"\n\s*\n")


@functools.lru_cache(maxsize=1)
def _abbreviations() -> tuple[frozenset[str], frozenset[str]]:
    """(titles, abbreviations) from hibari's tables, without their dots: ``Dr``, ``No``, ``approx``..."""
    from hibari.g2p.normalize import ABBREV, TITLES

    abbrevs = {a[:-1].lower() for a in ABBREV if a.endswith(".") and " " not in a}
    return frozenset(TITLES), frozenset(abbrevs | {"no", "nos", "p", "sec", "art", "eq", "ref", "ex"})


def _ends_sentence(para: str, end: int, nxt: str) -> bool:
    """False after a title or an initial ("Dr. Smith", "J. K. Rowling"), before a lowercase word,
    or after an abbreviation that a number follows ("No. 5", "pp. 12")."""
    if nxt.islower():
        return False
    if para[end - 1] != ".":
        return True
    word = para[para.rfind(" ", 0, end) + 1 : end - 1].lstrip("(\"“'‘[")
    titles, abbrevs = _abbreviations()
    if word in titles or (len(word) == 1 and word.isupper()):
        return False
    return not (nxt.isdigit() and word.lower() in abbrevs)


def _pack(parts: list[str], max_chars: int) -> list[str]:
    """Greedily join consecutive parts with spaces into chunks of at most ``max_chars``."""
    out, cur = [], ""
    for part in parts:
        if cur and len(cur) + 1 + len(part) > max_chars:
            out.append(cur)
            cur = part
        else:
            cur = f"{cur} {part}" if cur else part
    if cur:
        out.append(cur)
    return out


def _split_long(sentence: str, max_chars: int) -> list[str]:
    """A sentence over ``max_chars``: at clause punctuation, then between words, then (a single
    'word' longer than ``max_chars``) every ``max_chars`` characters. Punctuation stays in place."""
    if len(sentence) <= max_chars:
        return [sentence]
    out = []
    for chunk in _pack([p for p in _CLAUSE.split(sentence) if p], max_chars):
        if len(chunk) <= max_chars:
            out.append(chunk)
            continue
        words = []
        for word in chunk.split():
            words += [word[i : i + max_chars] for i in range(0, len(word), max_chars)]
        out += _pack(words, max_chars)
    return out


def split_sentences(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Sentences of ``text``, each at most ``max_chars`` characters, punctuation kept.

    Paragraphs break at blank lines (single line breaks are spaces, so hard-wrapped text reads as
    prose); sentences end at ``. ! ? …`` (plus closing quotes/brackets) unless that is a title, an
    initial, an abbreviation before a number, or a lowercase word follows. Longer sentences are split
    at commas/semicolons/colons/dashes, then between words.
    """
    if max_chars < 20:
        raise TextError(f"max_chars must be at least 20, got {max_chars}")
    out: list[str] = []
    for para in _PARAGRAPH.split(_clean(text)):
        para = _RE_WS.sub(" ", para).strip()
        if not para:
            continue
        cut = 0
        sentences = []
        for m in _SENT_END.finditer(para):
            if _ends_sentence(para, m.start(), para[m.end()]):
                sentences.append(para[cut : m.end()].strip())
                cut = m.end()
        sentences.append(para[cut:].strip())
        merged: list[str] = []
        for sentence in sentences:
            if merged and not any(ch.isalnum() for ch in sentence):
                merged[-1] += " " + sentence  # a stray closing quote or bracket: keep it with its sentence
            elif sentence:
                merged.append(sentence)
        for sentence in merged:
            out += _split_long(sentence, max_chars)
    return out


# -- whole texts -----------------------------------------------------------------------------


def _split_phonemes(phonemes: str, max_len: int = MAX_PHONEMES) -> list[str]:
    """A phoneme string over ``max_len``: at clause punctuation, then spaces, then anywhere."""
    if len(phonemes) <= max_len:
        return [phonemes]
    out = []
    for chunk in _pack([p for p in re.split(r"(?<=[,;:—])\s+", phonemes) if p], max_len):
        if len(chunk) <= max_len:
            out.append(chunk)
            continue
        words = []
        for word in chunk.split():
            words += [word[i : i + max_len] for i in range(0, len(word), max_len)]
        out += _pack(words, max_len)
    return out


def pieces(text: str, accent: str = "us", max_chars: int = DEFAULT_MAX_CHARS) -> list[tuple[str, str]]:
    """``(piece of text, its phonemes)`` for each piece of :func:`split_sentences` (pieces with nothing to
    pronounce, e.g. a stray ``"..."``, are left out). Any length of text; :class:`TextError` if none is left."""
    _check_not_empty(text)
    acc = canonical_accent(accent)
    check_script(text)
    out = []
    for piece in split_sentences(text, max_chars):
        phonemes = _g2p_piece(piece, acc)
        if has_pronounceable(phonemes):
            out += [(piece, p) for p in _split_phonemes(phonemes) if has_pronounceable(p)]
    if not out:
        raise TextError(f"text {_shorten(text)!r} has nothing to pronounce (only punctuation or symbols)")
    return out


def phonemize(text: str, accent: str = "us", max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """One phoneme string per piece of :func:`split_sentences` (see :func:`pieces`)."""
    return [p for _, p in pieces(text, accent, max_chars)]


def text_to_ids(
    text: str,
    symbols: Sequence[str] = DEFAULT_SYMBOLS,
    accent: str = "us",
    max_chars: int = DEFAULT_MAX_CHARS,
) -> list[list[int]]:
    """Token IDs per piece of text, each ``[BOUNDARY, *symbols, BOUNDARY]`` (see :func:`phonemize`)."""
    return [phonemes_to_ids(p, symbols) for p in phonemize(text, accent, max_chars)]
