"""Batch runs over many slides: sharding, per-slide outcomes, one merged `summary.json`.

- `resolve_shard("2/8")` -> this process's share: slides i, i+n, ... of the sorted list. Without
  `--shard`, `RANK`/`WORLD_SIZE` (set by `torchrun` and `accelerate launch`) and SLURM job arrays
  (`SLURM_ARRAY_TASK_ID`, ...) are used, as `common.shards` describes; otherwise one shard.
- `SummaryWriter` records each slide's outcome in `<out>/.summary-parts/<command>-shard-<i>-of-<n>.json`
  (atomic rewrites, at most every few seconds and at the end) and merges all parts into
  `<out>/summary.json` under a file lock, so several processes share one summary; the newest outcome
  of a slide wins, and entries of earlier runs stay until the slide is processed again.
- `run_batch` drives the loop: a tqdm bar (several slides, stderr a terminal), `SlideError` -> "failed"
  (stop unless `skip_errors`), Ctrl-C -> summary written, exit code 130.

Exit codes: 0 all slides done or skipped; 1 stopped at a failure; 2 usage error; 3 finished with
failures under --skip-errors; 130 interrupted.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import shards
from common.atomic import atomic_write_json
from common.shards import Shard
from modeling.errors import ModelError
from modeling.slide.errors import SlideError
from modeling.slide.files import SlideInput
from modeling.slide.provenance import software_version, utc_now

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
STATUSES = ("done", "failed", "skipped")
PARTS_DIR = ".summary-parts"
FLUSH_INTERVAL_S = 5.0


class UsageError(Exception):
    """A command-line problem (bad --shard, no inputs, an output folder of another command)."""


def resolve_shard(flag: str | None, environ=None) -> Shard:
    """`common.shards.resolve_shard` (--shard, RANK/WORLD_SIZE, SLURM job arrays) with its errors as
    `UsageError`s, which the commands print as one line and exit 2."""
    return shards.resolve_shard(flag, environ, error=UsageError)


@dataclass
class SlideOutcome:
    slide_id: str
    path: str
    status: str                                   # done | failed | skipped
    num_tiles: int | None = None
    outputs: dict = field(default_factory=dict)   # name -> path relative to the output folder
    error: str | None = None
    reason: str | None = None                     # why skipped
    warnings: list = field(default_factory=list)
    seconds: float = 0.0
    shard: str = "0/1"
    finished_at: str = ""

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} not in {STATUSES}")


class Skipped(Exception):
    """Raised by a per-slide function when the slide's outputs already exist (resume)."""

    def __init__(self, reason: str, num_tiles: int | None, outputs: dict):
        super().__init__(reason)
        self.reason, self.num_tiles, self.outputs = reason, num_tiles, outputs


@dataclass
class Done:
    num_tiles: int
    outputs: dict
    warnings: list = field(default_factory=list)


class SummaryWriter:
    def __init__(self, out_dir: Path, command: str, settings: dict, shard: Shard):
        self.out_dir, self.command, self.settings, self.shard = Path(out_dir), command, settings, shard
        self.summary_path = self.out_dir / "summary.json"
        self.part_path = self.out_dir / PARTS_DIR / f"{command}-{shard.tag}.json"
        self.outcomes: list[SlideOutcome] = []
        self.ignored: list[str] = []
        self._check_command()
        self._earlier = self._earlier_entries()     # this shard's record from earlier runs (kept until redone)
        self._last_flush = 0.0

    def _earlier_entries(self) -> list[dict]:
        return list(shards.read_part(self.part_path).get("slides", []))

    def _check_command(self) -> None:
        if self.summary_path.is_file():
            previous = shards.read_part(self.summary_path).get("command")
            if previous and previous != self.command:
                raise UsageError(f"{self.out_dir} holds the outputs of `wsi-llava {previous}`; use another --out "
                                 f"for `wsi-llava {self.command}`.")

    def record(self, outcome: SlideOutcome) -> None:
        """Keep an outcome; files are rewritten at most every FLUSH_INTERVAL_S (each rewrite costs O(slides),
        which adds up over thousands of slides). Outputs on disk, not the summary, decide what resume skips."""
        self.outcomes.append(outcome)
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> dict:
        """Rewrite this shard's part (earlier runs' entries, replaced by this run's) and the merged summary."""
        self._last_flush = time.monotonic()
        entries = {entry["slide_id"]: entry for entry in self._earlier}
        entries.update((outcome.slide_id, asdict(outcome)) for outcome in self.outcomes)
        atomic_write_json(self.part_path, {"command": self.command, "shard": self.shard.label,
                                           "shard_source": self.shard.source, "settings": self.settings,
                                           "ignored_inputs": self.ignored, "updated_at": utc_now(),
                                           "slides": [entries[key] for key in sorted(entries)]}, indent=2)
        return self._merge()

    def _merge(self) -> dict:
        with shards.exclusive_lock(self.out_dir / ".summary.lock"):
            latest: dict[str, dict] = {}
            seen, ignored = [], set()
            for part in sorted((self.out_dir / PARTS_DIR).glob(f"{self.command}-{shards.SHARD_TAG_GLOB}.json")):
                data = shards.read_part(part)
                if not data:
                    continue
                seen.append({"shard": data.get("shard"), "updated_at": data.get("updated_at")})
                ignored.update(data.get("ignored_inputs", []))
                for entry in data.get("slides", []):
                    known = latest.get(entry["slide_id"])
                    if known is None or entry.get("finished_at", "") >= known.get("finished_at", ""):
                        latest[entry["slide_id"]] = entry
            slides = [latest[key] for key in sorted(latest)]
            counts = {status: sum(1 for s in slides if s["status"] == status) for status in STATUSES}
            summary = {"command": self.command, "software_version": software_version(), "updated_at": utc_now(),
                       "settings": self.settings, "counts": counts, "shards": seen,
                       "ignored_inputs": sorted(ignored), "slides": slides}
            atomic_write_json(self.summary_path, summary, indent=2)
            return summary


