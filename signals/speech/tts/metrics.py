"""How synthesized speech is judged: intelligibility (WER of an offline recogniser) and speaker similarity.

Torch-free (numpy; pocketsphinx only when the recogniser is used, from the ``eval`` extra).

- :func:`normalize_text`: the one English normalisation that the reference text and the recogniser's
  output both go through before scoring (lowercase, numbers to words, punctuation out, hyphens split,
  British spellings and common abbreviations merged with the forms the recogniser writes).
- :func:`word_errors` / :func:`wer` / :func:`corpus_wer`: word-level edit distance; WER =
  (substitutions + deletions + insertions) / reference words; the corpus figure is total errors over
  total reference words (not the mean of per-utterance rates).
- :class:`PocketSphinxASR`: ``pocketsphinx==5.1.1`` with its bundled US-English acoustic model,
  dictionary and language model; any float waveform and rate in, text out.
- :func:`cosine`, :func:`clone_similarity`, :func:`clone_sv_eer`: speaker similarity of clones to
  their references, and the SV2TTS paper's speaker-verification EER of clones against references
  (the EER itself is :func:`signals.speech.encoder.metrics.equal_error_rate`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signals.errors import SignalsError
from signals.speech.encoder.metrics import EER, equal_error_rate

__all__ = [
    "ASR_VERSION",
    "ClonePairs",
    "EvalDependencyError",
    "PocketSphinxASR",
    "WordErrors",
    "bootstrap_ci",
    "clone_similarity",
    "clone_sv_eer",
    "corpus_wer",
    "cosine",
    "normalize_text",
    "number_to_words",
    "wer",
    "word_errors",
]

# The recogniser every WER in this project is measured with (numbers are not comparable across versions).
ASR_VERSION = "5.1.1"

# --------------------------------------------------------------------------------------------------
# Text normalisation
# --------------------------------------------------------------------------------------------------

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}


def _below_1000(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def _cardinal(n: int) -> list[str]:
    if n < 0:
        return ["minus", *_cardinal(-n)]
    if n >= 10**15:  # read out digit by digit
        return [_ONES[int(d)] for d in str(n)]
    words: list[str] = []
    for value, name in _SCALES:
        if n >= value:
            words += [*_below_1000(n // value), name]
            n %= value
    if n or not words:
        words += _below_1000(n)
    return words


def _year(n: int) -> list[str]:
    """1984 -> nineteen eighty four, 1905 -> nineteen oh five, 1900 -> nineteen hundred, 2019 -> twenty nineteen."""
    hi, lo = divmod(n, 100)
    if lo == 0:
        return [*_below_1000(hi), "hundred"]
    return [*_below_1000(hi), *(["oh", _ONES[lo]] if lo < 10 else _below_1000(lo))]


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return [*words[:-1], last]


def _plural(words: list[str]) -> list[str]:
    last = words[-1]
    last = last[:-1] + "ies" if last.endswith("y") else last + ("es" if last.endswith(("x", "s")) else "s")
    return [*words[:-1], last]


def number_to_words(number: str | int, style: str = "cardinal") -> str:
    """``"1,234"`` -> ``"one thousand two hundred thirty four"`` (American: no "and").

    ``style``: ``"cardinal"``; ``"year"`` (read in pairs: 1984 -> "nineteen eighty four"; 2000-2009 as
    cardinals); ``"ordinal"`` (21 -> "twenty first"); ``"digits"`` (each digit). Decimals (``"3.05"``)
    read "three point zero five".
    """
    s = str(number).replace(",", "").strip()
    if not re.fullmatch(r"-?\d+(\.\d+)?", s):
        raise ValueError(f"not a number: {number!r}")
    if "." in s:
        whole, frac = s.split(".")
        return " ".join([*_cardinal(int(whole)), "point", *(_ONES[int(d)] for d in frac)])
    n = int(s)
    if style == "cardinal":
        words = _cardinal(n)
    elif style == "year":
        words = _year(n) if 1000 <= n <= 9999 and not 2000 <= n <= 2009 else _cardinal(n)
    elif style == "ordinal":
        words = _ordinal(_cardinal(n))
    elif style == "digits":
        words = [_ONES[int(d)] for d in s.lstrip("-")]
    else:
        raise ValueError(f"unknown number style {style!r}: cardinal, year, ordinal or digits")
    return " ".join(words)


def _is_year(n: int) -> bool:
    return 1100 <= n <= 1999 or 2010 <= n <= 2099


_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
             "€": ("euro", "euros", "cent", "cents")}
_MAGNITUDE = {"k": "thousand", "m": "million", "bn": "billion", "thousand": "thousand", "million": "million",
              "billion": "billion", "trillion": "trillion"}
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"


def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCY[m.group(1)]
    amount, magnitude = m.group(2).replace(",", ""), (m.group(3) or "").strip()
    if magnitude:
        return f" {number_to_words(amount)} {_MAGNITUDE[magnitude]} {many} "
    whole, _, frac = amount.partition(".")
    words = f"{number_to_words(whole)} {one if int(whole) == 1 else many}"
    if len(frac) == 2 and int(frac):
        words += f" {number_to_words(frac)} {sub_one if int(frac) == 1 else sub_many}"
    elif frac and int(frac):
        words = f"{number_to_words(amount)} {many}"
    return f" {words} "


def _integer(m: re.Match) -> str:
    s = m.group(0)
    n = int(s.replace(",", ""))
    if "," not in s and _is_year(n):
        return f" {number_to_words(n, 'year')} "
    if len(s) > 1 and s.startswith("0"):  # 007, 0800: read digit by digit
        return f" {number_to_words(s, 'digits')} "
    return f" {number_to_words(n)} "


def _expand_numbers(s: str) -> str:
    s = re.sub(rf"([$£€])\s?({_NUM})(\s?(?:bn|k|m|thousand|million|billion|trillion)\b)?", _money, s)
    s = re.sub(rf"({_NUM})\s?%", lambda m: f" {number_to_words(m.group(1))} percent ", s)
    s = re.sub(r"(?<![\w.])'?(\d\d)s\b", lambda m: " " + " ".join(_plural(_cardinal(int(m.group(1))))) + " ", s)
    s = re.sub(r"\b(\d{4})s\b", lambda m: " " + " ".join(_plural(
        _year(int(m.group(1))) if _is_year(int(m.group(1))) else _cardinal(int(m.group(1))))) + " ", s)
    s = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: f" {number_to_words(m.group(1), 'ordinal')} ", s)
    s = re.sub(r"\b(\d{1,2}):(\d\d)\b", lambda m: " " + number_to_words(m.group(1)) + (
        "" if m.group(2) == "00" else " " + (f"oh {_ONES[int(m.group(2))]}" if m.group(2)[0] == "0"
                                             else number_to_words(m.group(2)))) + " ", s)
    s = re.sub(r"\d{1,3}(?:,\d{3})+\.\d+|\d+\.\d+", lambda m: f" {number_to_words(m.group(0))} ", s)
    s = re.sub(r"\d{1,3}(?:,\d{3})+|\d+", _integer, s)
    return s


def _inflect(stems: str, endings: Sequence[str], us: str, uk: str) -> dict[str, str]:
    out = {}
    for stem in stems.split():
        for e in endings:
            out[stem + uk + e] = stem + us + e
    return out


# British spellings -> the American ones of the recogniser's dictionary (and a few words it writes two
# ways). Applied to both sides, so only the merging matters. Same pronunciation only: "learnt", "amongst",
# "aluminium" stay as they are.
_OUR = ("behavi col demean endeav fav flav harb hon hum lab neighb od rum savi sav vap vig arm parl "
        "splend cand clam ferv rig tum")
_ISE = ("real recogn organ critic emphas apolog author capital categor civil final character energ legal "
        "maxim minim mobil modern normal penal priorit privat public social special stabil subsid summar "
        "sympath util visual memor central global harmon hospital item jeopard local neutral optim patron "
        "popular scrutin standard terror theor urban vandal ideal agon fertil familiar immun colon "
        "democrat industrial commercial computer custom dramat economi fantas human immobil liberal "
        "marginal monopol national natural oxid polar sanit tranquil trivial")
_VARIANTS: dict[str, str] = {
    **_inflect(_OUR, ("", "s", "ed", "ing", "able", "ably", "al", "ally", "er", "ers", "ful", "hood",
                      "hoods", "ite", "ites", "less", "ly", "y"), "or", "our"),
    **_inflect(_ISE, ("e", "es", "ed", "ing", "er", "ers", "ation", "ations"), "iz", "is"),
    **_inflect("anal paral catal", ("e", "ed", "ing"), "yz", "ys"),
    **_inflect("cent theat met kilomet centimet millimet lit fib calib somb spect lust meag", ("", "s"), "er", "re"),
    "centred": "centered", "centring": "centering",
    **_inflect("defen offen licen preten", ("", "s"), "se", "ce"),
    **_inflect("trave cance labe mode fue leve signa counse quarre reve tota dia channe tunne mode jewe",
               ("ed", "ing", "er", "ers"), "l", "ll"),
    **_inflect("catal dial anal monol prol epil", ("", "s"), "og", "ogue"),
    "counsellor": "counselor", "counsellors": "counselors", "jewellery": "jewelry",
    "marvellous": "marvelous", "woollen": "woolen", "enrolment": "enrollment", "fulfil": "fulfill",
    "skilful": "skillful", "instalment": "installment", "wilful": "willful", "programme": "program",
    "programmes": "programs", "grey": "gray", "greys": "grays", "tyre": "tire", "tyres": "tires",
    "kerb": "curb", "plough": "plow", "cheque": "check", "cheques": "checks", "sceptical": "skeptical",
    "sceptic": "skeptic", "sceptics": "skeptics", "mould": "mold", "smoulder": "smolder", "storey": "story",
    "storeys": "stories", "pyjamas": "pajamas", "ageing": "aging", "judgement": "judgment",
    "judgements": "judgments", "acknowledgement": "acknowledgment", "practise": "practice",
    "practised": "practiced", "practising": "practicing", "whisky": "whiskey", "draught": "draft",
    "gaol": "jail", "doughnut": "donut", "doughnuts": "donuts", "artefact": "artifact",
    "artefacts": "artifacts", "yoghurt": "yogurt", "manoeuvre": "maneuver", "manoeuvres": "maneuvers",
    "foetus": "fetus", "diarrhoea": "diarrhea", "oestrogen": "estrogen", "paediatric": "pediatric",
    "paedophile": "pedophile", "paedophiles": "pedophiles", "anaemia": "anemia", "anaesthetic": "anesthetic",
    "encyclopaedia": "encyclopedia", "orthopaedic": "orthopedic", "haemorrhage": "hemorrhage",
    "e-mail": "email", "e-mails": "emails", "ok": "okay", "mr": "mister",
    "mrs": "missus", "dr": "doctor", "vs": "versus", "etc": "et cetera",
}

_TRANSLATE = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "´": "'", "`": "'", "“": '"', "”": '"',
                            "„": '"', "«": '"', "»": '"', "—": " ", "–": " ", "‐": "-", "‑": "-", "−": "-",
                            "&": " and ", "@": " at ", "+": " plus ", "=": " equals ", "_": " "})
_ASR_MARKUP = re.compile(r"(?<=\w)\(\d+\)|<[^>]*>|\[[^\]]*\]|\+\+[^+]*\+\+")  # word(2), <sil>, [noise], ++um++


def normalize_text(text: str) -> str:
    """The scoring form of an English text: lowercase words separated by single spaces.

    Steps: Unicode NFKC, accents stripped, curly quotes and dashes unified; lowercase; numbers to words
    (``1,200`` "one thousand two hundred", ``1984`` "nineteen eighty four", ``1990s``, ``21st``,
    ``3.5``, ``5%``, ``$4.50``, ``10:30``); ``&`` -> "and"; hyphens, slashes and every other punctuation
    split words (``long-term`` -> "long term"); apostrophes are kept inside words (``don't``,
    ``it's``) and dropped at word edges (``students'`` -> "students", ``'em`` -> "em"); ``e-mail`` ->
    "email"; ``mr.``/``ok`` -> "mister"/"okay"; British spellings -> American (``colour`` -> "color",
    ``organised`` -> "organized", ``centre`` -> "center"). Recogniser markup (``word(2)``, ``<sil>``,
    ``[noise]``) is removed. The reference and the hypothesis must both pass through this function.
    """
    s = unicodedata.normalize("NFKC", str(text)).translate(_TRANSLATE)
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    s = _ASR_MARKUP.sub(" ", s.lower())
    s = re.sub(r"\be-mail", "email", s)
    s = _expand_numbers(s)
    s = re.sub(r"[^\w\s']+", " ", s)  # every other punctuation and symbol separates words
    words = []
    for w in s.split():
        w = w.strip("'")
        if w.endswith("'s") and w[:-2] in _VARIANTS:
            w = _VARIANTS[w[:-2]] + "'s"
        if w:
            words += _VARIANTS.get(w, w).split()
    return " ".join(words)


# --------------------------------------------------------------------------------------------------
# Word error rate
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WordErrors:
    """Edit-distance counts of one utterance or a whole corpus (they add up with ``+``)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    ref_words: int = 0
    hyp_words: int = 0
    utterances: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """errors / reference words (can exceed 1 with many insertions)."""
        if self.ref_words == 0:
            if self.errors == 0:
                return 0.0
            raise ValueError(f"WER is undefined: no reference words, {self.insertions} inserted")
        return self.errors / self.ref_words

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(*(a + b for a, b in zip(self._tuple(), other._tuple())))

    def _tuple(self) -> tuple[int, ...]:
        return (self.substitutions, self.deletions, self.insertions, self.ref_words, self.hyp_words,
                self.utterances)

    def as_dict(self) -> dict:
        return {"wer": self.wer if (self.ref_words or not self.errors) else None, "errors": self.errors,
                "substitutions": self.substitutions, "deletions": self.deletions,
                "insertions": self.insertions, "ref_words": self.ref_words, "hyp_words": self.hyp_words,
                "utterances": self.utterances}


def _align(ref: Sequence[str], hyp: Sequence[str]) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of a minimum edit-distance alignment.

    Among alignments of equal cost the backtrace prefers a match/substitution, then a deletion, so
    counts are deterministic.
    """
    n, m = len(ref), len(hyp)
    d = [list(range(m + 1))]
    for i in range(1, n + 1):
        r, prev, row = ref[i - 1], d[i - 1], [i] + [0] * m
        for j in range(1, m + 1):
            row[j] = min(prev[j - 1] + (r != hyp[j - 1]), prev[j] + 1, row[j - 1] + 1)
        d.append(row)
    s = dl = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            s += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and d[i][j] == d[i - 1][j] + 1:
            dl += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return int(s), dl, ins


def word_errors(reference: str | Sequence[str], hypothesis: str | Sequence[str], normalize: bool = True) -> WordErrors:
    """Substitutions, deletions and insertions turning ``reference`` into ``hypothesis``.

    Strings are passed through :func:`normalize_text` (``normalize=False``: split on whitespace only);
    lists of words are used as they are.
    """

    def words(x) -> list[str]:
        if isinstance(x, str):
            return (normalize_text(x) if normalize else x).split()
        return list(x)

    ref, hyp = words(reference), words(hypothesis)
    s, d, i = _align(ref, hyp)
    return WordErrors(s, d, i, len(ref), len(hyp), 1)


def wer(reference: str | Sequence[str], hypothesis: str | Sequence[str], normalize: bool = True) -> float:
    """Word error rate of one utterance: (S + D + I) / reference words.

    An empty hypothesis scores 1.0; a reference with no words raises ``ValueError`` unless the
    hypothesis is empty too (0.0).
    """
    return word_errors(reference, hypothesis, normalize).wer


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str], normalize: bool = True) -> WordErrors:
    """Summed :class:`WordErrors` of paired utterances; ``.wer`` is total errors / total reference words."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    total = WordErrors()
    for ref, hyp in zip(references, hypotheses):
        total = total + word_errors(ref, hyp, normalize)
    return total


def bootstrap_ci(values: Sequence[float], weights: Sequence[float] | None = None, resamples: int = 2000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of ``sum(values) / sum(weights)`` (``weights`` None: the mean of
    ``values``) with the items resampled with replacement.

    For a corpus WER, ``values`` are each utterance's word errors and ``weights`` its reference words;
    for a mean similarity, the cosines alone. The interval says how far the figure would move with
    another draw of the same number of sentences (voices and model fixed). None with fewer than 2 items.
    """
    v = np.asarray(values, dtype=np.float64)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64)
    if v.shape != w.shape or v.ndim != 1:
        raise ValueError(f"values {v.shape} and weights {w.shape} must be two 1-D arrays of the same length")
    if v.size < 2:
        return None
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    idx = np.random.default_rng(seed).integers(0, v.size, size=(resamples, v.size))
    den = w[idx].sum(1)
    stats = v[idx].sum(1) / np.where(den > 0, den, np.nan)
    lo, hi = np.nanpercentile(stats, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


# --------------------------------------------------------------------------------------------------
# Recogniser
# --------------------------------------------------------------------------------------------------


class EvalDependencyError(SignalsError, ImportError):
    """An optional evaluation dependency (the ``eval`` extra) is not installed."""


class PocketSphinxASR:
    """Offline English recogniser: ``pocketsphinx`` with its bundled US-English model (16 kHz).

    >>> asr = PocketSphinxASR()
    >>> asr.transcribe(wav, 22050)        # float waveform [T] (or [C, T], mixed to mono), any rate
    'printing in the only sense ...'

    The audio is resampled to 16 kHz (:func:`signals.speech.audio.resample`), peak-normalised (so the
    transcript does not depend on the level), converted to 16-bit and decoded as one utterance. The
    transcript is lower-case words; pass it through :func:`normalize_text` (as :func:`word_errors`
    does) before scoring. One decoder is built per instance (about 0.3 s) and reused, its front end reset
    before each utterance, so a transcript does not depend on the ones before it; not thread-safe.
    """

    SAMPLE_RATE = 16000

    def __init__(self, **decoder_options) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:
            raise EvalDependencyError(
                f"the speech recogniser for WER needs pocketsphinx=={ASR_VERSION} ({exc}); install the eval "
                "extra: pip install 'signals[eval]'"
            ) from exc
        from importlib.metadata import PackageNotFoundError, version

        try:
            self.version = version("pocketsphinx")
        except PackageNotFoundError:
            self.version = "unknown"
        options = {"samprate": self.SAMPLE_RATE, "loglevel": "FATAL", **decoder_options}
        self._decoder = pocketsphinx.Decoder(**options)

    def transcribe(self, wav: np.ndarray, sample_rate: int) -> str:
        """Words recognised in ``wav`` (``float [T]`` or ``[C, T]`` at ``sample_rate``); ``""`` for silence."""
        from signals.errors import AudioError
        from signals.speech.audio import SILENCE_PEAK, check_finite, resample

        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim == 2:
            wav = wav.mean(axis=0)
        if wav.ndim != 1:
            raise AudioError(f"expected a waveform [T] or [C, T], got shape {wav.shape}")
        check_finite(wav, "audio to transcribe")
        if wav.size == 0:
            return ""
        wav = resample(wav, int(sample_rate), self.SAMPLE_RATE)
        peak = float(np.max(np.abs(wav)))
        if peak < SILENCE_PEAK:
            return ""
        pcm = np.clip(wav * (0.9 * 32767 / peak), -32768, 32767).astype("<i2").tobytes()
        dec = self._decoder
        # The front end adapts its noise and cepstral-mean estimates across utterances, so a shared
        # decoder's transcript depended on what it had heard before (a WER table moved by ~0.01 when
        # other rows' audio changed); a reset makes every utterance decode as on a fresh decoder.
        dec.reinit_feat()
        dec.start_utt()
        dec.process_raw(pcm, full_utt=True)
        dec.end_utt()
        hyp = dec.hyp()
        text = hyp.hypstr if hyp is not None else ""
        return " ".join(_ASR_MARKUP.sub(" ", text).split())

    def transcribe_file(self, path: str | Path) -> str:
        from signals.speech.audio import load_audio

        wav, sr = load_audio(path)
        return self.transcribe(wav, sr)


# --------------------------------------------------------------------------------------------------
# Speaker similarity
# --------------------------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """Cosine similarity of two embeddings ``[D]`` (a float), or row by row of ``[N, D]`` pairs (``[N]``)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"embedding shapes differ: {a.shape} vs {b.shape}")
    c = np.sum(_unit(a) * _unit(b), axis=-1)
    return float(c) if c.ndim == 0 else c


def clone_similarity(clones: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Cosine of each clone ``[N, D]`` with the reference embedding it was cloned from (``[N, D]`` or one
    shared ``[D]``): ``float [N]``. The issue's target is its mean."""
    clones = np.atleast_2d(clones)
    references = np.broadcast_to(np.asarray(references, dtype=np.float64), clones.shape)
    return np.asarray(cosine(clones, references)).reshape(-1)


@dataclass(frozen=True)
class ClonePairs:
    """The trials of :func:`clone_sv_eer` and their result."""

    scores: np.ndarray  # cosine of every (clone, enrolled reference) trial
    labels: np.ndarray  # True where the clone was made for that reference's speaker
    eer: EER

    @property
    def n_target(self) -> int:
        return int(self.labels.sum())

    @property
    def n_nontarget(self) -> int:
        return int((~self.labels).sum())


def clone_sv_eer(clones: np.ndarray, clone_speakers: Sequence[str], references: np.ndarray,
                 reference_speakers: Sequence[str], enroll: str = "speaker") -> ClonePairs:
    """Speaker-verification EER of clones against real references (the SV2TTS paper's SV-EER).

    Every clone ``[N, D]`` (cloned for ``clone_speakers[i]``) is scored by cosine against every
    enrolled reference speaker: a target trial for its own speaker, a non-target trial for each other
    speaker. ``enroll="speaker"`` enrols each speaker with the normalised mean of their reference
    embeddings ``[M, D]``; ``"utterance"`` uses every reference utterance as its own trial. The EER
    comes from :func:`signals.speech.encoder.metrics.equal_error_rate`; it needs at least two speakers.
    """
    clones, references = _unit(np.atleast_2d(clones)), _unit(np.atleast_2d(references))
    if len(clone_speakers) != len(clones) or len(reference_speakers) != len(references):
        raise ValueError(f"{len(clone_speakers)} speaker IDs for {len(clones)} clones / {len(reference_speakers)} "
                         f"for {len(references)} references")
    if clones.shape[1] != references.shape[1]:
        raise ValueError(f"clones have {clones.shape[1]} dimensions but references {references.shape[1]}")
    ref_spk = np.asarray(reference_speakers, dtype=str)
    if enroll == "speaker":
        names = np.unique(ref_spk)
        references = _unit(np.stack([references[ref_spk == s].mean(axis=0) for s in names]))
        ref_spk = names
    elif enroll != "utterance":
        raise ValueError(f"enroll must be 'speaker' or 'utterance', got {enroll!r}")
    missing = sorted(set(map(str, clone_speakers)) - set(ref_spk))
    if missing:
        raise ValueError(f"no reference embedding for clone speaker(s) {missing[:5]}")
    scores = clones @ references.T  # [N, K]
    labels = np.asarray(clone_speakers, dtype=str)[:, None] == ref_spk[None, :]
    scores, labels = scores.ravel(), labels.ravel()
    return ClonePairs(scores=scores, labels=labels, eer=equal_error_rate(scores, labels))
