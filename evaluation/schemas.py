"""The versioned output schemas of `evaluate score` (scores.jsonl, summary.json) and their loaders.

Consumers (the metrics dashboard, notebooks) read outputs only through `load_scores` / `load_summary`,
which check the schema version and the documented fields and raise `SchemaError` naming the file, line
and field otherwise. A change that renames, removes or re-types a field bumps the version; adding an
optional field does not. Field tables (also rendered in evaluation/README.md):

scores.jsonl: one JSON object per item, in prediction-file order (`SCORE_ROW_FIELDS`, and the optional
  `OPTIONAL_SCORE_ROW_FIELDS`: metric_version, nlu_excluded).
  wsi_precision / wsi_relevance (open-ended items; null for closed ones) are MetricResult objects:
    {status: scored|no_claims|blank_prediction|not_addressed|failed, score: float|null,
     claims: [{claim, score (1|0.7|0.3|0), explanation, judge_claim?, similarity?}],
     error: str|null, stage: str|null, attempts: int|null, round_digits?: int, ignored_claims?: [str]}
    (blank_prediction: score 0.0, or null when the metric version excludes it)
  accuracy (closed items; null for open ones):
    {correct: bool|null, extracted: str|null, rule: str|null, reference_answer: str|null,
     extractor_version: str, reference_problem?: str|null}
    (correct is null when the reference itself is invalid; reference_problem says why)
  nlu (report generation, or every open item with --nlu-all-open; else null):
    {bleu_1, bleu_2, bleu_3, bleu_4, rouge_l (official script's), meteor, cider, rouge_l_lcs?}
summary.json: one object (`SUMMARY_FIELDS`); its groups (overall, capabilities.*, tasks.*) share
  `GROUP_FIELDS`; optional (`OPTIONAL_SUMMARY_FIELDS`): `metric_version`, `excluded`,
  `invalid_references` [{question_id, task, reference, problem}].
"""

from __future__ import annotations

import json
from pathlib import Path

from common.jsonl import iter_jsonl
from evaluation.claim_scores import MetricResult
from evaluation.errors import SchemaError

SCORES_SCHEMA = "wsi-llava.evaluation.scores/1"
SUMMARY_SCHEMA = "wsi-llava.evaluation.summary/1"

# name -> (JSON types allowed, description)
SCORE_ROW_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "schema": ((str,), f"always {SCORES_SCHEMA!r}"),
    "question_id": ((str,), "the WSI-Bench question id (unique per task, not across tasks)"),
    "task": ((str,), "canonical task id from the task table (wsi_bench.tasks)"),
    "task_title": ((str,), "human-readable task name"),
    "capability": ((str,), "morphological_analysis | diagnosis | treatment_planning | report_generation"),
    "answer_format": ((str,), "open | choice | yes_no"),
    "source_task_name": ((str,), "the task name as given by the row or reference file"),
    "image": ((str,), "slide path as released (TCGA-XXX/<slide>.pt)"),
    "question": ((str,), "question text without the <image> placeholder"),
    "reference": ((str,), "ground-truth answer"),
    "prediction": ((str,), "model answer"),
    "model": ((str, type(None)), "the model that made the prediction, when the row says"),
    "source": ((str,), "file:line of the prediction row"),
    "judge": ((dict, type(None)), "open items: {name, model, prompt_version, approximate, details}"),
    "prompt_version": ((str,), "judge prompt version (open) or answer-extractor version (closed)"),
    "approximate": ((bool,), "true when scored by an approximate judge (offline)"),
    "fingerprint": ((str,), "hash of judge identity + item texts; a re-run reuses rows whose hash matches"),
    "wsi_precision": ((dict, type(None)), "MetricResult (see module docstring)"),
    "wsi_relevance": ((dict, type(None)), "MetricResult"),
    "accuracy": ((dict, type(None)), "closed-ended result"),
    "nlu": ((dict, type(None)), "BLEU-1..4, ROUGE-L, METEOR, CIDEr"),
}
OPTIONAL_SCORE_ROW_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "metric_version": ((str,), "official | strict (evaluation.metric_versions); absent in older files = strict"),
    "nlu_excluded": ((str,), "why an item that would get NLU metrics has none (blank_prediction, official)"),
}

GROUP_FIELDS: dict[str, str] = {
    "n_items": "items in the group",
    "wsi_precision": "{mean, n_items, n_scored, n_failed, n_no_claims, n_blank_prediction, n_not_addressed?} "
                     "or null",
    "wsi_relevance": "same as wsi_precision",
    "accuracy": "{mean, n, n_correct, n_unparsed, n_invalid_reference, majority_baseline, majority_answer?} "
                "or null",
    "nlu": "{n, bleu_1, bleu_2, bleu_3, bleu_4, rouge_l, meteor, cider} means, or null",
}

