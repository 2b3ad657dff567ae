"""The offline judge (local all-MiniLM-L6-v2): a reference against itself ~1.0, an unrelated answer far lower."""

import pytest

from evaluation.judge_types import JudgeConfig
from evaluation.judges import build_judge
from evaluation.offline_judge import THRESHOLDS, similarity_to_score
from evaluation.predictions import ScoringItem

REFERENCE = ("The tumor shows an infiltrative growth pattern with poorly formed glands. The nuclei are "
             "markedly pleomorphic with frequent mitoses. Lymphovascular invasion is present.")
UNRELATED = "The recommended treatment is radiotherapy. Follow-up imaging every six months is advised."


def item(prediction, qid="q", reference=REFERENCE):
    return ScoringItem(question_id=qid, task="global_morphology_description", task_title="t",
                       capability="morphological_analysis", answer_format="open", source_task_name="Caption",
                       image="x.pt", question="Describe the slide.", reference=reference, prediction=prediction)


@pytest.fixture(scope="module")
def judged():
    judge = build_judge(JudgeConfig(name="offline"))
    results = {}
    judge.judge([item(REFERENCE, "self"), item(UNRELATED, "unrelated"), item("  ", "blank"),
                 item("Some text.", "no-ref-claims", reference="")],
                lambda it, judgement: results.__setitem__(it.question_id, judgement))
    return judge, results


def test_reference_against_itself_scores_one(judged):
    _, results = judged
    assert results["self"].precision.score == pytest.approx(1.0)
    assert results["self"].relevance.score == pytest.approx(1.0)
    assert len(results["self"].precision.claims) == 3          # one claim per sentence


def test_unrelated_answer_scores_far_lower(judged):
    _, results = judged
    assert results["unrelated"].precision.score <= 0.3 and results["unrelated"].relevance.score <= 0.3


def test_blank_and_empty_reference_follow_the_rules(judged):
    _, results = judged
    # official (default): a blank prediction is 0 on WSI-P and left out of WSI-R, as the official scripts do
    assert results["blank"].precision.status == "blank_prediction" and results["blank"].precision.score == 0.0
    assert results["blank"].relevance.status == "blank_prediction" and results["blank"].relevance.score is None
    assert results["no-ref-claims"].precision.status == "no_claims"
    assert results["no-ref-claims"].relevance.score == 0.0          # nothing in the reference supports it
    assert results["self"].precision.round_digits == 3


def test_strict_version_scores_a_blank_prediction_zero_on_both_metrics():
    judge = build_judge(JudgeConfig(name="offline", metric_version="strict"))
    results = []
    judge.judge([item("  ", "blank")], lambda it, judgement: results.append(judgement))
    assert judge.identity.metric_version == "strict"
    assert results[0].precision.score == 0.0 and results[0].relevance.score == 0.0


def test_offline_judge_is_labelled_approximate_everywhere(judged):
    judge, results = judged
    assert judge.identity.approximate and judge.identity.name == "offline"
    assert "APPROXIMATE" in judge.identity.details["note"]
    assert all("approximate" in c.explanation for c in results["self"].precision.claims)
    assert judge.dry_run([item("x")])["n_requests"] == 0


def test_threshold_mapping():
    assert [similarity_to_score(s) for s in (1.0, 0.85, 0.84, 0.70, 0.69, 0.50, 0.49, -0.2)] == \
        [1.0, 1.0, 0.7, 0.7, 0.3, 0.3, 0.0, 0.0]
    assert [m for m, _ in THRESHOLDS] == sorted((m for m, _ in THRESHOLDS), reverse=True)
