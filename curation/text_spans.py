"""Locate quoted text inside a source with character offsets, and compare texts by their words.

Used wherever the curation pipeline must prove where text came from: cleaning keeps only spans of the
original report (so it cannot add anything), the grounding check locates an answer's evidence in the
cleaned report or the enrichment (the review UI highlights those spans), and the near-duplicate check
compares questions. Matching is exact after normalisation (case, quotes, dashes, whitespace), then
"loose" (letters and digits only), never fuzzy beyond that.

    source = SourceText(report_text)
    span = source.find("Invasive ductal  carcinoma")     # Span(start, end) in report_text, or None
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache

_TRANSLATE = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                            "\u2014": "-", "\u2010": "-", "\u2011": "-", "\u00a0": " ", "\u00b5": "u"})
_WORD = re.compile(r"[a-z0-9]+(?:[-'/.][a-z0-9]+)*")

# Words that carry no fact: function words and the templated words of WSI-Bench questions and answers.
STOPWORDS = frozenset("""
a about above after all also an and any are as at be been being between both but by can could did do
does each either for from had has have having here how however if in into is it its itself may might
more most much must no nor not of on one or other our out over per shows show showing seen such than
that the their them then there these they this those through to under up upon was were what when where
which while who whom why will with within would yes you your i we he she his her based this slide
image images whole wsi observed observation observations present presence noted note notes evident
evidence identified feature features finding findings indicate indicates indicating suggest suggests
suggesting consistent characterized characteristic characteristics appear appears appearance describe
described description overall patient tumor tumour cells cell tissue specimen pathology histopathology
examination example including include includes included level degree pattern patterns
""".split())


@dataclass(frozen=True)
class Span:
    start: int
    end: int  # exclusive

    def text(self, source: str) -> str:
        return source[self.start:self.end]


_STRICT_TOKEN = re.compile(r"\S+")
_LOOSE_TOKEN = re.compile(r"[^\W_]+")


def _normalize(text: str, loose: bool) -> tuple[str, list[int]]:
    """Normalised text and, for each of its characters, the index of the source character it came from.

    Strict: case, quotes and dashes folded, whitespace runs -> one space. Loose: letters and digits only."""
    folded = text.translate(_TRANSLATE).lower()
    if len(folded) != len(text):                  # a character whose lower case is longer (rare): map one by one
        return _normalize_slow(text, loose)
    pieces: list[str] = []
    offsets: list[int] = []
    for match in (_LOOSE_TOKEN if loose else _STRICT_TOKEN).finditer(folded):
        if pieces:
            pieces.append(" ")
            offsets.append(match.start())
        pieces.append(match.group())
        offsets.extend(range(match.start(), match.end()))
    return "".join(pieces), offsets


def _normalize_slow(text: str, loose: bool) -> tuple[str, list[int]]:
    chars: list[str] = []
    offsets: list[int] = []
    pending_space = False
    for index, raw in enumerate(text):
        for ch in raw.translate(_TRANSLATE).lower():
            keep = ch.isalnum() if loose else not ch.isspace()
            if not keep:
                pending_space = pending_space or bool(chars)
                continue
            if pending_space:
                chars.append(" ")
                offsets.append(index)
                pending_space = False
            chars.append(ch)
            offsets.append(index)
    return "".join(chars), offsets


def normalize(text: str, loose: bool = False) -> str:
    folded = text.translate(_TRANSLATE).lower()
    return " ".join((_LOOSE_TOKEN if loose else _STRICT_TOKEN).findall(folded))


@lru_cache(maxsize=512)
def source_text(text: str) -> "SourceText":
    """A cached `SourceText` (the same report is searched by every pair generated from it)."""
    return SourceText(text)


class SourceText:
    """A text prepared for repeated `find` calls (both normalisations computed once)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._strict = _normalize(text, loose=False)
        self._loose = _normalize(text, loose=True)

    def find(self, excerpt: str, start_at: int = 0) -> Span | None:
        """The span of `excerpt` in the source, at or after source offset `start_at`, or None."""
        for loose, (norm, offsets) in ((False, self._strict), (True, self._loose)):
            needle = normalize(excerpt, loose)
            if len(needle) < 3 or not offsets:
                continue
            begin = next((i for i, off in enumerate(offsets) if off >= start_at), len(offsets))
            found = norm.find(needle, begin)
            if found >= 0:
                return Span(offsets[found], offsets[found + len(needle) - 1] + 1)
        return None

    def __contains__(self, excerpt: str) -> bool:
        return self.find(excerpt) is not None


def words(text: str) -> list[str]:
    return _WORD.findall(normalize(text))


def _stem(word: str) -> str:
    for suffix in ("ies", "es", "s"):
        if len(word) > 4 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def content_words(text: str) -> frozenset[str]:
    """Lower-cased, crudely de-pluralised words that carry content (no stop words, no 1-letter words)."""
    return _content_words(text)


@lru_cache(maxsize=2048)
def _content_words(text: str) -> frozenset[str]:
    return frozenset(_stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1)


def coverage(text: str, sources: list[str]) -> float:
    """The share of `text`'s content words that occur in any of `sources` (1.0 for text without any)."""
    wanted = content_words(text)
    if not wanted:
        return 1.0
    have: set[str] = set()
    for source in sources:
        have |= content_words(source)
    return len(wanted & have) / len(wanted)


def similarity(a: str, b: str, at_least: float = 0.0) -> float:
    """0..1 similarity of two short texts after normalisation (for near-duplicate detection).

    With `at_least`, pairs that cannot reach it (by difflib's cheap upper bounds) return 0.0 at once."""
    na, nb = _loose(a), _loose(b)
    if not na or not nb:
        return 0.0
    if na == nb:
        return 1.0
    matcher = difflib.SequenceMatcher(None, na, nb, autojunk=False)
    if at_least and (matcher.real_quick_ratio() < at_least or matcher.quick_ratio() < at_least):
        return 0.0
    return matcher.ratio()


@lru_cache(maxsize=4096)
def _loose(text: str) -> str:
    return normalize(text, loose=True)
