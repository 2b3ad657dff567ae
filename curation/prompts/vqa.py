"""The VQA generation prompts: one per WSI-Bench task (11 open tasks and the closed-ended variants).

Every task shares one system prelude and one reply schema per answer format (open, four-option
multiple choice, yes/no); the task's own instruction (modelled on the released WSI-Bench questions)
says what to ask. `TASK_RULES` also says which sources a task may use (the IHC text removed during
cleaning is given only to the tasks whose released questions cite it), whether its answer is an
inference rather than a report fact (prognosis, treatment), and whether its questions must not name
the diagnosis (morphology tasks). Usage:

    prompt = vqa_prompt("staging_choice")            # a `Prompt` named "curation.vqa.staging_choice"
    reply = client.complete(prompt, user_message(...)).value   # VQAReply(pairs=[VQADraft...], skip_reason)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from llm.types import Prompt
from llm.errors import ReplyError
from wsi_bench.tasks import TASKS_BY_ID, AnswerFormat, Capability

PROMPT_VERSION = "vqa-2026-11-29.1"
LETTERS = ("A", "B", "C", "D")
ASPECTS = ("", "tissue", "cellular", "infiltration")


@dataclass(frozen=True)
class VQATaskRule:
    instruction: str
    max_pairs: int = 1
    uses_ihc_context: bool = False   # the task may read the IHC text removed during cleaning
    inferred_answer: bool = False    # the answer is clinical reasoning, not a fact of the report

    def morphology_only(self, task: str) -> bool:
        return TASKS_BY_ID[task].capability is Capability.MORPHOLOGY


_NO_DX = " Do not name the diagnosis (tumour type) in the question."
TASK_RULES: dict[str, VQATaskRule] = {
    "global_morphology_description": VQATaskRule(
        "Ask for an overall description of the whole slide image (e.g. 'Can you provide an overall description "
        "of the whole slide image (WSI)?'). Answer in 3-6 sentences: overall architecture, cellular features and "
        "notable findings such as necrosis, invasion or calcification." + _NO_DX),
    "regional_structure_description": VQATaskRule(
        "Write one pair per aspect the report describes: tissue architecture (aspect 'tissue'), cellular "
        "morphology ('cellular') and infiltration pattern ('infiltration'), e.g. 'What are the notable features "
        "of the cellular morphology in this slide?'. Answers 2-4 sentences." + _NO_DX, max_pairs=3),
    "specific_feature_description": VQATaskRule(
        "Ask about one specific morphological feature each (e.g. 'Are there any mitotic figures seen within the "
        "tumour glands?', 'Do the neoplastic cells invade the visceral pleura?'); answer in 2-3 sentences."
        + _NO_DX, max_pairs=2),
    "key_diagnostic_description": VQATaskRule(
        "Ask which observed features are most significant for making the diagnosis; the answer names the key "
        "morphological features and why they matter (2-4 sentences)." + _NO_DX),
    "histological_typing": VQATaskRule(
        "Ask for the histological classification of the tumour; the answer states the histological type given "
        "in the report and the morphological features that support it."),
    "grading": VQATaskRule(
        "Ask for the grade in the grading system the report uses (Nottingham, FIGO, Gleason, WHO, Fuhrman...); "
        "the answer states the grade and the features that support it. Skip if the report states no grade."),
    "molecular_subtyping": VQATaskRule(
        "The question states the immunohistochemistry/molecular results of the CLINICAL CONTEXT and asks for "
        "the molecular subtype (breast: Luminal A/B, HER2-enriched, triple-negative; glioma: IDH-mutant or "
        "IDH-wildtype, 1p/19q status; ...). Answer in one sentence. Skip if the context gives no such results.",
        uses_ihc_context=True),
    "staging": VQATaskRule(
        "The question describes the tumour size/extent, lymph node involvement and metastasis as the report "
        "states them and asks for the TNM staging; the answer gives the stage the report states. Skip if the "
        "report states no stage."),
    "prognosis": VQATaskRule(
        "The question summarises the diagnosis, grade and stage (and the IHC results of the CLINICAL CONTEXT "
        "when given) and asks whether the prognosis is good or poor; the answer says good or poor with the "
        "reasons in 1-2 sentences. Quote the report facts it rests on as evidence.",
        uses_ihc_context=True, inferred_answer=True),
    "treatment_planning": VQATaskRule(
        "Ask for the recommended treatment plan for a patient with the report's diagnosis, grade, stage and "
        "receptor status; answer with a numbered plan (surgery, chemotherapy, radiation, targeted or endocrine "
        "therapy, follow-up) following standard guidelines. Quote the report facts it rests on as evidence.",
        uses_ihc_context=True, inferred_answer=True),
    "report_generation": VQATaskRule(
        "Ask for the main observations and the likely diagnosis of the whole slide image; the answer is one "
        "report-style paragraph starting 'Microscopic observation of the pathology slide reveals', describing "
        "the morphology and ending with the diagnosis, using only the report (and the INFERRED MORPHOLOGY when "
        "you mark uses_enrichment)."),
    "morphology_choice": VQATaskRule(
        "Write four-option multiple-choice questions on the morphology (architecture, nuclei, invasion). "
        "Exactly one option agrees with the report; the three others are plausible but contradicted by it."
        + _NO_DX + " Do not name it in the options either.", max_pairs=2),
    "diagnosis_choice": VQATaskRule(
        "Write four-option multiple-choice questions on the histological type and on the grade/differentiation. "
        "Exactly one option agrees with the report.", max_pairs=2),
    "molecular_subtyping_choice": VQATaskRule(
        "A four-option multiple-choice question that states the IHC/molecular results of the CLINICAL CONTEXT "
        "and asks for the molecular subtype; exactly one option is right. Skip if the context gives none.",
        uses_ihc_context=True),
    "staging_choice": VQATaskRule(
        "A four-option multiple-choice question that describes the tumour size/extent, nodes and metastasis as "
        "the report states them and asks for the TNM stage; exactly one option is the stage the report states. "
        "Skip if the report states no stage."),
    "prognosis_yes_no": VQATaskRule(
        "A question of the form 'Given the diagnosis of ..., with TNM staging of ..., is the prognosis good?' "
        "answered Yes or No. Quote the report facts it rests on as evidence.",
        uses_ihc_context=True, inferred_answer=True),
}
assert set(TASK_RULES) == set(TASKS_BY_ID), "every WSI-Bench task needs a generation rule"

PRELUDE = """You write visual question-answer pairs about one H&E whole slide image for WSI-Bench, from its
cleaned pathology report. The questions are asked about the slide image (never mention 'the report');
answers must be supported by the CLEANED REPORT. You may also use the INFERRED MORPHOLOGY (expected
features for the diagnosis, not observed on this slide): then set "uses_enrichment" to true. Use the
CLINICAL CONTEXT only when the task says so. "evidence" lists exact quotes (copied verbatim) from the
sources that support the answer. Never invent facts. If the sources do not support this task, return no
pairs and say why in "skip_reason" (otherwise "skip_reason" is "").

