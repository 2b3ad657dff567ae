"""`--metric-version official` (the default) against hand-computed expectations from the official WSI-Metric
scripts' semantics (yu5-kim/WSI-LLaVA f9ac921): prompts and messages byte for byte, stage-3 rounding,
claims the ground truth does not address left out, blank predictions excluded and listed, reasoning-model
judges. The deterministic judge (tests/helpers/deterministic_judge.py) scores a claim by the share of its
content words found in the other text: >= 0.75 -> 1, >= 0.5 -> 0.7, >= 0.25 -> 0.3, else 0.
"""

import hashlib
import json

import pytest

from llm.client import LLMSettings
from llm.errors import ReplyError
from evaluation import official_prompts as op
from evaluation.judge_types import JudgeConfig
from evaluation.schemas import load_scores, load_summary
from evaluation.scorer import ScoreConfig, run_scoring
from tests.evaluation.fixtures import write_jsonl
from tests.helpers.deterministic_judge import judge_reply
from tests.helpers.openai_server import OpenAIStandIn

# sha256 of the four official system prompts (WSI-Metric/*.py at f9ac921, the module constants as released)
OFFICIAL_SHA256 = {
    "REFERENCE_CLAIMS_SYSTEM": "cc15a18663c93f0b8fbe9fcc1e28929dbda38c23d72fb16c7e28700054fff96d",
    "PREDICTION_CLAIMS_SYSTEM": "dedae5d588cd6f887c534449bb7aca0d5c5f5770af047f82adb529acf4bd9a69",
    "PRECISION_SCORING_SYSTEM": "a6e5ea73c5f9e1df89026c0c7ae388eb918839b41f007e08f02325362dfda016",
    "RELEVANCE_SCORING_SYSTEM": "51684b338fb5171f240c33b1fc1d9e49b7496c1bbf52840f1174327fc825800f",
}
REF_A = "Alpha beta gamma delta. Alpha beta gamma epsilon. Zeta eta theta iota."
PRED_A = "alpha beta gamma delta epsilon"             # reference claims 1, 1, 0 -> 2/3 -> 0.667
REF_B = "Kappa lambda mu nu."
PRED_B = "omega"                                      # WSI-P 0; its one claim is not in the ground truth
REF_C = "The tumor is grade 2."
PRED_C = "The tumor is grade 2. Patients enjoy gardening."   # one claim addressed, one not
REPORT = "Invasive ductal carcinoma is present. Margins are clear."
ROWS = [
    {"question_id": "A-1", "task": "Grading", "question": "What grade?", "reference": REF_A, "prediction": PRED_A},
    {"question_id": "B-1", "task": "Grading", "question": "What grade?", "reference": REF_B, "prediction": PRED_B},
    {"question_id": "C-1", "task": "Staging", "question": "What stage?", "reference": REF_C, "prediction": PRED_C},
    {"question_id": "R-1", "task": "1_Report", "question": "Describe.", "reference": REPORT, "prediction": REPORT},
    {"question_id": "R-2", "task": "1_Report", "question": "Describe.", "reference": REPORT, "prediction": "  "},
]


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-test")


def score(tmp_path, server, version="official", model="stand-in", workers=1):
    rows = [{**r, "image": f"TCGA-XX/{r['question_id']}.pt", "model": "m"} for r in ROWS]
    settings = LLMSettings(base_url=server.url, model=model, api_key_env="TEST_JUDGE_KEY", max_attempts=2,
                           backoff_initial_s=0.01, backoff_max_s=0.02)
    config = ScoreConfig(write_jsonl(tmp_path / "preds.jsonl", rows), tmp_path / version,
                         JudgeConfig("openai", workers=workers, llm=settings, metric_version=version),
                         progress_every_s=1e9)
    summary = run_scoring(config, emit=lambda message: None)
    rows = {r["question_id"]: r for r in load_scores(tmp_path / version / "scores.jsonl")}
    return summary, rows


