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

Two releases of the per-task files exist (github.com/XinhengLyu/WSI-LLaVA, folder `dataset/`): the
early-2025 test files (commit 1603d85, 2025-01-27; `EARLY_2025_STEMS`) and the renamed ones of May 2025
(02b51e3, a713460; `TaskSpec.file_stem`). The early stem `Morphology` (593 items: tissue architecture,
cellular morphology, infiltration) is regional structure description, while the JSONL metadata value
`Morphology` is specific feature description; so a FILE STEM wins over a metadata alias when a file is
read (`resolve_file_task`, and `resolve_task` on a path), and a bare name resolves metadata-first
(`resolve_task("Morphology")`: a record's or a row's `metadata`). Task ids never collide. The early
`Conversation_test.json` mixes four tasks without `metadata`: each record's task comes from the turn
number that ends its id (`<slide>-1` .. `<slide>-4`; `TURN_NUMBERED_FILES`, `turn_numbered_task`).
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

# The early-2025 test file stems (commit 1603d85) that differ from today's, checked by content: each file's
# (slide, question) pairs are those of the later file named here (the rest: the ~43 slides that changed).
EARLY_2025_STEMS: dict[str, str] = {
    "Morphology": "regional_structure_description",       # 593 items = Regional_Structure_Description
    "Morphology_detail": "specific_feature_description",  # 950 items = Specific_Feature_Description (949)
    "Report": "report_generation",                        # 208 items = 1_Report
    "Stage": "staging",                                   # 191 items = Staging
    "Stage_choice": "staging_choice",                     # 145 items = Staging_choice
    "Subtype": "molecular_subtyping",                     # 48 items = Molecular_Subtyping
    "Subtype_choice": "molecular_subtyping_choice",       # 48 items = Molecular_Subtyping_choice
    "Treatment": "treatment_planning",                    # 48 items = Treatment_Planing
}

# Released files that mix tasks without `metadata`: the N of a record id `<slide>-N` names its task (turn N
# of the slide's conversation). Conversation_test.json (early 2025, 752 items over 208 slides):
# -1 = Global_Morphology_Description, -2 = Key_Diagnostic_Description, -3 = Histological_Typing,
# -4 = Grading (128 slides have a grade), checked against the later files' (slide, question) pairs.
TURN_NUMBERED_FILES: dict[str, tuple[str, ...]] = {
    "Conversation": ("global_morphology_description", "key_diagnostic_description", "histological_typing",
                     "grading"),
}

# Every accepted spelling -> task id. Bare names (a record's or row's `metadata`, a --tasks filter): file
# stems, the stems' corrected spellings and the early stems, then ids, with metadata values winning.
_ALIASES: dict[str, str] = {}
for _spec in TASKS:
    _ALIASES[_spec.file_stem] = _spec.task
    _ALIASES[_spec.task] = _spec.task
_ALIASES["Treatment_Planning"] = "treatment_planning"
_ALIASES.update(EARLY_2025_STEMS)
_ALIASES.update(METADATA_TO_TASK)
# File names: the same, but file stems (today's and the early ones) win over colliding metadata values.
_FILE_ALIASES: dict[str, str] = {**_ALIASES, **EARLY_2025_STEMS,
                                 **{spec.file_stem: spec.task for spec in TASKS}}

_SPLIT_SUFFIX = re.compile(r"_(train|test|val|validation)$", re.IGNORECASE)


def task_name_from_path(path: str | Path) -> str:
    """`.../Staging_choice_test.json` -> `Staging_choice` (file stem without the split suffix)."""
    return _SPLIT_SUFFIX.sub("", Path(path).name.split(".")[0])


def _is_path(raw: str) -> bool:
    return "/" in raw or raw.endswith((".json", ".jsonl"))


def resolve_task(name: str | Path) -> TaskSpec:
    """Map a file name/path, a JSONL metadata value or a task id to its `TaskSpec`.

    A path (`.../Morphology_test.json`) resolves as a file (`resolve_file_task`: its stem wins); a bare name
    resolves metadata-first (`Morphology` -> specific feature description, as the official JSONL means it).
    """
    raw = str(name)
    if _is_path(raw):
        return resolve_file_task(raw)
    return _lookup(_ALIASES, _SPLIT_SUFFIX.sub("", raw), raw)


def resolve_file_task(name: str | Path) -> TaskSpec:
    """The task a per-task file holds, from its name or stem (`Morphology_test.json`, `Morphology`): released
    file stems (both releases) win over colliding metadata values."""
    raw = str(name)
    key = task_name_from_path(raw) if _is_path(raw) else _SPLIT_SUFFIX.sub("", raw)
    return _lookup(_FILE_ALIASES, key, raw)


def resolve_selected_task(name: str) -> TaskSpec:
    """A task named to select it (`--tasks`, a config's task list): as `resolve_task`, but a name that is both a
    released file stem and a metadata value of ANOTHER task (the early `Morphology`) is refused, naming both
    task ids: the person may mean either."""
    key = _SPLIT_SUFFIX.sub("", str(name))
    as_file, as_metadata = _FILE_ALIASES.get(key), _ALIASES.get(key)
    if as_file and as_metadata and as_file != as_metadata:
        raise UnknownTaskError(f"{name!r} is ambiguous: the released file {key}_test.json holds {as_file}, the "
                               f"metadata value {key!r} means {as_metadata}; name the task id you mean.")
    return resolve_task(name)


def _lookup(aliases: dict[str, str], key: str, raw: str) -> TaskSpec:
    if key in aliases:
        return TASKS_BY_ID[aliases[key]]
    if key in TURN_NUMBERED_FILES:
        tasks = ", ".join(TURN_NUMBERED_FILES[key])
        raise UnknownTaskError(f"{raw!r} names a released file that mixes the tasks {tasks} (by the turn number "
                               "-1, -2, ... ending each record id), not one task; name one of those tasks.")
    known = ", ".join(sorted(set(aliases)))
    raise UnknownTaskError(
        f"Unknown WSI-Bench task {raw!r}. Known names (file stems, metadata values, task ids): {known}."
    )


def turn_numbered_task(stem: str, record_id: str) -> TaskSpec | None:
    """The task of record `record_id` in a turn-numbered file (`TURN_NUMBERED_FILES`), or None when `stem` is
    not such a file. Raises `UnknownTaskError` when the id does not end in a known turn number."""
    tasks = TURN_NUMBERED_FILES.get(_SPLIT_SUFFIX.sub("", stem))
    if tasks is None:
        return None
    match = re.search(r"-(\d+)$", record_id)
    if match is None or not 1 <= int(match.group(1)) <= len(tasks):
        raise UnknownTaskError(f"record id {record_id!r} does not end in a turn number -1..-{len(tasks)}, which "
                               f"names the task in {stem} files ({', '.join(tasks)}).")
    return TASKS_BY_ID[tasks[int(match.group(1)) - 1]]


def tasks_for_capability(capability: Capability) -> list[TaskSpec]:
    return [spec for spec in TASKS if spec.capability is capability]
