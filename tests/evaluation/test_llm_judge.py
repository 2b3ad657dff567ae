"""The LLM judge against a real OpenAI-compatible HTTP server on loopback, through the real SDK."""

import json
import re

import pytest

from llm.client import LLMSettings
from evaluation import judge_prompts as jp
from evaluation.cli import main as cli_main
from evaluation.errors import JudgeConfigError
from evaluation.judge_types import JudgeConfig
from evaluation.schemas import load_scores, load_summary
from evaluation.scorer import ScoreConfig, run_scoring
from tests.evaluation.fixtures import own_rows, write_jsonl
from tests.helpers.deterministic_judge import claims_source, parse_scoring_user
from tests.helpers.openai_server import OpenAIStandIn, Reply

PREDICTIONS = {("Grading", "S2-4"): "The tumor is classified as FIGO grade I. Extra unsupported remark.",
               ("1_Report", "S1-1"): "", ("Stage", "Stage_S5-1_1"): "The TNM staging is T3 N1 M0."}


def _kind(request) -> str:
    system = request["messages"][0]["content"]
    for marker, kind in (("Q&A pairs", "reference_claims"), ("pathological diagnosis texts", "prediction_claims"),
                         ("evaluate the correctness", "precision_scoring"), ("evaluate the relevance", "relevance")):
        if marker in system:
            return kind
    raise AssertionError(f"unknown prompt: {system[:80]}")


def _sentences(text):
    return [s.strip() for s in re.split(r"(?<=\.)\s+", text) if s.strip()]


def fake_judge(request, bad_score=None):
    """A deterministic judge for both metric versions' messages: claims are sentences; a claim scores 1 if it
    appears verbatim in the other text, 0.3 if its first word does, else 0. Replies alternate between bare
    arrays and the structured-output objects."""
    kind, user = _kind(request), request["messages"][1]["content"]
    if kind == "reference_claims":
        return json.dumps({"claims": _sentences(claims_source(user))})
    if kind == "prediction_claims":
        return json.dumps(_sentences(user))
    claims, other, _ = parse_scoring_user(user)
    scores = [1 if c in other else 0.3 if c.split()[0] in other else 0 for c in claims]
    if bad_score is not None:
        scores[0] = bad_score
    return json.dumps([{"claim": c, "explanation": "fake", "score": s} for c, s in zip(claims, scores)])


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-test")


@pytest.fixture
def server():
    with OpenAIStandIn(responder=fake_judge) as stand_in:
        yield stand_in


def config(server, tmp_path, workers=1, metric_version="official", **judge):
    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows(PREDICTIONS))
    settings = dict(base_url=server.url, model="stand-in", api_key_env="TEST_JUDGE_KEY",
                    backoff_initial_s=0.01, backoff_max_s=0.02, max_attempts=3, seed=5)
    settings.update(judge)
    return ScoreConfig(predictions=preds, out_dir=tmp_path / "out",
                       judge=JudgeConfig("openai", workers=workers, llm=LLMSettings(**settings),
                                         metric_version=metric_version),
                       progress_every_s=1e9)


def quiet(message):
    pass


