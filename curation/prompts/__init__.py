"""The curation prompts, each module holding its system text beside its output schema and PROMPT_VERSION.

- `cleaning`: the LLM pass of report cleaning (verbatim excerpts to keep; never rewritten text).
- `enrichment`: WHO-guided morphology expected for a report's diagnosis (stored as inferred).
- `vqa`: one prompt per WSI-Bench task (11 open tasks and the closed variants).

The version of every prompt is stored on each row it produced and is part of the LLM cache key, so a
changed prompt must get a new version (a re-run then asks the LLM again instead of reusing replies).
"""

from curation.prompts import cleaning, enrichment, vqa

PROMPT_VERSIONS: dict[str, str] = {
    "cleaning": cleaning.PROMPT_VERSION,
    "enrichment": enrichment.PROMPT_VERSION,
    "vqa": vqa.PROMPT_VERSION,
}
