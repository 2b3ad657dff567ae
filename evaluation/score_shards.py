"""`evaluate score` over several processes or cluster jobs: shares of the open items, journals, one final output.

Which share a process judges is `common.shards.resolve_shard` (`--shard i/n`, `RANK`/`WORLD_SIZE`, a SLURM job
array), as for `tile`, `features` and `evaluate predict`. The open items, in prediction-file order, are dealt
out i, i + n, ... (the same on every process, whatever is already judged): disjoint shares, every item in
exactly one. Shard i of n appends its judged rows to `DIR/scores.partial.shard-<i>-of-<n>.jsonl`; a re-run
reuses every finished row of every journal there is (and of scores.jsonl), so a shard resumes where it stopped.

When a shard has judged its share it takes the file lock `DIR/.score.lock` and looks at every journal: once
each open item has a row of this judge (finished, or failed and listed as such), it writes scores.jsonl,
summary.json and summary.md exactly as one process would and removes the journals; otherwise it writes
nothing final and reports how many items wait for other shards. The last shard to finish therefore writes
the one result. All shards must use the same judge and settings (rows of another judge never match).
The LLM judge's default reply cache is one SQLite file per shard (`DIR/judge_cache.shard-<i>-of-<n>.sqlite`):
shards on several machines never share one over a network file system.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator, Sequence

from common.shards import Shard
from evaluation.predict_shards import resolve  # noqa: F401  (one reading of --shard for predict and score)

LOCK_FILE = ".score.lock"


def journal_path(out_dir: Path, journal_file: str, shard: Shard) -> Path:
    """The journal this shard appends to: `journal_file` itself for one shard."""
    if shard.count == 1:
        return out_dir / journal_file
    stem = journal_file.removesuffix(".jsonl")
    return out_dir / f"{stem}.shard-{shard.index}-of-{shard.count}.jsonl"


def journal_paths(out_dir: Path, journal_file: str) -> list[Path]:
    """The one-process journal and every shard journal (any n) in `out_dir`."""
    stem = journal_file.removesuffix(".jsonl")
    return [out_dir / journal_file] + sorted(out_dir.glob(f"{stem}.shard-*-of-*.jsonl"))


def cache_name(cache_file: str, shard: Shard) -> str:
    """The judge's default reply cache: one per shard (`judge_cache.shard-0-of-4.sqlite`), so that jobs on
    several machines never share one SQLite file over a network file system (its locking is unreliable)."""
    if shard.count == 1:
        return cache_file
    stem, dot, suffix = cache_file.rpartition(".")
    return f"{stem}.shard-{shard.index}-of-{shard.count}{dot}{suffix}"


def share(shard: Shard, open_items: Sequence) -> set:
    """The keys of the open items this shard judges."""
    return {item.key for item in shard.select(list(open_items))}


@contextlib.contextmanager
def merge_lock(out_dir: Path) -> Iterator[None]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def waiting_report(shard: Shard, out_dir: Path, n_judged: int, n_waiting: int, n_items: int) -> dict:
    """What a shard returns when other shards still have items to judge (nothing final was written)."""
    return {"waiting": True, "shard": shard.label, "shard_source": shard.source, "out_dir": str(out_dir),
            "n_items": n_items, "n_judged": n_judged, "n_waiting": n_waiting}
