"""`evaluate score`: predictions -> scores.jsonl, summary.json, summary.md in one output folder.

    summary = run_scoring(ScoreConfig(predictions=Path("preds.jsonl"), out_dir=Path("eval"),
                                      judge=JudgeConfig(name="offline")))

Resumable: each judged item is appended at once to `DIR/scores.partial.jsonl` (a shard's to
`scores.partial.shard-<i>-of-<n>.jsonl`); a re-run (after an interruption, or of a finished run) reuses every
row in scores.jsonl and those journals whose fingerprint matches (same judge, prompt version and texts) and whose metrics did not fail, and judges
only the rest. Independently, the LLM judge's reply cache (DIR/judge_cache.sqlite unless --cache) means
a repeated judgement sends no request. At the end scores.jsonl (prediction-file order), summary.json
and summary.md are written under temporary names and renamed, and the journals (and shard stats files)
read are removed; a run stopped
before its first judged row leaves no (empty) journal. Everything written passes through
`llm.redaction.Redactor`: the judge's API key is never stored, even where a reply or an input echoes it.
`dry_run` loads and matches everything, estimates the judge's requests and cost, and writes nothing.
A predictions file that gives no item raises `EvaluationError` saying why (every line skipped: which
lines and the first reason; rows unmatched or of other tasks).
Sharded (`shard`, `--shard i/n`, RANK/WORLD_SIZE or a SLURM job array): each shard judges its share into its
own journal and the last to finish writes the one result (`evaluation.score_shards`).
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from common.atomic import atomic_write_json, atomic_write_jsonl, atomic_write_text
from common.shards import resolve_shard
from evaluation import nlu_metrics, score_shards
from evaluation.errors import EvaluationError
from common.journal import JournalWriter, read_journal
from evaluation.claim_scores import BLANK_PREDICTION, is_blank
from evaluation.judge_types import ItemJudgement, Judge, JudgeConfig
from evaluation.judges import build_judge
from evaluation.metric_versions import get_metric_version
from evaluation.predictions import ScoringItem, items_by_task, load_predictions
from evaluation.report_md import render_summary_md
from evaluation.schemas import SCORES_SCHEMA
from evaluation.score_rows import (
    closed_row,
    is_complete,
    item_fields,
    item_fingerprint,
    open_row,
)
from evaluation.summary import summarize
from evaluation.table2_grouping import DEFAULT_TABLE2_GROUPING, get_grouping
from llm.redaction import Redactor

log = logging.getLogger(__name__)
SCORES_FILE, JOURNAL_FILE = "scores.jsonl", "scores.partial.jsonl"
SUMMARY_JSON, SUMMARY_MD = "summary.json", "summary.md"
DEFAULT_CACHE_FILE = "judge_cache.sqlite"
NLU_TASKS = ("report_generation",)


@dataclass
class ScoreConfig:
    predictions: Path
    out_dir: Path
    judge: JudgeConfig
    references: str | None = None
    tasks: list[str] | None = None
    dry_run: bool = False
    nlu_all_open: bool = False       # NLU metrics for every open task, not only report generation
    table2_grouping: str = DEFAULT_TABLE2_GROUPING   # closed tasks in Table 2's Acc cells (table2_grouping)
    progress_every_s: float = 10.0
    shard: str | None = None         # "i/n"; None: RANK/WORLD_SIZE, a SLURM array, else everything

    def __post_init__(self) -> None:
        get_grouping(self.table2_grouping)            # an unknown name is refused before any work
        self.resolved_shard = resolve_shard(self.shard, error=EvaluationError)
        self.predictions, self.out_dir = Path(self.predictions), Path(self.out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise EvaluationError(f"--out {self.out_dir}: exists and is not a folder.")
        if self.judge.llm is not None and self.judge.llm.cache_path is None:
            cache = score_shards.cache_name(DEFAULT_CACHE_FILE, self.resolved_shard)   # one SQLite file per shard
            self.judge.llm = replace(self.judge.llm, cache_path=str(self.out_dir / cache))


@dataclass
class _Progress:
    total: int
    every_s: float
    emit: Callable[[str], None]
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)

    def tick(self, failed: bool) -> None:
        self.done += 1
        self.failed += int(failed)
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            self.emit(f"judged {self.done}/{self.total} items ({self.failed} with a failed metric), "
                      f"{rate:.1f} items/s")


def _previous_rows(out_dir: Path, failed_from: set[Path] | None = None,
                   journals: list[Path] | None = None) -> dict[tuple[str, str], dict]:
    """Rows of an earlier run (final file, then the `journals` (default: every one), later lines winning) that
    may be reused: finished ones, and where an item has none, a failed one found in `failed_from` (a sharded
    merge lists those as failed)."""
    reusable = {}
    for path in [out_dir / SCORES_FILE] + (journals or score_shards.journal_paths(out_dir, JOURNAL_FILE)):
        for row in read_journal(path)[0]:
            if row.get("schema") != SCORES_SCHEMA or "fingerprint" not in row:
                continue
            key = (row.get("task"), row.get("question_id"))
            if is_complete(row) or (failed_from and path in failed_from
                                    and not (key in reusable and is_complete(reusable[key]))):
                reusable[key] = row
    return reusable


def _matching(open_items: list[ScoringItem], previous: dict, judge: Judge) -> dict[tuple[str, str], dict]:
    """The previous rows of these items judged by this judge on these texts (same fingerprint)."""
    matched = {}
    for item in open_items:
        row = previous.get(item.key)
        if row is not None and row["fingerprint"] == item_fingerprint(item, judge.identity.fingerprint()):
            matched[item.key] = row
    return matched


def _wants_nlu(item: ScoringItem, config: ScoreConfig) -> bool:
    return item.answer_format == "open" and (config.nlu_all_open or item.task in NLU_TASKS)


def _nlu(item: ScoringItem, config: ScoreConfig, version: str) -> tuple[dict | None, str | None]:
    """(NLU metrics or None, why an item that wants them has none): the official version leaves blank
    predictions out of BLEU/ROUGE/METEOR, as NLP_Metric.py does; strict scores them 0."""
    if not _wants_nlu(item, config):
        return None, None
    if is_blank(item.prediction) and get_metric_version(version).excludes_blank_from("nlu"):
        return None, BLANK_PREDICTION
    return nlu_metrics.item_metrics(item.reference, item.prediction), None


def _add_cider(rows: list[dict]) -> None:
    """CIDEr per task corpus (its IDF comes from the references of the task's items)."""
    by_task: dict[str, list[dict]] = {}
    for row in rows:
        if row["nlu"] is not None:
            by_task.setdefault(row["task"], []).append(row)
    for task_rows in by_task.values():
        values = nlu_metrics.cider_scores([r["reference"] for r in task_rows], [r["prediction"] for r in task_rows])
        for row, value in zip(task_rows, values):
            row["nlu"] = {**row["nlu"], "cider": value}


def run_scoring(config: ScoreConfig, judge: Judge | None = None,
                emit: Callable[[str], None] = lambda message: print(message, file=sys.stderr)) -> dict:
    """Score every matched item; returns summary.json's content (or the dry-run plan)."""
    started = time.monotonic()
    items, report = load_predictions(config.predictions, config.references, config.tasks)
    if not items:
        raise EvaluationError(f"{config.predictions}: no item could be scored: {report.why_nothing()}.")
    open_items = [item for item in items if item.answer_format == "open"]
    owned = judge is None and bool(open_items)    # close only the judge built here
    if owned:
        judge_config = config.judge
        llm = judge_config.llm
        if config.dry_run and llm and llm.cache_path and not Path(llm.cache_path).is_file():
            judge_config = replace(judge_config, llm=replace(llm, cache_path=None))   # a dry run creates no file
        judge = build_judge(judge_config)
    try:
        return _plan_and_score(config, items, report, judge, started, emit)
    finally:
        if owned:
            judge.close()


def _plan_and_score(config: ScoreConfig, items: list[ScoringItem], report, judge: Judge | None, started: float,
                    emit: Callable[[str], None]) -> dict:
    open_items = [item for item in items if item.answer_format == "open"]
    reused = _matching(open_items, _previous_rows(config.out_dir), judge) if open_items else {}
    to_judge = [item for item in open_items if item.key not in reused]
    if config.resolved_shard.count > 1:
        mine = score_shards.share(config.resolved_shard, open_items)
        to_judge = [item for item in to_judge if item.key in mine]
    if config.dry_run:
        return {"dry_run": True, "n_items": len(items), "n_open": len(open_items),
                "n_closed": len(items) - len(open_items), "n_reused": len(reused), "n_to_judge": len(to_judge),
                "tasks": {task: len(group) for task, group in items_by_task(items).items()},
                "inputs": report.to_dict(), "judge_estimate": judge.dry_run(to_judge) if judge else None}
    return _score(config, items, report, judge, reused, to_judge, started, emit)


def _score(config: ScoreConfig, items: list[ScoringItem], report, judge: Judge | None, reused: dict,
           to_judge: list[ScoringItem], started: float, emit: Callable[[str], None]) -> dict:
    open_items = [item for item in items if item.answer_format == "open"]
    version = getattr(judge.identity, "metric_version", None) if judge else None
    version = version or config.judge.metric_version
    judge_name = (f"{judge.identity.name} ({judge.identity.model})"
                  f"{' [APPROXIMATE]' if judge.identity.approximate else ''}" if judge else "no judge")
    emit(f"{len(items)} items ({len(open_items)} open, {len(items) - len(open_items)} closed); reusing "
         f"{len(reused)} finished rows; judging {len(to_judge)} with {judge_name}; metric version {version}")
    redact = _redactor(config)
    new_rows = _judge_into_journal(config, judge, to_judge, version, redact, emit)
    if config.resolved_shard.count == 1:
        return _finish(config, items, report, judge, reused, new_rows, version, to_judge, started, redact)
    return _merge_shards(config, items, report, judge, new_rows, version, to_judge, started, redact)


def _merge_shards(config: ScoreConfig, items: list[ScoringItem], report, judge: Judge | None, new_rows: dict,
                  version: str, to_judge: list[ScoringItem], started: float, redact: Redactor) -> dict:
    """Under the merge lock: the final files once every open item has a row that counts (score_shards) and no
    shard still appends to a journal; else a waiting report."""
    open_items = [item for item in items if item.answer_format == "open"]
    shard = config.resolved_shard
    with score_shards.merge_lock(config.out_dir):
        journals = score_shards.journal_paths(config.out_dir, JOURNAL_FILE)
        busy = score_shards.busy(journals)
        failed_from = score_shards.count_journals(config.out_dir, JOURNAL_FILE, shard)
        merged = _matching(open_items, _previous_rows(config.out_dir, failed_from, journals), judge)
        reused = {key: row for key, row in merged.items() if key not in new_rows}
        waiting = [item for item in open_items if item.key not in new_rows and item.key not in reused]
        if waiting or busy:
            return score_shards.waiting_report(shard, config.out_dir, len(to_judge), len(waiting), len(items),
                                               busy)
        usage = score_shards.usage(config.out_dir, journals, [item.key for item in open_items])
        return _finish(config, items, report, judge, reused, new_rows, version, to_judge, started, redact, usage)


def _finish(config: ScoreConfig, items: list[ScoringItem], report, judge: Judge | None, reused: dict,
            new_rows: dict, version: str, to_judge: list[ScoringItem], started: float, redact: Redactor,
            shards: score_shards.ShardUsage | None = None) -> dict:
    """Every item's row (closed ones scored here), CIDEr, the summary; the final files; journals removed (of a
    sharded run, `shards`: the files it read; its judge usage and counts are every shard's)."""
    rows = []
    for item in items:
        if item.answer_format != "open":
            rows.append(closed_row(item, version))
            continue
        row = new_rows.get(item.key)
        if row is None:
            row = reused.get(item.key)
            if row is None:
                raise EvaluationError(f"internal: the judge returned no result for {item.key}")  # judge contract
            row.update(item_fields(item))
        if item.key in reused:     # recomputed, never reused: the metric code may have changed since
            row["nlu"], excluded = _nlu(item, config, version)
            row.pop("nlu_excluded", None)
            if excluded:
                row["nlu_excluded"] = excluded
        rows.append(row)
    _add_cider(rows)
    run = {"predictions": str(config.predictions), "references": config.references,
           "out_dir": str(config.out_dir), "workers": config.judge.workers, "tasks": config.tasks,
           "models": sorted({item.model for item in items if item.model}), "n_reused": len(reused),
           "n_judged": len(to_judge), "elapsed_s": round(time.monotonic() - started, 3)}
    judge_stats = judge.stats() if judge else {}
    if shards is not None:
        run |= {"n_reused": shards.n_reused, "n_judged": shards.n_judged, "shards": shards.shards}
        judge_stats = shards.judge_stats
    summary = summarize(rows, judge=judge.identity.to_dict() if judge else None,
                        judge_stats=judge_stats, run=run, inputs=report.to_dict(),
                        nlu_settings=nlu_metrics.settings() if any(r["nlu"] for r in rows) else None,
                        metric_version=version, table2_grouping=config.table2_grouping)
    summary = redact.value(summary)
    atomic_write_jsonl(config.out_dir / SCORES_FILE, redact.value(rows))
    atomic_write_json(config.out_dir / SUMMARY_JSON, summary)
    atomic_write_text(config.out_dir / SUMMARY_MD, redact(render_summary_md(summary)))
    done = shards.files if shards else (score_shards.journal_paths(config.out_dir, JOURNAL_FILE)
                                        + score_shards.stats_paths(config.out_dir))   # one process: every one
    for path in done:
        path.unlink(missing_ok=True)
    return summary


def _redactor(config: ScoreConfig) -> Redactor:
    """Everything written passes through it: the judge's API key is never stored (llm.redaction)."""
    return Redactor.from_env(config.judge.llm.api_key_env if config.judge.llm else None)


def _judge_into_journal(config: ScoreConfig, judge: Judge | None, to_judge: list[ScoringItem], version: str,
                        redact: Redactor, emit: Callable[[str], None]) -> dict[tuple[str, str], dict]:
    """Judge `to_judge`, each row appended to the journal as it finishes (a re-run resumes from there).
    A run that stops before its first row leaves no empty journal (nor an output folder it created)."""
    new_rows: dict[tuple[str, str], dict] = {}
    if not to_judge:
        return new_rows
    progress = _Progress(len(to_judge), config.progress_every_s, emit)
    created = not config.out_dir.exists()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    shard = config.resolved_shard
    journal_path = score_shards.journal_path(config.out_dir, JOURNAL_FILE, shard)
    appending = score_shards.appending(config.out_dir, journal_path) if shard.count > 1 else nullcontext()
    try:
        with appending, JournalWriter(journal_path) as journal:
            def on_result(item: ScoringItem, judgement: ItemJudgement) -> None:
                row = open_row(item, judgement, judge.identity, *_nlu(item, config, version))
                journal.write(redact.value(row))
                new_rows[item.key] = row
                progress.tick(not is_complete(row))

            try:
                judge.judge(to_judge, on_result)
            finally:                # still appending: no merge takes this shard's journal before its usage
                if shard.count > 1 and new_rows:
                    score_shards.record_stats(config.out_dir, shard, len(new_rows), redact.value(judge.stats()))
    except BaseException:
        if journal_path.is_file() and journal_path.stat().st_size == 0:
            journal_path.unlink()
            if created and not any(config.out_dir.iterdir()):
                config.out_dir.rmdir()
        raise
    return new_rows
