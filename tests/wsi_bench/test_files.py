"""The WSI-Bench task table and both released file formats (fixtures written here, real layouts)."""

import json

import pytest

from wsi_bench.files import (
    BenchFormatError,
    patient_id_from_slide,
    read_bench_file,
    read_benchmark,
    write_llava_json,
    write_official_jsonl,
)
from wsi_bench.tasks import (
    METADATA_TO_TASK,
    TASKS,
    Capability,
    UnknownTaskError,
    resolve_task,
    tasks_for_capability,
)

SLIDE = "TCGA-BH-A18U-01Z-00-DX1.63940315-59BC-462B-87A8-2BBB33C9503E"


def llava_record(qid, question, answer, slide=SLIDE):
    return {"id": qid, "image": f"TCGA-BRCA/{slide}.pt",
            "conversations": [{"from": "human", "value": f"<image>\n{question}"},
                              {"from": "gpt", "value": answer}]}


@pytest.mark.parametrize("name, task, capability, answer_format", [
    ("Staging_choice_test.json", "staging_choice", "treatment_planning", "choice"),
    ("some/dir/Prognosis_TF_question_train.json", "prognosis_yes_no", "treatment_planning", "yes_no"),
    ("1_Report_test.json", "report_generation", "report_generation", "open"),
    ("Treatment_Planing", "treatment_planning", "treatment_planning", "open"),
    ("Treatment_Planning", "treatment_planning", "treatment_planning", "open"),
    ("Caption", "global_morphology_description", "morphological_analysis", "open"),
    ("infiltration", "regional_structure_description", "morphological_analysis", "open"),
    ("Morphology", "specific_feature_description", "morphological_analysis", "open"),
    ("Feature", "key_diagnostic_description", "morphological_analysis", "open"),
    ("Subtype", "molecular_subtyping", "diagnosis", "open"),
    ("Diagnosis_choice", "diagnosis_choice", "diagnosis", "choice"),
    ("grading", "grading", "diagnosis", "open"),
])
def test_resolve_task_maps_stems_metadata_and_ids(name, task, capability, answer_format):
    spec = resolve_task(name)
    assert (spec.task, spec.capability.value, spec.answer_format.value) == (task, capability, answer_format)


def test_unknown_task_is_an_error_listing_known_names():
    with pytest.raises(UnknownTaskError, match="Unknown WSI-Bench task 'Weather'.*Staging_choice"):
        resolve_task("Weather")
    with pytest.raises(UnknownTaskError, match="'Conversation' names a released file that mixes the tasks "
                                               "global_morphology_description, key_diagnostic_description"):
        resolve_task("Conversation")


def test_table_covers_eleven_open_tasks_and_every_metadata_value():
    open_tasks = [spec for spec in TASKS if not spec.answer_format.closed]
    assert len(open_tasks) == 11
    assert set(METADATA_TO_TASK) == {"Report", "Caption", "tissue", "cellular", "infiltration", "Morphology",
                                     "Feature", "Classification", "Grade", "Subtype", "Stage", "Prognosis",
                                     "Treatment"}
    assert {spec.task for spec in tasks_for_capability(Capability.DIAGNOSIS) if not spec.answer_format.closed} \
        == {"histological_typing", "grading", "molecular_subtyping"}


def test_llava_json_round_trip(tmp_path):
    path = tmp_path / "Staging_choice_test.json"
    path.write_text(json.dumps([llava_record(f"{SLIDE}-1", "Stage? A) T1 B) T2 C) T3 D) T4", "B")]))
    [item] = read_bench_file(path)
    assert item.task == "staging_choice" and item.answer == "B"
    assert item.question.startswith("Stage?") and "<image>" not in item.question
    assert item.slide_id == SLIDE and item.patient_id == "TCGA-BH-A18U" == patient_id_from_slide(SLIDE)
    out = tmp_path / "out" / "Staging_choice_test.json"
    write_llava_json([item], out)
    assert json.loads(out.read_text()) == json.loads(path.read_text())


def test_official_jsonl_round_trip(tmp_path):
    path = tmp_path / "WSI-Bench-test.jsonl"
    row = {"question_id": f"Stage_{SLIDE}-1_1", "image": f"TCGA-BRCA/{SLIDE}.pt",
           "question": "What is the TNM stage?", "T-answer": "T2N0M0.", "metadata": "Stage"}
    path.write_text(json.dumps(row) + "\n\n")
    [item] = read_benchmark(path)
    assert (item.task, item.question, item.answer) == ("staging", "What is the TNM stage?", "T2N0M0.")
    out = tmp_path / "copy.jsonl"
    write_official_jsonl([item], out)
    assert json.loads(out.read_text()) == row


