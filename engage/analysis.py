"""Offline enrichment of incoming posts: language, sentiment and priority signals.

Pure functions, no database. English sentiment comes from vader; Italian has no offline
lexicon on PyPI, so it is scored with our own (engage/lexicon/it.tsv) in vader's manner:
valences from -4 to +4, negation, boosters, "but" clauses, emphasis, normalised to -1..1.
The detector, vader and the lexicons are built on first use and kept for the process;
two threads racing on the first call may both build them, which is harmless.
"""

import functools
import html
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lingua import Language, LanguageDetector, LanguageDetectorBuilder
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from engage.choices import Sentiment

LEXICON_DIR = Path(__file__).parent / "lexicon"

LANGUAGES = (
    Language.ITALIAN,
    Language.ENGLISH,
    Language.SPANISH,
    Language.FRENCH,
    Language.GERMAN,
    Language.PORTUGUESE,
)
# Below this, lingua is guessing: "lol ok" as German, "iPhone XR" as German, "Amazon Prime"
# as Spanish. Clear posts of three words or more score well above it.
MIN_LANGUAGE_CONFIDENCE = 0.4
MIN_WORDS = 2
DETECTION_SAMPLE = 100  # characters

# vader's thresholds for its compound score; our Italian score is normalised the same way.
POSITIVE_FROM = 0.05
NEGATIVE_FROM = -0.05

# vader's constants, so that Italian and English scores move alike.
NORMALISATION_ALPHA = 15
NEGATION_SCALAR = -0.74
BOOST = 0.293
CAPS_BOOST = 0.733
EXCLAMATION_BOOST = 0.292
MAX_EXCLAMATIONS = 4
# "ma" halves what came before and weighs what follows by half again, like vader's "but".
BEFORE_CONTRAST, AFTER_CONTRAST = 0.5, 1.5
# A negator reaches this many words ahead: "non mi hanno risposto", "non è per niente male".
NEGATION_REACH = 3
MIN_STEM = 3

