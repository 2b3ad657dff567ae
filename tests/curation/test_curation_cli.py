"""`wsi-llava curate ...` end to end through `curation.cli.main(argv)`, as a user runs it."""

import json

import pytest

from curation import cli
from curation.store.review_store import ReviewStore
from tests.curation.conftest import KEY_ENV
from tests.curation.llm_replies import FREE_TEXT_REPORT, synthetic_report


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def reports_file(tmp_path):
    rows = [synthetic_report(i) for i in range(4)] + [{"slide_id": "TCGA-ZZ-0009-01Z", "text": FREE_TEXT_REPORT}]
    path = tmp_path / "reports.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_clean_enrich_generate_review_export(tmp_path, capsys, llm_server, llm_key, reports_file):
    store = tmp_path / "curation.sqlite"
    llm = ["--store", store, "--base-url", llm_server.url, "--model", "stand-in", "--api-key-env", KEY_ENV,
           "--price-input", "1", "--price-output", "2"]
    code, out, _ = run(capsys, "clean", reports_file, *llm, "--dry-run")     # stores the reports, cleans nothing
    assert code == 0 and json.loads(out)["estimate"]["n_requests"] == 1 and llm_server.request_count == 0
    assert json.loads((tmp_path / "curation.clean-summary.json").read_text())["items"][0] == {
        "status": "reports", "added": 5, "already_stored": 0}
    code, out, _ = run(capsys, "clean", reports_file, *llm)
    assert code == 0 and json.loads(out)["counts"] == {"reports": 1, "ok": 5}
    assert run(capsys, "enrich", *llm)[0] == 0
    code, out, _ = run(capsys, "generate", *llm, "--tasks", "Grading,staging_choice")
    shown = json.loads(out)
    assert code == 0 and shown["counts"] == {"ok": 10} and shown["llm"]["cost_usd"] is not None
    code, out, _ = run(capsys, "generate", *llm, "--tasks", "grading,staging_choice")       # resumable: no-op
    assert json.loads(out)["counts"] == {"already_done": 10} and llm_server.request_count == 1 + 5 + 10
    assert run(capsys, "annotators", "--store", store, "--add", "lead", "--role", "lead")[0] == 0
    code, out, _ = run(capsys, "annotators", "--store", store, "--add", "ann", "--as", "lead", "--blind", "off")
    assert code == 0 and json.loads(out)["blind_mode"] is False
    code, out, _ = run(capsys, "assign", "--store", store, "--k", "1", "--as", "lead")
    assert json.loads(out)["assignments"] == 10
    opened = ReviewStore.open(str(store))
    for item in opened.queue("ann", limit=100):
        opened.submit_review(item.pair_id, "ann", "accepted", item.version)
    code, out, _ = run(capsys, "review-stats", "--store", store)
    stats = json.loads(out)
    assert stats["by_status"]["accepted"] == 10 and stats["by_task"]["grading"]["accepted"] == 5
    code, out, _ = run(capsys, "export", "--store", store, "--out", tmp_path / "export", "--as", "lead",
                       "--test-fraction", "0.3")
    assert code == 0 and json.loads(out)["pairs"] == 10 and (tmp_path / "export" / "README.md").exists()


def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys, llm_server, monkeypatch, reports_file):
    monkeypatch.delenv(KEY_ENV, raising=False)
    store = tmp_path / "s.sqlite"
    code, _, err = run(capsys, "clean", reports_file, "--store", store, "--base-url", llm_server.url,
                       "--api-key-env", KEY_ENV)
    assert code == 1 and f"{KEY_ENV} is not set" in err and "Traceback" not in err
    code, _, err = run(capsys, "clean", tmp_path / "missing.jsonl", "--store", store)
    assert code == 1 and "no such report file" in err
    run(capsys, "annotators", "--store", store, "--add", "boss", "--role", "lead")
    run(capsys, "annotators", "--store", store, "--add", "ann", "--as", "boss")
    code, _, err = run(capsys, "export", "--store", store, "--out", tmp_path / "x", "--as", "ann")
    assert code == 1 and "ann is not a lead" in err and "boss" in err
    code, _, err = run(capsys, "export", "--store", store, "--out", tmp_path / "x", "--as", "boss")
    assert code == 1 and "no accepted or edited pair" in err
    with pytest.raises(SystemExit) as usage:
        cli.main(["generate"])
    assert usage.value.code == 2


def test_cli_generation_failures_exit_3_and_list_them(tmp_path, capsys, llm_server, llm_key, reports_file):
    store = tmp_path / "s.sqlite"
    llm = ["--store", store, "--base-url", llm_server.url, "--model", "stand-in", "--api-key-env", KEY_ENV,
           "--max-attempts", "1"]
    run(capsys, "clean", reports_file, *llm, "--method", "sections")
    llm_server.responder = lambda request: "not json at all"
    code, out, _ = run(capsys, "generate", *llm, "--tasks", "grading", "--summary", tmp_path / "g.json")
    assert code == 3 and json.loads(out)["counts"] == {"failed": 4}
    items = json.loads((tmp_path / "g.json").read_text())["items"]
    assert all(i["status"] == "failed" and "not valid JSON" in i["error"] for i in items)


def test_two_stores_in_one_folder_keep_their_own_summaries(tmp_path, capsys, reports_file):
    for name in ("first", "second"):
        code, _, _ = run(capsys, "clean", reports_file, "--store", tmp_path / f"{name}.sqlite", "--model", "m",
                         "--dry-run")
        assert code == 0
    assert sorted(p.name for p in tmp_path.glob("*summary.json")) == ["first.clean-summary.json",
                                                                      "second.clean-summary.json"]


def test_a_database_url_names_its_summary_after_the_database(tmp_path, monkeypatch):
    from curation.cli_options import _beside_store

    monkeypatch.chdir(tmp_path)
    assert _beside_store("postgresql+psycopg://ann@db.example/wsi_bench?sslmode=require", "clean-summary.json") == \
        tmp_path / "wsi_bench.clean-summary.json"
