"""Evaluation results for dashboards: load runs and lay them out as the paper's tables, radar series and
per-item drill-downs. Pure data (pandas DataFrames and dicts); the metrics tab draws them.

A run is what `wsi-llava evaluate score --out DIR` wrote: `DIR/summary.json` and, for drill-downs,
`DIR/scores.jsonl`. A run given only as a scores.jsonl is summarised here with the scorer's own code.

    runs = [load_run("eval/"), load_run("other/summary.json")]
    table2_frame(runs)              # Table 2 rows: each run + the published baselines
    radar_series(runs, "wsi_precision")
    item_detail(runs[0], "report_generation", "TCGA-...-1")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wsi_bench.tasks import TASKS, Capability
from evaluation.baselines import load_baselines
from evaluation.errors import SchemaError
from evaluation.schemas import flatten_score_row, load_scores, load_summary
from evaluation.summary import summarize

SUMMARY_FILE, SCORES_FILE = "summary.json", "scores.jsonl"
OPEN_TASKS = [spec for spec in TASKS if not spec.answer_format.closed]
CAPABILITY_ORDER = [c.value for c in Capability]


@dataclass
class Run:
    name: str
    summary: dict
    scores: list[dict] | None = None          # scores.jsonl rows, when available
    source: str = ""
    _index: dict = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name} (approximate judge)" if self.summary.get("approximate") else self.name

    @property
    def metric_version(self) -> str:
        """official | strict; summaries written before versions were recorded are strict."""
        return (self.summary.get("metric_version") or {}).get("name") or "strict"

    @property
    def closed_grouping_label(self) -> str | None:
        return ((self.summary.get("table2") or {}).get("closed_grouping") or {}).get("label")

    @property
    def caption(self) -> str:
        """The run's label with its metric version and Table 2 accuracy grouping (the tab's status line)."""
        grouping = self.closed_grouping_label
        return (f"{self.label} [metric version {self.metric_version}"
                + (f"; Table 2 Acc: {grouping}" if grouping else "") + "]")

    def row(self, task: str, question_id: str) -> dict:
        if self.scores is None:
            raise SchemaError(f"run {self.name!r} has no scores.jsonl: item details need it.")
        if not self._index:
            self._index.update({(r["task"], r["question_id"]): r for r in self.scores})
        try:
            return self._index[(task, question_id)]
        except KeyError as exc:
            raise SchemaError(f"run {self.name!r} has no item {question_id!r} in task {task!r}.") from exc


def load_run(path: str | Path, name: str | None = None) -> Run:
    """A run from a results folder, a summary.json or a scores.jsonl (validated; `SchemaError` otherwise)."""
    path = Path(path)
    if path.is_dir():
        summary_path, scores_path = path / SUMMARY_FILE, path / SCORES_FILE
        if not summary_path.is_file() and not scores_path.is_file():
            raise SchemaError(f"{path}: no {SUMMARY_FILE} or {SCORES_FILE} in this folder.")
        scores = load_scores(scores_path) if scores_path.is_file() else None
        summary = load_summary(summary_path) if summary_path.is_file() else _summary_of(scores, path)
        return Run(name or path.name, summary, scores, str(path))
    if path.suffix == ".jsonl":
        scores = load_scores(path)
        return Run(name or path.parent.name or path.stem, _summary_of(scores, path), scores, str(path))
    if path.suffix == ".json":
        sibling = path.with_name(SCORES_FILE)
        scores = load_scores(sibling) if sibling.is_file() else None
        return Run(name or path.parent.name or path.stem, load_summary(path), scores, str(path))
    raise SchemaError(f"{path}: expected a results folder, a {SUMMARY_FILE} or a {SCORES_FILE}.")


def load_uploaded_run(paths: list[str | Path], name: str | None = None) -> Run:
    """One run from uploaded files: a summary.json and/or a scores.jsonl (uploads land in separate
    temporary folders, so they are paired here rather than found side by side)."""
    paths = [Path(p) for p in paths]
    summaries = [p for p in paths if p.suffix == ".json"]
    score_files = [p for p in paths if p.suffix == ".jsonl"]
    others = [p.name for p in paths if p.suffix not in {".json", ".jsonl"}]
    if others or len(summaries) > 1 or len(score_files) > 1 or not paths:
        raise SchemaError("Upload one summary.json and/or one scores.jsonl per run"
                          + (f" (not {', '.join(others)})" if others else "") + ".")
    scores = load_scores(score_files[0]) if score_files else None
    summary = load_summary(summaries[0]) if summaries else _summary_of(scores, score_files[0])
    models = [m for m in (summary.get("run") or {}).get("models") or [] if m]
    return Run(name or ", ".join(models) or "uploaded run", summary, scores, ", ".join(p.name for p in paths))


def find_runs(results_root: str | Path) -> list[Path]:
    """Result folders under a root (any folder holding a summary.json or scores.jsonl), sorted."""
    root = Path(results_root)
    if not root.is_dir():
        return []
    folders = {p.parent for pattern in (SUMMARY_FILE, SCORES_FILE) for p in root.rglob(pattern)}
    return sorted(folders)


def _summary_of(scores: list[dict] | None, where: Path) -> dict:
    if not scores:
        raise SchemaError(f"{where}: no scored items.")
    models = sorted({row["model"] for row in scores if row.get("model")})
    judge = next((row["judge"] for row in scores if row.get("judge")), None)
    return summarize(scores, judge=judge, judge_stats={},
                     run={"source": str(where), "models": models}, inputs={}, nlu_settings=None)


# -- tables ----------------------------------------------------------------------------------------
_TABLE2_HEADERS = {"wsi_precision": "WSI-P", "wsi_relevance": "WSI-R", "accuracy": "Acc"}
_CAP_SHORT = {"morphological_analysis": "Morph", "diagnosis": "Diag", "treatment_planning": "Treat"}


def _table2_header(column: str) -> str:
    if column == "avg":
        return "Avg"
    capability, metric = column.split(".")
    return f"{_CAP_SHORT[capability]} {_TABLE2_HEADERS[metric]}"


def table2_frame(runs: list[Run], with_baselines: bool = True):
    """Table 2 layout: one row per run, then the paper's rows (marked `published`). The last two columns
    say how a run's cells were made: its metric version and the grouping of its accuracy cells
    ("grouping inferred": evaluation.table2_grouping)."""
    import pandas as pd

    baselines = load_baselines()["table2"]
    columns = baselines["columns"]
    records = [{"model": run.label, "source": "this run",
                **{_table2_header(c): run.summary["table2"]["ours"].get(c) for c in columns},
                "metric version": run.metric_version, "Acc grouping": run.closed_grouping_label or "task table"}
               for run in runs]
    if with_baselines:
        records += [{"model": name, "source": "published", **{_table2_header(c): values[c] for c in columns},
                     "metric version": "published", "Acc grouping": "published"}
                    for name, values in baselines["rows"].items()]
    return pd.DataFrame(records, columns=["model", "source", *[_table2_header(c) for c in columns],
                                          "metric version", "Acc grouping"])


_TABLE3_HEADERS = {"bleu_1": "BLEU-1", "bleu_2": "BLEU-2", "bleu_3": "BLEU-3", "bleu_4": "BLEU-4",
                   "rouge_l": "ROUGE-L", "meteor": "METEOR", "wsi_precision": "WSI-P", "wsi_relevance": "WSI-R"}


def table3_frame(runs: list[Run], with_baselines: bool = True):
    """Table 3 layout (report generation): one row per run, then the paper's rows."""
    import pandas as pd

    baselines = load_baselines()["table3"]
    columns = baselines["columns"]
    records = [{"model": run.label, "source": "this run",
                **{_TABLE3_HEADERS[c]: run.summary["table3"]["ours"].get(c) for c in columns},
                "metric version": run.metric_version} for run in runs]
    if with_baselines:
        records += [{"model": name, "source": "published", **{_TABLE3_HEADERS[c]: values[c] for c in columns},
                     "metric version": "published"} for name, values in baselines["rows"].items()]
    return pd.DataFrame(records, columns=["model", "source", *[_TABLE3_HEADERS[c] for c in columns],
                                          "metric version"])


