"""WSI-Precision / WSI-Relevance arithmetic and aggregation, checked by hand."""

import pytest

from evaluation.claim_scores import (
    BLANK_PREDICTION,
    FAILED,
    NO_CLAIMS,
    ClaimJudgement,
    MetricResult,
    aggregate_metric,
    validate_scale_score,
)
from evaluation.summary import summarize


@pytest.mark.parametrize("value, expected", [(1, 1.0), (1.0, 1.0), (0.7, 0.7), (0.3, 0.3), (0, 0.0),
                                             (0.70000000001, 0.7)])
def test_scale_scores_accepted(value, expected):
    assert validate_scale_score(value) == expected


@pytest.mark.parametrize("value", [0.5, 2, -1, "1", "0.7", None, True, float("nan"), [1]])
def test_scores_outside_the_scale_are_invalid(value):
    with pytest.raises(ValueError):
        validate_scale_score(value)


def judged(*scores):
    return MetricResult.scored([ClaimJudgement(f"claim {i}", s, "why") for i, s in enumerate(scores)])


def test_item_score_is_the_mean_over_claims():
    assert judged(1, 0.7, 0.3, 0).score == pytest.approx(0.5)
    assert judged(0.7).score == pytest.approx(0.7)
    assert judged(1, 1, 0.3).score == pytest.approx(2.3 / 3)


def test_no_claims_blank_and_failed_rules():
    assert MetricResult.scored([]).status == NO_CLAIMS and MetricResult.scored([]).score is None
    blank = MetricResult.blank_prediction(["a", "b"])
    assert blank.status == BLANK_PREDICTION and blank.score == 0.0 and [c.score for c in blank.claims] == [0, 0]
    assert MetricResult.blank_prediction().score == 0.0                 # relevance: nothing asserted -> 0
    failed = MetricResult.failed("invalid reply", "precision_scoring", 4)
    assert failed.status == FAILED and failed.score is None
    assert MetricResult.from_dict(judged(1, 0).to_dict()) == judged(1, 0)


def test_inconsistent_results_are_rejected():
    with pytest.raises(ValueError):
        MetricResult("scored", 0.9, [ClaimJudgement("c", 1, "x")])
    with pytest.raises(ValueError):
        MetricResult("failed", 0.0)
    with pytest.raises(ValueError):
        MetricResult("maybe", None)


def test_aggregate_counts_every_status_and_means_only_scored():
    stats = aggregate_metric([judged(1), judged(0.3, 0.7), MetricResult.no_claims(),
                              MetricResult.blank_prediction(["x"]), MetricResult.failed("e", "s")])
    assert stats == {"mean": pytest.approx((1 + 0.5 + 0) / 3), "n_items": 5, "n_scored": 3, "n_failed": 1,
                     "n_no_claims": 1, "n_blank_prediction": 1, "n_not_addressed": 0}


def row(task, capability, qid, p=None, r=None, correct=None, ref_answer=None, extracted="X"):
    accuracy = None
    if ref_answer is not None:
        accuracy = {"correct": correct, "extracted": extracted, "rule": "letter_only",
                    "reference_answer": ref_answer, "extractor_version": "t"}
    return {"question_id": qid, "task": task, "capability": capability,
            "wsi_precision": p.to_dict() if p else None, "wsi_relevance": r.to_dict() if r else None,
            "accuracy": accuracy, "nlu": None}


def make_summary(rows):
    return summarize(rows, judge=None, judge_stats={}, run={}, inputs={}, nlu_settings=None)


