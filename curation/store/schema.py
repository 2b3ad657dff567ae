"""The review store's tables (SQLAlchemy 2 ORM), portable across SQLite and PostgreSQL.

- `reports`: the input reports (raw text, its SHA-256), unique per (slide, text hash).
- `cleanings`, `enrichments`: step outputs per report, unique per (input, method/prompt version, model),
  so a re-run finds what is done. Failed attempts are rows too (status "failed", the error kept).
- `generation_jobs`: one row per (cleaning, task, prompt version, model), written in the same
  transaction as the job's pairs: a crash leaves a job either complete or absent.
- `pairs`: the machine's suggestions, never edited after insertion (question, answer, options and
  provenance are write-once); `status`, `version` and `required_reviews` are bookkeeping for review.
- `reviews`: append-only verdict events (review, adjudication, undo) per annotator.
- `assignments`, `annotators` (with their role), `audit_log` (append-only), `meta` (settings).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = "1"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


_ts = lambda: mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)  # noqa: E731


class Meta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class Annotator(Base):
    __tablename__ = "annotators"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)        # "annotator" | "lead"
    created_at: Mapped[datetime] = _ts()
    created_by: Mapped[str] = mapped_column(String(128), default="", nullable=False)


class ReportRow(Base):
    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("slide_id", "text_sha256", name="uq_report_slide_text"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slide_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    patient_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    project: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    image: Mapped[str] = mapped_column(String(512), nullable=False)
    source: Mapped[str] = mapped_column(Text, default="", nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    text_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = _ts()


class CleaningRow(Base):
    __tablename__ = "cleanings"
    __table_args__ = (UniqueConstraint("report_id", "method", "version", "model", name="uq_cleaning"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), nullable=False, index=True)
    method: Mapped[str] = mapped_column(String(16), nullable=False)      # "sections" | "llm"
    version: Mapped[str] = mapped_column(String(64), nullable=False)     # parser or prompt version
    model: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)      # "ok" | "failed"
    cleaned_text: Mapped[str] = mapped_column(Text, default="", nullable=False)
    kept: Mapped[list] = mapped_column(JSON, default=list, nullable=False)        # [[start, end], ...]
    removed: Mapped[list] = mapped_column(JSON, default=list, nullable=False)     # [{start,end,category,header,text}]
    checks: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    error: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_at: Mapped[datetime] = _ts()


class EnrichmentRow(Base):
    __tablename__ = "enrichments"
    __table_args__ = (UniqueConstraint("cleaning_id", "prompt_version", "model", name="uq_enrichment"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cleaning_id: Mapped[int] = mapped_column(ForeignKey("cleanings.id"), nullable=False, index=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), nullable=False, index=True)
    prompt_version: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    diagnosis: Mapped[str] = mapped_column(Text, default="", nullable=False)
    who_reference: Mapped[str] = mapped_column(Text, default="", nullable=False)
    features: Mapped[list] = mapped_column(JSON, default=list, nullable=False)
    text: Mapped[str] = mapped_column(Text, default="", nullable=False)
    error: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_at: Mapped[datetime] = _ts()


class GenerationJob(Base):
    __tablename__ = "generation_jobs"
    __table_args__ = (UniqueConstraint("cleaning_id", "task", "prompt_version", "model", name="uq_generation_job"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cleaning_id: Mapped[int] = mapped_column(ForeignKey("cleanings.id"), nullable=False, index=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), nullable=False)
    enrichment_id: Mapped[int | None] = mapped_column(ForeignKey("enrichments.id"), nullable=True)
    task: Mapped[str] = mapped_column(String(64), nullable=False)
    prompt_version: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)      # "ok" | "skipped" | "failed"
    n_pairs: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    note: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_at: Mapped[datetime] = _ts()


class PairRow(Base):
    __tablename__ = "pairs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    origin: Mapped[str] = mapped_column(String(16), nullable=False)      # "generated" | "imported"
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), nullable=True, index=True)
    cleaning_id: Mapped[int | None] = mapped_column(ForeignKey("cleanings.id"), nullable=True)
    enrichment_id: Mapped[int | None] = mapped_column(ForeignKey("enrichments.id"), nullable=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("generation_jobs.id"), nullable=True)
    slide_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    patient_id: Mapped[str] = mapped_column(String(64), nullable=False)
    image: Mapped[str] = mapped_column(String(512), nullable=False)
    task: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    capability: Mapped[str] = mapped_column(String(32), nullable=False)
    answer_format: Mapped[str] = mapped_column(String(16), nullable=False)
    question: Mapped[str] = mapped_column(Text, nullable=False)          # the stem (options apart)
    options: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    answer: Mapped[str] = mapped_column(Text, nullable=False)
    aspect: Mapped[str] = mapped_column(String(32), default="", nullable=False)
    evidence: Mapped[list] = mapped_column(JSON, default=list, nullable=False)
    uses_enrichment: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    inferred_answer: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    record: Mapped[dict] = mapped_column(JSON, nullable=False)           # the WSI-Bench LLaVA record
    source_report_sha256: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    generator_model: Mapped[str] = mapped_column(String(255), nullable=False)
    prompt_version: Mapped[str] = mapped_column(String(64), nullable=False)
    source_file: Mapped[str] = mapped_column(Text, default="", nullable=False)
    source_question_id: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    checks: Mapped[list] = mapped_column(JSON, default=list, nullable=False)
    checks_failed: Mapped[str] = mapped_column(String(255), default="", nullable=False)  # "grounded,mcq"
    created_at: Mapped[datetime] = _ts()
    # review bookkeeping (the only columns that change after insertion)
    required_reviews: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    status: Mapped[str] = mapped_column(String(32), default="pending", nullable=False, index=True)
    version: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("pair_id", "annotator", name="uq_assignment"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"), nullable=False, index=True)
    annotator: Mapped[str] = mapped_column(ForeignKey("annotators.name"), nullable=False, index=True)
    created_at: Mapped[datetime] = _ts()
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)


class ReviewRow(Base):
    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"), nullable=False, index=True)
    annotator: Mapped[str] = mapped_column(ForeignKey("annotators.name"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)         # "review" | "adjudication"
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)      # accepted|edited|rejected|undo
    question: Mapped[str | None] = mapped_column(Text, nullable=True)     # edited stem
    options: Mapped[dict | None] = mapped_column(JSON, nullable=True)     # edited options
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)       # edited answer
    reason: Mapped[str] = mapped_column(String(32), default="", nullable=False)
    comment: Mapped[str] = mapped_column(Text, default="", nullable=False)
    undoes_review_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    based_on_version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _ts()


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_pair", "pair_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = _ts()
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    action: Mapped[str] = mapped_column(String(48), nullable=False)
    pair_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version_before: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version_after: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)


APPEND_ONLY_TABLES = ("audit_log", "reviews")
