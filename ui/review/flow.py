"""The review tab's steps over the review store, without Gradio: list the queue, open a pair the store lets
the viewer see, save a verdict from what is in the edit boxes, undo, pick the next pair, reload keeping a draft.

Every function takes the signed-in `ReviewSession` (required) and raises `CurationError` subclasses with
the store's own message; the handlers (`ui.review.handlers`, `surface`) turn them into `gr.Error`.

    items = list_queue(store, session, QueueFilters(tasks=["grading"]))
    screen = open_pair(store, session, items[0].pair_id)        # refused unless the store allows it
    outcome = save_verdict(store, session, screen.state, "edited", edits=edit_fields(screen.state, q, o, a))
"""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.store.status import REJECT_REASONS, STATUSES, ReviewInputError
from curation.store.review_store import ReviewStore
from curation.store.views import NotFound, PairView, QueueItem, ReviewOutcome, StaleVersionError
from ui.review.render import options_text, parse_options
from ui.review.session import ReviewSession, require

QUEUE_LIMIT = 50                      # rows listed at once (the store materialises each listed pair)


@dataclass
class QueueFilters:
    tasks: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=lambda: ["pending"])
    checks_failed: list[str] = field(default_factory=list)
    include_reviewed: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.statuses) - set(STATUSES)
        if unknown:
            raise ReviewInputError(f"unknown status filter {sorted(unknown)}; choose from {', '.join(STATUSES)}.")


@dataclass(frozen=True)
class PairState:
    """The pair on screen as it was loaded: its version (for optimistic locking) and its original text."""

    pair_id: int
    version: int
    question: str
    options: dict | None
    answer: str
    can_undo: bool
    slide_id: str = ""            # the pair's slide (the review tab's viewer shows it)

    @classmethod
    def of(cls, view: PairView) -> PairState:
        return cls(view.pair_id, view.version, view.question, view.options, view.answer, view.can_undo,
                   view.slide_id)


@dataclass
class Draft:
    """What the edit boxes hold."""

    question: str
    options: str
    answer: str

    @classmethod
    def of(cls, state: PairState) -> Draft:
        return cls(state.question, options_text(state.options), state.answer)

    def differs_from(self, state: PairState) -> bool:
        """True when the boxes hold an unsaved edit of `state` (all-empty boxes are no edit)."""
        return any((self.question, self.options, self.answer)) and self != Draft.of(state)


def list_queue(store: ReviewStore, session: ReviewSession | None, filters: QueueFilters) -> list[QueueItem]:
    me = require(session)
    return store.queue(me.name, tasks=filters.tasks or None, statuses=filters.statuses or None,
                       checks_failed=filters.checks_failed or None, include_reviewed=filters.include_reviewed,
                       limit=QUEUE_LIMIT)


def open_pair(store: ReviewStore, session: ReviewSession | None, pair_id: int) -> PairView:
    """The pair, when the store lets the viewer open it (`ReviewStore.open_refusal` says why not)."""
    me = require(session)
    refusal = store.open_refusal(int(pair_id), me.name)
    if refusal is not None:
        raise NotFound(refusal)
    return store.get_pair(int(pair_id), viewer=me.name)


def edit_fields(state: PairState, draft: Draft) -> dict:
    """The fields the annotator changed (only those: equal edits by two annotators then agree)."""
    changes: dict = {}
    if draft.question.strip() != state.question.strip():
        if not draft.question.strip():
            raise ReviewInputError("The question cannot be empty.")
        changes["question"] = draft.question.strip()
    if state.options is not None:
        options = parse_options(draft.options)
        if options != state.options:
            changes["options"] = options
    if draft.answer.strip() != state.answer.strip():
        if not draft.answer.strip():
            raise ReviewInputError("The answer cannot be empty.")
        changes["answer"] = draft.answer.strip()
    letters = changes.get("options", state.options)
    if letters is not None and changes.keys() & {"options", "answer"}:
        answer = changes.get("answer", state.answer).strip()
        if answer not in letters:
            raise ReviewInputError(f"The answer of a multiple-choice pair is one option letter "
                                   f"({', '.join(sorted(letters))}), got {answer!r}.")
    if not changes:
        raise ReviewInputError("Nothing was edited: change the question, options or answer first, or accept the "
                               "pair as it is (Alt+A).")
    return changes


