"""Scoring one answer against its WSI-Bench reference while a person watches (the Slide Q&A tab).

Open questions get WSI-Precision / WSI-Relevance from the configured judge (the offline judge by
default: APPROXIMATE, no network) under the judge config's metric version (`official` by default, as
`evaluate score`: evaluation.metric_versions; shown in `judge_label`); multiple-choice and yes/no
questions get accuracy through the same answer extraction as `evaluate score`. The judge is built once
and reused.

    scorer = LiveScorer(JudgeConfig("offline"))
    score = scorer.score(bench_item, "The tumour is grade 2.")
    score.wsi_precision.score, score.wsi_relevance.score, score.approximate, score.judge_label
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from wsi_bench.files import BenchItem
from wsi_bench.tasks import resolve_task
from evaluation.claim_scores import MetricResult
from evaluation.errors import EvaluationError
from evaluation.judge_types import ItemJudgement, Judge, JudgeConfig
from evaluation.judges import build_judge
from evaluation.predictions import ScoringItem
from evaluation.score_rows import closed_row


@dataclass
class LiveScore:
    question_id: str
    task_title: str
    answer_format: str                       # "open" | "choice" | "yes_no"
    judge_label: str                         # "offline (sentence-transformers/...), metric version official"
    approximate: bool
    wsi_precision: MetricResult | None = None
    wsi_relevance: MetricResult | None = None
    accuracy: dict | None = None             # {correct, extracted, rule, reference_answer, extractor_version}
    metric_version: str | None = None        # official | strict (open questions)


def scoring_item(item: BenchItem, prediction: str) -> ScoringItem:
    spec = resolve_task(item.task)
    return ScoringItem(question_id=item.question_id, task=spec.task, task_title=spec.title,
                       capability=spec.capability.value, answer_format=spec.answer_format.value,
                       source_task_name=item.source_task_name, image=item.image, question=item.question,
                       reference=item.answer, prediction=prediction, model=None, source="live")


class LiveScorer:
    def __init__(self, judge_config: JudgeConfig):
        self.judge_config = judge_config
        self._judge: Judge | None = None
        self._lock = threading.Lock()

    def judge(self) -> Judge:
        with self._lock:
            if self._judge is None:
                self._judge = build_judge(self.judge_config)
            return self._judge

    def score(self, item: BenchItem, prediction: str) -> LiveScore:
        scored = scoring_item(item, prediction)
        if scored.answer_format != "open":
            row = closed_row(scored, self.judge_config.metric_version)
            return LiveScore(scored.question_id, scored.task_title, scored.answer_format,
                             "answer extraction (rules)", False, accuracy=row["accuracy"])
        judge = self.judge()
        results: list[ItemJudgement] = []
        with self._lock:                      # one judgement at a time: the judges are not re-entrant
            judge.judge([scored], lambda _item, judgement: results.append(judgement))
        if len(results) != 1:
            raise EvaluationError(f"The {judge.identity.name} judge returned no result for {scored.question_id}.")
        identity = judge.identity
        return LiveScore(scored.question_id, scored.task_title, scored.answer_format,
                         f"{identity.name} ({identity.model}), metric version {identity.metric_version}",
                         identity.approximate, wsi_precision=results[0].precision,
                         wsi_relevance=results[0].relevance, metric_version=identity.metric_version)

    def close(self) -> None:
        with self._lock:
            if self._judge is not None:
                self._judge.close()
                self._judge = None
