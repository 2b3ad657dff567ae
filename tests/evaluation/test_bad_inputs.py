"""`wsi-llava evaluate score` on hostile input: bytes that are not UTF-8, JSON nested without end, lines of
the wrong shape, an endpoint that answers 200 with a web page, a judge that echoes the API key.

Each case is what a user runs (`evaluation.cli.main`): a one-line message and exit 1 for a file that cannot
be read, exit 3 for a run that finished but skipped input lines, never a traceback, nothing half-written.
"""

import json

import pytest

from evaluation.cli import main
from evaluation.predictions import load_predictions
from evaluation.schemas import load_scores, load_summary
from tests.evaluation.fixtures import own_rows, write_benchmark, write_jsonl
from tests.evaluation.test_llm_judge import fake_judge
from tests.helpers.openai_server import OpenAIStandIn, Reply

LATIN1_LINE = b'{"question_id": "q\xff", "prediction": "caf\xe9"}\n'     # byte 0xff at offset 18


def score(capsys, predictions, out, *extra):
    code = main(["score", str(predictions), "--out", str(out), "--judge", "offline", *map(str, extra)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_prediction_file_that_is_not_utf8_is_one_line_naming_file_line_and_byte_offset(tmp_path, capsys):
    path = tmp_path / "x.jsonl"
    path.write_bytes(LATIN1_LINE)
    code, _, err = score(capsys, path, tmp_path / "o")
    message = one_line_error(err)
    assert code == 1 and f"{path}:1" in message and "byte offset 18" in message and "0xff" in message
    assert "iconv -f latin1 -t utf-8" in message and "line 1" in message
    assert not (tmp_path / "o").exists()


def test_a_json_prediction_file_that_is_not_utf8_names_line_and_byte_offset(tmp_path, capsys):
    path = tmp_path / "x.json"
    data = b'{\n "S1-4": "grade I",\n "S2-4": "caf\xe9"\n}\n'
    path.write_bytes(data)
    code, _, err = score(capsys, path, tmp_path / "o", "--references", write_benchmark(tmp_path / "bench"))
    message = one_line_error(err)
    assert code == 1 and str(path) in message and "line 3" in message
    offset = data.index(bytes([0xE9]))
    assert f"byte offset {offset}" in message and "0xe9" in message
    assert "iconv" in message


def test_references_that_are_not_utf8_name_the_file_line_and_byte_offset(tmp_path, capsys):
    bench = write_benchmark(tmp_path / "bench")
    grading = bench / "Grading_test.json"
    grading.write_bytes(grading.read_bytes().replace(b"grade I.", b"grade I \xb0."))
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({"S1-4": "grade I"}))
    code, _, err = score(capsys, preds, tmp_path / "o", "--references", bench)
    message = one_line_error(err)
    assert code == 1 and str(grading) in message and "line 1" in message and "byte offset" in message
    assert "0xb0" in message


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_json_nested_too_deeply_is_an_error_not_a_recursion_traceback(tmp_path, capsys, suffix):
    path = tmp_path / f"n{suffix}"
    path.write_text("[" * 100000 + "]" * 100000 + "\n")
    code, _, err = score(capsys, path, tmp_path / "o")
    message = one_line_error(err)
    assert code == 1 and str(path) in message and "nested too deeply" in message
    assert "WSI_LLAVA_MAX_JSON_DEPTH" in message


def test_one_bad_line_among_good_ones_is_counted_on_the_console_and_exits_3(tmp_path, capsys):
    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows())
    with open(preds, "ab") as handle:
        handle.write(LATIN1_LINE)
        handle.write(b'{"question_id": "cut sho\n')
    code, out, err = score(capsys, preds, tmp_path / "out")
    assert code == 3 and "Traceback" not in err
    assert "skipped input lines 2" in out and "unmatched rows 0" in out
    assert "2 input line(s) skipped" in err and f"{preds}:11" in err
    summary = load_summary(tmp_path / "out" / "summary.json")
    assert summary["inputs"]["n_problems"] == 2 and summary["overall"]["n_items"] == 10
    problems = summary["inputs"]["problems"]
    assert f"{preds}:11:" in problems[0] and "byte offset" in problems[0] and f"{preds}:12:" in problems[1]
    assert "skipped input lines: 2" in (tmp_path / "out" / "summary.md").read_text()
    assert len(load_scores(tmp_path / "out" / "scores.jsonl")) == 10


def test_every_line_bad_says_so_with_the_line_numbers(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"not json\n\n" + LATIN1_LINE + b"[1, 2]\n" + b'"text"\n' * 5)
    code, _, err = score(capsys, path, tmp_path / "o")
    message = one_line_error(err)
    assert code == 1 and "the file has no rows" not in message
    assert "every line" in message and "8 lines" in message and "lines 1, 3, 4, 5, 6" in message
    assert "and 3 more" in message and "not valid JSON" in message