def test_official_prompts_are_the_released_texts_byte_for_byte():
    for name, digest in OFFICIAL_SHA256.items():
        assert hashlib.sha256(getattr(op, name).encode("utf-8")).hexdigest() == digest, name
    assert op.REFERENCE_CLAIMS_SYSTEM.startswith("\nYou are an AI assistant specialized in processing pathological "
                                                 "diagnosis Q&A pairs.")
    assert "its corresponding answer. \n" in op.REFERENCE_CLAIMS_SYSTEM            # the trailing space
    assert "Ignore Unmentioned Claims: Do not evaluate claims" in op.RELEVANCE_SCORING_SYSTEM
    assert all(p.verbatim for p in (op.REFERENCE_CLAIMS, op.PREDICTION_CLAIMS, op.PRECISION_SCORING,
                                    op.RELEVANCE_SCORING))


def test_requests_are_the_official_ones_byte_for_byte(tmp_path, key):
    with OpenAIStandIn(responder=judge_reply) as server:
        score(tmp_path, server)
    sent = [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in server.requests]
    assert all(len(r["messages"]) == 2 and "response_format" not in r for r in server.requests)
    assert (op.REFERENCE_CLAIMS_SYSTEM, REF_A) in sent                      # the ground truth alone
    assert (op.PREDICTION_CLAIMS_SYSTEM, PRED_A) in sent
    assert (op.PRECISION_SCORING_SYSTEM, "claims:['Alpha beta gamma delta.', 'Alpha beta gamma epsilon.', "
            "'Zeta eta theta iota.'] \n pathology dialogue responses:alpha beta gamma delta epsilon") in sent
    assert (op.RELEVANCE_SCORING_SYSTEM, "claims:['alpha beta gamma delta epsilon'] \n ground truth answer:"
            + REF_A) in sent
    # 4 requests per item; the blank prediction needs its reference claims only (WSI-P 0 without a call), and
    # those are R-1's (same reference): answered from the reply cache
    assert len(sent) == 4 * 4 and sum(1 for _, user in sent if user == REPORT) == 2


def test_items_and_means_are_rounded_as_stage_3(tmp_path, key):
    with OpenAIStandIn(responder=judge_reply) as server:
        summary, rows = score(tmp_path, server)
    a = rows["A-1"]["wsi_precision"]
    assert [c["score"] for c in a["claims"]] == [1, 1, 0] and a["score"] == 0.667 and a["round_digits"] == 3
    assert rows["B-1"]["wsi_precision"]["score"] == 0.0
    # stage 3: round(mean of the rounded items, 3) = round((0.667 + 0) / 2, 3) = 0.334 (unrounded: 0.333)
    assert summary["tasks"]["grading"]["wsi_precision"]["mean"] == 0.334
    # overall over every scored item, Report included: 0.667, 0, 1 (C), 1, 0 (R-2 blank) -> 0.533
    assert summary["overall"]["wsi_precision"]["mean"] == round((0.667 + 0 + 1 + 1 + 0) / 5, 3) == 0.533


def test_claims_the_ground_truth_does_not_address_are_left_out(tmp_path, key):
    with OpenAIStandIn(responder=judge_reply) as server:
        summary, rows = score(tmp_path, server)
    superset = rows["C-1"]["wsi_relevance"]
    assert superset["score"] == 1.0 and superset["ignored_claims"] == ["Patients enjoy gardening."]
    unrelated = rows["B-1"]["wsi_relevance"]
    assert (unrelated["status"], unrelated["score"], unrelated["ignored_claims"]) == ("not_addressed", None, ["omega"])
    grading = summary["tasks"]["grading"]["wsi_relevance"]
    assert (grading["mean"], grading["n_scored"], grading["n_not_addressed"]) == (1.0, 1, 1)
    assert {"question_id": "B-1", "task": "grading", "metric": "wsi_relevance", "status": "not_addressed",
            "reason": pytest.approx(summary["excluded"][0]["reason"])} in summary["excluded"]