# Compared with the lowercase word before accents are dropped, so "né" is not "ne".
# "poco" works as a negator in Italian: "poco chiaro", "poco professionali".
NEGATORS = frozenset(
    {"non", "mai", "nessun", "nessuno", "nessuna", "niente", "nulla", "né", "senza"}
    | {"neanche", "nemmeno", "neppure", "zero", "poco"}
)
BOOSTERS = frozenset(
    {"molto", "davvero", "veramente", "super", "troppo", "proprio", "tanto", "tantissimo"}
    | {"estremamente", "assolutamente", "completamente", "totalmente", "decisamente"}
    | {"particolarmente", "incredibilmente", "vivamente", "cosi", "talmente", "parecchio"}
)
DAMPENERS = frozenset(
    {"abbastanza", "piuttosto", "leggermente", "quasi", "alquanto", "relativamente", "po"}
)
CONTRASTS = frozenset({"ma", "pero", "tuttavia", "eppure"})
CLAUSE_ENDS = frozenset(".,;:!?")
# What "#" stands for in signals.tsv: "3 days", "tre giorni", "a few weeks".
QUANTITIES = frozenset(
    {"un", "una", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove", "dieci"}
    | {"qualche", "alcuni", "alcune", "diversi", "diverse", "molti", "tanti", "parecchi"}
    | {"one", "two", "three", "four", "five", "six", "seven", "ten", "few", "several", "many"}
)

_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@\w+")
# Words (letters only, so apostrophes split "l'ora"), numbers, and clause punctuation.
_TOKEN = re.compile(r"[^\W\d_]+|\d+|[.,;:!?]")
# "bravissimiii", "graziee": three or more of a letter is emphasis, not spelling.
_ELONGATION = re.compile(r"([^\W\d_])\1{2,}")
_VARIATION_SELECTOR = "\ufe0f"


@dataclass(frozen=True, slots=True)
class Entry:
    """A lexicon term's valence, and its valence when negated if that is not just flipped."""

    score: float
    negated: float | None = None


class PhraseIndex[V]:
    """Words, stems ("delus*") and phrases, found at a position in a list of words.

    Buckets are keyed by the first three letters of a term, so a lookup tries only a
    handful of candidates; the longest phrase wins, then the most specific spelling.
    """

    def __init__(self, terms: Iterator[tuple[str, V]]) -> None:
        buckets: dict[str, list[tuple[tuple[str, ...], V]]] = defaultdict(list)
        for term, value in terms:
            words = tuple(_fold(word) for word in term.replace("'", " ").split())
            if any(w.endswith("*") and len(w) <= MIN_STEM for w in words):
                raise ValueError(f"Stem too short in lexicon term {term!r}")
            buckets[words[0].rstrip("*")[:MIN_STEM]].append((words, value))
        for candidates in buckets.values():
            candidates.sort(key=_specificity, reverse=True)
        self._buckets = dict(buckets)

    def match(self, words: Sequence[str], at: int) -> tuple[V, int] | None:
        """The value of the best term starting at words[at], and how many words it spans."""
        candidates = self._buckets.get(words[at][:MIN_STEM], [])
        if _is_quantity(words[at]):
            candidates = candidates + self._buckets.get("#", [])
        for patterns, value in candidates:
            if _matches(patterns, words, at):
                return value, len(patterns)
        return None


def _specificity(candidate: tuple[tuple[str, ...], object]) -> tuple[int, int]:
    patterns = candidate[0]
    return len(patterns), sum(len(p) + (not p.endswith("*")) * 100 for p in patterns)


def _matches(patterns: tuple[str, ...], words: Sequence[str], at: int) -> bool:
    if at + len(patterns) > len(words):
        return False
    for pattern, word in zip(patterns, words[at:], strict=False):
        if pattern == "#":
            if not _is_quantity(word):
                return False
        elif pattern.endswith("*"):
            if not word.startswith(pattern[:-1]):
                return False
        elif word != pattern:
            return False
    return True


def _is_quantity(word: str) -> bool:
    return word.isdigit() or word in QUANTITIES


def _fold(word: str) -> str:
    """Lowercase without accents: "Più" -> "piu", so "perchè" and "perché" agree."""
    word = word.lower()
    if word.isascii():
        return word
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def _read_tsv(name: str) -> Iterator[list[str]]:
    with (LEXICON_DIR / name).open(encoding="utf-8") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if line.strip() and not line.startswith("#"):
                yield line.split("\t")


@functools.cache
def _italian_lexicon() -> PhraseIndex[Entry]:
    return PhraseIndex(
        (row[0], Entry(float(row[1]), float(row[2]) if len(row) > 2 else None))
        for row in _read_tsv("it.tsv")
    )


@functools.cache
def _signal_terms() -> PhraseIndex[str]:
    return PhraseIndex((term, signal) for signal, term in _read_tsv("signals.tsv"))


@functools.cache
def _emoji_scores() -> dict[str, float]:
    return {
        row[0].replace(_VARIATION_SELECTOR, ""): float(row[1]) for row in _read_tsv("emoji.tsv")
    }


@functools.cache
def _emoji_pattern() -> re.Pattern[str]:
    # Longest first, so that ":-(" is not read as ":-" plus something else.
    symbols = sorted(_emoji_scores(), key=len, reverse=True)
    return re.compile("|".join(re.escape(symbol) for symbol in symbols))


@functools.cache
def _detector() -> LanguageDetector:
    # High accuracy mode: low accuracy mode reads short Italian posts as English or French
    # ("nessun problema, grazie mille", "non è male"). Measured here with these six
    # languages it saves no memory (~36 MB either way) and ~0.1 ms a short post.
    return LanguageDetectorBuilder.from_languages(*LANGUAGES).build()


@functools.cache
def _vader() -> SentimentIntensityAnalyzer:
    analyzer = SentimentIntensityAnalyzer()
    # vader turns emoji into their English names and scores the names, which leaves
    # 😡 👍 👎 🤬 at 0. Our analyzer scores our table's emoji as words instead (its own
    # emoticons such as ":)" keep vader's scores); this changes our instance only.
    for symbol, score in _emoji_scores().items():
        analyzer.lexicon.setdefault(symbol, score)
        analyzer.emojis.pop(symbol, None)
    return analyzer


def _strip_markup(text: str) -> str:
    """The post's own words: entities decoded, no links, no @handles, no "#" markers."""
    text = html.unescape(text).replace(_VARIATION_SELECTOR, "")
    text = _MENTION.sub(" ", _URL.sub(" ", text))
    return text.replace("#", " ")


def detect_language(text: str) -> str:
    """ISO 639-1 code: "it", "en", or one of a few others ("es", "fr", "de", "pt"); "" when
    the text is too short or lingua is not confident."""
    words = [token for token in _TOKEN.findall(_strip_markup(text)) if token.isalpha()]
    if sum(1 for word in words if len(word) > 1) < MIN_WORDS:
        return ""
    # Single letters still count for lingua: "è" is as Italian as a word gets. Lingua's
    # time grows with the text, and a hundred characters already tell languages apart.
    sample = " ".join(words)[:DETECTION_SAMPLE]
    best = _detector().compute_language_confidence_values(sample)[0]
    if best.value < MIN_LANGUAGE_CONFIDENCE:
        return ""
    return best.language.iso_code_639_1.name.lower()


def sentiment_score(text: str, language: str) -> float:
    """-1.0 (very negative) .. +1.0 (very positive)."""
    text = _strip_markup(text)
    if language == "en":
        return _vader_score(text)
    valence, hits = _italian_valence(text)
    # Other languages and undetected ones (short posts, emoji only) get the Italian
    # scorer when it recognises something, vader otherwise.
    if language == "it" or hits:
        return _normalise(valence)
    return _vader_score(text)


def sentiment(text: str, language: str) -> str:
    """The label of the score: "positive", "neutral" or "negative" (engage.choices.Sentiment)."""
    score = sentiment_score(text, language)
    if score >= POSITIVE_FROM:
        return Sentiment.POSITIVE
    if score <= NEGATIVE_FROM:
        return Sentiment.NEGATIVE
    return Sentiment.NEUTRAL


def priority_signals(text: str, *, language: str, sentiment: str) -> frozenset[str]:
    """Which of these signals the text shows: "negative" (sentiment is negative), "refund"
    (refund / money back / chargeback / cancel my order / rimborso / rimborsare / soldi
    indietro / disdetta / recesso / reclamo / avvocato / lawyer ...), "waiting" (still
    waiting, no answer, days/weeks, ancora in attesa, nessuna risposta, da giorni, sto
    aspettando ...). Match on word stems, case-insensitive, in Italian and English whatever
    the detected language."""
    # language is accepted for callers' symmetry but unused: people mix languages, and a
    # misdetected short post must still raise its signals.
    signals = {"negative"} if sentiment == Sentiment.NEGATIVE else set()
    words = [_fold(token) for token in _TOKEN.findall(_strip_markup(text))]
    terms = _signal_terms()
    at = 0
    while at < len(words):
        found = terms.match(words, at)
        if found is None:
            at += 1
        else:
            signal, length = found
            signals.add(signal)
            at += length
    return frozenset(signals)


def _vader_score(text: str) -> float:
    # Spaces around our emoji make vader see them as words even when glued to text.
    text = _emoji_pattern().sub(lambda m: f" {m.group()} ", text)
    return _vader().polarity_scores(text)["compound"]


def _normalise(valence: float) -> float:
    """Map a valence sum to -1..1 as vader's compound does."""
    return valence / math.sqrt(valence * valence + NORMALISATION_ALPHA)


def _italian_valence(text: str) -> tuple[float, int]:
    """The summed valence of an Italian text and how many sentiment-bearing terms it has."""
    emoji = _emoji_pattern().findall(text)
    emoji_valence = [_emoji_scores()[symbol] for symbol in emoji]
    text = _emoji_pattern().sub(" ", _ELONGATION.sub(r"\1", text))
    tokens = _TOKEN.findall(text)
    words = [_fold(token) for token in tokens]

    lexicon = _italian_lexicon()
    valences: list[float] = []
    negated_for = 0  # how many more words the last negator reaches
    weight = 1.0
    at = 0
    while at < len(words):
        word = words[at]
        if word in CLAUSE_ENDS:
            negated_for = 0
            at += 1
            continue
        if word in CONTRASTS:
            valences = [v * BEFORE_CONTRAST for v in valences]
            weight, negated_for = AFTER_CONTRAST, 0
            at += 1
            continue
        found = lexicon.match(words, at)
        if found is None:
            negated_for = NEGATION_REACH if tokens[at].lower() in NEGATORS else negated_for - 1
            at += 1
            continue
        entry, length = found
        emphasis = _boost(words, at) + (CAPS_BOOST if _is_shouted(tokens[at]) else 0.0)
        valence = _term_valence(entry, negated=negated_for > 0, emphasis=emphasis)
        if valence:
            valences.append(valence * weight)
        negated_for -= length
        at += length

    total = sum(valences) + sum(emoji_valence)
    if total:
        exclamations = min(text.count("!"), MAX_EXCLAMATIONS)
        total += math.copysign(exclamations * EXCLAMATION_BOOST, total)
    hits = len(valences) + sum(1 for v in emoji_valence if v)
    return total, hits


def _term_valence(entry: Entry, *, negated: bool, emphasis: float) -> float:
    valence = entry.score
    if negated:
        valence = entry.negated if entry.negated is not None else valence * NEGATION_SCALAR
    if valence:
        # Emphasis strengthens whichever way the term leans; a dampener is negative emphasis.
        valence += emphasis if valence > 0 else -emphasis
    return valence


def _boost(words: Sequence[str], at: int) -> float:
    """Emphasis from boosters and dampeners among the two words before, the nearer weighing more."""
    emphasis = 0.0
    for distance, word in enumerate(reversed(words[max(0, at - 2) : at])):
        scale = 1.0 if distance == 0 else 0.95
        if word in BOOSTERS:
            emphasis += BOOST * scale
        elif word in DAMPENERS:
            emphasis -= BOOST * scale
    return emphasis


def _is_shouted(token: str) -> bool:
    return len(token) > 1 and token.isupper()


def mentions_any(text: str, keywords: str) -> bool:
    """Whether `text` mentions one of the comma-separated `keywords` as a whole word or
    phrase, ignoring case, accents and spacing: "cafe" finds "Café", "acme" finds "ACME's"
    but not "acmeville". No keywords at all match everything."""
    terms = [term for term in (_folded(term) for term in (keywords or "").split(",")) if term]
    if not terms:
        return True
    haystack = _folded(text)
    return any(re.search(rf"(?<!\w){re.escape(term)}(?!\w)", haystack) for term in terms)


def _folded(text: str) -> str:
    return " ".join(_fold(text).casefold().split())
