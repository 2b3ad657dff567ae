"""Which closed-question tasks make Table 2's three accuracy cells: named groupings, one registry.

The paper's Table 2 reports one closed-question accuracy ("Acc") per capability, but neither the paper
nor the release says which closed files make each cell. The task table's grouping (Morphology_choice |
Diagnosis_choice + Molecular_Subtyping_choice | Staging_choice + Prognosis_TF, 682 / 461 / 193 items on
the released test set) cannot give the published accuracies: e.g. Treatment 0.875 and 0.771 are k/N only
for N in {48, 96, 144, 192, 240} below 270, never 193. The grouping below is INFERRED from the published
numbers (evaluation/README.md, "Table 2: the closed-question grouping", has the evidence and its
limits); every output that shows these cells labels them "grouping inferred".

- `inferred` (default): Morph = Morphology_choice; Diag = Diagnosis_choice + Staging_choice; Treat =
  Prognosis_TF_question; Molecular_Subtyping_choice not counted; each (TCGA patient, task, question,
  reference) counted once (the release repeats some questions for two slides of one patient; the first
  in file order is kept). On the released test files (XinhengLyu/WSI-LLaVA 1603d85 = 02b51e3) this is
  679 / 555 / 48 items and the only grouping found that is consistent with all 12 published closed values.
- `task_table`: the task table's capabilities (wsi_bench.tasks), every item counted: the project's
  earlier behaviour.

    cells, info = closed_cells(rows, "inferred")   # {capability: [rows counted]}, what was done
"""

from __future__ import annotations

from dataclasses import dataclass

from wsi_bench.files import patient_id_from_slide, slide_id_from_image
from wsi_bench.tasks import TASKS
from evaluation.baselines import TABLE2_CAPABILITIES
from evaluation.errors import EvaluationError

_CLOSED_TASKS = tuple(spec.task for spec in TASKS if spec.answer_format.closed)


@dataclass(frozen=True)
class ClosedGrouping:
    name: str
    label: str                              # shown beside the cells
    cells: dict[str, tuple[str, ...]]       # Table 2 capability -> closed task ids counted in its Acc cell
    one_per_patient_question: bool          # count each (patient, task, question, reference) once
    description: str

    @property
    def not_counted(self) -> list[str]:
        counted = {task for tasks in self.cells.values() for task in tasks}
        return [task for task in _CLOSED_TASKS if task not in counted]

    def describe(self) -> dict:
        return {"name": self.name, "label": self.label, "cells": {c: list(t) for c, t in self.cells.items()},
                "not_counted": self.not_counted, "one_per_patient_question": self.one_per_patient_question,
                "description": self.description,
                "evidence": "evaluation/README.md, section 'Table 2: the closed-question grouping'"}


GROUPINGS: dict[str, ClosedGrouping] = {
    "inferred": ClosedGrouping(
        name="inferred", label="grouping inferred",
        cells={"morphological_analysis": ("morphology_choice",),
               "diagnosis": ("diagnosis_choice", "staging_choice"),
               "treatment_planning": ("prognosis_yes_no",)},
        one_per_patient_question=True,
        description="Inferred from the published accuracies: the only grouping of the released closed files "
                    "found consistent with all 12 published values (a leading hypothesis, not confirmed by the "
                    "authors)"),
    "task_table": ClosedGrouping(
        name="task_table", label="task-table grouping",
        cells={cap: tuple(spec.task for spec in TASKS if spec.answer_format.closed and spec.capability.value == cap)
               for cap in TABLE2_CAPABILITIES},
        one_per_patient_question=False,
        description="The task table's capabilities, every item counted (it cannot reproduce the published "
                    "closed accuracies)"),
}
DEFAULT_TABLE2_GROUPING = "inferred"
GROUPING_NAMES = tuple(GROUPINGS)


def get_grouping(name: str | None) -> ClosedGrouping:
    try:
        return GROUPINGS[name or DEFAULT_TABLE2_GROUPING]
    except KeyError as exc:
        raise EvaluationError(f"Unknown Table 2 grouping {name!r}; choose one of {list(GROUPINGS)}.") from exc


def patient_of(image: str | None) -> str | None:
    """The TCGA case id (first 12 characters, e.g. TCGA-D1-A17C) of a slide path; None when not TCGA."""
    slide = slide_id_from_image(str(image or "").replace("\\", "/"))
    return patient_id_from_slide(slide) if slide.startswith("TCGA-") and len(slide) >= 12 else None


def closed_cells(rows: list[dict], name: str | None = None) -> tuple[dict[str, list[dict]], dict]:
    """The closed rows counted in each Table 2 Acc cell, and a record of the grouping and what it dropped."""
    grouping = get_grouping(name)
    cells: dict[str, list[dict]] = {cap: [] for cap in grouping.cells}
    task_cell = {task: cap for cap, tasks in grouping.cells.items() for task in tasks}
    seen: set[tuple] = set()
    collapsed = 0
    for row in rows:
        if row.get("accuracy") is None or row["task"] not in task_cell:
            continue
        if grouping.one_per_patient_question:
            patient = patient_of(row.get("image"))
            key = ((row["task"], patient, row.get("question"), row.get("reference")) if patient
                   else (row["task"], "item", row["question_id"]))
            if key in seen:
                collapsed += 1
                continue
            seen.add(key)
        cells[task_cell[row["task"]]].append(row)
    info = {**grouping.describe(), "n_collapsed_repeats": collapsed,
            "n_counted": {cap: len(cell) for cap, cell in cells.items()}}
    return cells, info
