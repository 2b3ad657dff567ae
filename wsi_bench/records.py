"""A VQA pair as WSI-Bench writes it: the inline multiple-choice layout, LLaVA records, stable pair ids.

Closed-ended WSI-Bench questions carry their options inline ("... ? A) x B) y C) z D) w") and answer with
one letter; yes/no questions answer "Yes" or "No". The store keeps a pair's question stem and options
apart (so a reviewer edits one option) and renders the released layout for the record and the export
(one released item writes "A. x B. y ..."; it is read, and rendered back as "A) x B) y ...").

    text = render_question("Which stage?", {"A": "T1", "B": "T2", "C": "T3", "D": "T4"})
    stem, options = split_choice_question(text)            # back again (used for imported pairs)
"""

from __future__ import annotations

import hashlib
import re

from wsi_bench.files import IMAGE_PLACEHOLDER

LETTERS = ("A", "B", "C", "D")
# An option marker: "A)", "(A)" or "A." followed by whitespace, at the start or after whitespace. The "A)" of
# "(T4A)" is none; a stem's "Luminal A." is one, but `parse_inline_options` keeps only the last complete
# A..D sequence written in one style.
_MARKER = re.compile(r"(?:(?<=\s)|^)(?:\((?P<p>[A-D])\)|(?P<l>[A-D])(?P<sep>[).])(?=\s|$))")


def _markers(text: str) -> list[tuple[str, str, int, int]]:
    """(letter, separator kind, start, end) of every option-marker-like token, in order."""
    found = []
    for match in _MARKER.finditer(text):
        letter = match.group("p") or match.group("l")
        kind = ")" if match.group("p") or match.group("sep") == ")" else "."
        found.append((letter, kind, match.start(), match.end()))
    return found


def parse_inline_options(text: str, min_options: int = 2) -> tuple[str, dict[str, str]] | None:
    """(stem, {"A": ..., ...}) of a question with inline options, or None.

    The options are the LAST marker sequence A, B(, C, D) written with one separator style ("A)"/"(A)" or
    "A."), each option running to the next marker and the last one to the end. A full A-D sequence wins
    over a shorter one; a stem that itself contains "A." ("... point to Luminal A. Considering ...") or
    "(T4A)" is therefore not mistaken for the options.
    """
    markers = _markers(text)
    best: list[tuple[str, str, int, int]] = []
    for index in range(len(markers) - 1, -1, -1):
        letter, kind, _, _ = markers[index]
        if letter != "A":
            continue
        chain = [markers[index]]
        for candidate in markers[index + 1:]:
            expected = LETTERS[len(chain)] if len(chain) < len(LETTERS) else None
            if candidate[0] == expected and candidate[1] == kind:
                chain.append(candidate)
        if len(chain) > len(best):
            best = chain
        if len(best) == len(LETTERS):
            break
    if len(best) < min_options:
        return None
    options = {}
    for position, (letter, _, _, end) in enumerate(best):
        stop = best[position + 1][2] if position + 1 < len(best) else len(text)
        options[letter] = text[end:stop].strip()
    return text[:best[0][2]].strip(), options


def render_question(question: str, options: dict | None) -> str:
    """The question text as released: the stem, then the options inline for multiple choice."""
    if not options:
        return question.strip()
    return question.strip() + " " + " ".join(f"{k}) {options.get(k, '').strip()}" for k in LETTERS)


def split_choice_question(text: str) -> tuple[str, dict | None]:
    """`"Q? A) x B) y C) z D) w"` (or "A. x B. y ...") -> ("Q?", {"A": "x", ...}); text without four inline
    options -> (text, None)."""
    parsed = parse_inline_options(text.strip(), min_options=len(LETTERS))
    if parsed is None:
        return text.strip(), None
    return parsed


def llava_record(record_id: str, image: str, question: str, answer: str) -> dict:
    """One WSI-Bench LLaVA conversation record (the question already rendered with its options)."""
    return {"id": record_id, "image": image,
            "conversations": [{"from": "human", "value": f"{IMAGE_PLACEHOLDER}\n{question.strip()}"},
                              {"from": "gpt", "value": answer.strip()}]}


def pair_uid(*parts: str) -> str:
    """A stable id from what makes a pair unique (so a re-run finds the pair it already stored)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:24]
