"""The pipeline half of the store: reports, cleanings, enrichments, generation jobs and their pairs.
Mixed into `ReviewStore`.

Writes are idempotent so every step can be re-run after a crash: a report is unique per (slide, text
hash); a cleaning/enrichment/job is unique per (input, version, model) and an "ok" row is never
replaced (a "failed" one is retried in place); a generation job and its pairs are written in ONE
transaction, and a pair whose `uid` exists is never written again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from curation.pair_checks import neighbour_text
from curation.reports import Report
from curation.store.db import Database
from curation.store.schema import (
    AuditEntry,
    CleaningRow,
    EnrichmentRow,
    GenerationJob,
    PairRow,
    ReportRow,
)

DONE_JOB_STATUSES = ("ok", "skipped")


def ihc_context(removed: Sequence[dict]) -> str:
    """The IHC text removed during cleaning, as generation and the review view both read it."""
    return "\n".join(d["text"].strip() for d in removed if d.get("category") == "ihc" and d.get("text", "").strip())


@dataclass(frozen=True)
class ReportInfo:
    id: int
    slide_id: str
    patient_id: str
    project: str
    image: str
    text: str
    text_sha256: str


@dataclass(frozen=True)
class CleaningInfo:
    id: int
    report_id: int
    method: str
    version: str
    model: str
    status: str
    cleaned_text: str
    removed: list
    checks: dict


@dataclass(frozen=True)
class EnrichmentInfo:
    id: int
    cleaning_id: int
    diagnosis: str
    who_reference: str
    features: list
    text: str
    prompt_version: str
    model: str


def _report_info(r: ReportRow) -> ReportInfo:
    return ReportInfo(r.id, r.slide_id, r.patient_id, r.project, r.image, r.text, r.text_sha256)


def _cleaning_info(c: CleaningRow) -> CleaningInfo:
    return CleaningInfo(c.id, c.report_id, c.method, c.version, c.model, c.status, c.cleaned_text, c.removed, c.checks)


def _enrichment_info(e: EnrichmentRow) -> EnrichmentInfo:
    return EnrichmentInfo(e.id, e.cleaning_id, e.diagnosis, e.who_reference, e.features, e.text, e.prompt_version,
                          e.model)


class PipelineRecords:
    db: Database

    # -- reports ---------------------------------------------------------------------------------
    def add_reports(self, reports: Sequence[Report], actor: str = "pipeline") -> dict:
        """Insert reports not yet stored (same slide and same text = same report). Returns counts."""
        def work(s: Session) -> dict:
            known = set(s.execute(select(ReportRow.slide_id, ReportRow.text_sha256)).all())
            added = 0
            for report in reports:
                key = (report.slide_id, report.sha256)
                if key in known:
                    continue
                known.add(key)
                s.add(ReportRow(slide_id=report.slide_id, patient_id=report.patient_id, project=report.project,
                                image=report.image, source=report.source, text=report.text,
                                text_sha256=report.sha256))
                added += 1
            if added:
                s.add(AuditEntry(actor=actor, action="reports_added", details={"added": added}))
            return {"added": added, "already_stored": len(reports) - added}
        return self.db.write(work)

    def reports(self) -> list[ReportInfo]:
        with self.db.read() as s:
            return [_report_info(r) for r in s.scalars(select(ReportRow).order_by(ReportRow.id))]

    # -- cleanings -------------------------------------------------------------------------------
    def cleanings(self) -> list[CleaningInfo]:
        with self.db.read() as s:
            return [_cleaning_info(c) for c in s.scalars(select(CleaningRow).order_by(CleaningRow.id))]

    def current_cleanings(self) -> dict[int, CleaningInfo]:
        """report id -> its latest successful cleaning."""
        current: dict[int, CleaningInfo] = {}
        for c in self.cleanings():
            if c.status == "ok":
                current[c.report_id] = c
        return current

    def save_cleaning(self, report_id: int, method: str, version: str, model: str, status: str, *,
                      cleaned_text: str = "", kept: list | None = None, removed: list | None = None,
                      checks: dict | None = None, error: str = "") -> int:
        values = dict(status=status, cleaned_text=cleaned_text, kept=kept or [], removed=removed or [],
                      checks=checks or {}, error=error)
        return self._upsert(CleaningRow, dict(report_id=report_id, method=method, version=version, model=model),
                            values)

    def _upsert(self, table, key: dict, values: dict) -> int:
        """Insert the row for `key`, or retry a failed one in place; a done row is never replaced."""
        def work(s: Session) -> int:
            row = s.scalar(select(table).where(*(getattr(table, k) == v for k, v in key.items())))
            if row is None:
                row = table(**key, **values)
                s.add(row)
            elif row.status not in DONE_JOB_STATUSES:
                for name, value in values.items():
                    setattr(row, name, value)
            s.flush()
            return row.id
        return self.db.write(work)

    # -- enrichments -----------------------------------------------------------------------------
    def enrichment_rows(self) -> list[tuple[int, str, str, str]]:
        """(cleaning id, prompt version, model, status) of every enrichment row."""
        with self.db.read() as s:
            return list(s.execute(select(EnrichmentRow.cleaning_id, EnrichmentRow.prompt_version,
                                         EnrichmentRow.model, EnrichmentRow.status)).all())

    def current_enrichments(self) -> dict[int, EnrichmentInfo]:
        """cleaning id -> its latest successful enrichment."""
        with self.db.read() as s:
            rows = s.scalars(select(EnrichmentRow).where(EnrichmentRow.status == "ok").order_by(EnrichmentRow.id))
            return {e.cleaning_id: _enrichment_info(e) for e in rows}

    def save_enrichment(self, cleaning_id: int, report_id: int, prompt_version: str, model: str, status: str, *,
                        diagnosis: str = "", who_reference: str = "", features: list | None = None, text: str = "",
                        error: str = "") -> int:
        values = dict(report_id=report_id, status=status, diagnosis=diagnosis, who_reference=who_reference,
                      features=features or [], text=text, error=error)
        return self._upsert(EnrichmentRow, dict(cleaning_id=cleaning_id, prompt_version=prompt_version, model=model),
                            values)

    # -- generation ------------------------------------------------------------------------------
    def generation_jobs(self, prompt_version: str, model: str) -> dict[tuple[int, str], str]:
        """(cleaning id, task) -> job status, for one prompt version and model."""
        with self.db.read() as s:
            rows = s.execute(select(GenerationJob.cleaning_id, GenerationJob.task, GenerationJob.status).where(
                GenerationJob.prompt_version == prompt_version, GenerationJob.model == model))
            return {(cid, task): status for cid, task, status in rows}

    def neighbours(self, slide_ids: Sequence[str]) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """(slide, task) -> [(uid, question + answer)] of the stored pairs of these slides (near-duplicates)."""
        found: dict[tuple[str, str], list[tuple[str, str]]] = {}
        slides = sorted(set(slide_ids))
        with self.db.read() as s:
            for start in range(0, len(slides), 500):
                rows = s.execute(select(PairRow.uid, PairRow.slide_id, PairRow.task, PairRow.question,
                                        PairRow.options, PairRow.answer)
                                 .where(PairRow.slide_id.in_(slides[start:start + 500])).order_by(PairRow.id))
                for uid, slide, task, q, o, a in rows:
                    found.setdefault((slide, task), []).append((uid, neighbour_text(q, o, a)))
        return found

    def save_generation(self, job: dict, pairs: Sequence[dict], actor: str = "pipeline") -> int:
        """Write one job and its pairs in one transaction; returns the number of pairs added."""
        return self.save_generations([(job, pairs)], actor)[0]

    def save_generations(self, batch: Sequence[tuple[dict, Sequence[dict]]], actor: str = "pipeline") -> list[int]:
        """Write several (job, pairs) in one transaction (each job complete with its pairs, or absent).
        A job already done is left alone; a failed one is retried in place. Returns pairs added per job."""
        def key(values) -> tuple:
            return tuple(values[k] if isinstance(values, dict) else getattr(values, k)
                         for k in ("cleaning_id", "task", "prompt_version", "model"))

        def work(s: Session) -> list[int]:
            cleaning_ids = sorted({job["cleaning_id"] for job, _ in batch})
            stored = {key(row): row for row in s.scalars(
                select(GenerationJob).where(GenerationJob.cleaning_id.in_(cleaning_ids)))}
            uids = [p["uid"] for _, pairs in batch for p in pairs]
            existing: set[str] = set()
            for start in range(0, len(uids), 500):
                existing |= set(s.scalars(select(PairRow.uid).where(PairRow.uid.in_(uids[start:start + 500]))))
            todo = []
            for job, pairs in batch:
                row = stored.get(key(job))
                if row is not None and row.status in DONE_JOB_STATUSES:
                    todo.append(None)
                    continue
                if row is None:
                    row = stored[key(job)] = GenerationJob(**job)
                    s.add(row)
                else:
                    for name, value in job.items():
                        setattr(row, name, value)
                todo.append((row, job, pairs))
            s.flush()                                         # job ids for the pairs
            added_per_job = []
            for entry in todo:
                if entry is None:
                    added_per_job.append(0)
                    continue
                row, job, pairs = entry
                added = [PairRow(**p, job_id=row.id) for p in pairs if p["uid"] not in existing]
                existing |= {p["uid"] for p in pairs}
                s.add_all(added)
                s.add(AuditEntry(actor=actor, action="generated", details={
                    "job_id": row.id, "task": job["task"], "model": job["model"], "status": job["status"],
                    "pairs_added": len(added)}))
                added_per_job.append(len(added))
            return added_per_job
        return self.db.write(work)

    def save_imported(self, pairs: Sequence[dict], source: str, actor: str = "import") -> dict:
        """Insert imported pairs whose uid is new; returns {"added", "already_stored"}."""
        def work(s: Session) -> dict:
            uids = [p["uid"] for p in pairs]
            existing: set[str] = set()
            for start in range(0, len(uids), 500):
                existing |= set(s.scalars(select(PairRow.uid).where(PairRow.uid.in_(uids[start:start + 500]))))
            added = [PairRow(**p) for p in pairs if p["uid"] not in existing]
            s.add_all(added)
            if added:
                s.add(AuditEntry(actor=actor, action="imported", details={"source": source, "pairs_added": len(added)}))
            return {"added": len(added), "already_stored": len(pairs) - len(added)}
        return self.db.write(work)

    def count_pairs(self) -> int:
        with self.db.read() as s:
            return s.scalar(select(func.count()).select_from(PairRow))
