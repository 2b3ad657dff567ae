"""One scores.jsonl row per item: judged open-ended items, closed-ended accuracy, NLU metric values.

Row layout: `evaluation.schemas.SCORE_ROW_FIELDS`. A row's `fingerprint` hashes everything that can
change its scores (judge identity incl. prompt version, or the extractor version; task, id, question,
reference, prediction), so a re-run reuses a finished row only when nothing that matters changed.
"""

from __future__ import annotations

import hashlib
import json

from evaluation.answer_extraction import EXTRACTOR_VERSION, extract_answer, read_reference
from evaluation.claim_scores import FAILED
from evaluation.judge_types import ItemJudgement, JudgeIdentity
from evaluation.predictions import ScoringItem
from evaluation.schemas import SCORES_SCHEMA


def item_fingerprint(item: ScoringItem, scorer_fingerprint: str) -> str:
    payload = [scorer_fingerprint, item.task, item.question_id, item.question, item.reference, item.prediction]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()[:24]


def item_fields(item: ScoringItem) -> dict:
    """The row fields that describe the item (refreshed on reused rows: model and source may change)."""
    return {"schema": SCORES_SCHEMA, "question_id": item.question_id, "task": item.task,
            "task_title": item.task_title, "capability": item.capability, "answer_format": item.answer_format,
            "source_task_name": item.source_task_name, "image": item.image, "question": item.question,
            "reference": item.reference, "prediction": item.prediction, "model": item.model,
            "source": item.source}


def open_row(item: ScoringItem, judgement: ItemJudgement, identity: JudgeIdentity, nlu: dict | None,
             nlu_excluded: str | None = None) -> dict:
    """`nlu_excluded`: why an item that would get NLU metrics has none (a blank prediction the metric
    version leaves out)."""
    row = {**item_fields(item), "judge": identity.to_dict(), "prompt_version": identity.prompt_version,
           "metric_version": identity.metric_version, "approximate": identity.approximate,
           "fingerprint": item_fingerprint(item, identity.fingerprint()),
           "wsi_precision": judgement.precision.to_dict(), "wsi_relevance": judgement.relevance.to_dict(),
           "accuracy": None, "nlu": nlu}
    if nlu_excluded:
        row["nlu_excluded"] = nlu_excluded
    return row


def closed_row(item: ScoringItem, metric_version: str | None = None) -> dict:
    """Accuracy of a multiple-choice or yes/no item. An unreadable prediction is incorrect; a reference
    that is not strictly one option / Yes / No (a data error, `read_reference`) gives `correct: null`, left
    out of the mean, counted and listed with `reference_problem`."""
    predicted = extract_answer(item.answer_format, item.prediction, item.question)
    reference = read_reference(item.answer_format, item.reference, item.question)
    correct = None if reference.answer is None else predicted.answer == reference.answer
    return {**item_fields(item), "judge": None, "prompt_version": EXTRACTOR_VERSION,
            **({"metric_version": metric_version} if metric_version else {}), "approximate": False,
            "fingerprint": item_fingerprint(item, f"extractor:{EXTRACTOR_VERSION}"),
            "wsi_precision": None, "wsi_relevance": None,
            "accuracy": {"correct": correct, "extracted": predicted.answer, "rule": predicted.rule,
                         "reference_answer": reference.answer, "extractor_version": EXTRACTOR_VERSION,
                         "reference_problem": reference.problem},
            "nlu": None}


def is_complete(row: dict) -> bool:
    """A row that a re-run may reuse: no metric failed."""
    return all(row.get(m) is None or row[m]["status"] != FAILED for m in ("wsi_precision", "wsi_relevance"))