def test_task_capability_and_overall_are_means_over_items_not_over_task_means():
    rows = [
        row("grading", "diagnosis", "g1", p=judged(1), r=judged(1)),
        row("grading", "diagnosis", "g2", p=judged(0, 1), r=judged(0.3)),
        row("histological_typing", "diagnosis", "h1", p=judged(0, 0), r=judged(0.7)),
        row("histological_typing", "diagnosis", "h2", p=MetricResult.failed("bad", "precision_scoring"),
            r=MetricResult.no_claims()),
        row("histological_typing", "diagnosis", "h3", p=MetricResult.blank_prediction(["c"]),
            r=MetricResult.blank_prediction()),
        row("staging", "treatment_planning", "s1", p=judged(0.7, 0.3), r=judged(1, 0)),
    ]
    summary = make_summary(rows)
    grading, typing = summary["tasks"]["grading"], summary["tasks"]["histological_typing"]
    assert grading["wsi_precision"]["mean"] == pytest.approx(0.75)
    assert typing["wsi_precision"]["mean"] == pytest.approx(0.0)
    assert (typing["wsi_precision"]["n_scored"], typing["wsi_precision"]["n_failed"]) == (2, 1)
    assert typing["wsi_relevance"]["n_no_claims"] == 1 and typing["wsi_relevance"]["mean"] == pytest.approx(0.35)
    assert summary["capabilities"]["diagnosis"]["wsi_precision"]["mean"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    # overall P over items: 1, 0.5, 0, 0 (blank), 0.5 -> 0.4; the mean of task means would be 1.25 / 3
    assert summary["overall"]["wsi_precision"]["mean"] == pytest.approx(2.0 / 5)
    assert summary["overall"]["wsi_precision"]["n_failed"] == 1
    task_means = [summary["tasks"][t]["wsi_precision"]["mean"] for t in ("grading", "histological_typing", "staging")]
    assert sum(task_means) / 3 != pytest.approx(summary["overall"]["wsi_precision"]["mean"])
    assert summary["failures"] == [{"question_id": "h2", "task": "histological_typing", "metric": "wsi_precision",
                                    "stage": "precision_scoring", "error": "bad", "attempts": None}]


def test_table2_avg_is_the_mean_of_nine_cells_and_majority_baselines():
    rows = [
        row("global_morphology_description", "morphological_analysis", "m1", p=judged(1), r=judged(0.3)),
        row("morphology_choice", "morphological_analysis", "mc1", correct=True, ref_answer="B", extracted="B"),
        row("grading", "diagnosis", "g1", p=judged(0.7), r=judged(0.7)),
        row("diagnosis_choice", "diagnosis", "d1", correct=True, ref_answer="B", extracted="B"),
        row("diagnosis_choice", "diagnosis", "d2", correct=False, ref_answer="B", extracted=None),
        row("diagnosis_choice", "diagnosis", "d3", correct=False, ref_answer="A", extracted="C"),
        row("diagnosis_choice", "diagnosis", "d4", correct=None, ref_answer=None, extracted="A"),
        row("staging", "treatment_planning", "s1", p=judged(0), r=judged(1)),
        row("prognosis_yes_no", "treatment_planning", "y1", correct=True, ref_answer="No", extracted="No"),
        row("prognosis_yes_no", "treatment_planning", "y2", correct=True, ref_answer="Yes", extracted="Yes"),
    ]
    rows[6]["accuracy"] = {"correct": None, "extracted": "A", "rule": "letter_only", "reference_answer": None,
                           "extractor_version": "t"}
    summary = make_summary(rows)
    ours = summary["table2"]["ours"]
    cells = [1, 0.3, 1, 0.7, 0.7, 1 / 3, 0, 1, 1]
    assert [ours[c] for c in summary["table2"]["columns"][:-1]] == pytest.approx(cells)
    assert ours["avg"] == pytest.approx(sum(cells) / 9) and summary["table2"]["avg_complete"]
    diag = summary["tasks"]["diagnosis_choice"]["accuracy"]
    assert diag == {"mean": pytest.approx(1 / 3), "n": 3, "n_correct": 1, "n_unparsed": 1, "n_invalid_reference": 1,
                    "majority_baseline": pytest.approx(2 / 3), "majority_answer": "B"}
    yes_no = summary["tasks"]["prognosis_yes_no"]["accuracy"]
    assert yes_no["majority_answer"] == "No" and yes_no["majority_baseline"] == pytest.approx(0.5)   # tie -> "No"
    # capability majority baseline is item-weighted over its tasks: diagnosis 2 of 3 valid items
    assert summary["capabilities"]["diagnosis"]["accuracy"]["majority_baseline"] == pytest.approx(2 / 3)
    assert summary["overall"]["accuracy"]["majority_baseline"] == pytest.approx((1 + 2 + 1) / 6)
    assert "WSI-LLaVA" in summary["table2"]["baselines"]


def test_closed_items_with_an_invalid_reference_are_left_out_and_listed():
    from evaluation.predictions import ScoringItem
    from evaluation.score_rows import closed_row

    def item(qid, question, reference, prediction):
        return ScoringItem(question_id=qid, task="staging_choice", task_title="Staging (multiple choice)",
                           capability="treatment_planning", answer_format="choice", source_task_name="Staging_choice",
                           image="TCGA-XX/s.pt", question=question, reference=reference, prediction=prediction)

    q = "What is the TNM staging? A) T1 N0 M0 B) T2 N0 M0 C) T3 N1 M0 D) T4 N0 M1"
    duplicate = "What is the correct TNM staging? A) T2 N0 M0 B) T1 N1 M0 C) T2 N1 M1 D) T2 N0 M0"   # released data
    rows = [closed_row(item("ok", q, "C ```", "C) T3 N1 M0")),
            closed_row(item("dup", duplicate, "D", "T2 N0 M0")),
            closed_row(item("sentence", q, "For a patient with ... what would be their TNM staging? A) TX", "A"))]
    assert rows[0]["accuracy"]["correct"] is True and rows[0]["accuracy"]["reference_problem"] is None
    assert rows[1]["accuracy"]["correct"] is None and "same text" in rows[1]["accuracy"]["reference_problem"]
    assert rows[2]["accuracy"]["correct"] is None and rows[2]["accuracy"]["reference_answer"] is None
    for r in rows:
        r["nlu"] = None
    summary = make_summary(rows)
    acc = summary["tasks"]["staging_choice"]["accuracy"]
    assert (acc["n"], acc["n_correct"], acc["n_invalid_reference"]) == (1, 1, 2)
    assert [e["question_id"] for e in summary["invalid_references"]] == ["dup", "sentence"]
    from evaluation.report_md import render_summary_md
    assert "## Invalid references: 2" in render_summary_md({**summary, "inputs": {
        "path": "p", "formats": [], "n_rows": 3, "n_items": 3, "references": None, "n_unmatched": 0, "n_missing": 0,
        "n_duplicates": 0, "n_problems": 0, "unmatched": []}, "created_at": "t"})


def test_official_results_round_items_and_means_to_three_places():
    """Stage 3: an item is round(mean, 3); a group is round(mean of the rounded items, 3)."""
    two_thirds = MetricResult.scored([ClaimJudgement("a", 1, "x"), ClaimJudgement("b", 1, "x"),
                                      ClaimJudgement("c", 0, "x")], round_digits=3)
    assert two_thirds.score == 0.667 and MetricResult.from_dict(two_thirds.to_dict()) == two_thirds
    with pytest.raises(ValueError):
        MetricResult("scored", 2 / 3, two_thirds.claims, round_digits=3)    # unrounded: inconsistent
    zero = MetricResult.scored([ClaimJudgement("d", 0, "x")], round_digits=3)
    assert aggregate_metric([two_thirds, zero], round_digits=3)["mean"] == 0.334   # (0.667 + 0) / 2 = 0.3335
    assert aggregate_metric([two_thirds, zero])["mean"] == pytest.approx(0.3335)


def test_not_addressed_and_excluded_blank_results_have_no_score_and_are_counted():
    from evaluation.claim_scores import NOT_ADDRESSED

    none_addressed = MetricResult.scored([], round_digits=3, ignored=["Paris is in France."])
    assert (none_addressed.status, none_addressed.score) == (NOT_ADDRESSED, None)
    assert none_addressed.ignored_claims == ["Paris is in France."]
    blank = MetricResult.blank_prediction(excluded=True)
    assert (blank.status, blank.score) == (BLANK_PREDICTION, None)
    with pytest.raises(ValueError):
        MetricResult(NOT_ADDRESSED, 0.0)
    stats = aggregate_metric([judged(1), none_addressed, blank])
    assert (stats["mean"], stats["n_scored"], stats["n_not_addressed"], stats["n_blank_prediction"]) == (1.0, 1, 1, 1)