def test_strict_version_scores_follow_its_definitions_and_store_judge_identity(server, key, tmp_path):
    """The strict variant (the project's behaviour before `official` became the default)."""
    summary = run_scoring(config(server, tmp_path, workers=3, metric_version="strict"), emit=quiet)
    rows = {(r["task"], r["question_id"]): r for r in load_scores(tmp_path / "out" / "scores.jsonl")}
    good = rows[("grading", "S1-4")]
    assert good["wsi_precision"]["score"] == 1.0 and good["wsi_relevance"]["score"] == 1.0
    assert good["judge"]["name"] == "openai" and good["prompt_version"] == jp.PROMPT_VERSION
    assert good["metric_version"] == "strict" and summary["metric_version"]["name"] == "strict"
    assert good["judge"]["details"]["temperature"] == 0.0 and good["approximate"] is False
    partial = rows[("grading", "S2-4")]
    # reference claims: "The tumor is graded as FIGO grade III." (first word found -> 0.3), "Solid growth..." (0)
    assert [c["score"] for c in partial["wsi_precision"]["claims"]] == [0.3, 0.0]
    assert partial["wsi_precision"]["score"] == pytest.approx(0.15)
    # prediction claims: "The tumor ... grade I." (0.3), "Extra unsupported remark." (0)
    assert partial["wsi_relevance"]["score"] == pytest.approx(0.15)
    blank = rows[("report_generation", "S1-1")]
    assert blank["wsi_precision"]["status"] == "blank_prediction" and blank["wsi_precision"]["score"] == 0.0
    assert blank["wsi_relevance"]["score"] == 0.0 and blank["nlu"]["bleu_1"] == 0.0
    assert rows[("diagnosis_choice", "S3-1")]["accuracy"]["correct"] is True
    # 5 open items, 4 requests each except the blank one (reference claims only)
    assert server.request_count == 4 * 4 + 1
    request = server.requests[0]
    assert (request["temperature"], request["seed"], request["response_format"]["type"]) == (0.0, 5, "json_schema")
    diagnosis = summary["capabilities"]["diagnosis"]["wsi_precision"]
    assert diagnosis["mean"] == pytest.approx((1.0 + 0.15) / 2) and diagnosis["n_scored"] == 2
    assert summary["judge_stats"]["requests_sent"] == 17 and summary["failures"] == []
    assert load_summary(tmp_path / "out" / "summary.json")["run"]["workers"] == 3


def test_reruns_make_zero_requests(server, key, tmp_path):
    first = run_scoring(config(server, tmp_path, workers=4), emit=quiet)
    sent = server.request_count
    again = run_scoring(config(server, tmp_path, workers=4), emit=quiet)        # finished rows reused
    assert server.request_count == sent and again["run"]["n_reused"] == 5 and again["run"]["n_judged"] == 0
    (tmp_path / "out" / "scores.jsonl").unlink()                              # only the judge cache is left
    cached = run_scoring(config(server, tmp_path, workers=4), emit=quiet)
    assert server.request_count == sent and cached["judge_stats"]["cache_hits"] == sent
    assert cached["overall"] == first["overall"]


def test_malformed_reply_is_retried(server, key, tmp_path):
    server.queue("this is not json", Reply(content='{"claims": [1]}'))
    summary = run_scoring(config(server, tmp_path), emit=quiet)
    assert summary["failures"] == [] and summary["judge_stats"]["invalid_replies"] == 2
    assert summary["judge_stats"]["retries"] == 2


def test_429_then_success(server, key, tmp_path):
    server.queue(Reply(status=429, headers={"Retry-After": "0"}))
    summary = run_scoring(config(server, tmp_path), emit=quiet)
    assert summary["failures"] == [] and summary["judge_stats"]["retries"] == 1
    assert server.request_count == 17 + 1


def test_out_of_scale_scores_fail_the_item_and_are_counted_then_retried_on_rerun(server, key, tmp_path):
    def responder(request):
        user = request["messages"][1]["content"]
        bad = 0.5 if _kind(request) == "precision_scoring" and "T3 N1 M0" in user else None
        return fake_judge(request, bad_score=bad)

    server.responder = responder
    cfg = config(server, tmp_path)
    summary = run_scoring(cfg, emit=quiet)
    [failure] = summary["failures"]
    assert (failure["task"], failure["metric"], failure["stage"]) == ("staging", "wsi_precision", "precision_scoring")
    assert "outside the scale" in failure["error"] and failure["attempts"] == 3
    staging = summary["tasks"]["staging"]["wsi_precision"]
    assert (staging["mean"], staging["n_failed"], staging["n_scored"]) == (None, 1, 0)    # not a silent 0
    assert summary["tasks"]["staging"]["wsi_relevance"]["n_scored"] == 1
    assert "1 judgement(s) failed" in (tmp_path / "out" / "summary.md").read_text()
    # the judge is fixed: a re-run asks only for the failed step (its claims come from the cache)
    server.responder = fake_judge
    before = server.request_count
    fixed = run_scoring(cfg, emit=quiet)
    assert fixed["failures"] == [] and server.request_count == before + 1


