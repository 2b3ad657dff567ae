"""Both releases of the per-task WSI-Bench file names read as the right tasks (synthetic files written here).

The early-2025 test files (XinhengLyu/WSI-LLaVA commit 1603d85) have other stems than the May 2025 ones; the
stem `Morphology` (regional structure) collides with the JSONL metadata value `Morphology` (specific feature),
and `Conversation_test.json` mixes four tasks, each record's task named by the turn number ending its id.
"""

import json

import pytest

from wsi_bench.files import read_bench_file, read_benchmark, write_official_jsonl
from wsi_bench.tasks import resolve_file_task, resolve_task

SLIDE = "TCGA-BH-A18U-01Z-00-DX1.63940315-59BC-462B-87A8-2BBB33C9503E"
OTHER = "TCGA-A2-A0CM-01Z-00-DX1.AC4901DE-4B6D-4185-BB9F-156033839828"


def record(qid, question, answer="Answer.", slide=SLIDE):
    return {"id": qid, "image": f"TCGA-BRCA/{slide}.pt",
            "conversations": [{"from": "human", "value": f"<image>\n{question}"},
                              {"from": "gpt", "value": answer}]}


EARLY_2025 = {
    "Morphology_test.json": "regional_structure_description",
    "Morphology_detail_test.json": "specific_feature_description",
    "Report_test.json": "report_generation",
    "Stage_test.json": "staging",
    "Stage_choice_test.json": "staging_choice",
    "Subtype_test.json": "molecular_subtyping",
    "Subtype_choice_test.json": "molecular_subtyping_choice",
    "Treatment_test.json": "treatment_planning",
    "Prognosis_test.json": "prognosis",
    "Prognosis_TF_question_test.json": "prognosis_yes_no",
    "Diagnosis_choice_test.json": "diagnosis_choice",
    "Morphology_choice_test.json": "morphology_choice",
}
MAY_2025 = {
    "Regional_Structure_Description_test.json": "regional_structure_description",
    "Specific_Feature_Description_test.json": "specific_feature_description",
    "1_Report_test.json": "report_generation",
    "Staging_test.json": "staging",
    "Treatment_Planing_test.json": "treatment_planning",
    "Molecular_Subtyping_choice_test.json": "molecular_subtyping_choice",
    "Global_Morphology_Description_test.json": "global_morphology_description",
}


@pytest.mark.parametrize("layout", [EARLY_2025, MAY_2025], ids=["early-2025", "may-2025"])
def test_every_released_file_name_reads_as_its_task(tmp_path, layout):
    for name in layout:
        (tmp_path / name).write_text(json.dumps([record(f"{SLIDE}-1", f"Question of {name}?")]))
    items = read_benchmark(tmp_path, split="test")
    assert {item.source: item.task for item in items} == {str(tmp_path / n): t for n, t in layout.items()}


def test_a_file_stem_wins_over_a_colliding_metadata_value(tmp_path):
    assert resolve_file_task("Morphology").task == "regional_structure_description"
    assert resolve_task("some/dir/Morphology_test.json").task == "regional_structure_description"
    assert resolve_task("Morphology").task == "specific_feature_description"      # the JSONL metadata value
    path = tmp_path / "Morphology_test.json"
    path.write_text(json.dumps([record(f"{SLIDE}-1", "What about the tissue architecture?"),
                                {**record(f"{SLIDE}-2", "Any detail?"), "metadata": "Morphology"}]))
    regional, specific = read_bench_file(path)
    assert (regional.task, regional.source_task_name) == ("regional_structure_description", "Morphology")
    assert specific.task == "specific_feature_description"   # a record's own metadata means what JSONL means
    out = tmp_path / "out.jsonl"
    write_official_jsonl([regional, specific], out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["metadata"] for row in rows] == ["tissue", "Morphology"]
    assert [item.task for item in read_benchmark(out)] == ["regional_structure_description",
                                                           "specific_feature_description"]


def test_conversation_file_takes_each_records_task_from_its_turn_number(tmp_path):
    path = tmp_path / "Conversation_test.json"
    path.write_text(json.dumps([
        record(f"{SLIDE}-1", "Can you provide an overall description of the whole slide image?"),
        record(f"{SLIDE}-2", "Which features are most significant for the diagnosis?"),
        record(f"{SLIDE}-3", "What is the histological classification?"),
        record(f"{SLIDE}-4", "What is the Nottingham grade?"),
        record(f"{OTHER}-1", "Overall description?", slide=OTHER),
        record(f"{OTHER}-7", "A fifth turn?", slide=OTHER),
        record("no-turn-number-here", "Which task?", slide=OTHER),
    ]))
    problems = []
    items = read_bench_file(path, problems=problems)
    assert [(i.question_id[-2:], i.task) for i in items] == [
        ("-1", "global_morphology_description"), ("-2", "key_diagnostic_description"),
        ("-3", "histological_typing"), ("-4", "grading"), ("-1", "global_morphology_description")]
    assert {i.source_task_name for i in items} == {"Conversation"}
    assert len(problems) == 2
    assert problems[0].startswith(f"{path}: record 5: record id '{OTHER}-7' does not end in a turn number -1..-4")
    assert problems[1].startswith(f"{path}: record 6: record id 'no-turn-number-here'")


def test_the_unlabelled_march_2025_file_is_a_clear_error(tmp_path):
    path = tmp_path / "WSI-Bench_test.json"
    path.write_text(json.dumps([record(f"{SLIDE}-1", "Q?")]))
    problems = []
    assert read_bench_file(path, problems=problems) == []
    assert len(problems) == 1 and "concatenates the 13 early-2025 test files" in problems[0]


def test_selecting_a_name_that_means_two_tasks_is_refused_naming_both(tmp_path):
    """`--tasks Morphology`: the early file of that name is regional structure, the metadata value specific
    features; selecting by it would silently take one of them."""
    from wsi_bench.errors import UnknownTaskError
    from wsi_bench.tasks import resolve_selected_task

    with pytest.raises(UnknownTaskError, match="ambiguous.*regional_structure_description.*specific_feature_"
                                               "description.*task id"):
        resolve_selected_task("Morphology")
    assert resolve_selected_task("regional_structure_description").task == "regional_structure_description"
    assert resolve_selected_task("Morphology_detail").task == "specific_feature_description"