TASK: {title}. {instruction} Write at most {max_pairs} pair(s)."""

_EVIDENCE = {"type": "array", "items": {"type": "string"}}


def _envelope(pair_schema: dict) -> dict:
    return {"type": "object", "properties": {"pairs": {"type": "array", "items": pair_schema},
                                             "skip_reason": {"type": "string"}},
            "required": ["pairs", "skip_reason"], "additionalProperties": False}


SCHEMAS: dict[AnswerFormat, dict] = {
    AnswerFormat.OPEN: _envelope({"type": "object", "properties": {
        "question": {"type": "string"}, "answer": {"type": "string"},
        "aspect": {"type": "string", "enum": list(ASPECTS)}, "evidence": _EVIDENCE,
        "uses_enrichment": {"type": "boolean"}},
        "required": ["question", "answer", "aspect", "evidence", "uses_enrichment"], "additionalProperties": False}),
    AnswerFormat.CHOICE: _envelope({"type": "object", "properties": {
        "question": {"type": "string"},
        "options": {"type": "object", "properties": {k: {"type": "string"} for k in LETTERS},
                    "required": list(LETTERS), "additionalProperties": False},
        "answer": {"type": "string", "enum": list(LETTERS)}, "evidence": _EVIDENCE,
        "uses_enrichment": {"type": "boolean"}},
        "required": ["question", "options", "answer", "evidence", "uses_enrichment"], "additionalProperties": False}),
    AnswerFormat.YES_NO: _envelope({"type": "object", "properties": {
        "question": {"type": "string"}, "answer": {"type": "string", "enum": ["Yes", "No"]}, "evidence": _EVIDENCE,
        "uses_enrichment": {"type": "boolean"}},
        "required": ["question", "answer", "evidence", "uses_enrichment"], "additionalProperties": False}),
}


@dataclass
class VQADraft:
    """One pair as the model wrote it. Per-pair problems are not raised here: the pair checks record them."""

    question: str
    answer: str
    options: dict | None = None
    aspect: str = ""
    evidence: list[str] = field(default_factory=list)
    uses_enrichment: bool = False


@dataclass
class VQAReply:
    pairs: list[VQADraft]
    skip_reason: str = ""


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def parse(obj) -> VQAReply:
    """Validate the envelope ({"pairs": [...], "skip_reason"}); keep every pair object for the checks."""
    if not isinstance(obj, dict) or not isinstance(obj.get("pairs"), list):
        raise ReplyError('expected {"pairs": [...], "skip_reason": "..."}')
    pairs = []
    for item in obj["pairs"]:
        if not isinstance(item, dict):
            raise ReplyError(f"each pair must be an object, got {type(item).__name__}")
        options = item.get("options")
        pairs.append(VQADraft(
            question=_text(item.get("question")), answer=_text(item.get("answer")),
            options={str(k): _text(v) for k, v in options.items()} if isinstance(options, dict) else None,
            aspect=_text(item.get("aspect")),
            evidence=[e for e in item.get("evidence") or [] if isinstance(e, str) and e.strip()],
            uses_enrichment=item.get("uses_enrichment") is True))
    skip = _text(obj.get("skip_reason"))
    if not pairs and not skip:
        raise ReplyError('no pairs and no "skip_reason": say why the task does not apply')
    return VQAReply(pairs=pairs, skip_reason=skip)


@lru_cache(maxsize=None)
def vqa_prompt(task: str) -> Prompt:
    spec, rule = TASKS_BY_ID[task], TASK_RULES[task]
    system = PRELUDE.format(title=spec.title, instruction=rule.instruction, max_pairs=rule.max_pairs)
    return Prompt(name=f"curation.vqa.{task}", version=PROMPT_VERSION, system=system,
                  schema=SCHEMAS[spec.answer_format], parse=parse, max_output_tokens=400 + 450 * rule.max_pairs)


def user_message(slide_id: str, cleaned_report: str, enrichment: str = "", ihc_context: str = "") -> str:
    """The user turn of every generation prompt: the sources, each under its own heading."""
    parts = [f"SLIDE: {slide_id}", "", "CLEANED REPORT (observed):", cleaned_report.strip()]
    if ihc_context.strip():
        parts += ["", "CLINICAL CONTEXT (immunohistochemistry removed from the report; use only if the task says so):",
                  ihc_context.strip()]
    if enrichment.strip():
        parts += ["", "INFERRED MORPHOLOGY (expected for the diagnosis, NOT observed; mark uses_enrichment):",
                  enrichment.strip()]
    return "\n".join(parts)
