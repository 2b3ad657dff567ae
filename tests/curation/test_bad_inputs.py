"""`wsi-llava curate clean|import` on hostile input: Latin-1 bytes, JSON nested without end, a broken CSV.

A file that cannot be read is one line on stderr naming the file, the line and the byte offset (exit 1); a
bad line in a JSON Lines benchmark is a listed failure of that line (exit 3), the rest imports. An LLM reply that echoes the API key is stored with the key redacted.
"""

import json

from curation import cli
from curation.reports import read_reports


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_clean_with_a_latin1_csv_is_one_line_naming_file_line_and_byte_offset(tmp_path, capsys):
    path = tmp_path / "reports.csv"
    data = "slide_id,text\nTCGA-AA-0001-01Z,Carcinome canalaire infiltrant.\nTCGA-AA-0002-01Z,Tumeur grade élevé.\n"
    path.write_bytes(data.encode("latin-1"))
    offset = data.encode("latin-1").index(bytes([0xE9]))
    code, _, err = run(capsys, "clean", path, "--store", tmp_path / "s.sqlite", "--method", "sections")
    message = one_line(err)
    assert code == 1 and str(path) in message and "line 3" in message and f"byte offset {offset}" in message
    assert "iconv -f latin1 -t utf-8" in message


def test_clean_with_a_latin1_jsonl_or_nested_json_names_the_line(tmp_path, capsys):
    latin1 = tmp_path / "r.jsonl"
    latin1.write_bytes(json.dumps({"slide_id": "S1", "text": "ok"}).encode()
                       + b'\n{"slide_id": "S2", "text": "\xe9"}\n')
    code, _, err = run(capsys, "clean", latin1, "--store", tmp_path / "s.sqlite", "--method", "sections")
    message = one_line(err)
    assert code == 1 and f"{latin1}:2" in message and "not UTF-8" in message and "byte offset" in message
    nested = tmp_path / "n.jsonl"
    nested.write_text("{\"slide_id\": \"S1\", \"text\": " + "[" * 100000 + "]" * 100000 + "}\n")
    code, _, err = run(capsys, "clean", nested, "--store", tmp_path / "s.sqlite", "--method", "sections")
    assert code == 1 and f"{nested}:1" in one_line(err) and "nested too deeply" in err


def test_a_txt_report_that_is_not_utf8_is_a_problem_naming_line_and_byte_offset(tmp_path):
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "TCGA-AA-0001-01Z.txt").write_text("Diagnosis: carcinoma.\n")
    (folder / "TCGA-AA-0002-01Z.txt").write_bytes(b"Diagnosis:\ncarcinome \xe9tendu.\n")
    problems = []
    reports = read_reports([folder], problems)
    assert [r.slide_id for r in reports] == ["TCGA-AA-0001-01Z"]
    assert len(problems) == 1 and "TCGA-AA-0002-01Z.txt" in problems[0]
    assert "line 2" in problems[0] and "byte offset 21" in problems[0] and "iconv" in problems[0]


def test_a_csv_field_over_the_limit_is_an_error_naming_the_line_and_the_limit(tmp_path, capsys, monkeypatch):
    import csv

    from curation import reports

    monkeypatch.setattr(reports, "MAX_CSV_FIELD_CHARS", 100)
    path = tmp_path / "reports.csv"
    path.write_text("slide_id,text\nS1,short text\nS2," + "x" * 101 + "\n")
    limit = csv.field_size_limit()
    try:
        code, _, err = run(capsys, "clean", path, "--store", tmp_path / "s.sqlite", "--method", "sections")
    finally:
        csv.field_size_limit(limit)            # the csv module's limit is process-wide
    message = one_line(err)
    assert code == 1 and f"{path}:3" in message and "100 characters" in message
    assert "MAX_CSV_FIELD_CHARS" in message


def test_import_of_a_latin1_llava_json_is_one_line_naming_file_line_and_offset(tmp_path, capsys):
    path = tmp_path / "Grading_test.json"
    path.write_bytes(b'[{"id": "q1", "image": "TCGA-XX/S1.pt",\n "conversations": [{"from": "human", '
                     b'"value": "<image>\\nGrade?"}, {"from": "gpt", "value": "Grade \xb0I."}]}]\n')
    code, _, err = run(capsys, "import", path, "--store", tmp_path / "s.sqlite")
    message = one_line(err)
    assert code == 1 and str(path) in message and "line 2" in message and "byte offset" in message


def test_import_of_a_jsonl_with_one_latin1_line_lists_it_and_exits_3(tmp_path, capsys):
    path = tmp_path / "WSI-Bench-test.jsonl"
    good = {"question_id": "a", "image": "TCGA-BRCA/S1.pt", "question": "Stage?", "T-answer": "T1.",
            "metadata": "Stage"}
    path.write_bytes(json.dumps(good).encode() + b"\n" + json.dumps({**good, "question_id": "b"}).encode()
                     .replace(b"T1.", b"T1 \xb0.") + b"\n")
    summary_path = tmp_path / "import.json"
    code, out, _ = run(capsys, "import", path, "--store", tmp_path / "s.sqlite", "--summary", summary_path)
    assert code == 3 and json.loads(out)["counts"] == {"failed": 1, "ok": 1}
    [failed] = [i for i in json.loads(summary_path.read_text())["items"] if i["status"] == "failed"]
    assert f"{path}: line 2" in failed["error"] and "not UTF-8" in failed["error"]
    assert "byte offset" in failed["error"]


def test_an_llm_that_echoes_the_key_never_gets_it_into_the_store_cache_or_summary(tmp_path, capsys, monkeypatch,
                                                                                   llm_server, responder):
    from tests.curation.conftest import KEY_ENV
    from tests.curation.llm_replies import synthetic_report

    key = "sk-curation-echoed-0042"
    monkeypatch.setenv(KEY_ENV, key)
    enrich = responder.enrich
    responder.enrich = lambda user: {**enrich(user), "who_reference": f"WHO 5th edition (key {key})"}
    reports = tmp_path / "reports.jsonl"
    reports.write_text("".join(json.dumps(synthetic_report(i)) + "\n" for i in range(2)))
    store = tmp_path / "s.sqlite"
    llm = ["--store", store, "--base-url", llm_server.url, "--model", "stand-in", "--api-key-env", KEY_ENV]
    assert run(capsys, "clean", reports, *llm, "--method", "sections")[0] == 0
    code, out, err = run(capsys, "enrich", *llm)
    assert code == 0 and key not in out + err
    assert any(f"Bearer {key}" == r["_authorization"] for r in llm_server.requests)
    written = [p for p in tmp_path.iterdir() if p.is_file() and p.name != reports.name]
    assert any(p.name.startswith("s.llm-cache") for p in written)
    for path in written:
        assert key.encode() not in path.read_bytes(), path.name
    from curation.store.review_store import ReviewStore

    opened = ReviewStore.open(str(store))
    try:
        stored = [e.who_reference for e in opened.current_enrichments().values()]
    finally:
        opened.close()
    assert stored == ["WHO 5th edition (key [REDACTED])"] * 2
