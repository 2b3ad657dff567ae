"""The enrichment ("reverse engineering") prompt: the morphology expected for a report's diagnosis.

WSI-Bench enriched thin reports with the features a pathologist expects for the diagnosis, guided by
the WHO Classification of Tumours. These features are not observations of the slide: they are stored
apart from the cleaned report, marked as inferred, and a generated pair that relies on them is marked
`uses_enrichment` (the grounding check enforces it).
"""

from __future__ import annotations

from dataclasses import dataclass

from llm.types import Prompt
from llm.errors import ReplyError

PROMPT_VERSION = "enrich-2026-11-29.1"
FEATURE_CATEGORIES = ("architecture", "cytology", "stroma", "invasion", "other")

SYSTEM = """You are a surgical pathologist. From a cleaned pathology report, name the diagnosis exactly as
the report states it, then list the histomorphological features that the WHO Classification of Tumours
(5th edition, the volume for this organ) describes as typical for that diagnosis and, when stated, its
grade: growth pattern and architecture, cytology (cells, nuclei, nucleoli, mitoses), stroma and
background, and invasion. Describe what a pathologist EXPECTS to see for this diagnosis on an H&E whole
slide image, as short statements (one feature each, at most 10). Do not repeat facts the report already
states, do not invent findings specific to this patient (size, margins, lymph nodes, stage), and do not
mention immunohistochemistry. "who_reference" names the WHO volume and entity you used."""

SCHEMA = {
    "type": "object",
    "properties": {
        "diagnosis": {"type": "string"},
        "who_reference": {"type": "string"},
        "features": {"type": "array", "items": {
            "type": "object",
            "properties": {"category": {"type": "string", "enum": list(FEATURE_CATEGORIES)},
                           "text": {"type": "string"}},
            "required": ["category", "text"], "additionalProperties": False}},
    },
    "required": ["diagnosis", "who_reference", "features"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class EnrichmentReply:
    diagnosis: str
    who_reference: str
    features: list[dict]  # {"category", "text"}

    @property
    def text(self) -> str:
        """The features as the text that generation and the grounding check read."""
        return "\n".join(f"- {f['text'].strip()}" for f in self.features)


def parse(obj) -> EnrichmentReply:
    if not isinstance(obj, dict) or not isinstance(obj.get("diagnosis"), str) or not obj["diagnosis"].strip():
        raise ReplyError('expected {"diagnosis": "...", "who_reference": "...", "features": [...]}')
    features = []
    for item in obj.get("features") or []:
        if isinstance(item, dict) and isinstance(item.get("text"), str) and item["text"].strip():
            category = item.get("category") if item.get("category") in FEATURE_CATEGORIES else "other"
            features.append({"category": category, "text": item["text"].strip()})
    if not features:
        raise ReplyError('"features" is empty: list the expected morphological features')
    return EnrichmentReply(diagnosis=obj["diagnosis"].strip(), who_reference=str(obj.get("who_reference") or ""),
                           features=features)


PROMPT = Prompt(name="curation.enrich", version=PROMPT_VERSION, system=SYSTEM, schema=SCHEMA, parse=parse,
                max_output_tokens=1024)
