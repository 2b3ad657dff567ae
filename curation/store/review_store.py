"""The review store: one SQLAlchemy database (a SQLite file by default, any URL such as PostgreSQL for
teams) holding reports, step outputs, generated pairs, reviews, assignments and the audit log.

It is the API the command line and the Gradio review UI build on:

    store = ReviewStore.open("curation.sqlite")                 # or "postgresql+psycopg://user@host/db"
    store.add_annotator("lead", role="lead"); store.add_annotator("ann", actor="lead")
    store.assign("lead", k=2)                                   # k-overlap assignment (lead only)
    item = store.queue("ann", tasks=["grading"])[0]             # the annotator's queue, with filters
    store.can_open(item.pair_id, viewer="ann")                  # the access rule of the review screen
    view = store.get_pair(item.pair_id, viewer="ann")           # pair + report + removed text + enrichment
                                                                #   + grounding spans (blind mode aware)
    store.submit_review(view.pair_id, "ann", "edited", view.version, answer="...")   # optimistic locking
    store.undo(view.pair_id, "ann", view.version + 1)           # a new event, nothing deleted
    store.progress("ann"); store.adjudication_queue("lead"); store.adjudicate(...); store.stats()

Lead-only: adding annotators (after the first), blind mode, assignment, adjudication, export, push.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import select

from curation.store.agreement import agreement_report
from wsi_bench.records import llava_record, render_question
from curation.store.status import STATUSES, resolve
from curation.store.views import NotFound, PairView, PermissionDenied, ReviewView, iso
from curation.store.db import Database
from curation.store.pipeline import PipelineRecords, ihc_context
from curation.store.reviews import ReviewBook, event_of
from curation.store.schema import (
    Annotator,
    Assignment,
    AuditEntry,
    CleaningRow,
    EnrichmentRow,
    PairRow,
    ReportRow,
    ReviewRow,
)
from wsi_bench.tasks import TASKS, TASKS_BY_ID


@dataclass
class FinalPair:
    """A settled, exportable pair: the machine's pair with the reviewers' final edits applied."""

    pair_id: int
    uid: str
    record_id: str
    slide_id: str
    patient_id: str
    image: str
    task: str
    capability: str
    answer_format: str
    question: str            # rendered, options inline
    answer: str
    final_verdict: str       # accepted | edited
    status: str              # accepted | edited | adjudicated
    origin: str
    generator_model: str
    prompt_version: str
    source_report_sha256: str
    created_at: str
    uses_enrichment: bool
    inferred_answer: bool
    checks_failed: str
    reviewers: list[str]
    n_reviews: int


def _review_view(row: ReviewRow) -> ReviewView:
    return ReviewView(row.id, row.annotator, row.kind, row.verdict, row.question, row.options, row.answer,
                      row.reason, row.comment, row.based_on_version, row.undoes_review_id, iso(row.created_at))


class ReviewStore(PipelineRecords, ReviewBook):
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def open(cls, target: str) -> "ReviewStore":
        """A SQLite file path (created when missing) or an SQLAlchemy URL."""
        return cls(Database.open(target))

    def close(self) -> None:
        self.db.dispose()

    @property
    def label(self) -> str:
        return self.db.label

    # -- one pair, as a reviewer sees it -------------------------------------------------------------
    def open_refusal(self, pair_id: int, viewer: str) -> str | None:
        """Why `viewer` may not open pair `pair_id` in the review screen, or None when they may.

        Leads open any pair. Annotators open the pairs of their own queue: assigned to them or to nobody,
        and in blind mode not once adjudicated (the queue's rule, with every status and their own reviews)."""
        with self.db.read() as s:
            me = s.get(Annotator, viewer) if viewer else None
            if me is None:
                return f"unknown annotator {viewer!r}; a lead adds annotators first."
            pair = s.get(PairRow, pair_id)
            if pair is None:
                return f"no pair {pair_id} in this store."
            if me.role == "lead":
                return None
            assigned = set(s.scalars(select(Assignment.annotator).where(Assignment.pair_id == pair_id)))
            status = pair.status
        if (assigned and viewer not in assigned) or (status == "adjudicated" and self.blind_mode()):
            return (f"pair {pair_id} is not in your queue (it is assigned to other annotators or adjudicated); "
                    "pick a pair from your queue.")
        return None

    def can_open(self, pair_id: int, viewer: str) -> bool:
        """True when `viewer` may open pair `pair_id` (see `open_refusal`); False for unknown viewers and pairs."""
        return self.open_refusal(pair_id, viewer) is None

    def get_pair(self, pair_id: int, viewer: str) -> PairView:
        with self.db.read() as s:
            me = s.get(Annotator, viewer)
            if me is None:
                raise NotFound(f"unknown annotator {viewer!r}; a lead adds annotators first.")
            pair = s.get(PairRow, pair_id)
            if pair is None:
                raise NotFound(f"no pair {pair_id} in this store.")
            report = s.get(ReportRow, pair.report_id) if pair.report_id else None
            cleaning = s.get(CleaningRow, pair.cleaning_id) if pair.cleaning_id else None
            enrichment = s.get(EnrichmentRow, pair.enrichment_id) if pair.enrichment_id else None
            rows = list(s.scalars(select(ReviewRow).where(ReviewRow.pair_id == pair_id).order_by(ReviewRow.id)))
            assigned = sorted(s.scalars(select(Assignment.annotator).where(Assignment.pair_id == pair_id)))
        blind = self.blind_mode() and me.role != "lead"
        if blind and assigned and viewer not in assigned:
            raise PermissionDenied(f"pair {pair_id} is assigned to other annotators; in blind mode you see only "
                                   "the pairs in your own queue.")
        events = [event_of(r) for r in rows]
        resolution = resolve(events, pair.required_reviews)
        mine = resolution.verdicts.get(viewer)
        removed = cleaning.removed if cleaning else []
        context = ihc_context(removed)
        enrichment_text = enrichment.text if enrichment else ""
        sources = {"report": cleaning.cleaned_text if cleaning else "", "enrichment": enrichment_text,
                   "context": context}
        grounded = next((c for c in pair.checks if c.get("name") == "grounded"), {})
        spans = [{**span, "text": sources.get(span["source"], "")[span["start"]:span["end"]]}
                 for span in (grounded.get("data") or {}).get("spans", [])]
        spec = TASKS_BY_ID[pair.task]
        return PairView(
            pair_id=pair.id, uid=pair.uid, version=pair.version, status="hidden" if blind else pair.status,
            task=pair.task, task_title=spec.title, capability=pair.capability, answer_format=pair.answer_format,
            slide_id=pair.slide_id, patient_id=pair.patient_id, image=pair.image, question=pair.question,
            options=pair.options, answer=pair.answer, rendered_question=render_question(pair.question, pair.options),
            aspect=pair.aspect, evidence=pair.evidence, uses_enrichment=pair.uses_enrichment,
            inferred_answer=pair.inferred_answer, origin=pair.origin,
            provenance={"task": pair.task, "source_report_sha256": pair.source_report_sha256,
                        "generator_model": pair.generator_model, "prompt_version": pair.prompt_version,
                        "created_at": iso(pair.created_at), "source_file": pair.source_file,
                        "source_question_id": pair.source_question_id,
                        "cleaning": f"{cleaning.method}:{cleaning.version}" if cleaning else None,
                        "enrichment": f"{enrichment.prompt_version}:{enrichment.model}" if enrichment else None},
            checks=pair.checks, checks_failed=[n for n in pair.checks_failed.split(",") if n],
            grounding_spans=spans, report_text=report.text if report else None,
            cleaned_text=cleaning.cleaned_text if cleaning else None, removed=removed, ihc_context=context,
            enrichment={"diagnosis": enrichment.diagnosis, "who_reference": enrichment.who_reference,
                        "features": enrichment.features, "text": enrichment.text, "inferred": True}
            if enrichment else None,
            required_reviews=pair.required_reviews, assigned=[] if blind else assigned, blind=blind,
            reviews=[_review_view(r) for r in rows if not blind or r.annotator == viewer],
            my_review=next((_review_view(r) for r in rows if mine and r.id == mine.id), None),
            can_undo=mine is not None)

    # -- statistics and export rows ------------------------------------------------------------------
    def stats(self) -> dict:
        """Counts per status, per task and status, per origin, failed checks; agreement; progress."""
        with self.db.read() as s:
            pairs = list(s.execute(select(PairRow.id, PairRow.task, PairRow.status, PairRow.origin,
                                          PairRow.checks_failed)))
            events = self._events_for(s, [p.id for p in pairs])
            n_reports = len(s.scalars(select(ReportRow.id)).all())
            n_audit = len(s.scalars(select(AuditEntry.id)).all())
        by_status = Counter(p.status for p in pairs)
        by_task: dict[str, Counter] = defaultdict(Counter)
        failed = Counter()
        for p in pairs:
            by_task[p.task][p.status] += 1
            failed.update(n for n in p.checks_failed.split(",") if n)
        ratings = {}
        for pid, evs in events.items():
            current = resolve(evs, 1).verdicts
            if current:
                ratings[pid] = {name: e.verdict for name, e in current.items()}
        order = [t.task for t in TASKS]
        return {
            "store": self.label, "reports": n_reports, "pairs": len(pairs), "audit_entries": n_audit,
            "by_status": {st: by_status.get(st, 0) for st in STATUSES},
            "by_task": {t: {st: by_task[t].get(st, 0) for st in STATUSES} | {"total": sum(by_task[t].values())}
                        for t in sorted(by_task, key=order.index)},
            "by_origin": dict(Counter(p.origin for p in pairs)),
            "checks_failed": dict(failed.most_common()),
            "agreement": agreement_report(ratings),
            "blind_mode": self.blind_mode(),
            "annotators": [vars(p) for p in self.progress()],
        }

    def final_pairs(self) -> list[FinalPair]:
        """Every settled pair whose final verdict is accepted or edited, with its final text."""
        with self.db.read() as s:
            pairs = list(s.scalars(select(PairRow).where(
                PairRow.status.in_(("accepted", "edited", "adjudicated"))).order_by(PairRow.id)))
            events = self._events_for(s, [p.id for p in pairs])
        finals = []
        for pair in pairs:
            resolution = resolve(events.get(pair.id, []), pair.required_reviews)
            final = resolution.final
            if final is None or final.verdict not in ("accepted", "edited"):
                continue
            question = final.question if final.verdict == "edited" and final.question is not None else pair.question
            options = final.options if final.verdict == "edited" and final.options is not None else pair.options
            answer = final.answer if final.verdict == "edited" and final.answer is not None else pair.answer
            rendered = render_question(question, options)
            record_id = pair.record.get("id") or f"{pair.slide_id}-{pair.uid[:8]}"
            finals.append(FinalPair(
                pair_id=pair.id, uid=pair.uid, record_id=record_id, slide_id=pair.slide_id,
                patient_id=pair.patient_id, image=pair.image, task=pair.task, capability=pair.capability,
                answer_format=pair.answer_format, question=rendered, answer=answer, final_verdict=final.verdict,
                status=resolution.status, origin=pair.origin, generator_model=pair.generator_model,
                prompt_version=pair.prompt_version, source_report_sha256=pair.source_report_sha256,
                created_at=iso(pair.created_at) or "", uses_enrichment=pair.uses_enrichment,
                inferred_answer=pair.inferred_answer, checks_failed=pair.checks_failed,
                reviewers=sorted(set(resolution.verdicts) | ({final.annotator} if resolution.adjudication else set())),
                n_reviews=len(resolution.verdicts)))
        return finals

    def require_lead(self, actor: str | None) -> None:
        with self.db.read() as s:
            self._require_lead(s, actor)

    def record_action(self, actor: str, action: str, details: dict) -> None:
        """Append a store-wide audit entry (export, push)."""
        self.db.write(lambda s: s.add(AuditEntry(actor=actor, action=action, details=details)))


def final_record(pair: FinalPair) -> dict:
    """The WSI-Bench LLaVA record of a settled pair."""
    return llava_record(pair.record_id, pair.image, pair.question, pair.answer)
