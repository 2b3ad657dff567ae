"""Prediction files in all accepted formats, matched to references; unmatched rows are reported."""

import json

import pytest

from evaluation.errors import PredictionFormatError
from evaluation.predictions import load_predictions
from tests.evaluation.fixtures import (
    OFFICIAL_ROWS,
    own_rows,
    write_benchmark,
    write_jsonl,
)


def test_own_rows_derive_task_and_capability_from_the_task_table_only(tmp_path):
    items, report = load_predictions(write_jsonl(tmp_path / "p.jsonl", own_rows()))
    assert report.n_rows == report.n_items == len(items) == 10 and not report.unmatched
    by_key = {item.key: item for item in items}
    assert by_key[("diagnosis_choice", "S1-1")].capability == "diagnosis"          # from the stem
    assert by_key[("staging", "Stage_S5-1_1")].capability == "treatment_planning"  # from a metadata value
    assert by_key[("prognosis_yes_no", "S1-1")].answer_format == "yes_no"
    assert by_key[("report_generation", "S1-1")].capability == "report_generation"
    assert {item.model for item in items} == {"tiny"} and report.formats == ["wsi-llava rows"]
    # ids repeat across tasks: (task, id) keeps them apart
    assert len([i for i in items if i.question_id == "S1-1"]) == 3


def test_official_jsonl_with_answer_field(tmp_path):
    rows = [{**row, "answer": "My answer."} for row in OFFICIAL_ROWS]
    items, report = load_predictions(write_jsonl(tmp_path / "official.jsonl", rows))
    assert [(i.task, i.reference, i.prediction) for i in items] == [
        ("staging", OFFICIAL_ROWS[0]["T-answer"], "My answer."),
        ("global_morphology_description", OFFICIAL_ROWS[1]["T-answer"], "My answer.")]
    assert report.formats == ["official jsonl + answer"]


def test_llava_json_references_with_predictions_keyed_by_id(tmp_path):
    bench = write_benchmark(tmp_path / "bench")
    predictions = [
        {"question_id": "S2-4", "text": "grade III", "metadata": {}, "model_id": "m"},   # LLaVA model_vqa row
        {"id": "S1-1", "task": "Diagnosis_choice", "answer": "B"},            # ambiguous id, task given
        {"question_id": "S1-1", "prediction": "No"},                          # ambiguous without a task
        {"question_id": "nope", "prediction": "x"},                           # no such reference
        {"question_id": "S1-4", "task": "Banana", "prediction": "x"},         # unknown task
        {"question_id": "S1-4", "prediction": 3},                             # not a text: a skipped line
        {"prediction": "no id"},
        {"question_id": "S2-4", "prediction": "again"},                       # duplicate
    ]
    path = write_jsonl(tmp_path / "answers.jsonl", predictions)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"question_id": "cut sho')                            # a line cut short by a crash
    items, report = load_predictions(path, references=bench)
    assert [(i.task, i.question_id, i.prediction) for i in items] == [
        ("grading", "S2-4", "grade III"), ("diagnosis_choice", "S1-1", "B")]
    assert items[0].reference.startswith("The tumor is graded as FIGO grade III")
    assert items[0].question == "How would you grade this tumor?" and items[0].image == "TCGA-XX/S2.pt"
    reasons = [u["reason"] for u in report.unmatched]
    assert "ambiguous across tasks" in reasons[0] and "add a task field" in reasons[0]
    assert reasons[1] == "no reference with this id"
    assert "unknown task 'Banana'" in reasons[2]
    assert "no id field" in reasons[3] and len(reasons) == 4
    assert len(report.duplicates) == 1 and report.duplicates[0]["kept"].endswith(":1")
    assert len(report.problems) == 2 and "not valid JSON" in report.problems[0]
    assert report.problems[1] == f"{path}:6: field 'prediction' must be a string, got int; line skipped"
    assert report.skipped_lines == [6, 9]
    assert report.to_dict()["n_missing"] == 10 - 2          # every reference without a prediction is listed


def test_json_mapping_of_id_to_prediction_and_task_filter(tmp_path):
    bench = write_benchmark(tmp_path / "bench")
    path = tmp_path / "preds.json"
    path.write_text(json.dumps({"S1-4": "grade I", "S2-4": "grade II", "Stage_S5-1_1": "T2N0M0"}))
    items, report = load_predictions(path, references=bench, tasks=["Grading"])
    assert [i.question_id for i in items] == ["S1-4", "S2-4"]
    assert report.n_filtered_out == 1 and report.missing == []


def test_unreadable_files_raise_a_format_error(tmp_path):
    with pytest.raises(PredictionFormatError, match="no such predictions file"):
        load_predictions(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(PredictionFormatError, match="must hold an object"):
        load_predictions(bad)
    with pytest.raises(PredictionFormatError, match="--tasks"):
        load_predictions(write_jsonl(tmp_path / "p.jsonl", own_rows()), tasks=["Banana"])


def test_rows_without_reference_need_references(tmp_path):
    items, report = load_predictions(write_jsonl(tmp_path / "p.jsonl", [{"question_id": "S1-4", "prediction": "x"}]))
    assert items == [] and "pass --references" in report.unmatched[0]["reason"]
