"""Scripted replies of a curation LLM for the loopback OpenAI stand-in (tests and benchmarks).

`CurationResponder` recognises which curation prompt a request carries (cleaning, enrichment or the VQA
prompt of one task, from the system text) and answers like a well-behaved model would: cleaning keeps
the report's diagnosis/microscopic sentences verbatim, enrichment names the diagnosis, and every VQA task
gets pairs whose answers quote the cleaned report. Deterministic, so re-runs and caches can be compared.
"""

from __future__ import annotations

import json
import re

from curation.prompts import vqa
from wsi_bench.tasks import TASKS, AnswerFormat

_TITLE_TO_TASK = {spec.title: spec.task for spec in TASKS}


def prompt_kind(request: dict) -> str:
    """"clean", "enrich" or the task id of a VQA request."""
    system = request["messages"][0]["content"]
    if system.startswith("You clean surgical pathology reports"):
        return "clean"
    if system.startswith("You are a surgical pathologist."):
        return "enrich"
    match = re.search(r"TASK: (.+?)\. ", system)
    assert match, f"unknown prompt: {system[:80]!r}"
    return _TITLE_TO_TASK[match.group(1)]


def section(user: str, heading: str) -> str:
    """The text under a heading of the generation user message (up to the next blank line)."""
    match = re.search(re.escape(heading) + r"[^\n]*\n(.*?)(?:\n\n|\Z)", user, re.DOTALL)
    return match.group(1).strip() if match else ""


def sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.])\s+|\n", text)
    return [p.strip() for p in parts if len(p.split()) >= 3]


class CurationResponder:
    """Callable for `OpenAIStandIn(responder=...)`. Counts requests per prompt kind in `calls`."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def __call__(self, request: dict) -> str:
        kind = prompt_kind(request)
        self.calls[kind] = self.calls.get(kind, 0) + 1
        user = request["messages"][-1]["content"]
        if kind == "clean":
            return json.dumps(self.clean(user))
        if kind == "enrich":
            return json.dumps(self.enrich(user))
        return json.dumps(self.vqa(kind, user))

    @staticmethod
    def clean(report: str) -> dict:
        keep = [s for s in sentences(report) if re.search(r"carcinoma|grade|invasi|nuclei|cells|stage", s, re.I)
                and not re.search(r"stain|positive for|receptor", s, re.I)]
        removed = [{"category": "gross", "excerpt": s} for s in sentences(report) if s not in keep]
        return {"keep": keep or sentences(report)[:1], "removed": removed}

    @staticmethod
    def enrich(user: str) -> dict:
        report = section(user, "CLEANED REPORT")
        match = re.search(r"((?:invasive |infiltrating )?\w+ (?:cell )?carcinoma)", report, re.I)
        return {"diagnosis": match.group(1) if match else "carcinoma",
                "who_reference": "WHO Classification of Tumours, 5th edition",
                "features": [{"category": "architecture", "text": "Infiltrative nests and cords of tumour cells."},
                             {"category": "cytology", "text": "Enlarged pleomorphic nuclei with visible nucleoli."}]}

    @staticmethod
    def vqa(task: str, user: str) -> dict:
        report = section(user, "CLEANED REPORT")
        facts = sentences(report) or [report]
        rule = vqa.TASK_RULES[task]
        fmt = next(spec.answer_format for spec in TASKS if spec.task == task)
        pairs = []
        for index in range(rule.max_pairs):
            fact = facts[index % len(facts)]
            evidence = [fact]
            if fmt is AnswerFormat.CHOICE:
                options = {"A": "Sheets of uniform small round cells", "B": fact.rstrip("."),
                           "C": "Papillary fronds with fibrovascular cores", "D": "Abundant extracellular mucin pools"}
                pairs.append({"question": f"Which finding is present in this slide (item {index + 1})?",
                              "options": options, "answer": "B", "evidence": evidence, "uses_enrichment": False})
            elif fmt is AnswerFormat.YES_NO:
                pairs.append({"question": f"Given the findings ({fact.rstrip('.')}), is the prognosis good?",
                              "answer": "Yes", "evidence": evidence, "uses_enrichment": False})
            else:
                question = (f"Given {fact.rstrip('.').lower()}, what follows?" if rule.inferred_answer
                            else f"What does the slide show regarding feature {index + 1}?")
                pairs.append({"question": question, "answer": fact, "aspect": "", "evidence": evidence,
                              "uses_enrichment": False})
        return {"pairs": pairs, "skip_reason": ""}


REPORT_TEMPLATE = """SURGICAL PATHOLOGY REPORT
CLINICAL HISTORY: Mass in the {organ}.
FINAL DIAGNOSIS:
{organ_title}, resection: Invasive ductal carcinoma, grade {grade}.
The tumor cells form nests with enlarged pleomorphic nuclei and frequent mitoses.
Lymphovascular invasion is {lvi}. Pathologic stage pT{t} N{n} M0.
Immunohistochemical stains show tumor cells positive for ER and negative for HER2.
MICROSCOPIC DESCRIPTION: Sections show infiltrating glands in a desmoplastic stroma with focal necrosis.
GROSS DESCRIPTION: Received in formalin is a {size} cm firm tan mass.
"""


def synthetic_report(index: int) -> dict:
    """A TCGA-like report row {slide_id, text, project} whose layout the section parser recognises."""
    organs = ("breast", "lung", "colon", "kidney")
    organ = organs[index % len(organs)]
    text = REPORT_TEMPLATE.format(organ=organ, organ_title=organ.title(), grade=1 + index % 3,
                                  lvi="present" if index % 2 else "not identified", t=1 + index % 4, n=index % 3,
                                  size=1 + index % 5)
    patient = f"TCGA-{10 + index // 100:02d}-{index % 10000:04d}"
    return {"slide_id": f"{patient}-01Z-00-DX1.{index:08d}", "text": text, "project": "TCGA-BRCA"}


FREE_TEXT_REPORT = ("The specimen shows an invasive lobular carcinoma with single files of discohesive cells. "
                    "Nuclei are small and uniform, grade 2. Estrogen receptor stain is positive in 90% of cells. "
                    "The received specimen measured 4 cm and was serially sectioned.")
