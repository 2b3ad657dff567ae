"""Automatic checks run on every generated (and imported) pair; every failure is stored with the pair.

Checks (each "pass", "fail" or "skip" with a detail a reviewer can read):
- `schema`: question and answer present; multiple choice has options A-D and a letter; yes/no says Yes/No
  to one question (no text after its "?", no "good or poor?" alternatives).
- `mcq`: the four options are distinct and the answer is exactly one valid letter.
- `grounded`: the answer's content words occur in the cleaned report, or in the enrichment (then the pair
  is marked `uses_enrichment`); the model's evidence quotes are located (spans kept for highlighting).
  Prognosis and treatment answers are clinical inferences: their question's premises are checked instead.
- `diagnosis_leak`: morphology-only questions (and their options) do not name the diagnosis. A bare
  generic word for the lesion ("the neoplasm", "the carcinoma cells", "this cancer") names no type and
  passes (listed in `data.generic_terms`); a type ("adenocarcinoma", "squamous cell carcinoma", "glial
  neoplasm", "DCIS", "melanoma") fails.
- `near_duplicate`: no earlier pair of the same slide and task says (almost) the same.

Nothing is dropped here: a failing pair is stored, flagged, and goes to review like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from curation.errors import CurationError
from wsi_bench.records import LETTERS, parse_inline_options, render_question
from curation.prompts.vqa import TASK_RULES
from curation.text_spans import (
    content_words,
    coverage,
    normalize,
    similarity,
    source_text,
)
from wsi_bench.tasks import TASKS_BY_ID, AnswerFormat

CHECK_NAMES = ("schema", "mcq", "grounded", "diagnosis_leak", "near_duplicate")
DIAGNOSIS_TERMS = re.compile(
    r"\b([a-z]+-?)?(carcinomas?|sarcomas?|lymphomas?|melanomas?|gliomas?|glioblastomas?|astrocytomas?|blastomas?"
    r"|mesotheliomas?|seminomas?|thymomas?|pheochromocytomas?|paragangliomas?|leuka?emias?|myelomas?|cancers?"
    r"|carcinoids?|neoplasms?|adenomas?|germinomas?|teratomas?|DCIS|LCIS|GIST)\b", re.IGNORECASE)


# Generic words for the lesion: a leak only with a typing word right before them ("ductal carcinoma").
GENERIC_TERMS = frozenset({"carcinoma", "carcinomas", "cancer", "cancers", "neoplasm", "neoplasms"})
# Words before a generic term that do not type it.
_UNTYPED_BEFORE = frozenset("""a an the this that these those its their of in within by from for to into with and or
on at invasive infiltrating metastatic primary malignant residual underlying main entire overall whole same
suspected possible""".split())


_POLARITY_WORD = r"(good|poor|favou?rable|unfavou?rable|bad)"
_EITHER_OR = re.compile(rf"\b{_POLARITY_WORD}\s+or\s+{_POLARITY_WORD}\b", re.IGNORECASE)


def _mcq_key(option: str) -> str:
    """An option as the distinctness check compares it: signs spelled out ("HPV+" vs "HPV-", "ER-/PR-")."""
    text = re.sub(r"\+", " positive ", option)
    return re.sub(r"(?<=\w)[-\u2212](?=[\s/,;)]|$)", " negative ", text)


@dataclass
class CheckSettings:
    grounding_min_coverage: float = 0.6     # share of the answer's content words found in the sources
    near_duplicate_similarity: float = 0.9

    def __post_init__(self) -> None:
        for name in ("grounding_min_coverage", "near_duplicate_similarity"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise CurationError(f"CheckSettings.{name} must be in (0, 1], got {getattr(self, name)}.")


@dataclass
class CheckSources:
    """What a pair may rest on. Without a report (imported pairs) grounding is skipped."""

    cleaned: str = ""
    enrichment: str = ""
    ihc_context: str = ""
    diagnosis: str = ""

    @property
    def has_report(self) -> bool:
        return bool(self.cleaned.strip())


@dataclass
class PairDraft:
    task: str
    question: str
    answer: str
    options: dict | None = None
    evidence: list[str] = field(default_factory=list)
    uses_enrichment: bool = False

    @property
    def answer_format(self) -> AnswerFormat:
        return TASKS_BY_ID[self.task].answer_format


@dataclass
class CheckResult:
    name: str
    status: str          # "pass" | "fail" | "skip"
    detail: str = ""
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail, "data": self.data}


def check_schema(draft: PairDraft) -> CheckResult:
    problems = []
    if len(draft.question.split()) < 3:
        problems.append("the question is missing or shorter than 3 words")
    if "<image>" in draft.question:
        problems.append("the question contains the <image> placeholder (it is added on export)")
    fmt = draft.answer_format
    if fmt is AnswerFormat.CHOICE:
        options = draft.options or {}
        if sorted(options) != list(LETTERS) or not all(str(v).strip() for v in options.values()):
            problems.append(f"options must be A, B, C and D, each non-empty (got {sorted(options) or 'none'})")
        if parse_inline_options(draft.question) is not None:
            problems.append("the options are repeated inside the question stem")
    elif fmt is AnswerFormat.YES_NO:
        if draft.answer not in ("Yes", "No"):
            problems.append(f"a yes/no answer must be 'Yes' or 'No', got {draft.answer!r}")
        trailing = draft.question.rsplit("?", 1)[1].strip() if "?" in draft.question else ""
        if trailing:
            problems.append(f"text after the question mark ({trailing[:40]!r})")
        if _EITHER_OR.search(draft.question):
            problems.append("a yes/no question that offers two alternatives (e.g. 'good or poor?')")
    elif fmt is AnswerFormat.OPEN and len(draft.answer.split()) < 2:
        problems.append("the open answer is missing or a single word")
    if fmt is not AnswerFormat.CHOICE and draft.options:
        problems.append("only multiple-choice pairs have options")
    return CheckResult("schema", "fail" if problems else "pass", "; ".join(problems))


def check_mcq(draft: PairDraft) -> CheckResult:
    if draft.answer_format is not AnswerFormat.CHOICE:
        return CheckResult("mcq", "skip", "not a multiple-choice pair")
    problems = []
    if draft.answer not in LETTERS:
        problems.append(f"the answer must be exactly one letter A-D, got {draft.answer!r}")
    options = {k: v for k, v in (draft.options or {}).items() if k in LETTERS}
    keys = sorted(options)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if similarity(_mcq_key(options[a]), _mcq_key(options[b]), at_least=0.95) >= 0.95:
                problems.append(f"options {a} and {b} are not distinct ({options[a]!r})")
    if draft.answer in LETTERS and not options.get(draft.answer, "").strip():
        problems.append(f"the correct option {draft.answer} is empty")
    return CheckResult("mcq", "fail" if problems else "pass", "; ".join(problems))


def _grounding_target(draft: PairDraft, inferred: bool) -> str:
    if inferred:
        return draft.question          # the premises: diagnosis, stage, receptor status
    if draft.answer_format is AnswerFormat.CHOICE:
        return (draft.options or {}).get(draft.answer, "")
    if draft.answer_format is AnswerFormat.YES_NO:
        return ""
    return draft.answer


def check_grounded(draft: PairDraft, sources: CheckSources, settings: CheckSettings) -> CheckResult:
    if not sources.has_report:
        return CheckResult("grounded", "skip", "no source report (imported pair)")
    rule = TASK_RULES[draft.task]
    named = [("report", source_text(sources.cleaned)), ("enrichment", source_text(sources.enrichment))]
    if rule.uses_ihc_context:
        named.append(("context", source_text(sources.ihc_context)))
    spans, unlocated = [], []
    for quote in draft.evidence:
        for name, source in named:
            span = source.find(quote)
            if span is not None:
                spans.append({"source": name, "start": span.start, "end": span.end})
                break
        else:
            unlocated.append(quote)
    target = _grounding_target(draft, rule.inferred_answer)
    texts = [source.text for _, source in named]
    observed = [sources.cleaned] + texts[2:]          # the report, and the IHC context where the task may use it
    cov_report = coverage(target, observed)
    cov_all = coverage(target, texts)
    missing = sorted(content_words(target) - set().union(*(content_words(t) for t in texts)))
    uses_enrichment = draft.uses_enrichment or any(s["source"] == "enrichment" for s in spans) or (
        cov_report < settings.grounding_min_coverage <= cov_all)
    data = {"spans": spans, "unlocated_evidence": unlocated, "coverage_report": round(cov_report, 3),
            "coverage_with_enrichment": round(cov_all, 3), "missing_words": missing[:20],
            "grounded_in": "report+enrichment" if uses_enrichment else "report",
            "inferred_answer": rule.inferred_answer, "marked_uses_enrichment": uses_enrichment}
    problems = []
    if cov_all < settings.grounding_min_coverage:
        problems.append(f"only {cov_all:.0%} of the {'premises' if rule.inferred_answer else 'answer'}'s content "
                        f"words occur in the sources (missing: {', '.join(missing[:8])})")
    if draft.evidence and not spans:
        problems.append("none of the evidence quotes occurs in the sources")
    if not draft.evidence and not target:
        problems.append("no evidence quote supports the answer")
    if uses_enrichment and not draft.uses_enrichment and not problems:
        data["note"] = "relies on the inferred enrichment: marked uses_enrichment by the check"
    return CheckResult("grounded", "fail" if problems else "pass", "; ".join(problems), data)


def check_diagnosis_leak(draft: PairDraft, sources: CheckSources) -> CheckResult:
    if not TASK_RULES[draft.task].morphology_only(draft.task):
        return CheckResult("diagnosis_leak", "skip", "not a morphology-only task")
    text = render_question(draft.question, draft.options)
    found, generic = set(), set()
    for match in DIAGNOSIS_TERMS.finditer(text):
        term = match.group(0)
        if term.lower() in GENERIC_TERMS:
            before = re.findall(r"[A-Za-z][\w-]*", text[:match.start()])[-3:]
            typing = []
            for word in reversed(before):          # the typing words right before it: "squamous cell"
                if word.lower() in _UNTYPED_BEFORE:
                    break
                typing.insert(0, word)
            if not typing:
                generic.add(term)
                continue
            term = " ".join([*typing, term])
        found.add(term)
    found = sorted(found)
    diagnosis = sources.diagnosis.strip()
    if diagnosis and len(diagnosis) > 6 and normalize(diagnosis, loose=True) in normalize(text, loose=True):
        found.append(diagnosis)
    if found:
        return CheckResult("diagnosis_leak", "fail", f"the question names the diagnosis: {', '.join(found)}",
                           {"terms": found, "generic_terms": sorted(generic)})
    return CheckResult("diagnosis_leak", "pass", data={"generic_terms": sorted(generic)} if generic else {})


def check_near_duplicate(draft: PairDraft, neighbours: list[tuple[str, str]],
                         settings: CheckSettings) -> CheckResult:
    """`neighbours`: (uid, rendered question + answer) of earlier pairs of the same slide and task."""
    mine = render_question(draft.question, draft.options) + " || " + draft.answer
    best_uid, best = "", 0.0
    for uid, text in neighbours:
        score = similarity(mine, text, at_least=settings.near_duplicate_similarity)
        if score > best:
            best_uid, best = uid, score
    if best >= settings.near_duplicate_similarity:
        return CheckResult("near_duplicate", "fail", f"{best:.0%} similar to pair {best_uid}",
                           {"duplicate_of": best_uid, "similarity": round(best, 3)})
    return CheckResult("near_duplicate", "pass", data={"compared_with": len(neighbours)})


def run_checks(draft: PairDraft, sources: CheckSources, neighbours: list[tuple[str, str]],
               settings: CheckSettings | None = None) -> list[CheckResult]:
    settings = settings or CheckSettings()
    return [check_schema(draft), check_mcq(draft), check_grounded(draft, sources, settings),
            check_diagnosis_leak(draft, sources), check_near_duplicate(draft, neighbours, settings)]


def failed_names(results: list[CheckResult]) -> list[str]:
    return [r.name for r in results if r.status == "fail"]


def neighbour_text(question: str, options: dict | None, answer: str) -> str:
    return render_question(question, options) + " || " + answer