def test_strict_wrong_number_of_evaluations_is_invalid(server, key, tmp_path):
    def responder(request):
        if _kind(request) == "relevance":
            return json.dumps({"evaluations": []})
        return fake_judge(request)

    server.responder = responder
    summary = run_scoring(config(server, tmp_path, max_attempts=2, metric_version="strict"), emit=quiet)
    assert {f["stage"] for f in summary["failures"]} == {"relevance_scoring"}
    assert all("one per claim" in f["error"] for f in summary["failures"])


def test_dry_run_sends_nothing_and_writes_nothing(server, key, tmp_path):
    cfg = config(server, tmp_path)
    cfg.dry_run = True
    plan = run_scoring(cfg, emit=quiet)
    estimate = plan["judge_estimate"]
    assert plan["n_open"] == 5 and plan["n_to_judge"] == 5 and estimate["n_requests"] == 17
    assert estimate["per_prompt"]["reference_claims"]["n_requests"] == 5 and estimate["cost_usd"] is None
    assert server.request_count == 0 and not (tmp_path / "out").exists()


def test_dry_run_gives_an_expected_cost_beside_the_upper_bound(server, key, tmp_path):
    """Every reply at its prompt's maximum (1024 / 2048 tokens) is an upper bound several times the likely
    cost; the plan shows both."""
    cfg = config(server, tmp_path, price_input_per_1m_usd=2.5, price_output_per_1m_usd=10.0)
    cfg.dry_run = True
    estimate = run_scoring(cfg, emit=quiet)["judge_estimate"]
    assert 0 < estimate["output_tokens_expected"] < estimate["output_tokens"] / 10
    assert 0 < estimate["cost_usd_expected"] < estimate["cost_usd"]
    assert estimate["per_prompt"]["precision_scoring"]["output_tokens_expected"] > 0


def test_cli_exit_codes_and_missing_key(server, key, tmp_path, monkeypatch, capsys):
    preds = write_jsonl(tmp_path / "preds.jsonl", own_rows(PREDICTIONS))
    args = ["score", str(preds), "--out", str(tmp_path / "out"), "--judge", "openai", "--judge-base-url",
            server.url, "--judge-model", "stand-in", "--judge-api-key-env", "TEST_JUDGE_KEY", "--workers", "2"]
    assert cli_main(args) == 0 and "failed judgements 0" in capsys.readouterr().out
    monkeypatch.delenv("TEST_JUDGE_KEY")
    (tmp_path / "out" / "scores.jsonl").unlink()
    (tmp_path / "out" / "judge_cache.sqlite").unlink()
    assert cli_main(args) == 1
    err = capsys.readouterr().err
    assert "TEST_JUDGE_KEY is not set" in err and "Traceback" not in err
    with pytest.raises(JudgeConfigError, match="--judge-model"):
        run_scoring(ScoreConfig(preds, tmp_path / "o2", JudgeConfig(name="openai")), emit=quiet)


def test_evaluations_in_another_order_than_the_claims_are_invalid():
    """Scores are matched to claims by position; a judge that echoes the claims in another order would
    silently give each claim another claim's score."""
    from llm.errors import ReplyError

    claims = ["The tumor is grade 2.", "Lymphovascular invasion is present."]
    swapped = [{"claim": claims[1], "explanation": "yes", "score": 1},
               {"claim": claims[0], "explanation": "no", "score": 0}]
    with pytest.raises(ReplyError, match="out of order"):
        jp.for_claims(jp.PRECISION_SCORING, claims).parse(swapped)
    reworded = [{"claim": "Tumor grade 2", "explanation": "e", "score": 0.7},
                {"claim": claims[1], "explanation": "e", "score": 1}]
    assert [e["score"] for e in jp.for_claims(jp.PRECISION_SCORING, claims).parse(reworded)] == [0.7, 1.0]
    with pytest.raises(ReplyError, match="one per claim"):
        jp.for_claims(jp.PRECISION_SCORING, claims).parse(reworded[:1])
