"""The review half of the store: annotators and roles, k-overlap assignment, queues, verdicts with
optimistic locking, undo, adjudication, progress and the audit log. Mixed into `ReviewStore`.

Every change is one transaction that bumps the pair's `version` with a conditional UPDATE
(`... WHERE id = :id AND version = :expected`), appends the review event and an audit entry, and
re-derives the pair's status. A save carrying an old version changes nothing, is recorded in the audit
log as `save_refused_stale`, and raises `StaleVersionError` with a message saying what to do.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from wsi_bench.records import render_question
from curation.store.status import (
    UNDO,
    Event,
    ReviewInputError,
    can_undo,
    current_states,
    resolve,
    validate_verdict,
)
from curation.store.views import (
    AnnotatorProgress,
    AuditView,
    NotFound,
    PermissionDenied,
    QueueItem,
    ReviewOutcome,
    StaleVersionError,
    iso,
)
from curation.store.db import Database
from curation.store.schema import (
    Annotator,
    Assignment,
    AuditEntry,
    Meta,
    PairRow,
    ReviewRow,
)

ROLES = ("annotator", "lead")



# How a refused verdict is named in the stale-save message.
_VERDICT_NOUNS = {"accepted": "acceptance", "edited": "edit", "rejected": "rejection", "undo": "undo"}

class _Stale(Exception):
    def __init__(self, current: int) -> None:
        super().__init__(current)
        self.current = current


def event_of(row: ReviewRow) -> Event:
    return Event(id=row.id, annotator=row.annotator, kind=row.kind, verdict=row.verdict, question=row.question,
                 options=row.options, answer=row.answer, reason=row.reason, comment=row.comment)


class ReviewBook:
    db: Database

    # -- annotators, roles, settings -------------------------------------------------------------
    def add_annotator(self, name: str, role: str = "annotator", actor: str | None = None) -> None:
        """Register an annotator. The first one may be added by anyone (bootstrap); later, only by a lead."""
        if role not in ROLES:
            raise ReviewInputError(f"role must be one of {ROLES}, got {role!r}.")
        if not name.strip():
            raise ReviewInputError("an annotator needs a name.")

        def work(s: Session) -> None:
            if s.get(Annotator, name) is not None:
                raise ReviewInputError(f"annotator {name!r} already exists.")
            if s.scalar(select(func.count()).select_from(Annotator)):
                self._require_lead(s, actor)
            s.add(Annotator(name=name, role=role, created_by=actor or name))
            s.add(AuditEntry(actor=actor or name, action="annotator_added", details={"name": name, "role": role}))
        self.db.write(work)

    def annotators(self) -> list[dict]:
        with self.db.read() as s:
            return [{"name": a.name, "role": a.role, "created_at": iso(a.created_at)}
                    for a in s.scalars(select(Annotator).order_by(Annotator.name))]

    def role_of(self, name: str) -> str | None:
        with self.db.read() as s:
            row = s.get(Annotator, name)
            return row.role if row else None

    def _require_lead(self, s: Session, actor: str | None) -> None:
        row = s.get(Annotator, actor) if actor else None
        if row is None or row.role != "lead":
            leads = s.scalars(select(Annotator.name).where(Annotator.role == "lead")).all()
            raise PermissionDenied(f"{actor or 'anonymous'} is not a lead of this store; this needs one of: "
                                   f"{', '.join(leads) or '(no lead yet: add one with role lead)'}.")

    def _require_annotator(self, s: Session, name: str) -> Annotator:
        row = s.get(Annotator, name)
        if row is None:
            raise NotFound(f"unknown annotator {name!r}; a lead adds annotators first.")
        return row

    def blind_mode(self) -> bool:
        with self.db.read() as s:
            return (s.get(Meta, "blind_mode") or Meta(key="", value="1")).value == "1"

    def set_blind_mode(self, enabled: bool, actor: str) -> None:
        def work(s: Session) -> None:
            self._require_lead(s, actor)
            s.merge(Meta(key="blind_mode", value="1" if enabled else "0"))
            s.add(AuditEntry(actor=actor, action="setting_changed", details={"blind_mode": enabled}))
        self.db.write(work)

    # -- assignment --------------------------------------------------------------------------------
    def assign(self, actor: str, k: int, annotators: Sequence[str] | None = None,
               tasks: Sequence[str] | None = None) -> dict:
        """Give every pending pair (of `tasks`) k distinct annotators, balancing their load.

        Pairs already holding k assignments are left alone; the pair's required number of reviews
        becomes k. Returns {"pairs": n changed, "assignments": n added, "per_annotator": {...}}.
        """
        def work(s: Session) -> dict:
            self._require_lead(s, actor)
            names = list(annotators) if annotators else list(
                s.scalars(select(Annotator.name).where(Annotator.role == "annotator").order_by(Annotator.name)))
            for name in names:
                self._require_annotator(s, name)
            if not 1 <= k <= len(names):
                raise ReviewInputError(f"k must be between 1 and the number of annotators ({len(names)}), got {k}.")
            query = select(PairRow).where(PairRow.status == "pending").order_by(PairRow.id).with_for_update()
            if tasks:
                query = query.where(PairRow.task.in_(list(tasks)))
            pairs = list(s.scalars(query))
            ids = [p.id for p in pairs]
            have: dict[int, set[str]] = defaultdict(set)
            load: Counter = Counter()
            for pair_id, name in s.execute(select(Assignment.pair_id, Assignment.annotator)):
                load[name] += 1
                have[pair_id].add(name)
            events = self._events_for(s, ids)
            added, changed = Counter(), 0
            for pair in pairs:
                need = k - len(have[pair.id])
                picks = sorted((n for n in names if n not in have[pair.id]), key=lambda n: (load[n], n))[:max(0, need)]
                if not picks and pair.required_reviews == k:
                    continue
                for name in picks:
                    s.add(Assignment(pair_id=pair.id, annotator=name, created_by=actor))
                    load[name] += 1
                    added[name] += 1
                s.add(AuditEntry(actor=actor, action="assigned", pair_id=pair.id, version_before=pair.version,
                                 version_after=pair.version + 1,
                                 details={"annotators": sorted(have[pair.id] | set(picks)), "k": k}))
                # the rows are locked (FOR UPDATE; SQLite holds the write lock), so plain updates are safe
                pair.required_reviews, pair.version = k, pair.version + 1
                pair.status = resolve(events.get(pair.id, []), k).status
                changed += 1
            return {"pairs": changed, "assignments": sum(added.values()), "per_annotator": dict(added)}
        return self.db.write(work)

    # -- reading ---------------------------------------------------------------------------------
    @staticmethod
    def _events_for(s: Session, pair_ids: Sequence[int]) -> dict[int, list[Event]]:
        events: dict[int, list[Event]] = defaultdict(list)
        for start in range(0, len(pair_ids), 500):
            chunk = list(pair_ids[start:start + 500])
            for row in s.scalars(select(ReviewRow).where(ReviewRow.pair_id.in_(chunk)).order_by(ReviewRow.id)):
                events[row.pair_id].append(event_of(row))
        return events

    def queue(self, annotator: str, tasks: Sequence[str] | None = None, statuses: Sequence[str] | None = None,
              checks_failed: Sequence[str] | None = None, include_reviewed: bool = False, limit: int = 50,
              offset: int = 0) -> list[QueueItem]:
        """The pairs waiting for `annotator`: assigned to them (or to nobody), without their current
        verdict (unless `include_reviewed`), filtered by task, status and failed check names, ordered by
        pair id. In blind mode an annotator's queue ignores `statuses` (a status would reveal the
        others' verdicts) and holds every pair not yet adjudicated."""
        return self._queue(annotator, tasks, statuses, checks_failed, include_reviewed, limit, offset, False)

    def _queue(self, annotator: str, tasks, statuses, checks_failed, include_reviewed: bool, limit: int,
               offset: int, every_pair: bool) -> list[QueueItem]:
        with self.db.read() as s:
            me = self._require_annotator(s, annotator)
            blind = self.blind_mode() and me.role != "lead"
            query = select(PairRow)
            if not every_pair:
                mine = select(Assignment.pair_id).where(Assignment.annotator == annotator)
                query = query.where(PairRow.id.in_(mine) | PairRow.id.not_in(select(Assignment.pair_id)))
            if blind:
                query = query.where(PairRow.status != "adjudicated")
            else:
                query = query.where(PairRow.status.in_(list(statuses or ("pending",))))
            if tasks:
                query = query.where(PairRow.task.in_(list(tasks)))
            done: set[int] = set()
            if not include_reviewed:
                rows = s.scalars(select(ReviewRow).where(ReviewRow.annotator == annotator,
                                                         ReviewRow.kind == "review").order_by(ReviewRow.id))
                per_pair: dict[int, list[Event]] = defaultdict(list)
                for row in rows:
                    per_pair[row.pair_id].append(event_of(row))
                done = {pid for pid, evs in per_pair.items() if current_states(evs, "review")}
            items: list[QueueItem] = []
            skipped = 0
            for pair in s.scalars(query.order_by(PairRow.id).execution_options(yield_per=500)):
                failed = [n for n in pair.checks_failed.split(",") if n]
                if pair.id in done or (checks_failed and not set(checks_failed) & set(failed)):
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                items.append(QueueItem(pair.id, pair.uid, pair.task, pair.answer_format, pair.slide_id,
                                       render_question(pair.question, pair.options),
                                       "hidden" if blind else pair.status, pair.version, failed, pair.origin))
                if len(items) >= limit:
                    break
            return items

    def adjudication_queue(self, actor: str, tasks: Sequence[str] | None = None, limit: int = 50,
                           offset: int = 0) -> list[QueueItem]:
        with self.db.read() as s:
            self._require_lead(s, actor)
        return self._queue(actor, tasks, ("needs_adjudication",), None, True, limit, offset, True)

    # -- verdicts --------------------------------------------------------------------------------
    def submit_review(self, pair_id: int, annotator: str, verdict: str, expected_version: int, *,
                      question: str | None = None, answer: str | None = None, options: dict | None = None,
                      reason: str = "", comment: str = "") -> ReviewOutcome:
        """Save `annotator`'s verdict (accepted / edited with new text / rejected with a reason)."""
        validate_verdict(verdict, reason, question, answer, options)
        return self._append(pair_id, annotator, "review", verdict, expected_version,
                            dict(question=question, answer=answer, options=options, reason=reason, comment=comment))

    def adjudicate(self, pair_id: int, lead: str, verdict: str, expected_version: int, *,
                   question: str | None = None, answer: str | None = None, options: dict | None = None,
                   reason: str = "", comment: str = "") -> ReviewOutcome:
        """A lead's final verdict on a pair (usually one in the adjudication queue)."""
        validate_verdict(verdict, reason, question, answer, options)
        return self._append(pair_id, lead, "adjudication", verdict, expected_version,
                            dict(question=question, answer=answer, options=options, reason=reason, comment=comment))

    def undo(self, pair_id: int, annotator: str, expected_version: int, kind: str = "review") -> ReviewOutcome:
        """Take back `annotator`'s last verdict (or adjudication): a new event, nothing is deleted."""
        if kind not in ("review", "adjudication"):
            raise ReviewInputError(f"kind must be 'review' or 'adjudication', got {kind!r}.")
        return self._append(pair_id, annotator, kind, UNDO, expected_version, {})

    def _append(self, pair_id: int, actor: str, kind: str, verdict: str, expected_version: int,
                fields: dict) -> ReviewOutcome:
        action = "undo" if verdict == UNDO else kind

        def work(s: Session) -> ReviewOutcome:
            me = self._require_annotator(s, actor)
            if kind == "adjudication":
                self._require_lead(s, actor)
            pair = s.get(PairRow, pair_id)
            if pair is None:
                raise NotFound(f"no pair {pair_id} in this store.")
            assigned = set(s.scalars(select(Assignment.annotator).where(Assignment.pair_id == pair_id)))
            if kind == "review" and assigned and actor not in assigned:
                raise PermissionDenied(f"pair {pair_id} is assigned to {len(assigned)} other annotator(s), not to "
                                       f"{actor}; pick it from your own queue.")
            bumped = s.execute(update(PairRow).where(PairRow.id == pair_id, PairRow.version == expected_version)
                               .values(version=expected_version + 1))
            if bumped.rowcount != 1:
                raise _Stale(s.scalar(select(PairRow.version).where(PairRow.id == pair_id)))
            events = self._events_for(s, [pair_id])[pair_id]
            if verdict == UNDO and not can_undo(events, actor, kind):
                raise ReviewInputError(f"{actor} has no {kind} on pair {pair_id} to undo.")
            status_before = pair.status
            undone = current_states(events, kind).get(actor) if verdict == UNDO else None
            row = ReviewRow(pair_id=pair_id, annotator=actor, kind=kind, verdict=verdict,
                            based_on_version=expected_version, undoes_review_id=undone.id if undone else None,
                            **{k: v for k, v in fields.items() if k in ("question", "answer", "options")},
                            reason=fields.get("reason", ""), comment=fields.get("comment", ""))
            s.add(row)
            s.flush()
            status = resolve(events + [event_of(row)], pair.required_reviews).status
            s.execute(update(PairRow).where(PairRow.id == pair_id).values(status=status))
            s.add(AuditEntry(actor=actor, action=action, pair_id=pair_id, version_before=expected_version,
                             version_after=expected_version + 1,
                             details={"verdict": verdict, "review_id": row.id, "role": me.role,
                                      "status_before": status_before, "status_after": status,
                                      "undoes_review_id": row.undoes_review_id,
                                      **{k: v for k, v in fields.items() if v not in (None, "")}}))
            return ReviewOutcome(pair_id, row.id, expected_version + 1, status)

        try:
            return self.db.write(work)
        except _Stale as stale:
            current = stale.current
        attempted = {"kind": kind, "verdict": verdict, **{k: v for k, v in fields.items() if v not in (None, "")}}
        self.db.write(lambda s: s.add(AuditEntry(actor=actor, action="save_refused_stale", pair_id=pair_id,
                                                 version_before=expected_version, version_after=current,
                                                 details=attempted)))
        raise StaleVersionError(
            f"Pair {pair_id} changed after you opened it (you saved on version {expected_version}, it is now "
            f"version {current}). Your {_VERDICT_NOUNS.get(verdict, verdict)} was NOT saved; the attempt is kept "
            "in the audit log. "
            "Reload the pair, look at it again and save once more.", pair_id, expected_version, current)

    # -- progress and audit ----------------------------------------------------------------------
    def progress(self, annotator: str | None = None) -> list[AnnotatorProgress]:
        with self.db.read() as s:
            people = [s.get(Annotator, annotator)] if annotator else list(
                s.scalars(select(Annotator).order_by(Annotator.name)))
            if annotator and people[0] is None:
                raise NotFound(f"unknown annotator {annotator!r}.")
            result = []
            for person in people:
                assigned = set(s.scalars(select(Assignment.pair_id).where(Assignment.annotator == person.name)))
                rows = s.scalars(select(ReviewRow).where(ReviewRow.annotator == person.name).order_by(ReviewRow.id))
                per_pair: dict[int, list[Event]] = defaultdict(list)
                for row in rows:
                    per_pair[row.pair_id].append(event_of(row))
                verdicts = Counter()
                reviewed, adjudicated = set(), 0
                for pid, evs in per_pair.items():
                    current = current_states(evs, "review").get(person.name)
                    if current:
                        reviewed.add(pid)
                        verdicts[current.verdict] += 1
                    adjudicated += bool(current_states(evs, "adjudication"))
                result.append(AnnotatorProgress(person.name, person.role, len(assigned), len(reviewed),
                                                len(assigned - reviewed), verdicts["accepted"], verdicts["edited"],
                                                verdicts["rejected"], adjudicated))
            return result

    def audit_log(self, pair_id: int | None = None, actor: str | None = None, limit: int | None = None
                  ) -> list[AuditView]:
        with self.db.read() as s:
            query = select(AuditEntry).order_by(AuditEntry.id)
            if pair_id is not None:
                query = query.where(AuditEntry.pair_id == pair_id)
            if actor is not None:
                query = query.where(AuditEntry.actor == actor)
            if limit:
                query = query.limit(limit)
            return [AuditView(a.id, iso(a.at), a.actor, a.action, a.pair_id, a.version_before, a.version_after,
                              a.details) for a in s.scalars(query)]