# -- chart series ------------------------------------------------------------------------------------
def radar_series(runs: list[Run], metric: str) -> dict:
    """Per-task values for a radar chart of `metric` (wsi_precision | wsi_relevance), as in the paper's
    figure: {"axes": [task titles], "series": {run label: [value or None per task]}} over the 11 open tasks."""
    if metric not in ("wsi_precision", "wsi_relevance"):
        raise ValueError(f"metric must be wsi_precision or wsi_relevance, got {metric!r}")
    series = {}
    for run in runs:
        tasks = run.summary["tasks"]
        series[run.label] = [(tasks.get(spec.task, {}).get(metric) or {}).get("mean") for spec in OPEN_TASKS]
    return {"axes": [spec.title for spec in OPEN_TASKS], "series": series}


def capability_bars(runs: list[Run], with_baselines: bool = True):
    """Long-format rows for grouped bars: model, capability, metric, value (runs + Table 2 baselines)."""
    import pandas as pd

    records = []
    for run in runs:
        for column, value in run.summary["table2"]["ours"].items():
            if column != "avg" and value is not None:
                capability, metric = column.split(".")
                records.append({"model": run.label, "capability": Capability(capability).title,
                                "metric": _TABLE2_HEADERS[metric], "value": value, "source": "this run"})
    if with_baselines:
        baselines = load_baselines()["table2"]
        for name, values in baselines["rows"].items():
            for column, value in values.items():
                if column != "avg":
                    capability, metric = column.split(".")
                    records.append({"model": name, "capability": Capability(capability).title,
                                    "metric": _TABLE2_HEADERS[metric], "value": value, "source": "published"})
    return pd.DataFrame(records, columns=["model", "capability", "metric", "value", "source"])


