"""Closed-ended answers: which option letter (A-D) or Yes/No a free-text prediction gives. Table-driven.

The paper does not publish its extraction rule; this one is documented and tested
(tests/evaluation/test_answer_extraction.py, with the odd items of the released files). Rules are tried
in order; the first that yields exactly one answer wins, and its name is stored with the item
(`accuracy.rule`). A prediction no rule reads is `None`, scored as incorrect and counted as `n_unparsed`.

Options: the last complete inline sequence "A) ... B) ... C) ... D) ..." (or "(A)", or "A. ...") of the
question (`wsi_bench.records.parse_inline_options`), so a stem ending a sentence with "Luminal A." or
holding "(T4A)" is not taken for the options.

Multiple choice:
  1. `letter_only`     the whole answer is a letter (any case), optionally bracketed/punctuated: B, b, B., (B), [B]
  2. `letter_lead`     starts with a marked letter then text: "B) Adenocarcinoma", "(B) ...", "B. ...", "B: ..."
  3. `answer_phrase`   "the answer is B", "answer: (B)", "correct option is C", "I choose B", "option B"
  4. `option_text`     the answer equals one option's text, or contains exactly one option's text
                        (an option contained in a longer matching option does not count)
  5. `lone_letter`     exactly one distinct standalone letter A-D in the answer
  A capital "A" followed by a lowercase word is the article ("A tumor is ...") unless that word is a
  connective that never follows the article ("A is correct", "The answer is A because ...").
Yes/No (the question matters: ~30% of WSI-Bench's Prognosis_TF_question items ask "is the prognosis
POOR?", where "the prognosis is poor" means Yes):
  1. `yes_no_lead`     the first word: yes/yeah/yep/correct/true/affirmative vs no/nope/incorrect/false/negative
  2. `answer_phrase`   "the answer is yes/no"
  3. `polarity_terms`  the prediction states exactly one prognosis polarity: good/favourable/excellent or
                        "not poor" (good) vs poor/bad/unfavourable/grim or "not good" (poor); it is mapped to
                        Yes/No through the polarity the question asks about (the first good/poor word after
                        its last "prognosis"; "poorly" does not count; default "good"). A question that asks
                        "good or poor?" cannot be answered by polarity words: only rules 1-2 read it.

References are read strictly (`read_reference`): a single option letter (stray quotes, backticks or
punctuation around it are tolerated: the released data has `B "` and `C ```), an option's exact text,
or Yes/No. Anything else (a sentence, a pasted question, a letter that is not an option, an item whose
correct option has the same text as another option) is an invalid reference with the reason: the item
gets `correct: null`, is left out of the accuracy and is listed in summary.json `invalid_references`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from wsi_bench.records import parse_inline_options

EXTRACTOR_VERSION = "2026-11.2"
LETTERS = "ABCD"

_CHOICE_RULES: tuple[tuple[str, re.Pattern], ...] = (
    ("letter_only", re.compile(r"^\W*\(?\[?([A-Da-d])\]?\)?[\s.:;,!\"')\]]*$")),
    ("letter_lead", re.compile(r"^\W*(?:\(([A-D])\)|\[([A-D])\]|([A-D])[).:\]])\s*\S")),
    ("answer_phrase", re.compile(
        r"(?i:answer|option|choice|choose|select|pick)(?i:\s+(?:is|would\s+be|should\s+be))?\s*[:=\-]?\s*"
        r"(?i:(?:option|choice)\s+)?[\"'(\[]?([A-D])(?![\w-])")),
)
_STANDALONE_LETTER = re.compile(r"(?<![\w-])\(?([A-D])\)?(?![\w-])")
# Lowercase words that never follow the article "a": after a capital A they make it option A.
_CONNECTIVES = frozenset("""because since as is was would should could seems seem appears fits matches and or but
which that here there being due""".split())
_YES_LEAD = {"yes", "yeah", "yep", "correct", "true", "affirmative"}
_NO_LEAD = {"no", "nope", "incorrect", "false", "negative"}
_YES_NO_PHRASE = re.compile(r"answer\s+(?:is|would\s+be)\s*[:\-]?\s*[\"'(]?(yes|no)\b", re.IGNORECASE)
_POLARITY = re.compile(r"\b(?P<not>not\s+(?:very\s+|so\s+)?)?(?P<word>good|favou?rable|excellent|poor|bad|"
                       r"unfavou?rable|grim|dismal)\b", re.IGNORECASE)
_GOOD_WORDS = {"good", "favorable", "favourable", "excellent"}
_REFERENCE_JUNK = " \t\r\n\"'`.,;:!()[]*"


@dataclass(frozen=True)
class Extraction:
    answer: str | None    # "A".."D" / "Yes" / "No", or None when no rule applies
    rule: str | None      # the rule that matched
    problem: str | None = None   # references only: why the reference cannot be read (`read_reference`)


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s/+-]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def parse_options(question: str) -> dict[str, str]:
    """{"A": "Squamous cell carcinoma", ...} from the inline options of a multiple-choice question."""
    parsed = parse_inline_options(question)
    return parsed[1] if parsed else {}


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
    """"A" followed by a lowercase word ("A tumor ...", "answer is a ...") is the article, not option A,
    unless the word is a connective ("A is correct", "answer is A because ...")."""
    letter = next(g for g in match.groups() if g)
    following = re.match(r"\s+([a-z]+)", text[match.end():])
    return letter == "A" and following is not None and following.group(1) not in _CONNECTIVES


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


def asked_polarity(question: str) -> str | None:
    """"good" or "poor": what a yes/no prognosis question asks about; None for "good or poor?"."""
    at = question.lower().rfind("prognosis")
    tail = question[at:].split("?")[0] if at >= 0 else question
    words = [m.group("word").lower() for m in _POLARITY.finditer(tail)]
    if not words and at >= 0:          # "is it a poor prognosis?": the clause just before the word
        tail = re.split(r"[,.;?]", question[:at])[-1]
        words = [m.group("word").lower() for m in _POLARITY.finditer(tail)]
    if not words:
        return "good"
    first = "good" if words[0] in _GOOD_WORDS else "poor"
    if re.search(rf"\b{re.escape(words[0])}\s+or\s+\w+", tail, re.IGNORECASE):
        return None
    return first


def _stated_polarity(prediction: str) -> str | None:
    stated = set()
    for match in _POLARITY.finditer(prediction):
        good = match.group("word").lower() in _GOOD_WORDS
        stated.add("good" if good != bool(match.group("not")) else "poor")
    return stated.pop() if len(stated) == 1 else None


def extract_yes_no(prediction: str, question: str = "") -> Extraction:
    words = normalize_text(prediction).split()
    if words and words[0] in _YES_LEAD:
        return Extraction("Yes", "yes_no_lead")
    if words and words[0] in _NO_LEAD:
        return Extraction("No", "yes_no_lead")
    match = _YES_NO_PHRASE.search(prediction)
    if match:
        return Extraction(match.group(1).capitalize(), "answer_phrase")
    asked, stated = asked_polarity(question), _stated_polarity(prediction)
    if asked is not None and stated is not None:
        return Extraction("Yes" if stated == asked else "No", "polarity_terms")
    return Extraction(None, None)


def extract_answer(answer_format: str, prediction: str, question: str = "") -> Extraction:
    """The answer a prediction gives, for a task's answer format ("choice" or "yes_no")."""
    if answer_format == "choice":
        return extract_choice(prediction, parse_options(question))
    if answer_format == "yes_no":
        return extract_yes_no(prediction, question)
    raise ValueError(f"answer format {answer_format!r} is not closed-ended")


