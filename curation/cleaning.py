"""Step 1, cleaning: reports -> cleaned reports (morphology + diagnosis), the removed text kept beside them.

The deterministic section parser (`report_sections`) cleans the common TCGA layouts; the reports it is
not confident about go through the LLM pass (`prompts/cleaning.py`). Either way the cleaned text is
assembled from spans of the original report only, and `verify_no_added_text` checks it again before
it is stored: cleaning never adds a fact. Run it with `wsi-llava curate clean REPORTS... --store S`, or:

    summary = run_cleaning(store, client)          # client may be None when no report needs the LLM
"""

from __future__ import annotations

from curation.errors import CurationError
from llm.client import LLMClient
from llm.types import LLMFailure, LLMResult
from curation.prompts import cleaning as cleaning_prompt
from curation.report_sections import (
    PARSER_VERSION,
    CleanedReport,
    Segment,
    parse_sections,
)
from curation.step_runner import LLMJob, StepSummary, estimate_jobs, run_jobs
from curation.text_spans import SourceText

METHODS = ("auto", "sections", "llm")


def clean_from_excerpts(text: str, reply: cleaning_prompt.CleaningReply) -> CleanedReport:
    """Build the cleaned report from the LLM's kept excerpts, located in `text`; the rest is removed."""
    source = SourceText(text)
    kept, unmatched, cursor = [], [], 0
    for excerpt in reply.keep:
        span = source.find(excerpt, start_at=cursor) or source.find(excerpt)
        if span is None:
            unmatched.append(excerpt)
            continue
        kept.append(Segment(span.start, span.end, "kept"))
        cursor = max(cursor, span.end)
    labelled = []
    for category, excerpt in reply.removed:
        span = source.find(excerpt)
        if span is not None:
            labelled.append((span.start, span.end, category))
    removed = []
    position = 0
    for seg in sorted(kept, key=lambda s: s.start) + [Segment(len(text), len(text), "end")]:
        if seg.start > position and text[position:seg.start].strip():
            removed.append(Segment(position, seg.start, _category(position, seg.start, labelled)))
        position = max(position, seg.end)
    return CleanedReport(source=text, kept=kept, removed=removed, method="llm", unmatched=unmatched)


def _category(start: int, end: int, labelled: list[tuple[int, int, str]]) -> str:
    best, overlap = "other", 0
    for a, b, category in labelled:
        shared = min(b, end) - max(a, start)
        if shared > overlap:
            best, overlap = category, shared
    return best


def verify_no_added_text(original: str, cleaned_text: str) -> dict:
    """Every line of the cleaned text must occur in the original report (the "adds nothing" check)."""
    source = SourceText(original)
    missing = [line for line in cleaned_text.splitlines() if line.strip() and source.find(line) is None]
    return {"adds_nothing": not missing, "lines_not_in_report": missing}


def _store_result(store, report_id: int, cleaned: CleanedReport, version: str, model: str) -> str:
    checks = verify_no_added_text(cleaned.source, cleaned.text)
    checks.update(unmatched_excerpts=cleaned.unmatched, parser_reason=cleaned.reason)
    ok = bool(cleaned.text.strip()) and checks["adds_nothing"]
    error = "" if ok else ("no kept excerpt was found verbatim in the report" if not cleaned.text.strip()
                           else "the cleaned text contains lines that are not in the report")
    store.save_cleaning(report_id, cleaned.method, version, model, "ok" if ok else "failed",
                        cleaned_text=cleaned.text, kept=[[s.start, s.end] for s in cleaned.kept],
                        removed=cleaned.removed_dicts(), checks=checks, error=error)
    return "ok" if ok else "failed"


def run_cleaning(store, client: LLMClient | None, method: str = "auto", dry_run: bool = False,
                 progress: bool | None = None) -> StepSummary:
    """Clean every stored report that has no successful cleaning for this parser/prompt version yet."""
    if method not in METHODS:
        raise CurationError(f"cleaning method must be one of {METHODS}, got {method!r}.")
    summary = StepSummary("clean", dry_run=dry_run)
    model = client.settings.model if client else ""
    done = {(c.report_id, c.method, c.version, c.model) for c in store.cleanings() if c.status == "ok"}
    jobs: list[LLMJob] = []
    for report in store.reports():
        where = dict(report_id=report.id, slide_id=report.slide_id)
        if (report.id, "llm", cleaning_prompt.PROMPT_VERSION, model) in done or (
                method != "llm" and (report.id, "sections", PARSER_VERSION, "") in done):
            summary.add("already_done", **where)
            continue
        parsed = parse_sections(report.text) if method != "llm" else None
        if parsed is not None and (parsed.confident or method == "sections"):
            status = "would_clean" if dry_run else _store_result(store, report.id, parsed, PARSER_VERSION, "")
            summary.add(status, method="sections", **where)
            continue
        jobs.append(LLMJob(report, cleaning_prompt.PROMPT, report.text))
    if jobs and client is None:
        raise CurationError(f"{len(jobs)} report(s) need the LLM cleaning pass; give the LLM settings "
                            "(--base-url, --model, --api-key-env) or use --method sections.")
    if dry_run:
        summary.estimate = estimate_jobs(client, jobs).to_dict() if jobs else None
        summary.items += [{"status": "would_call_llm", "report_id": j.key.id, "slide_id": j.key.slide_id}
                          for j in jobs]
        return summary

    def on_outcome(job: LLMJob, outcome: LLMResult | LLMFailure) -> None:
        where = dict(report_id=job.key.id, slide_id=job.key.slide_id, method="llm")
        if isinstance(outcome, LLMFailure):
            store.save_cleaning(job.key.id, "llm", cleaning_prompt.PROMPT_VERSION, model, "failed",
                                error=outcome.error)
            summary.add("failed", error=outcome.error, **where)
            return
        cleaned = clean_from_excerpts(job.key.text, outcome.value)
        status = _store_result(store, job.key.id, cleaned, cleaning_prompt.PROMPT_VERSION, model)
        summary.add(status, unmatched_excerpts=len(cleaned.unmatched), cached=outcome.cached, **where)

    run_jobs(client, jobs, on_outcome, "clean", progress)
    summary.llm = client.stats.to_dict(client.settings.prices) if client else None
    return summary