def test_folder_reads_both_formats_with_split_and_task_filters(tmp_path):
    (tmp_path / "Grading_test.json").write_text(json.dumps([llava_record("a", "Grade?", "Grade 2.")]))
    (tmp_path / "Grading_train.json").write_text(json.dumps([llava_record("b", "Grade?", "Grade 3.")]))
    (tmp_path / "Prognosis_test.json").write_text(json.dumps([llava_record("c", "Prognosis?", "Good.")]))
    items = read_benchmark(tmp_path, split="test")
    assert sorted(i.question_id for i in items) == ["a", "c"]
    assert [i.question_id for i in read_benchmark(tmp_path, split="test", tasks=["Grade"])] == ["a"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"id": 1}), "must hold a JSON list"),
    (json.dumps([{"image": "x.pt", "conversations": []}]), "record 0: missing field 'id'"),
    (json.dumps([{"id": "q1", "image": "x.pt", "conversations": [{"from": "human", "value": "hi"}]}]),
     "needs a human turn and a gpt turn"),
    (json.dumps([{"id": "q1", "image": "x.pt", "conversations": [{"from": "gpt", "value": "A"},
                                                                  {"from": "human", "value": "Q"}]}]),
     "turn 0: 'from' is 'gpt', expected 'human'"),
])
def test_malformed_llava_files_name_the_file_record_and_field(tmp_path, content, message):
    path = tmp_path / "Grading_test.json"
    path.write_text(content)
    with pytest.raises(BenchFormatError, match=message) as info:
        read_bench_file(path)
    assert str(path) in str(info.value)


def test_bad_records_can_be_collected_instead_of_raising(tmp_path):
    path = tmp_path / "Grading_train.json"
    good = llava_record("good", "Grade?", "Grade 1.")
    bad = {"id": "bad", "image": "x.pt", "conversations": [{"from": "gpt", "value": "A"},
                                                           {"from": "human", "value": "Q"}]}
    path.write_text(json.dumps([good, bad]))
    problems = []
    items = read_benchmark(path, problems=problems)
    assert [i.question_id for i in items] == ["good"]
    assert len(problems) == 1 and "id bad" in problems[0]


def test_jsonl_with_unknown_metadata_is_an_error_naming_file_row_and_value(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"question_id": "q", "image": "a.pt", "question": "?", "T-answer": "!",
                                "metadata": "Weather"}) + "\n")
    with pytest.raises(BenchFormatError, match=r"x.jsonl: row 0 \(question_id q\): field 'metadata' is 'Weather'"):
        read_benchmark(path)


def official_row(qid, metadata, question="Q?", answer="A."):
    return {"question_id": qid, "image": f"TCGA-BRCA/{SLIDE}.pt", "question": question, "T-answer": answer,
            "metadata": metadata}


def test_unknown_metadata_is_a_listed_problem_for_that_record_not_an_abort(tmp_path):
    jsonl = tmp_path / "WSI-Bench-test.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [official_row("a", "Stage"), official_row("b", "Weather"),
                                                       official_row("c", "Grade")]) + "\n{broken\n")
    combined = tmp_path / "WSI-Bench-train.json"
    combined.write_text(json.dumps([{**llava_record("d", "Stage?", "T1."), "metadata": "Stage"},
                                    {**llava_record("e", "Q?", "A."), "metadata": "Staging_chioce"}]))
    problems = []
    items = read_benchmark(tmp_path, problems=problems)
    assert sorted((i.question_id, i.task) for i in items) == [("a", "staging"), ("c", "grading"), ("d", "staging")]
    assert len(problems) == 3, problems
    [row_problem] = [p for p in problems if "Weather" in p]
    assert row_problem.startswith(f"{jsonl}: row 1 (question_id b): field 'metadata' is 'Weather'")
    [record_problem] = [p for p in problems if "Staging_chioce" in p]
    assert record_problem.startswith(f"{combined}: record 1 (id e): field 'metadata' is 'Staging_chioce'")
    assert any(p.startswith(f"{jsonl}: line 4 is not valid JSON") for p in problems)


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(BenchFormatError, match="neither an existing file/folder nor a Hub dataset id"):
        read_benchmark(tmp_path / "nope" / "missing.json")


def test_a_combined_file_takes_each_records_task_from_its_metadata(tmp_path):
    path = tmp_path / "WSI-Bench-train.json"
    staging = {**llava_record("a", "Stage?", "T2N0M0."), "metadata": "Stage"}
    choice = {**llava_record("b", "Stage? A) T1 B) T2 C) T3 D) T4", "B"), "metadata": "Staging_choice"}
    path.write_text(json.dumps([staging, choice]))
    assert [i.task for i in read_benchmark(tmp_path, split="train")] == ["staging", "staging_choice"]
    unnamed = tmp_path / "other" / "everything.json"
    unnamed.parent.mkdir()
    unnamed.write_text(json.dumps([llava_record("c", "Q?", "A.")]))
    with pytest.raises(BenchFormatError, match="no `metadata` field and the file name does not name a WSI-Bench"):
        read_bench_file(unnamed)


@pytest.mark.parametrize("name, split", [
    ("Grading_test.json", "test"), ("Staging_choice_train.json", "train"), ("WSI-Bench-test.jsonl", "test"),
    ("WSI-Bench-open-question.jsonl", "test"), ("WSI-Bench-train.json", "train"), ("notes.json", None),
])
def test_file_split(name, split):
    from wsi_bench.files import file_split

    assert file_split(name) == split


