"""Which share of a batch this process does: an explicit `--shard i/n`, torchrun/accelerate, a SLURM job array.

    shard = resolve_shard(args.shard)            # Shard(index, count, source); ShardError on bad input
    mine = shard.select(sorted_items)            # items index, index + count, ... (0-based)
    device = default_device()                    # cuda:LOCAL_RANK (one GPU per torchrun process), else cpu

Where the share comes from, first match wins:
1. `--shard i/n` (0 <= i < n), whatever the environment says.
2. The environment:
   - `RANK` / `WORLD_SIZE` (torchrun, `accelerate launch`): shard RANK of WORLD_SIZE;
   - a SLURM job array (`sbatch --array=...`): `SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_COUNT`,
     `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_MAX`, `SLURM_ARRAY_TASK_STEP`. SLURM sets COUNT to the
     number of task ids, MIN/MAX to the lowest/highest id and STEP to the number after the ':' of the
     --array spec (1 without one). Supported: one range with an optional step and concurrency limit
     (`0-15`, `1-16`, `0-30:2`, `0-99%10`): task id MIN + k*STEP is shard k of COUNT. Refused, because
     some shards would have no task and their items would silently be skipped: lists and mixed specs
     (`1,3,5`, `1-7:2,20`) whose ids are not MIN, MIN+STEP, ..., MAX; pass `--shard` instead.
   - both (torchrun inside each array task): array task a of A and rank r of W give shard a*W + r of A*W.
3. Otherwise everything: shard 0 of 1.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SHARD_TAG_GLOB = "shard-*-of-*"          # every `Shard.tag`, of any count

SLURM_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                   "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP")


class ShardError(ValueError):
    """A `--shard` value or sharding environment that does not describe a share; the message says the fix."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    source: str                    # "--shard", "RANK/WORLD_SIZE", "SLURM array", ... or "single process"

    def __post_init__(self):
        if not 0 <= self.index < self.count:
            raise ShardError(f"shard {self.index}/{self.count}: need 0 <= index < count")

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        """How this share's files are named: "shard-<i>-of-<n>" (`SHARD_TAG_GLOB` finds every n's)."""
        return f"shard-{self.index}-of-{self.count}"

    def select(self, items: Sequence) -> list:
        return list(items[self.index::self.count])


def _integer(environ: Mapping[str, str], name: str) -> int | None:
    text = environ.get(name)
    if text is None or text.strip() == "":
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise ShardError(f"{name}={text!r} is not an integer.") from exc


def _flag_shard(flag: str) -> Shard:
    try:
        index_text, count_text = flag.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError as exc:
        raise ShardError(f"--shard {flag!r}: expected i/n with 0 <= i < n, e.g. --shard 0/4.") from exc
    if not 0 <= index < count:
        raise ShardError(f"--shard {flag!r}: need 0 <= i < n (shards are numbered from 0).")
    return Shard(index, count, "--shard")


def _torch_shard(environ: Mapping[str, str]) -> tuple[int, int] | None:
    world, rank = _integer(environ, "WORLD_SIZE"), _integer(environ, "RANK")
    if world is None or world == 1:
        return None
    if world < 1:
        raise ShardError(f"WORLD_SIZE={world} must be >= 1.")
    if rank is None:
        raise ShardError(f"WORLD_SIZE={world} is set but RANK is not; launch with torchrun/accelerate or pass "
                         "--shard i/n.")
    if not 0 <= rank < world:
        raise ShardError(f"RANK={rank} is outside WORLD_SIZE={world}.")
    return rank, world


def _slurm_shard(environ: Mapping[str, str]) -> tuple[int, int] | None:
    task_id = _integer(environ, "SLURM_ARRAY_TASK_ID")
    if task_id is None:
        return None
    count = _integer(environ, "SLURM_ARRAY_TASK_COUNT")
    low = _integer(environ, "SLURM_ARRAY_TASK_MIN")
    high = _integer(environ, "SLURM_ARRAY_TASK_MAX")
    step = _integer(environ, "SLURM_ARRAY_TASK_STEP")
    if count is None or low is None:
        raise ShardError(f"SLURM_ARRAY_TASK_ID={task_id} is set but SLURM_ARRAY_TASK_COUNT/SLURM_ARRAY_TASK_MIN "
                         "are not (SLURM before 15.08?); pass --shard i/n, e.g. --shard "
                         "$SLURM_ARRAY_TASK_ID/<number of tasks> for --array=0-<n-1>.")
    step = 1 if step is None else step
    high = low + (count - 1) * step if high is None else high
    spec = f"SLURM_ARRAY_TASK_MIN={low}, _MAX={high}, _STEP={step}, _COUNT={count}"
    if count < 1 or step < 1 or high < low:
        raise ShardError(f"SLURM job array with {spec} is not a valid array.")
    if (high - low) % step or (high - low) // step + 1 != count:
        raise ShardError(f"the SLURM job array ({spec}) is not one range MIN-MAX:STEP, so its task ids cannot be "
                         "numbered as shards without gaps. Submit with --array=0-<n-1> (optionally :step and %limit) "
                         "or pass --shard i/n.")
    if (task_id - low) % step or not low <= task_id <= high:
        raise ShardError(f"SLURM_ARRAY_TASK_ID={task_id} is not one of the ids of the array ({spec}).")
    return (task_id - low) // step, count


def resolve_shard(flag: str | None, environ: Mapping[str, str] | None = None,
                  error: type[Exception] = ShardError) -> Shard:
    """This process's share (see the module docstring for the order); a bad value raises `error` (a
    package's own type; `ShardError` by default) with the message that says the fix."""
    try:
        return _resolve_shard(flag, os.environ if environ is None else environ)
    except ShardError as exc:
        if error is ShardError:
            raise
        raise error(str(exc)) from exc


def _resolve_shard(flag: str | None, environ: Mapping[str, str]) -> Shard:
    if flag:
        return _flag_shard(flag)
    torch, slurm = _torch_shard(environ), _slurm_shard(environ)
    if torch and slurm:
        (rank, world), (task, tasks) = torch, slurm
        return Shard(task * world + rank, tasks * world, "SLURM array x RANK/WORLD_SIZE")
    if torch:
        return Shard(*torch, "RANK/WORLD_SIZE")
    if slurm:
        return Shard(*slurm, "SLURM array")
    return Shard(0, 1, "single process")


def default_device(environ: Mapping[str, str] | None = None) -> str:
    """This process's device when none is given: `cuda:LOCAL_RANK` (modulo the visible GPUs) when CUDA is
    available, so the processes of `torchrun`/`accelerate launch` each take their own GPU; else "cpu"."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    environ = os.environ if environ is None else environ
    return f"cuda:{int(environ.get('LOCAL_RANK', '0') or 0) % torch.cuda.device_count()}"


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Held by the one share that merges the shares' files at a time (flock on `path`, created if absent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_part(path: Path) -> dict:
    """A share's JSON record (a summary part, a report, a stats file) as a dict; {} when it is missing or cannot
    be read (not UTF-8, not JSON, too deep, not an object): a merge goes on with the shares it can read."""
    from common.text_files import read_json

    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