def test_blank_predictions_are_excluded_from_relevance_and_nlu_and_listed(tmp_path, key):
    with OpenAIStandIn(responder=judge_reply) as server:
        summary, rows = score(tmp_path, server)
    blank = rows["R-2"]
    assert blank["wsi_precision"]["status"] == "blank_prediction" and blank["wsi_precision"]["score"] == 0.0
    assert blank["wsi_relevance"]["status"] == "blank_prediction" and blank["wsi_relevance"]["score"] is None
    assert blank["nlu"] is None and blank["nlu_excluded"] == "blank_prediction"
    report = summary["tasks"]["report_generation"]
    assert report["nlu"]["n"] == 1 and report["nlu"]["bleu_1"] == pytest.approx(1.0)    # not (1 + 0) / 2
    assert report["wsi_relevance"]["n_scored"] == 1 and report["wsi_relevance"]["n_blank_prediction"] == 1
    listed = {(e["question_id"], e["metric"]) for e in summary["excluded"]}
    assert {("R-2", "wsi_relevance"), ("R-2", "nlu")} <= listed and ("R-2", "wsi_precision") not in listed
    md = (tmp_path / "official" / "summary.md").read_text()
    assert "Left out of a mean (not failures): 3" in md and "`R-2` nlu: blank prediction" in md


def test_the_version_is_recorded_everywhere(tmp_path, key):
    with OpenAIStandIn(responder=judge_reply) as server:
        summary, rows = score(tmp_path, server)
    assert {r["metric_version"] for r in rows.values()} == {"official"}
    assert {r["judge"]["metric_version"] for r in rows.values()} == {"official"}
    assert {r["prompt_version"] for r in rows.values()} == {op.PROMPT_VERSION}
    assert rows["A-1"]["judge"]["details"]["prompt_versions"]["official.wsi_precision.scoring"] == op.PROMPT_VERSION
    on_disk = load_summary(tmp_path / "official" / "summary.json")
    assert on_disk["metric_version"]["name"] == "official" and on_disk["metric_version"]["round_digits"] == 3
    assert "Metric version: **`official`**" in (tmp_path / "official" / "summary.md").read_text()


def test_strict_version_keeps_its_rules_on_the_same_items(tmp_path, key):
    with OpenAIStandIn(responder=judge_reply) as server:
        summary, rows = score(tmp_path, server, version="strict")
    assert rows["A-1"]["wsi_precision"]["score"] == pytest.approx(2 / 3)                  # not rounded
    assert summary["tasks"]["grading"]["wsi_precision"]["mean"] == pytest.approx(1 / 3)
    assert rows["C-1"]["wsi_relevance"]["score"] == pytest.approx(0.5)                    # unaddressed claim: 0
    assert rows["B-1"]["wsi_relevance"]["score"] == 0.0
    assert rows["R-2"]["wsi_relevance"]["score"] == 0.0 and rows["R-2"]["nlu"]["bleu_1"] == 0.0
    assert summary["excluded"] == [] and {r["metric_version"] for r in rows.values()} == {"strict"}
    assert any("Question:\nWhat grade?\n\nAnswer:\n" in r["messages"][1]["content"] for r in server.requests)


