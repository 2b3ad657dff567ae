"""The one table of WSI-Bench tasks: every released file stem and metadata value -> task and capability.

WSI-Bench names a task in two ways: the per-task LLaVA JSON files are named by a stem
(`Staging_choice_test.json` -> `Staging_choice`) and the official open-ended JSONL carries a
`metadata` value (`Stage`, `Caption`, `tissue`, ...). Training, curation and evaluation all
resolve names through `resolve_task`; an unknown name raises `UnknownTaskError` (never a silent
"other"). Usage:

    >>> resolve_task("Staging_choice_test.json").task
    'staging_choice'
    >>> resolve_task("Caption").capability
    <Capability.MORPHOLOGY: 'morphological_analysis'>
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

from wsi_bench.errors import UnknownTaskError


class Capability(str, enum.Enum):
    MORPHOLOGY = "morphological_analysis"
    DIAGNOSIS = "diagnosis"
    TREATMENT = "treatment_planning"
    REPORT = "report_generation"

    @property
    def title(self) -> str:
        return CAPABILITY_TITLES[self]


CAPABILITY_TITLES = {
    Capability.MORPHOLOGY: "Morphological analysis",
    Capability.DIAGNOSIS: "Diagnosis",
    Capability.TREATMENT: "Treatment planning",
    Capability.REPORT: "Report generation",
}


class AnswerFormat(str, enum.Enum):
    OPEN = "open"        # free text, scored with WSI-Precision / WSI-Relevance (and NLU metrics)
    CHOICE = "choice"    # four options A-D inline in the question, answer is one letter
    YES_NO = "yes_no"    # answer is "Yes" or "No"

    @property
    def closed(self) -> bool:
        return self is not AnswerFormat.OPEN


@dataclass(frozen=True)
class TaskSpec:
    task: str                 # canonical id, snake_case
    title: str                # human-readable name, as in the paper
    capability: Capability
    answer_format: AnswerFormat
    file_stem: str            # the released LLaVA JSON file stem (without _train/_test)


_O, _C, _Y = AnswerFormat.OPEN, AnswerFormat.CHOICE, AnswerFormat.YES_NO
_M, _D, _T, _R = Capability.MORPHOLOGY, Capability.DIAGNOSIS, Capability.TREATMENT, Capability.REPORT

# The 11 open-ended tasks of the paper, then the closed-ended variants released as their own files.
TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("global_morphology_description", "Global morphology description", _M, _O,
             "Global_Morphology_Description"),
    TaskSpec("regional_structure_description", "Regional structure description", _M, _O,
             "Regional_Structure_Description"),
    TaskSpec("specific_feature_description", "Specific feature description", _M, _O,
             "Specific_Feature_Description"),
    TaskSpec("key_diagnostic_description", "Key diagnostic description", _M, _O,
             "Key_Diagnostic_Description"),
    TaskSpec("histological_typing", "Histological typing", _D, _O, "Histological_Typing"),
    TaskSpec("grading", "Grading", _D, _O, "Grading"),
    TaskSpec("molecular_subtyping", "Molecular subtyping", _D, _O, "Molecular_Subtyping"),
    TaskSpec("staging", "Staging", _T, _O, "Staging"),
    TaskSpec("prognosis", "Prognosis", _T, _O, "Prognosis"),
    TaskSpec("treatment_planning", "Treatment planning", _T, _O, "Treatment_Planing"),
    TaskSpec("report_generation", "Report generation", _R, _O, "1_Report"),
    TaskSpec("morphology_choice", "Morphology (multiple choice)", _M, _C, "Morphology_choice"),
    TaskSpec("diagnosis_choice", "Diagnosis (multiple choice)", _D, _C, "Diagnosis_choice"),
    TaskSpec("molecular_subtyping_choice", "Molecular subtyping (multiple choice)", _D, _C,
             "Molecular_Subtyping_choice"),
    TaskSpec("staging_choice", "Staging (multiple choice)", _T, _C, "Staging_choice"),
    TaskSpec("prognosis_yes_no", "Prognosis (yes/no)", _T, _Y, "Prognosis_TF_question"),
)
TASKS_BY_ID: dict[str, TaskSpec] = {spec.task: spec for spec in TASKS}

# Official JSONL `metadata` values (WSI-Bench-test.jsonl, WSI-Bench-Report-only.jsonl) -> task id.
METADATA_TO_TASK: dict[str, str] = {
    "Caption": "global_morphology_description",
    "tissue": "regional_structure_description",      # tissue architecture
    "cellular": "regional_structure_description",    # cellular morphology
    "infiltration": "regional_structure_description",
    "Morphology": "specific_feature_description",
    "Feature": "key_diagnostic_description",
    "Classification": "histological_typing",
    "Grade": "grading",
    "Subtype": "molecular_subtyping",
    "Stage": "staging",
    "Prognosis": "prognosis",
    "Treatment": "treatment_planning",
    "Report": "report_generation",
}

# Every accepted spelling -> task id: file stems, the stems' corrected spellings, metadata values, ids.
_ALIASES: dict[str, str] = {}
for _spec in TASKS:
    _ALIASES[_spec.file_stem] = _spec.task
    _ALIASES[_spec.task] = _spec.task
_ALIASES["Treatment_Planning"] = "treatment_planning"
_ALIASES["Report"] = "report_generation"
_ALIASES.update(METADATA_TO_TASK)

_SPLIT_SUFFIX = re.compile(r"_(train|test|val|validation)$", re.IGNORECASE)


def task_name_from_path(path: str | Path) -> str:
    """`.../Staging_choice_test.json` -> `Staging_choice` (file stem without the split suffix)."""
    return _SPLIT_SUFFIX.sub("", Path(path).name.split(".")[0])


def resolve_task(name: str | Path) -> TaskSpec:
    """Map a file name/stem, a JSONL metadata value or a task id to its `TaskSpec`."""
    raw = str(name)
    key = task_name_from_path(raw) if ("/" in raw or raw.endswith((".json", ".jsonl"))) else raw
    key = _SPLIT_SUFFIX.sub("", key)
    if key in _ALIASES:
        return TASKS_BY_ID[_ALIASES[key]]
    known = ", ".join(sorted(set(_ALIASES)))
    raise UnknownTaskError(
        f"Unknown WSI-Bench task {raw!r}. Known names (file stems, metadata values, task ids): {known}."
    )


def tasks_for_capability(capability: Capability) -> list[TaskSpec]:
    return [spec for spec in TASKS if spec.capability is capability]
