"""Step 3, generation: cleaned reports -> VQA pairs for every WSI-Bench task, checked and stored for review.

One LLM call per (cleaned report, task) with that task's prompt (`prompts/vqa.py`). Each pair becomes a
WSI-Bench LLaVA record with its provenance (task, source report hash, generator model, prompt version,
creation time), runs the automatic checks (`pair_checks`) and is stored with their results; failing
pairs are stored and flagged, never dropped. A job and its pairs are written in one transaction, so an
interrupted run resumes where it stopped. Run it with `wsi-llava curate generate --store S`, or:

    summary = run_generation(store, client, tasks=["grading", "staging_choice"])
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

from llm.client import LLMClient
from llm.types import LLMFailure, LLMResult
from curation.pair_checks import (
    CheckSettings,
    CheckSources,
    PairDraft,
    failed_names,
    neighbour_text,
    run_checks,
)
from wsi_bench.records import llava_record, pair_uid, render_question
from curation.prompts import vqa
from curation.step_runner import LLMJob, StepSummary, estimate_jobs, run_jobs
from curation.store.pipeline import (
    CleaningInfo,
    EnrichmentInfo,
    ReportInfo,
    ihc_context,
)
from wsi_bench.tasks import TASKS, TASKS_BY_ID, resolve_selected_task


@dataclass(frozen=True)
class GenerationInput:
    report: ReportInfo
    cleaning: CleaningInfo
    enrichment: EnrichmentInfo | None
    task: str

    @property
    def sources(self) -> CheckSources:
        return CheckSources(cleaned=self.cleaning.cleaned_text,
                            enrichment=self.enrichment.text if self.enrichment else "",
                            ihc_context=ihc_context(self.cleaning.removed),
                            diagnosis=self.enrichment.diagnosis if self.enrichment else "")

    def where(self) -> dict:
        return {"report_id": self.report.id, "slide_id": self.report.slide_id, "task": self.task}


def generation_user_message(item: GenerationInput) -> str:
    rule = vqa.TASK_RULES[item.task]
    sources = item.sources
    return vqa.user_message(item.report.slide_id, sources.cleaned, sources.enrichment,
                            sources.ihc_context if rule.uses_ihc_context else "")


def build_pairs(item: GenerationInput, reply: vqa.VQAReply, model: str, neighbours: list[tuple[str, str]],
                settings: CheckSettings | None = None) -> list[dict]:
    """The store rows of one reply: record, provenance and check results for each drafted pair."""
    spec, rule = TASKS_BY_ID[item.task], vqa.TASK_RULES[item.task]
    sources = item.sources
    seen = list(neighbours)
    rows = []
    for index, draft in enumerate(reply.pairs[:rule.max_pairs]):
        uid = pair_uid(item.report.text_sha256, item.report.slide_id, item.task, vqa.PROMPT_VERSION, model,
                       str(item.cleaning.id), str(index))
        pair = PairDraft(task=item.task, question=draft.question, answer=draft.answer,
                         options=draft.options or None,
                         evidence=draft.evidence, uses_enrichment=draft.uses_enrichment)
        results = run_checks(pair, sources, seen, settings)
        grounded = next(r for r in results if r.name == "grounded")
        uses_enrichment = bool(grounded.data.get("marked_uses_enrichment", pair.uses_enrichment))
        record_id = f"{item.report.slide_id}-{item.task}-{uid[:8]}"
        rendered = render_question(pair.question, pair.options)
        rows.append(dict(
            uid=uid, origin="generated", report_id=item.report.id, cleaning_id=item.cleaning.id,
            enrichment_id=item.enrichment.id if item.enrichment else None, slide_id=item.report.slide_id,
            patient_id=item.report.patient_id, image=item.report.image, task=item.task,
            capability=spec.capability.value, answer_format=spec.answer_format.value, question=pair.question,
            options=pair.options, answer=pair.answer, aspect=draft.aspect if draft.aspect in vqa.ASPECTS else "",
            evidence=pair.evidence, uses_enrichment=uses_enrichment, inferred_answer=rule.inferred_answer,
            record=llava_record(record_id, item.report.image, rendered, pair.answer),
            source_report_sha256=item.report.text_sha256, generator_model=model,
            prompt_version=vqa.PROMPT_VERSION, checks=[r.to_dict() for r in results],
            checks_failed=",".join(failed_names(results))))
        seen.append((uid, neighbour_text(pair.question, pair.options, pair.answer)))
    return rows


def generation_inputs(store, tasks: Sequence[str] | None, model: str, use_enrichment: bool = True
                      ) -> tuple[list[GenerationInput], list[GenerationInput]]:
    """(inputs still to generate, inputs already done) for the current cleanings and the given tasks."""
    wanted = [resolve_selected_task(t).task for t in tasks] if tasks else [spec.task for spec in TASKS]
    done = store.generation_jobs(vqa.PROMPT_VERSION, model)
    enrichments = store.current_enrichments() if use_enrichment else {}
    reports = {r.id: r for r in store.reports()}
    todo, finished = [], []
    for report_id, cleaning in sorted(store.current_cleanings().items()):
        for task in wanted:
            item = GenerationInput(reports[report_id], cleaning, enrichments.get(cleaning.id), task)
            (finished if done.get((cleaning.id, task)) in ("ok", "skipped") else todo).append(item)
    return todo, finished


def run_generation(store, client: LLMClient, tasks: Sequence[str] | None = None, dry_run: bool = False,
                   use_enrichment: bool = True, progress: bool | None = None,
                   check_settings: CheckSettings | None = None, write_batch_jobs: int = 32) -> StepSummary:
    """Generate pairs for every (current cleaning, task) job not done yet for this prompt version and model.

    Finished jobs are written in batches (at most `write_batch_jobs` jobs or half a second per
    transaction; each job together with its pairs), so a crash loses at most one batch of replies,
    which the LLM cache still holds."""
    summary = StepSummary("generate", dry_run=dry_run)
    model = client.settings.model
    todo, finished = generation_inputs(store, tasks, model, use_enrichment)
    for item in finished:
        summary.add("already_done", **item.where())
    jobs = [LLMJob(item, vqa.vqa_prompt(item.task), generation_user_message(item)) for item in todo]
    if dry_run:
        summary.estimate = estimate_jobs(client, jobs).to_dict()
        summary.items += [{"status": "would_call_llm", **job.key.where()} for job in jobs]
        return summary

    neighbours = defaultdict(list, store.neighbours([item.report.slide_id for item in todo]))
    batch: list[tuple[dict, list[dict], dict]] = []          # (job row, pair rows, summary fields)
    last_write = [time.monotonic()]

    def write_batch() -> None:
        if batch:
            added = store.save_generations([(job, rows) for job, rows, _ in batch])
            for (job, _, fields), n_added in zip(batch, added, strict=True):
                summary.add(job["status"], **({"pairs": n_added} if job["status"] != "failed" else {}), **fields)
            batch.clear()
        last_write[0] = time.monotonic()

    def on_outcome(job: LLMJob, outcome: LLMResult | LLMFailure) -> None:
        item: GenerationInput = job.key
        key = dict(cleaning_id=item.cleaning.id, report_id=item.report.id, task=item.task,
                   prompt_version=vqa.PROMPT_VERSION, model=model,
                   enrichment_id=item.enrichment.id if item.enrichment else None)
        if isinstance(outcome, LLMFailure):
            batch.append(({**key, "status": "failed", "n_pairs": 0, "note": outcome.error}, [],
                          {"error": outcome.error, **item.where()}))
        else:
            reply: vqa.VQAReply = outcome.value
            seen = neighbours[(item.report.slide_id, item.task)]
            rows = build_pairs(item, reply, model, seen, check_settings)
            seen += [(r["uid"], neighbour_text(r["question"], r["options"], r["answer"])) for r in rows]
            surplus = max(0, len(reply.pairs) - len(rows))
            note = reply.skip_reason if not rows else (f"{surplus} pair(s) beyond the task's maximum not kept"
                                                       if surplus else "")
            status = "ok" if rows else "skipped"
            batch.append(({**key, "status": status, "n_pairs": len(rows), "note": note}, rows,
                          {"checks_failed": sum(1 for r in rows if r["checks_failed"]), "note": note,
                           "cached": outcome.cached, **item.where()}))
        if len(batch) >= write_batch_jobs or time.monotonic() - last_write[0] > 0.5:
            write_batch()

    try:
        run_jobs(client, jobs, on_outcome, "generate", progress)
    finally:
        write_batch()                  # on Ctrl-C too: what arrived is stored, the rest resumes later
    summary.llm = client.stats.to_dict(client.settings.prices)
    return summary