def test_hub_dataset_downloads_only_the_requested_split(hub, tmp_path):
    row = {"question_id": "Stage_x_1", "image": f"TCGA-BRCA/{SLIDE}.pt", "question": "Stage?", "T-answer": "T1.",
           "metadata": "Stage"}
    hub.state.upload("org/bench", {"WSI-Bench-open-question.jsonl": json.dumps(row) + "\n",
                                   "WSI-Bench-train.json": json.dumps([{**llava_record("t", "Q?", "A."),
                                                                        "metadata": "Grade"}])},
                     repo_type="dataset")
    items = read_benchmark("org/bench", split="test")
    assert [(i.task, i.question_id) for i in items] == [("staging", "Stage_x_1")]
    assert not any("WSI-Bench-train.json" in path for _, path in hub.requests if "resolve" in path)
    with pytest.raises(BenchFormatError, match="no WSI-Bench .json/.jsonl files for split 'val'"):
        read_benchmark("org/bench", split="val")


def test_a_json_file_that_is_not_utf8_names_the_line_and_byte_offset(tmp_path):
    path = tmp_path / "Grading_test.json"
    data = json.dumps([llava_record("q1", "Grade?", "Grade I.")], indent=1).replace("Grade I.", "Grade \udcb0I.")
    raw = data.encode("utf-8", "surrogateescape")
    path.write_bytes(raw)
    line = raw[:raw.index(bytes([0xB0]))].count(b"\n") + 1
    with pytest.raises(BenchFormatError) as info:
        read_bench_file(path)
    message = str(info.value)
    assert str(path) in message and f"line {line}" in message and f"byte offset {raw.index(bytes([0xB0]))}" in message
    assert "0xb0" in message and "iconv -f latin1 -t utf-8" in message


def test_json_nested_too_deeply_is_a_format_error(tmp_path):
    path = tmp_path / "Grading_test.json"
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(BenchFormatError, match="nested too deeply"):
        read_bench_file(path)
    jsonl = tmp_path / "WSI-Bench-test.jsonl"
    jsonl.write_text(json.dumps(official_row("a", "Stage")) + "\n" + "[" * 100000 + "]" * 100000 + "\n")
    problems = []
    assert [i.question_id for i in read_benchmark(jsonl, problems=problems)] == ["a"]
    assert len(problems) == 1 and problems[0].startswith(f"{jsonl}: line 2 is nested too deeply")


def test_a_jsonl_line_that_is_not_utf8_is_a_problem_of_that_line(tmp_path):
    jsonl = tmp_path / "WSI-Bench-test.jsonl"
    good = json.dumps(official_row("a", "Stage")).encode()
    jsonl.write_bytes(good + b"\n" + good.replace(b'"a"', b'"\xe9"') + b"\n")
    problems = []
    assert [i.question_id for i in read_benchmark(jsonl, problems=problems)] == ["a"]
    assert len(problems) == 1 and f"{jsonl}: line 2" in problems[0] and "not UTF-8" in problems[0]
    offset = len(good) + 1 + good.index(b'"a"') + 1
    assert f"byte offset {offset}" in problems[0]
    with pytest.raises(BenchFormatError, match="line 2"):
        read_benchmark(jsonl)


@pytest.mark.parametrize("record, message", [
    ({**llava_record("q1", "Q?", "A."), "id": True}, "field 'id' must be str or int, got bool"),
    ({**llava_record("q1", "Q?", "A."), "image": ["x.pt"]}, "field 'image' must be str, got list"),
    ({**llava_record("q1", "Q?", "A."), "metadata": ["Stage"]}, "field 'metadata' must be str .*, got list"),
])
def test_llava_fields_of_the_wrong_type_are_refused_naming_field_and_type(tmp_path, record, message):
    path = tmp_path / "Grading_test.json"
    path.write_text(json.dumps([record]))
    with pytest.raises(BenchFormatError, match=message):
        read_bench_file(path)


def test_official_rows_with_a_bool_question_id_are_refused(tmp_path):
    path = tmp_path / "WSI-Bench-test.jsonl"
    path.write_text(json.dumps({**official_row("a", "Stage"), "question_id": False}) + "\n")
    with pytest.raises(BenchFormatError, match="field 'question_id' must be str or int, got bool"):
        read_benchmark(path)


def test_a_bad_official_row_also_names_its_line_in_the_file(tmp_path):
    """Rows are counted among the lines kept (blank and unreadable ones are not rows): the message also says
    the line a person opens the file at."""
    jsonl = tmp_path / "WSI-Bench-test.jsonl"
    jsonl.write_text("\n".join(["", "{broken", json.dumps(official_row("a", "Stage")), "",
                                json.dumps(official_row("b", "Weather"))]) + "\n")
    problems = []
    read_benchmark(jsonl, problems=problems)
    [row_problem] = [p for p in problems if "Weather" in p]
    assert row_problem.startswith(f"{jsonl}: row 1 (question_id b)") and row_problem.endswith("(Line 5 of the file.)")