SUMMARY_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "schema": ((str,), f"always {SUMMARY_SCHEMA!r}"),
    "created_at": ((str,), "UTC ISO-8601 time the summary was written"),
    "approximate": ((bool,), "true when the WSI-P/WSI-R numbers come from an approximate judge"),
    "judge": ((dict, type(None)), "judge identity (as on every score row)"),
    "judge_stats": ((dict,), "requests_sent, cache_hits, retries, invalid_replies, failures, tokens, cost_usd"),
    "run": ((dict,), "predictions, references, out_dir, workers, models, elapsed_s, n_reused, n_judged"),
    "inputs": ((dict,), "LoadReport: formats, n_rows, n_items, unmatched, missing, duplicates, problems"),
    "nlu_settings": ((dict, type(None)), "tokenizer and metric implementations, METEOR matching used"),
    "answer_extractor_version": ((str,), "version of evaluation.answer_extraction"),
    "overall": ((dict,), "group over all items"),
    "capabilities": ((dict,), "capability -> group"),
    "tasks": ((dict,), "task id -> group (+ title, capability, answer_format)"),
    "table2": ((dict,), "{columns, ours: {column: value}, ours_n: {column: n}, avg_complete, baselines, "
                        "closed_grouping?, cell_labels?}"),
    "table3": ((dict,), "{columns, ours: {column: value} (+cider), n, baselines}"),
    "failures": ((list,), "[{question_id, task, metric, stage, error, attempts}] for every failed judgement"),
}
OPTIONAL_SUMMARY_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "metric_version": ((dict,), "what WSI-P / WSI-R mean in this run (evaluation.metric_versions.describe)"),
    "excluded": ((list,), "[{question_id, task, metric, status, reason}]: items left out of a mean without "
                          "failing (no claims, blank predictions the version excludes, none addressed)"),
    "invalid_references": ((list,), "[{question_id, task, reference, problem}]"),
}


def _check_fields(obj: dict, fields: dict, where: str) -> None:
    if not isinstance(obj, dict):
        raise SchemaError(f"{where}: expected a JSON object, got {type(obj).__name__}.")
    for name, (types, _) in fields.items():
        if name not in obj:
            raise SchemaError(f"{where}: missing field {name!r}.")
        if not isinstance(obj[name], types) or (bool not in types and isinstance(obj[name], bool)):
            raise SchemaError(f"{where}: field {name!r} has type {type(obj[name]).__name__}, expected "
                              f"{' or '.join(t.__name__ for t in types)}.")


def _check_optional(obj: dict, fields: dict, where: str) -> None:
    _check_fields({k: obj[k] for k in fields if k in obj}, {k: v for k, v in fields.items() if k in obj}, where)


def validate_score_row(row: dict, where: str = "row") -> dict:
    _check_fields(row, SCORE_ROW_FIELDS, where)
    _check_optional(row, OPTIONAL_SCORE_ROW_FIELDS, where)
    if row["schema"] != SCORES_SCHEMA:
        raise SchemaError(f"{where}: schema {row['schema']!r}, this code reads {SCORES_SCHEMA!r}. Re-run "
                          "`wsi-llava evaluate score` with this version to rewrite the file.")
    for metric in ("wsi_precision", "wsi_relevance"):
        if row[metric] is not None:
            try:
                MetricResult.from_dict(row[metric])
            except (KeyError, TypeError, ValueError) as exc:
                raise SchemaError(f"{where}: field {metric!r} is not a valid MetricResult ({exc}).") from exc
    return row


def load_scores(path: str | Path) -> list[dict]:
    """Every row of a scores.jsonl, validated."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: no such scores file (run `wsi-llava evaluate score` first).")
    rows = []
    for line in iter_jsonl(path):
        if line.error:
            raise SchemaError(f"{path}:{line.number}: {line.error}.")
        rows.append(validate_score_row(line.value, f"{path}:{line.number}"))
    return rows


def validate_summary(summary: dict, where: str = "summary") -> dict:
    _check_fields(summary, SUMMARY_FIELDS, where)
    _check_optional(summary, OPTIONAL_SUMMARY_FIELDS, where)
    if summary["schema"] != SUMMARY_SCHEMA:
        raise SchemaError(f"{where}: schema {summary['schema']!r}, this code reads {SUMMARY_SCHEMA!r}.")
    for name, group in [("overall", summary["overall"]), *[(f"capabilities.{k}", g) for k, g in
                                                         summary["capabilities"].items()],
                        *[(f"tasks.{k}", g) for k, g in summary["tasks"].items()]]:
        missing = [f for f in GROUP_FIELDS if f not in group]
        if missing:
            raise SchemaError(f"{where}: group {name} lacks {missing}.")
    return summary


def load_summary(path: str | Path) -> dict:
    path = Path(path)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SchemaError(f"{path}: no such summary (run `wsi-llava evaluate score` first).") from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not valid JSON ({exc.msg}).") from exc
    return validate_summary(summary, str(path))


def flatten_score_row(row: dict) -> dict:
    """One flat record per item (for a table / DataFrame): ids, task, capability, the metric values."""
    flat = {key: row[key] for key in ("question_id", "task", "capability", "answer_format", "model",
                                      "approximate")}
    flat["metric_version"] = row.get("metric_version") or ("strict" if row["judge"] else None)
    for metric in ("wsi_precision", "wsi_relevance"):
        result = row[metric]
        flat[metric] = result["score"] if result else None
        flat[f"{metric}_status"] = result["status"] if result else None
    flat["correct"] = row["accuracy"]["correct"] if row["accuracy"] else None
    for name, value in (row["nlu"] or {}).items():
        flat[name] = value
    return flat