def nlu_vs_wsi(run: Run):
    """Per report-generation item: the NLU metrics beside WSI-P / WSI-R (how far n-gram overlap and
    claim-level judgement agree). Needs the run's scores.jsonl; empty frame when it has none."""
    import pandas as pd

    columns = ["question_id", "bleu_4", "rouge_l", "meteor", "wsi_precision", "wsi_relevance"]
    if not run.scores:
        return pd.DataFrame([], columns=columns)
    rows = [flatten_score_row(r) for r in run.scores if r["nlu"]]
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)


# -- drill-down ----------------------------------------------------------------------------------------
def item_choices(run: Run, task: str | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs for an item picker; value is "task::question_id"."""
    if not run.scores:
        return []
    rows = [r for r in run.scores if task in (None, "", r["task"])]
    return [(f"{r['task_title']} · {r['question_id']}", f"{r['task']}::{r['question_id']}") for r in rows]


def item_detail(run: Run, task: str, question_id: str) -> dict:
    """Everything a reviewer needs about one scored item: texts, metric values, per-claim judgements."""
    row = run.row(task, question_id)
    claims = []
    for metric in ("wsi_precision", "wsi_relevance"):
        result = row[metric]
        label = "WSI-P (reference claim)" if metric == "wsi_precision" else "WSI-R (prediction claim)"
        for claim in (result or {}).get("claims", []):
            claims.append({"metric": label, "claim": claim["claim"], "score": claim["score"],
                           "explanation": claim.get("explanation") or ""})
        for claim in (result or {}).get("ignored_claims", []):
            claims.append({"metric": label, "claim": claim, "score": None,
                           "explanation": "not evaluated: the ground truth does not address it (official: Ignore "
                                          "Unmentioned Claims); left out of the item's mean"})
    metrics = {metric: (row[metric] or {}).get("score") for metric in ("wsi_precision", "wsi_relevance")}
    metrics.update({f"{metric}_status": (row[metric] or {}).get("status")
                    for metric in ("wsi_precision", "wsi_relevance")})
    return {"question_id": row["question_id"], "task": row["task_title"], "question": row["question"],
            "reference": row["reference"], "prediction": row["prediction"], "metrics": metrics,
            "accuracy": row["accuracy"], "nlu": row["nlu"], "claims": claims, "judge": row["judge"],
            "approximate": row["approximate"], "prompt_version": row["prompt_version"],
            "metric_version": row.get("metric_version") or ("strict" if row["judge"] else None)}
