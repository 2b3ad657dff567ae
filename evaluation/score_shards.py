"""`evaluate score` over several processes or cluster jobs: shares of the open items, journals, one final output.

Which share a process judges is `common.shards.resolve_shard` (`--shard i/n`, `RANK`/`WORLD_SIZE`, a SLURM job
array), as for `tile`, `features` and `evaluate predict`. The open items, in prediction-file order, are dealt
out i, i + n, ... (the same on every process, whatever is already judged): disjoint shares, every item in
exactly one. Shard i of n appends its judged rows to `DIR/scores.partial.shard-<i>-of-<n>.jsonl`; a re-run
reuses every finished row of every journal there is (and of scores.jsonl), so a shard resumes where it stopped.
While it judges, a shard holds a shared lock on its journal (`appending`); after it, it adds its judge usage
(requests, tokens, cost ..., and how many items it judged) to `DIR/judge_stats.shard-<i>-of-<n>.json`.

When a shard has judged its share it takes the file lock `DIR/.score.lock` and looks at every journal: once
each open item has a row of this judge that is finished, or failed in a journal of this shard count (listed
as such, not waited for; a failed row of the previous scores.jsonl is not: its shard retries it), and no
other shard still appends to a journal, it writes scores.jsonl, summary.json and summary.md as one process
would, with the judge usage and `run.n_judged` of every shard summed (`run.shards`: each shard's), and removes
the journals and stats files it read; otherwise it writes nothing final and reports how many items wait for
other shards. The last shard to finish therefore writes the one result. All shards must use the same judge
and settings (rows of another judge never match).
The LLM judge's default reply cache is one SQLite file per shard (`DIR/judge_cache.shard-<i>-of-<n>.sqlite`):
shards on several machines never share one over a network file system.
"""

from __future__ import annotations

import contextlib
import fcntl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from common.atomic import atomic_write_json
from common.journal import read_journal
from common import shards
from common.shards import SHARD_TAG_GLOB, Shard

LOCK_FILE = ".score.lock"
STATS_STEM = "judge_stats"


def journal_path(out_dir: Path, journal_file: str, shard: Shard) -> Path:
    """The journal this shard appends to: `journal_file` itself for one shard."""
    if shard.count == 1:
        return out_dir / journal_file
    stem = journal_file.removesuffix(".jsonl")
    return out_dir / f"{stem}.{shard.tag}.jsonl"


def count_journals(out_dir: Path, journal_file: str, shard: Shard) -> set[Path]:
    """The journals of this shard count (`shard.count`), whoever wrote them: their failed rows are final for
    this run (a re-run of their shard retries them)."""
    return {journal_path(out_dir, journal_file, Shard(index, shard.count, shard.source))
            for index in range(shard.count)}


def journal_paths(out_dir: Path, journal_file: str) -> list[Path]:
    """The one-process journal and every shard journal (any n) in `out_dir`."""
    stem = journal_file.removesuffix(".jsonl")
    return [out_dir / journal_file] + sorted(out_dir.glob(f"{stem}.{SHARD_TAG_GLOB}.jsonl"))


def cache_name(cache_file: str, shard: Shard) -> str:
    """The judge's default reply cache: one per shard (`judge_cache.shard-0-of-4.sqlite`), so that jobs on
    several machines never share one SQLite file over a network file system (its locking is unreliable)."""
    if shard.count == 1:
        return cache_file
    stem, dot, suffix = cache_file.rpartition(".")
    return f"{stem}.{shard.tag}{dot}{suffix}"


def share(shard: Shard, open_items: Sequence) -> set:
    """The keys of the open items this shard judges."""
    return {item.key for item in shard.select(list(open_items))}


def merge_lock(out_dir: Path):
    """Held by the one shard that merges at a time."""
    return shards.exclusive_lock(out_dir / LOCK_FILE)


def waiting_report(shard: Shard, out_dir: Path, n_judged: int, n_waiting: int, n_items: int,
                   busy_journals: Sequence[Path] = ()) -> dict:
    """What a shard returns when other shards still have items to judge, or still append to their journals
    (`busy_journals`); nothing final was written."""
    return {"waiting": True, "shard": shard.label, "shard_source": shard.source, "out_dir": str(out_dir),
            "n_items": n_items, "n_judged": n_judged, "n_waiting": n_waiting,
            "still_judging": [str(path) for path in busy_journals]}


@contextlib.contextmanager
def appending(out_dir: Path, path: Path) -> Iterator[None]:
    """Held while a shard appends to its journal `path`: a shared lock on it, taken under the merge lock (so no
    merge removes the file between its opening and its locking); `busy` sees it."""
    with merge_lock(out_dir):
        handle = open(path, "a+", encoding="utf-8")      # readable too: NFS emulates flock with POSIX locks
        fcntl.flock(handle, fcntl.LOCK_SH)
    try:
        yield
    finally:
        handle.close()              # releases the lock


def busy(paths: Sequence[Path]) -> list[Path]:
    """The journals among `paths` that some shard is still appending to (`appending`)."""
    found = []
    for path in paths:
        try:
            handle = open(path, "r+b")                   # writable: an exclusive POSIX lock needs it on NFS
        except FileNotFoundError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                found.append(path)
    return found


def stats_path(out_dir: Path, shard: Shard) -> Path:
    return out_dir / f"{STATS_STEM}.{shard.tag}.json"


def stats_paths(out_dir: Path) -> list[Path]:
    """Every shard's stats file (any n) in `out_dir`."""
    return sorted(out_dir.glob(f"{STATS_STEM}.{SHARD_TAG_GLOB}.json"))


def add_stats(values: list[dict]) -> dict:
    """Judge usages added up: numbers summed (None where every one is None, as an unknown cost), dicts
    (`request_adjustments`) merged, anything else the first one's."""
    total: dict = {}
    for stats in values:
        for key, value in stats.items():
            before = total.get(key)
            if isinstance(value, dict):
                total[key] = {**(before or {}), **value}
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = value + (before or 0)
            elif key not in total:
                total[key] = value
    return total


def record_stats(out_dir: Path, shard: Shard, n_judged: int, stats: dict) -> None:
    """Add one run of this shard (`n_judged` items, the judge's `stats()`) to its stats file (atomic, under
    the merge lock: re-runs of a shard add up)."""
    with merge_lock(out_dir):
        path = stats_path(out_dir, shard)
        before = shards.read_part(path)
        atomic_write_json(path, {"shard": shard.label, "runs": int(before.get("runs", 0)) + 1,
                                 "n_judged": int(before.get("n_judged", 0)) + n_judged,
                                 "judge_stats": add_stats([before.get("judge_stats", {}), stats])})


@dataclass
class ShardUsage:
    """Every shard's judge usage since the last result, summed, and the files the final merge removes."""

    judge_stats: dict
    n_judged: int
    n_reused: int                   # open items with no journal row: their rows are the last result's
    shards: list[dict]
    files: list[Path] = field(default_factory=list)


def usage(out_dir: Path, journals: list[Path], open_keys: list[tuple[str, str]]) -> ShardUsage:
    """Every stats file in `out_dir`, summed; `files` are those and the `journals` read (removed by the merge)."""
    paths = stats_paths(out_dir)
    records = [shards.read_part(path) for path in paths]
    judged = {(row.get("task"), row.get("question_id")) for path in journals for row in read_journal(path)[0]}
    return ShardUsage(judge_stats=add_stats([record.get("judge_stats", {}) for record in records]),
                      n_judged=sum(int(record.get("n_judged", 0)) for record in records),
                      n_reused=sum(1 for key in open_keys if key not in judged), shards=records,
                      files=list(journals) + paths)
