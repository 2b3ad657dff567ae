"""A VQA pair as WSI-Bench writes it: the inline multiple-choice layout, LLaVA records, stable pair ids.

Closed-ended WSI-Bench questions carry their options inline ("... ? A) x B) y C) z D) w") and answer with
one letter; yes/no questions answer "Yes" or "No". The store keeps a pair's question stem and options
apart (so a reviewer edits one option) and renders the released layout for the record and the export.

    text = render_question("Which stage?", {"A": "T1", "B": "T2", "C": "T3", "D": "T4"})
    stem, options = split_choice_question(text)            # back again (used for imported pairs)
"""

from __future__ import annotations

import hashlib
import re

from curation.wsi_bench_files import IMAGE_PLACEHOLDER

LETTERS = ("A", "B", "C", "D")
_INLINE_OPTIONS = re.compile(r"^(?P<stem>.*?)\s*(?<![A-Za-z])A\)\s*(?P<A>.*?)\s+B\)\s*(?P<B>.*?)\s+C\)\s*(?P<C>.*?)"
                             r"\s+D\)\s*(?P<D>.*?)\s*$", re.DOTALL)


def render_question(question: str, options: dict | None) -> str:
    """The question text as released: the stem, then the options inline for multiple choice."""
    if not options:
        return question.strip()
    return question.strip() + " " + " ".join(f"{k}) {options.get(k, '').strip()}" for k in LETTERS)


def split_choice_question(text: str) -> tuple[str, dict | None]:
    """`"Q? A) x B) y C) z D) w"` -> ("Q?", {"A": "x", ...}); text without four inline options -> (text, None)."""
    match = _INLINE_OPTIONS.match(text.strip())
    if not match:
        return text.strip(), None
    return match.group("stem").strip(), {k: match.group(k).strip() for k in LETTERS}


def llava_record(record_id: str, image: str, question: str, answer: str) -> dict:
    """One WSI-Bench LLaVA conversation record (the question already rendered with its options)."""
    return {"id": record_id, "image": image,
            "conversations": [{"from": "human", "value": f"{IMAGE_PLACEHOLDER}\n{question.strip()}"},
                              {"from": "gpt", "value": answer.strip()}]}


def pair_uid(*parts: str) -> str:
    """A stable id from what makes a pair unique (so a re-run finds the pair it already stored)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:24]
