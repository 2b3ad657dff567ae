"""Closed-ended answers: which option letter (A-D) or Yes/No a free-text prediction gives. Table-driven.

The paper does not publish its extraction rule; this one is documented and tested
(tests/evaluation/test_answer_extraction.py). Rules are tried in order; the first that yields exactly one
answer wins, and its name is stored with the item (`accuracy.rule`). A prediction no rule reads is
`None`, scored as incorrect and counted as `n_unparsed`.

Multiple choice (options inline in the question, "A) ... B) ... C) ... D) ..." or "A. ... B. ..."):
  1. `letter_only`     the whole answer is a letter (any case), optionally bracketed/punctuated: B, b, B., (B), [B]
  2. `letter_lead`     starts with a marked letter then text: "B) Adenocarcinoma", "(B) ...", "B. ...", "B: ..."
  3. `answer_phrase`   "the answer is B", "answer: (B)", "correct option is B", "I choose B", "option B"
  4. `option_text`     the answer equals one option's text, or contains exactly one option's text
                        (an option contained in a longer matching option does not count)
  5. `lone_letter`     exactly one distinct standalone letter A-D in the answer ("A" as an article, i.e.
                        followed by a lowercase word, is not a letter)
Yes/No:
  1. `yes_no_lead`     the first word: yes/yeah/yep/correct/true/affirmative vs no/nope/incorrect/false
  2. `answer_phrase`   "the answer is yes/no"
  3. `polarity_terms`  exactly one polarity among: yes, no, good/favorable/favourable/positive outcome
                        (Yes) and poor/bad/unfavorable/unfavourable/"not good"/"not favorable" (No)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

EXTRACTOR_VERSION = "2026-11.1"
LETTERS = "ABCD"

_OPTION = re.compile(r"(?:(?<=\s)|^)\(?([A-D])[).]\s*(.*?)(?=\s+\(?[A-D][).]\s|\s*$)", re.DOTALL)
_CHOICE_RULES: tuple[tuple[str, re.Pattern], ...] = (
    ("letter_only", re.compile(r"^\W*\(?\[?([A-Da-d])\]?\)?[\s.:;,!\"')\]]*$")),
    ("letter_lead", re.compile(r"^\W*(?:\(([A-D])\)|\[([A-D])\]|([A-D])[).:\]])\s*\S")),
    ("answer_phrase", re.compile(
        r"(?i:answer|option|choice|choose|select|pick)(?i:\s+(?:is|would\s+be|should\s+be))?\s*[:=\-]?\s*"
        r"(?i:(?:option|choice)\s+)?[\"'(\[]?([A-D])(?![\w-])")),
)
_STANDALONE_LETTER = re.compile(r"(?<![\w-])\(?([A-D])\)?(?![\w-])")
_YES_LEAD = {"yes", "yeah", "yep", "correct", "true", "affirmative"}
_NO_LEAD = {"no", "nope", "incorrect", "false", "negative"}
_YES_NO_PHRASE = re.compile(r"answer\s+(?:is|would\s+be)\s*[:\-]?\s*[\"'(]?(yes|no)\b", re.IGNORECASE)
_NO_TERMS = re.compile(r"\b(?:no|poor|bad|unfavou?rable|not\s+(?:good|favou?rable))\b", re.IGNORECASE)
_YES_TERMS = re.compile(r"\b(?:yes|good|favou?rable)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Extraction:
    answer: str | None    # "A".."D" / "Yes" / "No", or None when no rule applies
    rule: str | None      # the rule that matched


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s/+-]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def parse_options(question: str) -> dict[str, str]:
    """{"A": "Squamous cell carcinoma", ...} from the inline options of a multiple-choice question."""
    start = re.search(r"(?:(?<=\s)|^)\(?A[).]\s", question)
    if not start:
        return {}
    options = {}
    for match in _OPTION.finditer(question[start.start():]):
        options.setdefault(match.group(1), match.group(2).strip())
    return options


def extract_choice(prediction: str, options: dict[str, str]) -> Extraction:
    text = prediction.strip()
    for name, pattern in _CHOICE_RULES:
        match = pattern.search(text)
        if match and not _is_article(text, match):
            return Extraction(next(g for g in match.groups() if g).upper(), name)
    letter = _match_option_text(text, options)
    if letter:
        return Extraction(letter, "option_text")
    letters = {m.group(1) for m in _STANDALONE_LETTER.finditer(text) if not _is_article(text, m)}
    if len(letters) == 1:
        return Extraction(letters.pop(), "lone_letter")
    return Extraction(None, None)


def _is_article(text: str, match: re.Match) -> bool:
    """"A" followed by a lowercase word ("A tumor ...", "answer is a ...") is the article, not option A."""
    letter = next(g for g in match.groups() if g)
    return letter == "A" and re.match(r"\s+[a-z]", text[match.end():]) is not None


def _match_option_text(text: str, options: dict[str, str]) -> str | None:
    answer = normalize_text(text)
    normalized = {letter: normalize_text(option) for letter, option in options.items() if normalize_text(option)}
    exact = [letter for letter, option in normalized.items() if option == answer]
    if len(exact) == 1:
        return exact[0]
    contained = [letter for letter, option in normalized.items() if re.search(
        rf"(?<!\w){re.escape(option)}(?!\w)", answer)]
    dominant = [a for a in contained if not any(b != a and normalized[a] in normalized[b] for b in contained)]
    return dominant[0] if len(dominant) == 1 else None


def extract_yes_no(prediction: str) -> Extraction:
    words = normalize_text(prediction).split()
    if words and words[0] in _YES_LEAD:
        return Extraction("Yes", "yes_no_lead")
    if words and words[0] in _NO_LEAD:
        return Extraction("No", "yes_no_lead")
    match = _YES_NO_PHRASE.search(prediction)
    if match:
        return Extraction(match.group(1).capitalize(), "answer_phrase")
    has_no = bool(_NO_TERMS.search(prediction))
    has_yes = bool(_YES_TERMS.search(_NO_TERMS.sub(" ", prediction)))
    if has_no != has_yes:
        return Extraction("No" if has_no else "Yes", "polarity_terms")
    return Extraction(None, None)


def extract_answer(answer_format: str, prediction: str, question: str = "") -> Extraction:
    """The answer a prediction gives, for a task's answer format ("choice" or "yes_no")."""
    if answer_format == "choice":
        return extract_choice(prediction, parse_options(question))
    if answer_format == "yes_no":
        return extract_yes_no(prediction)
    raise ValueError(f"answer format {answer_format!r} is not closed-ended")
