"""scores.jsonl rows -> summary.json: per task, per capability and overall, in the paper's table layout.

Means follow the definitions of the run's metric version (evaluation.metric_versions,
evaluation.claim_scores): every group's WSI-P / WSI-R is the mean over its items that have a score, never a
mean of task means (official: the mean of the 3-place items, rounded to 3 places); `overall` is the mean
over all items (all capabilities, report generation included). Table 2's `avg` is, as in the paper, the
mean of its nine cells (P, R, accuracy for morphology, diagnosis, treatment planning); `avg_complete` is
false when a cell has no items. Table 2's accuracy cells count the closed tasks of the Table 2 grouping
(evaluation.table2_grouping; default `inferred`, labelled "grouping inferred"); per-task accuracies stay
under `tasks`. Accuracy is over closed items whose reference could be read; the majority-class baseline
answers every item of a task with that task's most frequent reference answer (ties -> the alphabetically
first), and for a capability / overall it is the item-weighted mix of those. Items left out of a mean
without failing (no claims, blank predictions the version excludes, claims none of which the ground truth
addresses) are listed in `excluded`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Iterable

from wsi_bench.tasks import TASKS, Capability, resolve_task
from evaluation.answer_extraction import EXTRACTOR_VERSION
from evaluation.baselines import (
    TABLE2_CAPABILITIES,
    TABLE2_COLUMNS,
    TABLE3_COLUMNS,
    load_baselines,
)
from evaluation.claim_scores import (
    BLANK_PREDICTION,
    FAILED,
    NO_CLAIMS,
    NOT_ADDRESSED,
    MetricResult,
    aggregate_metric,
    mean_or_none,
)
from evaluation.metric_versions import MetricVersion, get_metric_version, version_of_rows
from evaluation.nlu_metrics import NLU_METRICS
from evaluation.schemas import SUMMARY_SCHEMA, validate_summary
from evaluation.table2_grouping import closed_cells

_TASK_ORDER = {spec.task: i for i, spec in enumerate(TASKS)}


def _majority(rows: list[dict]) -> tuple[int, str | None]:
    """(items the majority answer gets right, that answer) for the rows of ONE task."""
    answers = Counter(r["accuracy"]["reference_answer"] for r in rows
                      if r["accuracy"]["correct"] is not None)
    if not answers:
        return 0, None
    answer = sorted(answers.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return answers[answer], answer


def _accuracy(rows: list[dict]) -> dict | None:
    closed = [r for r in rows if r["accuracy"] is not None]
    if not closed:
        return None
    valid = [r for r in closed if r["accuracy"]["correct"] is not None]
    by_task: dict[str, list[dict]] = {}
    for row in valid:
        by_task.setdefault(row["task"], []).append(row)
    majority_hits = sum(_majority(task_rows)[0] for task_rows in by_task.values())
    result = {"mean": mean_or_none([1.0 if r["accuracy"]["correct"] else 0.0 for r in valid]), "n": len(valid),
              "n_correct": sum(1 for r in valid if r["accuracy"]["correct"]),
              "n_unparsed": sum(1 for r in valid if r["accuracy"]["extracted"] is None),
              "n_invalid_reference": len(closed) - len(valid),
              "majority_baseline": majority_hits / len(valid) if valid else None}
    if len(by_task) == 1:
        result["majority_answer"] = _majority(next(iter(by_task.values())))[1]
    return result


def _nlu(rows: list[dict]) -> dict | None:
    scored = [r["nlu"] for r in rows if r["nlu"] is not None]
    if not scored:
        return None
    return {"n": len(scored), **{m: mean_or_none([s[m] for s in scored if s.get(m) is not None])
                                 for m in NLU_METRICS}}


def group_summary(rows: list[dict], round_digits: int | None = None) -> dict:
    open_rows = [r for r in rows if r["wsi_precision"] is not None or r["wsi_relevance"] is not None]
    metrics = {}
    for metric in ("wsi_precision", "wsi_relevance"):
        results = [MetricResult.from_dict(r[metric]) for r in open_rows if r[metric] is not None]
        metrics[metric] = aggregate_metric(results, round_digits) if results else None
    return {"n_items": len(rows), **metrics, "accuracy": _accuracy(rows), "nlu": _nlu(rows)}


def _value(group: dict | None, metric: str) -> tuple[float | None, int]:
    if group is None or group.get(metric) is None:
        return None, 0
    block = group[metric]
    return block["mean"], block["n_scored"] if "n_scored" in block else block["n"]


def _table2(capabilities: dict, rows: list[dict], grouping: str | None) -> dict:
    closed, grouping_info = closed_cells(rows, grouping)
    ours, ours_n = {}, {}
    for cap in TABLE2_CAPABILITIES:
        for metric in ("wsi_precision", "wsi_relevance"):
            ours[f"{cap}.{metric}"], ours_n[f"{cap}.{metric}"] = _value(capabilities.get(cap), metric)
        ours[f"{cap}.accuracy"], ours_n[f"{cap}.accuracy"] = _value({"accuracy": _accuracy(closed[cap])}, "accuracy")
    cells = [v for k, v in ours.items() if v is not None]
    ours["avg"] = mean_or_none(cells)
    labels = {f"{cap}.accuracy": grouping_info["label"] for cap in TABLE2_CAPABILITIES}
    return {"columns": list(TABLE2_COLUMNS), "ours": ours, "ours_n": ours_n,
            "avg_complete": len(cells) == len(TABLE2_COLUMNS) - 1, "baselines": load_baselines()["table2"]["rows"],
            "closed_grouping": grouping_info, "cell_labels": labels}


def _table3(report_group: dict | None) -> dict:
    ours: dict = {c: None for c in TABLE3_COLUMNS}
    ours["cider"] = None
    if report_group is not None:
        for metric in ("wsi_precision", "wsi_relevance"):
            ours[metric] = _value(report_group, metric)[0]
        for metric in NLU_METRICS:
            ours[metric] = (report_group["nlu"] or {}).get(metric)
    return {"columns": list(TABLE3_COLUMNS) + ["cider"], "ours": ours,
            "n": report_group["n_items"] if report_group else 0, "baselines": load_baselines()["table3"]["rows"]}


def failures(rows: Iterable[dict]) -> list[dict]:
    found = []
    for row in rows:
        for metric in ("wsi_precision", "wsi_relevance"):
            result = row[metric]
            if result is not None and result["status"] == FAILED:
                found.append({"question_id": row["question_id"], "task": row["task"], "metric": metric,
                              "stage": result["stage"], "error": result["error"], "attempts": result["attempts"]})
    return found


_EXCLUDED_REASONS = {
    NO_CLAIMS: "the claim extraction returned no claims",
    NOT_ADDRESSED: "the ground truth addresses none of the prediction's claims (official: Ignore Unmentioned "
                   "Claims)",
    BLANK_PREDICTION: "blank prediction, left out as the official scripts do",
}


def excluded(rows: Iterable[dict]) -> list[dict]:
    """Items left out of a metric's mean without failing: no claims, claims none of which the ground truth
    addresses, blank predictions the metric version excludes (also from the NLU metrics)."""
    found = []
    for row in rows:
        for metric in ("wsi_precision", "wsi_relevance"):
            result = row[metric]
            if result is not None and result["score"] is None and result["status"] in _EXCLUDED_REASONS:
                found.append({"question_id": row["question_id"], "task": row["task"], "metric": metric,
                              "status": result["status"], "reason": _EXCLUDED_REASONS[result["status"]]})
        if row.get("nlu_excluded"):
            found.append({"question_id": row["question_id"], "task": row["task"], "metric": "nlu",
                          "status": row["nlu_excluded"], "reason": _EXCLUDED_REASONS[BLANK_PREDICTION]})
    return found


def invalid_references(rows: Iterable[dict]) -> list[dict]:
    """Closed items whose reference could not be read (left out of the accuracy), with the reason."""
    return [{"question_id": row["question_id"], "task": row["task"], "reference": str(row.get("reference", ""))[:200],
             "problem": row["accuracy"].get("reference_problem") or "unreadable reference"}
            for row in rows if row["accuracy"] is not None and row["accuracy"]["correct"] is None]


def summarize(rows: list[dict], *, judge: dict | None, judge_stats: dict, run: dict, inputs: dict,
              nlu_settings: dict | None, metric_version: MetricVersion | str | None = None,
              table2_grouping: str | None = None) -> dict:
    """summary.json's content. `metric_version`: the run's (default: read from the rows; rows from before
    versions existed are `strict`); `table2_grouping`: evaluation.table2_grouping name (default inferred)."""
    version = (metric_version if isinstance(metric_version, MetricVersion) else
               get_metric_version(metric_version) if metric_version else version_of_rows(rows))
    digits = version.round_digits
    by_task: dict[str, list[dict]] = {}
    by_capability: dict[str, list[dict]] = {}
    for row in rows:
        by_task.setdefault(row["task"], []).append(row)
        by_capability.setdefault(row["capability"], []).append(row)
    tasks = {}
    for task, task_rows in sorted(by_task.items(), key=lambda kv: _TASK_ORDER.get(kv[0], len(_TASK_ORDER))):
        spec = resolve_task(task)
        tasks[task] = {"title": spec.title, "capability": spec.capability.value,
                       "answer_format": spec.answer_format.value, **group_summary(task_rows, digits)}
    order = [c.value for c in Capability]
    capabilities = {cap: group_summary(by_capability[cap], digits) for cap in order if cap in by_capability}
    summary = {
        "schema": SUMMARY_SCHEMA, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "approximate": bool(judge and judge.get("approximate")), "judge": judge, "judge_stats": judge_stats,
        "run": run, "inputs": inputs, "nlu_settings": nlu_settings, "answer_extractor_version": EXTRACTOR_VERSION,
        "metric_version": version.describe(),
        "overall": group_summary(rows, digits), "capabilities": capabilities, "tasks": tasks,
        "table2": _table2(capabilities, rows, table2_grouping),
        "table3": _table3(capabilities.get(Capability.REPORT.value)),
        "failures": failures(rows), "excluded": excluded(rows), "invalid_references": invalid_references(rows),
    }
    return validate_summary(summary)