def test_a_reasoning_model_judge_scores_the_items(tmp_path, key):
    """The official scripts' default judge is gpt-5-mini: a reasoning model that refuses temperature, seed
    and max_tokens. The stand-in refuses them exactly as the API does; scoring works and says so."""
    with OpenAIStandIn(responder=judge_reply, reasoning_model=True, model="gpt-5-mini") as server:
        summary, rows = score(tmp_path, server, model="gpt-5-mini", workers=3)
    assert summary["failures"] == [] and rows["A-1"]["wsi_precision"]["score"] == 0.667
    assert summary["overall"]["wsi_precision"]["mean"] == 0.533
    assert summary["judge_stats"]["request_adjustments"] == {
        "max_tokens": "sent as max_completion_tokens", "seed": "omitted (the model refused it)",
        "temperature": "omitted (the model refused it)"}
    accepted = [r for r in server.requests if not {"temperature", "seed", "max_tokens"} & set(r)]
    distinct = {(r["messages"][0]["content"], r["messages"][1]["content"]) for r in accepted}
    assert len(distinct) == 16 and server.refused_count == server.request_count - len(accepted) >= 3
    assert all(r["max_completion_tokens"] > 1024 for r in accepted)
    assert "the model refused request parameters" in (tmp_path / "official" / "summary.md").read_text()


def test_official_replies_are_read_by_the_definition_not_dropped():
    """The scripts json.loads every reply and silently drop what fails; the official version reads the
    judge's answer when it is there (a fence, a Python literal) and rejects only what has no valid answer."""
    claims = ["The tumor is grade 2.", "Margins are clear."]
    entries = [{"claim": claims[0], "explanation": "e", "score": 1}, {"claim": claims[1], "explanation": "e",
                                                                       "score": 0.3}]
    precision = op.for_claims(op.PRECISION_SCORING, claims)
    relevance = op.for_claims(op.RELEVANCE_SCORING, claims)
    assert [e["score"] for e in precision.parse(op.decode_reply(repr(entries)))] == [1.0, 0.3]      # Python literal
    assert op.decode_reply("```json\n" + json.dumps(entries) + "\n```") == entries
    assert op.PREDICTION_CLAIMS.parse(op.decode_reply('[" kept as written "]')) == [" kept as written "]
    with pytest.raises(ReplyError, match="one per claim"):
        precision.parse(entries[:1])                             # WSI-P: every reference claim is scored
    not_evaluated = [entries[0], {"claim": claims[1], "explanation": "not addressed", "score": "N/A"}]
    assert [e["score"] for e in relevance.parse(not_evaluated)] == [1.0, None]
    pairs, ignored = op.pair_with_claims(claims, relevance.parse(not_evaluated))
    assert [c for c, _ in pairs] == [claims[0]] and ignored == [claims[1]]
    swapped, ignored = op.pair_with_claims(claims, relevance.parse(entries[::-1]))
    assert [(c, e["score"]) for c, e in swapped] == [(claims[0], 1.0), (claims[1], 0.3)] and ignored == []
    for bad in ([{**entries[0], "score": "0.7"}], [{**entries[0], "score": True}], [{**entries[0], "score": 5}],
                entries + entries[:1], "not a list", [["claim", 1]]):
        with pytest.raises(ReplyError):
            relevance.parse(bad)
    with pytest.raises(ReplyError):
        op.decode_reply("I reviewed the text; every claim is fine.")


def test_live_scoring_in_the_app_uses_the_official_version_by_default(key):
    from ui.qa.live_scoring import LiveScorer
    from wsi_bench.files import BenchItem

    item = BenchItem(question_id="C-1", image="TCGA-XX/C.pt", question="What stage?", answer=REF_C, task="staging",
                     capability="treatment_planning", answer_format="open", source_task_name="Staging", source="t")
    with OpenAIStandIn(responder=judge_reply) as server:
        scorer = LiveScorer(JudgeConfig("openai", workers=1, llm=LLMSettings(
            base_url=server.url, model="stand-in", api_key_env="TEST_JUDGE_KEY")))
        score = scorer.score(item, PRED_C)
        scorer.close()
    assert score.metric_version == "official" and score.judge_label.endswith("metric version official")
    assert score.wsi_relevance.score == 1.0 and score.wsi_relevance.ignored_claims == ["Patients enjoy gardening."]
    assert server.requests[0]["messages"][1]["content"] == REF_C
