"""What the review store hands to its callers (CLI, the Gradio review UI): plain dataclasses, no ORM rows.

Also the store's exception types: `StaleVersionError` (optimistic locking), `PermissionDenied`
(lead-only operations), `NotFound`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from curation.errors import CurationError


class StaleVersionError(CurationError):
    """A save based on an old version of the pair; nothing was saved (the refusal is in the audit log)."""

    def __init__(self, message: str, pair_id: int, expected_version: int, current_version: int) -> None:
        super().__init__(message)
        self.pair_id = pair_id
        self.expected_version = expected_version
        self.current_version = current_version


class PermissionDenied(CurationError):
    """An operation the actor's role does not allow (e.g. adjudication or export by a non-lead)."""


class NotFound(CurationError):
    """An unknown pair, report or annotator."""


def iso(value: datetime | None) -> str | None:
    """UTC ISO-8601 (SQLite returns naive datetimes: they are UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class QueueItem:
    pair_id: int
    uid: str
    task: str
    answer_format: str
    slide_id: str
    question: str                 # rendered as released (options inline)
    status: str                   # "hidden" for annotators in blind mode
    version: int
    checks_failed: list[str]
    origin: str


@dataclass
class ReviewView:
    id: int
    annotator: str
    kind: str
    verdict: str
    question: str | None
    options: dict | None
    answer: str | None
    reason: str
    comment: str
    based_on_version: int
    undoes_review_id: int | None
    created_at: str | None


@dataclass
class PairView:
    """Everything the review screen shows for one pair (as the viewer may see it)."""

    pair_id: int
    uid: str
    version: int
    status: str
    task: str
    task_title: str
    capability: str
    answer_format: str
    slide_id: str
    patient_id: str
    image: str
    question: str
    options: dict | None
    answer: str
    rendered_question: str
    aspect: str
    evidence: list[str]
    uses_enrichment: bool
    inferred_answer: bool
    origin: str
    provenance: dict
    checks: list[dict]
    checks_failed: list[str]
    grounding_spans: list[dict]   # {"source": report|enrichment|context, "start", "end", "text"}
    report_text: str | None       # the original report
    cleaned_text: str | None
    removed: list[dict]           # {"category", "header", "text", "start", "end"} in the original report
    ihc_context: str
    enrichment: dict | None       # {"diagnosis", "who_reference", "features", "text", "inferred": True}
    required_reviews: int
    assigned: list[str]
    blind: bool
    reviews: list[ReviewView] = field(default_factory=list)   # the ones this viewer may see
    my_review: ReviewView | None = None
    can_undo: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ReviewOutcome:
    pair_id: int
    review_id: int
    version: int
    status: str


@dataclass
class AnnotatorProgress:
    name: str
    role: str
    assigned: int
    reviewed: int                 # pairs with a current verdict by this annotator
    remaining: int                # assigned pairs still without one
    accepted: int
    edited: int
    rejected: int
    adjudicated: int


@dataclass
class AuditView:
    id: int
    at: str | None
    actor: str
    action: str
    pair_id: int | None
    version_before: int | None
    version_after: int | None
    details: dict
