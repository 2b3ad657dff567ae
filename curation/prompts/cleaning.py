"""The cleaning prompt: which verbatim parts of a pathology report to keep (the LLM pass of cleaning).

The model never writes the cleaned report. It returns excerpts copied from the report; the cleaning
step locates each excerpt in the original text and builds the cleaned report from those original
spans only, so cleaning cannot add a fact (excerpts that are not found verbatim are recorded as
`unmatched` and not used). Everything not kept is shown to reviewers as removed text.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm.types import Prompt
from llm.errors import ReplyError

PROMPT_VERSION = "clean-2026-11-29.1"
REMOVED_CATEGORIES = ("gross", "ihc", "clinical", "specimen", "intraoperative", "admin", "other")

SYSTEM = """You clean surgical pathology reports for a whole-slide-image dataset.
KEEP, copied character for character: the microscopic description of the tissue (architecture, cells,
nuclei, mitoses, necrosis, invasion, margins as seen under the microscope) and the diagnosis (histological
type, grade, stage/pTNM, lymph node status, lymphovascular/perineural invasion).
REMOVE: the gross (macroscopic) description and cassette/block lists, immunohistochemistry, special stain,
FISH and molecular results, clinical history, specimen and procedure descriptions, intra-operative or
frozen-section consultations, and administrative text (names, dates, signatures, accession numbers).
Rules: each item of "keep" must be an exact excerpt of the report (a sentence or a few consecutive
sentences), in report order. Never paraphrase, correct, summarise or add words. List what you removed
in "removed" with its category (gross, ihc, clinical, specimen, intraoperative, admin, other) as exact
excerpts too."""

SCHEMA = {
    "type": "object",
    "properties": {
        "keep": {"type": "array", "items": {"type": "string"}},
        "removed": {"type": "array", "items": {
            "type": "object",
            "properties": {"category": {"type": "string", "enum": list(REMOVED_CATEGORIES)},
                           "excerpt": {"type": "string"}},
            "required": ["category", "excerpt"], "additionalProperties": False}},
    },
    "required": ["keep", "removed"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class CleaningReply:
    keep: list[str]
    removed: list[tuple[str, str]]  # (category, excerpt)


def parse(obj) -> CleaningReply:
    if not isinstance(obj, dict) or not isinstance(obj.get("keep"), list):
        raise ReplyError('expected {"keep": [excerpts], "removed": [{"category", "excerpt"}]}')
    keep = [k for k in obj["keep"] if isinstance(k, str) and k.strip()]
    if not keep:
        raise ReplyError('"keep" holds no excerpt: every report has a diagnosis to keep')
    removed = []
    for item in obj.get("removed") or []:
        if isinstance(item, dict) and isinstance(item.get("excerpt"), str):
            category = item.get("category") if item.get("category") in REMOVED_CATEGORIES else "other"
            removed.append((category, item["excerpt"]))
    return CleaningReply(keep=keep, removed=removed)


PROMPT = Prompt(name="curation.clean", version=PROMPT_VERSION, system=SYSTEM, schema=SCHEMA, parse=parse,
                max_output_tokens=2048)
