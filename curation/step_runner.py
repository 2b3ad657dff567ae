"""Run one pipeline step's LLM calls concurrently and store each result the moment it arrives.

Calls run on `settings.concurrency` threads through the one `LLMClient` (which caches every valid reply
on disk before returning it); results are handed to `on_outcome` in the calling thread, which writes
them to the store in their own transaction. A crash therefore loses at most the calls in flight, and
their replies are usually already cached: a re-run finds the stored results, skips them, and asks the
LLM only for what is missing. Also the dry-run estimate and the step summary (`summary.json`).
"""

from __future__ import annotations

import sys
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from common.atomic import atomic_write_json
from llm.client import LLMClient
from llm.types import CostEstimate, LLMFailure, LLMResult, Prompt


@dataclass(frozen=True)
class LLMJob:
    key: Any             # what the result belongs to (a report id, (cleaning id, task), ...)
    prompt: Prompt
    user: str


@dataclass
class StepSummary:
    """Every input's status for one run of a step (written as summary.json by the command line)."""

    step: str
    items: list[dict] = field(default_factory=list)
    estimate: dict | None = None
    llm: dict | None = None
    dry_run: bool = False

    def add(self, status: str, **fields) -> None:
        self.items.append({"status": status, **fields})

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(item["status"] for item in self.items))

    @property
    def failed(self) -> int:
        return sum(1 for item in self.items if item["status"] == "failed")

    def to_dict(self) -> dict:
        return {"step": self.step, "dry_run": self.dry_run, "counts": self.counts, "estimate": self.estimate,
                "llm": self.llm, "items": self.items}

    def write(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())


def estimate_jobs(client: LLMClient, jobs: Sequence[LLMJob]) -> CostEstimate:
    """The dry run over jobs that may use different prompts: one total, nothing sent."""
    by_prompt: dict[str, tuple[Prompt, list[str]]] = {}
    for job in jobs:
        by_prompt.setdefault(job.prompt.name, (job.prompt, []))[1].append(job.user)
    total = CostEstimate(0, 0, 0, 0, 0.0 if client.settings.prices else None)
    for prompt, users in by_prompt.values():
        part = client.estimate(prompt, users)
        total.n_requests += part.n_requests
        total.n_cached += part.n_cached
        total.input_tokens += part.input_tokens
        total.output_tokens += part.output_tokens
        if total.cost_usd is not None and part.cost_usd is not None:
            total.cost_usd += part.cost_usd
    return total


def progress_bar(total: int, desc: str, enabled: bool | None):
    """A tqdm bar on stderr; `enabled=None` shows it only on a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="call", file=sys.stderr, dynamic_ncols=True,
                disable=(not sys.stderr.isatty()) if enabled is None else not enabled)


def run_jobs(client: LLMClient, jobs: Sequence[LLMJob],
             on_outcome: Callable[[LLMJob, LLMResult | LLMFailure], None], desc: str,
             progress: bool | None = None) -> None:
    """Send every job (at most `concurrency` at once, a bounded backlog queued) and hand each outcome
    to `on_outcome` in this thread as soon as it arrives. An exception (or Ctrl-C) cancels what has
    not started; calls already running finish (their replies land in the cache)."""
    if not jobs:
        return
    width = client.settings.concurrency
    pending: dict[Future, LLMJob] = {}
    queue = iter(jobs)
    with progress_bar(len(jobs), desc, progress) as bar, \
            ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"llm-{desc}") as pool:
        try:
            for job in queue:
                pending[pool.submit(client.try_complete, job.prompt, job.user)] = job
                if len(pending) >= 2 * width:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    job = pending.pop(future)
                    on_outcome(job, future.result())
                    bar.update(1)
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending[pool.submit(client.try_complete, nxt.prompt, nxt.user)] = nxt
        finally:
            for future in pending:
                future.cancel()
