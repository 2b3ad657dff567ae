"""`wsi-llava evaluate score` end to end on a small fixture with the offline judge; schemas and loaders."""

import json

import pytest

from evaluation.cli import main
from evaluation.errors import SchemaError
from evaluation.schemas import (
    SCORES_SCHEMA,
    flatten_score_row,
    load_scores,
    load_summary,
)
from tests.evaluation.fixtures import own_rows, write_benchmark, write_jsonl

PREDICTIONS = {("Diagnosis_choice", "S1-1"): "The answer is (B).", ("Diagnosis_choice", "S2-1"): "Adenocarcinoma",
               ("Prognosis_TF_question", "S4-1"): "No, the prognosis is poor.",
               ("Grading", "S2-4"): "Completely unrelated text about radiotherapy schedules."}


def test_score_end_to_end_with_offline_judge(tmp_path, capsys):
    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows(PREDICTIONS))
    out = tmp_path / "out"
    assert main(["score", str(preds), "--out", str(out), "--judge", "offline", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["n_items"] == 10 and plan["n_open"] == 5 and plan["judge_estimate"]["n_requests"] == 0
    assert not out.exists()

    assert main(["score", str(preds), "--out", str(out), "--judge", "offline", "--workers", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "APPROXIMATE" in stdout and "unmatched rows 0" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["scores.jsonl", "summary.json", "summary.md"]
    rows = load_scores(out / "scores.jsonl")
    assert len(rows) == 10 and all(r["schema"] == SCORES_SCHEMA for r in rows)
    assert [r["question_id"] for r in rows] == [r["question_id"] for r in own_rows()]   # file order
    summary = load_summary(out / "summary.json")
    assert summary["approximate"] is True and summary["judge"]["approximate"] is True
    diag = summary["tasks"]["diagnosis_choice"]["accuracy"]
    assert (diag["n"], diag["n_correct"], diag["majority_answer"]) == (3, 2, "B")   # S2-1 answered B, truth A
    grading = summary["tasks"]["grading"]["wsi_precision"]
    assert 0.5 <= grading["mean"] < 0.7                      # one perfect item, one unrelated
    assert summary["table3"]["ours"]["bleu_1"] == pytest.approx(1.0) and summary["table3"]["n"] == 1
    assert summary["nlu_settings"]["meteor"].startswith("nltk single_meteor_score")
    md = (out / "summary.md").read_text()
    assert "APPROXIMATE" in md and "| WSI-LLaVA | 0.488 |" in md and "## Table 3" in md
    flat = flatten_score_row(rows[0])
    assert flat["task"] == "grading" and flat["wsi_precision"] == pytest.approx(1.0)

    # a re-run reuses every finished row
    assert main(["score", str(preds), "--out", str(out), "--judge", "offline"]) == 0
    capsys.readouterr()
    assert load_summary(out / "summary.json")["run"]["n_reused"] == 5


def test_interrupted_run_resumes_from_the_journal(tmp_path, capsys):
    from evaluation.judge_types import JudgeConfig
    from evaluation.offline_judge import OfflineJudge
    from evaluation.scorer import ScoreConfig, run_scoring

    class Interrupting(OfflineJudge):
        def judge(self, items, on_result):
            def once(item, judgement):
                on_result(item, judgement)
                raise KeyboardInterrupt
            super().judge(items, once)

    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows())
    config = ScoreConfig(predictions=preds, out_dir=tmp_path / "out", judge=JudgeConfig(name="offline"))
    with pytest.raises(KeyboardInterrupt):
        run_scoring(config, judge=Interrupting(), emit=lambda m: None)
    assert len((tmp_path / "out" / "scores.partial.jsonl").read_text().splitlines()) == 1
    summary = run_scoring(config, emit=lambda m: None)
    assert summary["run"]["n_reused"] == 1 and summary["run"]["n_judged"] == 4
    assert not (tmp_path / "out" / "scores.partial.jsonl").exists()


def test_keyed_predictions_with_references_report_missing_and_unmatched(tmp_path, capsys):
    bench = write_benchmark(tmp_path / "bench")
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({"S1-4": "The tumor is classified as FIGO grade I.", "ghost": "x"}))
    out = tmp_path / "out"
    assert main(["score", str(preds), "--references", str(bench), "--out", str(out), "--judge", "offline"]) == 0
    summary = load_summary(out / "summary.json")
    assert summary["inputs"]["n_items"] == 1 and summary["inputs"]["n_unmatched"] == 1
    assert summary["inputs"]["n_missing"] == 9
    assert "references without a prediction: 9" in (out / "summary.md").read_text()


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert main(["score", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o"), "--judge", "offline"]) == 1
    err = capsys.readouterr().err
    assert "no such predictions file" in err and "Traceback" not in err
    empty = write_jsonl(tmp_path / "bad.jsonl", [{"question_id": "1", "prediction": "x", "task": "Banana",
                                                  "reference": "y"}])
    assert main(["score", str(empty), "--out", str(tmp_path / "o"), "--judge", "offline"]) == 1
    assert "unknown task 'Banana'" in capsys.readouterr().err


def test_loaders_reject_other_schema_versions(tmp_path):
    bad = tmp_path / "scores.jsonl"
    bad.write_text(json.dumps({"schema": "something/0"}) + "\n")
    with pytest.raises(SchemaError, match="missing field"):
        load_scores(bad)
    with pytest.raises(SchemaError, match="no such summary"):
        load_summary(tmp_path / "summary.json")


class _EveryClaimRight:
    """A judge stand-in (no model, no network): one claim per text, each scored 1."""

    def __init__(self):
        from evaluation.judge_types import JudgeIdentity

        self.identity = JudgeIdentity(name="stub", model="stub", prompt_version="stub-1", approximate=True)

    def judge(self, items, on_result):
        from evaluation.claim_scores import ClaimJudgement, MetricResult
        from evaluation.judge_types import ItemJudgement

        for item in items:
            one = MetricResult.scored([ClaimJudgement(item.reference, 1.0, "stub")])
            on_result(item, ItemJudgement(precision=one, relevance=one))

    def dry_run(self, items):
        return {}

    def stats(self):
        return {}


def test_rerun_recomputes_the_nlu_metrics_of_reused_rows(tmp_path):
    """A reused judged row keeps its judgement, but its NLU values are recomputed: a stored value from an
    older metric implementation (e.g. before ROUGE-L followed the official script) must not survive."""
    from evaluation.judge_types import JudgeConfig
    from evaluation.scorer import ScoreConfig, run_scoring

    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows({("1_Report", "S1-1"): "An invasive ductal carcinoma."}))
    config = ScoreConfig(predictions=preds, out_dir=tmp_path / "out", judge=JudgeConfig(name="offline"))
    first = run_scoring(config, judge=_EveryClaimRight(), emit=lambda m: None)
    scores = tmp_path / "out" / "scores.jsonl"
    rows = [json.loads(line) for line in scores.read_text().splitlines()]
    for r in rows:
        if r["nlu"]:
            r["nlu"]["rouge_l"] = 123.0
    scores.write_text("".join(json.dumps(r) + "\n" for r in rows))
    second = run_scoring(config, judge=_EveryClaimRight(), emit=lambda m: None)
    assert second["run"]["n_reused"] == 5 and second["run"]["n_judged"] == 0
    assert second["table3"]["ours"]["rouge_l"] == pytest.approx(first["table3"]["ours"]["rouge_l"])
    assert second["table3"]["ours"]["rouge_l"] < 1.0