def save_verdict(store: ReviewStore, session: ReviewSession | None, state: PairState | None, verdict: str, *,
                 edits: dict | None = None, reason: str | None = None, comment: str = "") -> ReviewOutcome:
    me = require(session)
    if state is None:
        raise ReviewInputError("Open a pair first (pick one from your queue).")
    if verdict == "rejected" and not reason:
        raise ReviewInputError("Choose a rejection reason first (Alt+1 ... Alt+0), then reject (Alt+R): "
                               + "; ".join(f"{(i + 1) % 10} {k}" for i, k in enumerate(REJECT_REASONS)))
    return store.submit_review(state.pair_id, me.name, verdict, state.version,
                               reason=(reason or "") if verdict == "rejected" else "",
                               comment=(comment or "").strip(), **(edits or {}))


def adjudicate(store: ReviewStore, session: ReviewSession | None, state: PairState | None, verdict: str, *,
               draft: Draft, reason: str | None, comment: str) -> ReviewOutcome:
    me = require(session)
    if state is None:
        raise ReviewInputError("Open a pair first (pick one from the adjudication queue).")
    edits = edit_fields(state, draft) if verdict == "edited" else {}
    if verdict == "rejected" and not reason:
        raise ReviewInputError("Choose a rejection reason first (Alt+1 ... Alt+0).")
    return store.adjudicate(state.pair_id, me.name, verdict, state.version,
                            reason=(reason or "") if verdict == "rejected" else "", comment=(comment or "").strip(),
                            **edits)


def undo_target(state: PairState | None, history: list[tuple[int, int]]) -> tuple[int, int]:
    """(pair id, version) to undo: your verdict on the pair on screen, else on the pair you saved last."""
    if state is not None and state.can_undo:
        return state.pair_id, state.version
    if history:
        return history[-1]
    raise ReviewInputError("Nothing to undo: you have no verdict on this pair and saved none in this session.")


def undo(store: ReviewStore, session: ReviewSession | None, state: PairState | None,
         history: list[tuple[int, int]]) -> tuple[ReviewOutcome | None, list[tuple[int, int]], int]:
    """(outcome, history without the pair, pair id). The outcome is None when the pair saved last has changed
    since (another annotator's verdict, another tab): nothing is undone, and the caller opens that pair so a
    second undo works on what is now there. A stale undo of the pair on screen raises StaleVersionError."""
    me = require(session)
    pair_id, version = undo_target(state, history)
    rest = [entry for entry in history if entry[0] != pair_id]
    try:
        return store.undo(pair_id, me.name, version), rest, pair_id
    except StaleVersionError:
        if state is not None and state.pair_id == pair_id:
            raise
        return None, rest, pair_id


def remember(history: list[tuple[int, int]], outcome: ReviewOutcome, limit: int = 50) -> list[tuple[int, int]]:
    return ([entry for entry in history if entry[0] != outcome.pair_id] + [(outcome.pair_id, outcome.version)])[-limit:]


def next_pair_id(ids: list[int], current: int | None, step: int = 1) -> int | None:
    """The pair after (step=1) or before (step=-1) `current` among the listed ids, wrapping around."""
    if not ids:
        return None
    if current is None:
        return ids[0]
    if current in ids:
        return ids[(ids.index(current) + step) % len(ids)]
    later = [i for i in ids if (i > current if step > 0 else i < current)]
    return (later[0] if step > 0 else later[-1]) if later else ids[0 if step > 0 else -1]


def reload_keeping_draft(view: PairView, old: PairState | None, draft: Draft) -> tuple[PairState, Draft, bool]:
    """The reloaded pair's state and the boxes' text: the user's unsaved edit is kept when there is one."""
    state = PairState.of(view)
    keep = old is not None and old.pair_id == view.pair_id and draft.differs_from(old)
    return state, (draft if keep else Draft.of(state)), keep