@pytest.mark.parametrize("field, value, found", [
    ("reference", {"text": "x"}, "dict"),
    ("question_id", ["S1-4"], "list"),
    ("question_id", True, "bool"),
    ("prediction", 3, "int"),
    ("question", ["q"], "list"),
    ("task", 7, "int"),
    ("image", {"a": 1}, "dict"),
])
def test_fields_of_the_wrong_type_are_refused_per_line_naming_field_and_type(tmp_path, capsys, field, value,
                                                                              found):
    rows = own_rows()
    rows[1] = {**rows[1], field: value}
    preds = write_jsonl(tmp_path / "preds.jsonl", rows)
    items, report = load_predictions(preds)
    assert len(items) == 9 and len(report.problems) == 1
    assert f"{preds}:2:" in report.problems[0] and f"field {field!r}" in report.problems[0]
    assert found in report.problems[0]
    code, out, _ = score(capsys, preds, tmp_path / "out")
    assert code == 3 and "skipped input lines 1" in out


def test_a_200_reply_that_is_a_web_page_fails_the_judgements_clearly_and_leaves_nothing_half_written(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-portal-key")
    portal = Reply(raw_body="<html><body>Please log in to the hotel Wi-Fi</body></html>",
                   content_type="text/html")
    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows())
    out = tmp_path / "out"
    with OpenAIStandIn(responder=lambda request: portal) as server:
        code = main(["score", str(preds), "--out", str(out), "--judge", "openai", "--judge-base-url", server.url,
                     "--judge-model", "stand-in", "--judge-api-key-env", "TEST_JUDGE_KEY", "--max-attempts", "1",
                     "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 3 and "Traceback" not in err
    summary = load_summary(out / "summary.json")
    assert summary["failures"]
    reason = summary["failures"][0]["error"]
    assert "HTTP 200" in reason and "not JSON" in reason and "<html><body>Please log in" in reason
    assert "proxy or captive portal" in reason
    assert not (out / "scores.partial.jsonl").exists()


def test_a_run_stopped_by_a_config_error_leaves_no_empty_journal_or_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TEST_JUDGE_KEY", raising=False)
    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows())
    out = tmp_path / "out"
    with OpenAIStandIn(responder=fake_judge) as server:
        code = main(["score", str(preds), "--out", str(out), "--judge", "openai", "--judge-base-url", server.url,
                     "--judge-model", "stand-in", "--judge-api-key-env", "TEST_JUDGE_KEY"])
    assert code == 1 and "TEST_JUDGE_KEY is not set" in capsys.readouterr().err
    assert not (out / "scores.partial.jsonl").exists() and not (out / "judge_cache.sqlite").exists()


@pytest.mark.parametrize("metric_version", ["official", "strict"])
def test_a_judge_that_echoes_the_key_never_gets_it_written(tmp_path, capsys, monkeypatch, metric_version):
    key = "sk-echoed-secret-4242"
    monkeypatch.setenv("TEST_JUDGE_KEY", key)

    def echoing(request):
        return fake_judge(request).replace('"fake"', json.dumps(f"fake; your key is {key}"))

    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows({("Grading", "S2-4"): f"grade III {key}"}))
    out = tmp_path / "out"
    args = ["score", str(preds), "--out", str(out), "--judge", "openai", "--judge-model", "stand-in",
            "--judge-api-key-env", "TEST_JUDGE_KEY", "--metric-version", metric_version]
    with OpenAIStandIn(responder=echoing) as server:
        assert main([*args, "--judge-base-url", server.url]) == 0
        assert any(key in json.dumps(r) for r in server.requests)       # the key did travel (Authorization)
    captured = capsys.readouterr()
    assert key not in captured.out + captured.err
    scores = (out / "scores.jsonl").read_text()
    assert "your key is [REDACTED]" in scores
    for name in ("scores.jsonl", "summary.json", "summary.md"):
        assert key not in (out / name).read_text(), name
    caches = [p.name for p in out.iterdir() if p.name.startswith("judge_cache")]
    assert "judge_cache.sqlite" in caches
    for name in caches:
        assert key.encode() not in (out / name).read_bytes(), name


def test_a_json_file_of_bad_entries_names_the_first_entrys_own_reason(tmp_path, capsys):
    """.json entries are named `path:[i]`, and a references problem may come first in the list: the message's
    "first" is still the first skipped entry's."""
    bench = write_benchmark(tmp_path / "bench")
    (bench / "Extra_test.json").write_text(json.dumps([{"id": "x", "image": "a.pt", "conversations": []}]))
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps([{"question_id": ["S1-4"], "prediction": "a"}, {"question_id": "S1-4",
                                                                             "prediction": 3}]))
    code, _, err = score(capsys, preds, tmp_path / "o", "--references", bench)
    message = one_line_error(err)
    assert code == 1 and "every entry of it was skipped, 2 entries (entries 1, 2)" in message
    assert f"the first: {preds}:[0]: field 'question_id'" in message