def _progress_bar(slides: list[SlideInput], command: str):
    """A tqdm bar over the slides, or None: one slide, or stderr not a terminal (logs, pipes, SLURM
    output files) shows none, and then tqdm is not even imported (it costs ~30 ms of start-up)."""
    stream = sys.stderr
    if len(slides) < 2 or not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(slides, desc=f"{command}: slides", unit="slide", file=stream, dynamic_ncols=True)


def _say(message: str, bar=None) -> None:
    if bar is None:
        print(message, file=sys.stderr, flush=True)
    else:
        bar.write(message, file=sys.stderr)


def run_batch(slides: list[SlideInput], process: Callable[[SlideInput], Done], summary: SummaryWriter, *,
              skip_errors: bool, command: str) -> int:
    """Run `process` on each slide, recording outcomes; returns the command's exit code."""
    failures = 0
    bar = _progress_bar(slides, command)
    summary.flush()
    try:
        for item in (slides if bar is None else bar):
            if bar is not None:
                bar.set_postfix_str(item.slide_id[:40])
            started = time.perf_counter()
            outcome = SlideOutcome(item.slide_id, str(item.path), "done", shard=summary.shard.label)
            unexpected = None
            try:
                done = process(item)
                outcome.num_tiles, outcome.outputs, outcome.warnings = done.num_tiles, done.outputs, done.warnings
            except Skipped as skip:
                outcome.status, outcome.reason = "skipped", skip.reason
                outcome.num_tiles, outcome.outputs = skip.num_tiles, skip.outputs
            except (SlideError, ModelError) as exc:
                outcome.status, outcome.error = "failed", str(exc)
            except Exception as exc:  # a bug or an environment problem: keep the batch's record complete
                outcome.status, outcome.error = "failed", f"unexpected {type(exc).__name__}: {exc}"
                unexpected = exc
            outcome.seconds = round(time.perf_counter() - started, 3)
            outcome.finished_at = utc_now()
            summary.record(outcome)
            if outcome.status == "failed":
                failures += 1
                _say(f"wsi-llava {command}: {item.slide_id} failed: {outcome.error}", bar)
                if unexpected is not None:
                    _say("".join(traceback.format_exception(unexpected)), bar)
                if not skip_errors:
                    summary.flush()
                    _say(f"wsi-llava {command}: stopping (use --skip-errors to continue past failed slides). "
                         f"Summary: {summary.summary_path}", bar)
                    return EXIT_FAILED
    except KeyboardInterrupt:
        summary.flush()
        _say(f"wsi-llava {command}: interrupted; finished slides are kept and will be skipped on the next run. "
             f"Summary: {summary.summary_path}", bar)
        return EXIT_INTERRUPTED
    finally:
        if bar is not None:
            bar.close()
    merged = summary.flush()
    counts = merged["counts"]
    _say(f"wsi-llava {command}: shard {summary.shard.label}: {len(slides)} slide(s); all shards so far: "
         f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed. "
         f"Summary: {summary.summary_path}")
    return EXIT_PARTIAL if failures else EXIT_OK
