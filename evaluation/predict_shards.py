"""`evaluate predict` over several processes, GPUs or cluster jobs: shares, shard journals, one merged output.

Which share a process answers is `common.shards.resolve_shard`: `--shard i/n`, else `RANK`/`WORLD_SIZE`
(torchrun, `accelerate launch`), else a SLURM job array (`SLURM_ARRAY_TASK_ID`, ...), else everything.
Shares are by SLIDE: the sorted distinct `image`s of the selected items are dealt out i, i + n, ... (the
same on every process, whatever is already done), so the shares are disjoint, every item has exactly one
shard, and a slide's questions stay together (its inputs are read once).

With n > 1, shard i of n appends its rows to its own journal `<out stem>.shard-<i>-of-<n>.jsonl` and writes
its report to `<out stem>.shard-<i>-of-<n>.summary.json`; a re-run of the shard resumes from every journal
there is (the merged file, every shard's, of any n), so a re-run with another n goes on where the last
stopped. When a shard finishes, it merges under a file lock (`.<out stem>.merge.lock`): every journal's rows
(each (task, question_id) once, in benchmark order) are written atomically to `--out`, and the merged
summary to `<out stem>.summary.json` (`complete` once every item has a row; `failures`/`missing_inputs`
of the items still without one, from the shard reports). The last shard to finish therefore leaves the
one complete predictions file. Shard journals stay as they are (they are the record); a run with one shard
appends to `--out` directly, as always. Do not run a one-shard run and a sharded run into the same `--out`
at the same time.
"""

from __future__ import annotations

import glob
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from common import shards
from common.atomic import atomic_write_json, atomic_write_jsonl
from common.journal import read_journal
from common.shards import SHARD_TAG_GLOB, Shard
from evaluation.errors import EvaluationError

MERGED_SUMMARY_SCHEMA = "wsi-llava.evaluation.predict-summary/1"


def resolve(flag: str | None) -> Shard:
    """This process's share; bad `--shard` values or environments are EvaluationErrors (one-line messages)."""
    return shards.resolve_shard(flag, error=EvaluationError)


def shard_items(items: Sequence, shard: Shard) -> list:
    """The items of this shard's slides (see the module docstring), in their order."""
    if shard.count == 1:
        return list(items)
    mine = set(shard.select(sorted({item.image for item in items})))
    return [item for item in items if item.image in mine]


def journal_path(out: Path, shard: Shard) -> Path:
    """Where this shard appends its rows: `--out` itself for one shard, else its own journal beside it."""
    return out if shard.count == 1 else out.with_name(f"{out.stem}.{shard.tag}.jsonl")


def shard_summary_path(out: Path, shard: Shard) -> Path:
    return out.with_name(f"{out.stem}.{shard.tag}.summary.json")


def shard_journals(out: Path) -> list[Path]:
    """Every shard journal beside `--out` (any n); `--out`'s name is matched literally (`[`, `*` included)."""
    return sorted(out.parent.glob(f"{glob.escape(out.stem)}.{SHARD_TAG_GLOB}.jsonl"))


def journal_paths(out: Path) -> list[Path]:
    """`--out` and every shard journal beside it (any n)."""
    return [out] + shard_journals(out)


def read_rows(out: Path) -> tuple[list[tuple[dict, Path]], int]:
    """Every row of `--out` and the shard journals (in that order), each with the file it is in, and the number
    of unreadable lines."""
    rows, unreadable = [], 0
    for path in journal_paths(out):
        found, bad = read_journal(path)
        rows += [(row, path) for row in found]
        unreadable += bad
    return rows, unreadable


def row_key(row: dict) -> tuple[str, str] | None:
    if isinstance(row.get("prediction"), str) and row.get("task") and row.get("question_id") is not None:
        return row["task"], str(row["question_id"])
    return None


def merge_lock(out: Path):
    """Held by the one shard that merges at a time."""
    return shards.exclusive_lock(out.with_name(f".{out.stem}.merge.lock"))


def _merged_rows(out: Path, items: Sequence) -> tuple[list[dict], int]:
    """One row per (task, question_id): benchmark order first, then rows of items not selected this time
    (other --tasks; never dropped), in file order."""
    rows, unreadable = read_rows(out)
    by_key: dict[tuple[str, str], dict] = {}
    for row, _ in rows:
        key = row_key(row)
        if key is not None:
            by_key.setdefault(key, row)
    ordered = [by_key.pop((item.task, item.question_id)) for item in items if (item.task, item.question_id) in by_key]
    return ordered + list(by_key.values()), unreadable


def _shard_reports(out: Path) -> list[dict]:
    paths = sorted(out.parent.glob(f"{glob.escape(out.stem)}.{SHARD_TAG_GLOB}.summary.json"))
    return [report for report in map(shards.read_part, paths) if report]


def _still_open(reports: list[dict], pending: set) -> tuple[list[dict], list[dict]]:
    """(missing_inputs, failures) of the items that still have no row: per item, only what the newest report
    about it says (reports oldest first), so an item is never listed as both, nor as what it no longer is."""
    latest: dict[tuple, tuple[str, dict]] = {}
    for report in reports:
        for name in ("missing_inputs", "failures"):
            for entry in report.get(name, []):
                key = (entry.get("task"), str(entry.get("question_id")))
                if key in pending:
                    latest[key] = (name, entry)
    return ([entry for name, entry in latest.values() if name == "missing_inputs"],
            [entry for name, entry in latest.values() if name == "failures"])


def merge(out: Path, summary_path: Path, items: Sequence, base: dict) -> dict:
    """Write the merged predictions (`out`) and summary (`summary_path`) from every journal, under the lock;
    returns the merged summary. `base` holds the run's model, settings, benchmark ... (copied into it)."""
    with merge_lock(out):
        rows, unreadable = _merged_rows(out, items)
        models = {(row.get("model"), json.dumps(row.get("settings"), sort_keys=True)) for row in rows}
        if len(models) > 1:
            raise EvaluationError(f"{out}: the shard journals hold predictions of {len(models)} different models or "
                                  "settings; keep one model's answers per --out (move the odd journals away).")
        atomic_write_jsonl(out, rows)
        done = {row_key(row) for row in rows}
        pending = {(item.task, item.question_id) for item in items} - done
        reports = sorted(_shard_reports(out), key=lambda report: str(report.get("created_at", "")))
        missing, failures = _still_open(reports, pending)
        summary = base | {
            "schema": MERGED_SUMMARY_SCHEMA, "merged": True,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "out": str(out),
            "n_items": len(items), "n_predicted": len(items) - len(pending), "n_remaining": len(pending),
            "complete": not pending, "n_missing_inputs": len(missing), "n_failed": len(failures),
            "n_unreadable_lines": unreadable, "missing_inputs": missing, "failures": failures,
            "shards": [{key: report.get(key) for key in ("shard", "shard_source", "n_items", "n_answered",
                                                          "n_remaining", "elapsed_s", "created_at")}
                       for report in reports]}
        atomic_write_json(summary_path, summary)
    return summary
