"""Step 2, enrichment ("reverse engineering"): the morphology expected for each cleaned report's diagnosis.

The LLM names the diagnosis and lists the WHO-guided features expected for it (`prompts/enrichment.py`).
The result is stored in its own table, marked inferred, and never merged into the cleaned report:
generation shows it to the model under its own heading and pairs relying on it are marked. Run it with
`wsi-llava curate enrich --store S`, or:

    summary = run_enrichment(store, client, thin_below_words=80)   # only reports shorter than 80 words
"""

from __future__ import annotations

from llm.client import LLMClient
from llm.types import LLMFailure, LLMResult
from curation.prompts import enrichment as enrichment_prompt
from curation.step_runner import LLMJob, StepSummary, estimate_jobs, run_jobs


def enrichment_user_message(slide_id: str, cleaned_text: str) -> str:
    return f"SLIDE: {slide_id}\n\nCLEANED REPORT:\n{cleaned_text.strip()}"


def run_enrichment(store, client: LLMClient, dry_run: bool = False, thin_below_words: int | None = None,
                   progress: bool | None = None) -> StepSummary:
    """Enrich every current cleaning without a successful enrichment for this prompt version and model."""
    summary = StepSummary("enrich", dry_run=dry_run)
    model = client.settings.model
    done = {cid for cid, version, m, status in store.enrichment_rows()
            if status == "ok" and version == enrichment_prompt.PROMPT_VERSION and m == model}
    slides = {r.id: r.slide_id for r in store.reports()}
    jobs = []
    for report_id, cleaning in sorted(store.current_cleanings().items()):
        where = dict(report_id=report_id, cleaning_id=cleaning.id, slide_id=slides[report_id])
        if cleaning.id in done:
            summary.add("already_done", **where)
        elif thin_below_words is not None and len(cleaning.cleaned_text.split()) >= thin_below_words:
            summary.add("not_thin", words=len(cleaning.cleaned_text.split()), **where)
        else:
            jobs.append(LLMJob((cleaning, where), enrichment_prompt.PROMPT,
                               enrichment_user_message(slides[report_id], cleaning.cleaned_text)))
    if dry_run:
        summary.estimate = estimate_jobs(client, jobs).to_dict()
        summary.items += [{"status": "would_call_llm", **job.key[1]} for job in jobs]
        return summary

    def on_outcome(job: LLMJob, outcome: LLMResult | LLMFailure) -> None:
        cleaning, where = job.key
        if isinstance(outcome, LLMFailure):
            store.save_enrichment(cleaning.id, cleaning.report_id, enrichment_prompt.PROMPT_VERSION, model,
                                  "failed", error=outcome.error)
            summary.add("failed", error=outcome.error, **where)
            return
        reply = outcome.value
        store.save_enrichment(cleaning.id, cleaning.report_id, enrichment_prompt.PROMPT_VERSION, model, "ok",
                              diagnosis=reply.diagnosis, who_reference=reply.who_reference,
                              features=reply.features, text=reply.text)
        summary.add("ok", diagnosis=reply.diagnosis, features=len(reply.features), cached=outcome.cached, **where)

    run_jobs(client, jobs, on_outcome, "enrich", progress)
    summary.llm = client.stats.to_dict(client.settings.prices)
    return summary
