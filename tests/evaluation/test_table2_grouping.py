"""Table 2's closed-question cells: the inferred grouping (default), the task-table grouping, their labels."""

import pytest

from evaluation.predictions import LoadReport, ScoringItem
from evaluation.report_md import render_summary_md
from evaluation.score_rows import closed_row
from evaluation.summary import summarize
from evaluation.table2_grouping import closed_cells, patient_of
from wsi_bench.tasks import resolve_task

CHOICE = "Which? A) one B) two C) three D) four"


def item(task, qid, slide, reference, prediction, question=CHOICE):
    spec = resolve_task(task)
    return ScoringItem(question_id=qid, task=spec.task, task_title=spec.title, capability=spec.capability.value,
                       answer_format=spec.answer_format.value, source_task_name=task,
                       image=f"TCGA-BRCA/{slide}.pt", question=question, reference=reference, prediction=prediction)


# Two slides (DX1, DX2) of patient TCGA-AA-0001 carry the same Morphology_choice question, as in the release.
ROWS = [closed_row(i, "official") for i in (
    item("Morphology_choice", "m1", "TCGA-AA-0001-01Z-00-DX1", "B", "B"),
    item("Morphology_choice", "m2", "TCGA-AA-0001-01Z-00-DX2", "B", "A"),     # the repeat: not counted
    item("Morphology_choice", "m3", "TCGA-AA-0002-01Z-00-DX1", "C", "C"),
    item("Diagnosis_choice", "d1", "TCGA-AA-0003-01Z-00-DX1", "A", "A"),
    item("Staging_choice", "s1", "TCGA-AA-0004-01Z-00-DX1", "D", "B"),
    item("Molecular_Subtyping_choice", "u1", "TCGA-AA-0005-01Z-00-DX1", "A", "A"),
    item("Prognosis_TF_question", "p1", "TCGA-AA-0006-01Z-00-DX1", "Yes", "Yes", question="Is the prognosis good?"),
)]


def summary_of(grouping):
    return summarize(ROWS, judge=None, judge_stats={}, run={}, inputs=LoadReport("preds.jsonl", None).to_dict(),
                     nlu_settings=None,
                     metric_version="official", table2_grouping=grouping)


def test_the_inferred_grouping_fills_the_cells_and_counts_each_patient_question_once():
    table = summary_of(None)["table2"]                                   # the default
    ours, n = table["ours"], table["ours_n"]
    assert (ours["morphological_analysis.accuracy"], n["morphological_analysis.accuracy"]) == (1.0, 2)
    # Diag = Diagnosis_choice + Staging_choice (1 of 2 right); Molecular_Subtyping_choice is not counted
    assert (ours["diagnosis.accuracy"], n["diagnosis.accuracy"]) == (0.5, 2)
    assert (ours["treatment_planning.accuracy"], n["treatment_planning.accuracy"]) == (1.0, 1)
    grouping = table["closed_grouping"]
    assert grouping["name"] == "inferred" and grouping["label"] == "grouping inferred"
    assert grouping["not_counted"] == ["molecular_subtyping_choice"] and grouping["n_collapsed_repeats"] == 1
    assert set(table["cell_labels"].values()) == {"grouping inferred"} and len(table["cell_labels"]) == 3


def test_the_task_table_grouping_is_the_earlier_behaviour_and_per_task_accuracies_stay():
    summary = summary_of("task_table")
    ours, n = summary["table2"]["ours"], summary["table2"]["ours_n"]
    assert (ours["morphological_analysis.accuracy"], n["morphological_analysis.accuracy"]) == (pytest.approx(2 / 3), 3)
    assert (ours["diagnosis.accuracy"], n["diagnosis.accuracy"]) == (1.0, 2)              # + subtyping
    assert (ours["treatment_planning.accuracy"], n["treatment_planning.accuracy"]) == (0.5, 2)   # + staging
    for grouping in ("task_table", "inferred"):
        tasks = summary_of(grouping)["tasks"]
        assert tasks["morphology_choice"]["accuracy"]["n"] == 3 and tasks["staging_choice"]["accuracy"]["mean"] == 0.0


def test_summary_md_labels_the_cells():
    md = render_summary_md(summary_of(None))
    table_row = next(line for line in md.splitlines() if line.startswith("| **this run**"))
    assert table_row.count("†") == 3
    assert "† grouping inferred (`--table2-grouping inferred`): Morph = morphology_choice; Diag = " \
           "diagnosis_choice + staging_choice; Treat = prognosis_yes_no" in md
    assert "(1 repeats not counted)" in md and "evaluation/README.md" in md


def test_patients_and_items_without_a_tcga_slide():
    assert patient_of("TCGA-BRCA/TCGA-D1-A17C-01Z-00-DX1.8A93.pt") == "TCGA-D1-A17C"
    assert patient_of("slides/other.svs") is None and patient_of(None) is None
    rows = [{**r, "image": "x.pt"} for r in ROWS[:2]]                    # not TCGA: every item counts
    cells, info = closed_cells(rows, "inferred")
    assert len(cells["morphological_analysis"]) == 2 and info["n_collapsed_repeats"] == 0
