"""Review verdicts, rejection reasons and the derived status of a pair (pure functions, no database).

Reviews are append-only events. Each annotator's current verdict on a pair is found by replaying their
events in order: a verdict pushes a state, an `undo` pops the last one (so undo is a new event, never a
deletion, and undoing twice goes back twice). Adjudications replay the same way for the lead.

Status of a pair, given its events and how many reviews it needs (k):
- `adjudicated`: a lead's adjudication stands (its verdict is final);
- `pending`: fewer than k current verdicts;
- `accepted` / `rejected`: all current verdicts agree;
- `edited`: all current verdicts are edits with the same new text;
- `needs_adjudication`: the current verdicts disagree (or edit differently).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from curation.errors import CurationError

VERDICTS = ("accepted", "edited", "rejected")
UNDO = "undo"
STATUSES = ("pending", "accepted", "edited", "rejected", "needs_adjudication", "adjudicated")
EXPORTABLE_VERDICTS = ("accepted", "edited")

# The fixed list of rejection reasons (free text goes in the comment).
REJECT_REASONS: dict[str, str] = {
    "not_grounded": "The answer is not supported by the report",
    "factually_wrong": "Medically or factually wrong",
    "diagnosis_leak": "The question gives the diagnosis away",
    "not_visible": "Cannot be answered from the slide image",
    "ambiguous": "The question is ambiguous or unclear",
    "bad_options": "Options not distinct, or not exactly one correct option",
    "duplicate": "Duplicate of another pair",
    "wrong_task": "Does not fit its task",
    "language": "Language or formatting problems",
    "other": "Other (explain in the comment)",
}


class ReviewInputError(CurationError):
    """A verdict that cannot be saved as given (unknown verdict or reason, edit without new text...)."""


@dataclass(frozen=True)
class Event:
    """One review event as stored (the subset the status logic needs)."""

    id: int
    annotator: str
    kind: str                   # "review" | "adjudication"
    verdict: str                # accepted | edited | rejected | undo
    question: str | None = None
    options: dict | None = None
    answer: str | None = None
    reason: str = ""
    comment: str = ""


@dataclass
class Resolution:
    status: str
    verdicts: dict[str, Event] = field(default_factory=dict)   # annotator -> current review event
    adjudication: Event | None = None

    @property
    def final(self) -> Event | None:
        """The event whose verdict (and edited text) counts for export, if the pair is settled."""
        if self.adjudication is not None:
            return self.adjudication
        if self.status in ("accepted", "edited", "rejected"):
            return next(iter(self.verdicts.values()))
        return None


def validate_verdict(verdict: str, reason: str, question: str | None, answer: str | None,
                     options: dict | None) -> None:
    if verdict not in VERDICTS:
        raise ReviewInputError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}.")
    if verdict == "rejected" and reason not in REJECT_REASONS:
        raise ReviewInputError(f"a rejection needs a reason from the fixed list ({', '.join(REJECT_REASONS)}), "
                               f"got {reason!r}; put free text in the comment.")
    if verdict != "rejected" and reason:
        raise ReviewInputError("only rejections take a reason; put remarks in the comment.")
    if verdict == "edited" and question is None and answer is None and options is None:
        raise ReviewInputError("an edit needs the new question, answer or options.")
    if verdict != "edited" and (question is not None or answer is not None or options is not None):
        raise ReviewInputError(f"only edits carry new text; a verdict {verdict!r} keeps the pair as generated.")


def current_states(events: Iterable[Event], kind: str) -> dict[str, Event]:
    """annotator -> their current event of this kind after replaying verdicts and undos in order."""
    stacks: dict[str, list[Event]] = {}
    for event in sorted(events, key=lambda e: e.id):
        if event.kind != kind:
            continue
        stack = stacks.setdefault(event.annotator, [])
        if event.verdict == UNDO:
            if stack:
                stack.pop()
        else:
            stack.append(event)
    return {name: stack[-1] for name, stack in stacks.items() if stack}


def can_undo(events: Iterable[Event], annotator: str, kind: str) -> bool:
    return annotator in current_states(events, kind)


def _edit_key(event: Event) -> tuple:
    return (event.question, tuple(sorted((event.options or {}).items())), event.answer)


def resolve(events: Sequence[Event], required_reviews: int) -> Resolution:
    verdicts = current_states(events, "review")
    adjudications = current_states(events, "adjudication")
    adjudication = max(adjudications.values(), key=lambda e: e.id) if adjudications else None
    if adjudication is not None:
        return Resolution("adjudicated", verdicts, adjudication)
    if len(verdicts) < max(1, required_reviews):
        return Resolution("pending", verdicts)
    kinds = {e.verdict for e in verdicts.values()}
    if len(kinds) > 1:
        return Resolution("needs_adjudication", verdicts)
    (only,) = kinds
    if only == "edited" and len({_edit_key(e) for e in verdicts.values()}) > 1:
        return Resolution("needs_adjudication", verdicts)
    return Resolution(only, verdicts)