def read_reference(answer_format: str, reference: str, question: str = "") -> Extraction:
    """The reference answer of a closed item, read strictly (see the module docstring); `problem` says
    why a reference is invalid."""
    core = reference.strip().strip(_REFERENCE_JUNK)
    if answer_format == "yes_no":
        if core.lower() in ("yes", "no"):
            return Extraction(core.capitalize(), "yes_no")
        return Extraction(None, None, f"not Yes or No: {reference[:120]!r}")
    if answer_format != "choice":
        raise ValueError(f"answer format {answer_format!r} is not closed-ended")
    options = parse_options(question)
    if len(core) == 1 and core.upper() in LETTERS:
        letter, rule = core.upper(), "letter"
    else:
        exact = [k for k, v in options.items() if normalize_text(v) and normalize_text(v) == normalize_text(reference)]
        if len(exact) != 1:
            return Extraction(None, None, f"not a single option letter: {reference[:120]!r}")
        letter, rule = exact[0], "option_text"
    if options and letter not in options:
        return Extraction(None, None, f"{letter} is not one of the options ({', '.join(sorted(options))})")
    if options:
        same = [k for k, v in options.items() if k != letter and normalize_text(v) == normalize_text(options[letter])]
        if same:
            return Extraction(None, None, f"options {', '.join(sorted([letter, *same]))} have the same text "
                                          f"({options[letter]!r}): the item cannot tell them apart")
    return Extraction(letter, rule)
