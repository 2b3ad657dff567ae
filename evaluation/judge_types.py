"""What a judge is: its identity (stored with every score), its settings, its results and its interface.

The judges themselves (`evaluation.llm_judge`, `evaluation.offline_judge`) implement `Judge`; the registry
that picks one by name is `evaluation.judges`. Kept apart so that the judges and the registry never
import each other.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from evaluation.claim_scores import MetricResult
from evaluation.errors import JudgeConfigError
from evaluation.metric_versions import DEFAULT_METRIC_VERSION, METRIC_VERSION_NAMES
from evaluation.predictions import ScoringItem
from llm.client import LLMSettings

JUDGE_NAMES = ("openai", "offline")        # the registry's names (evaluation.judges.JUDGES)


@dataclass(frozen=True)
class JudgeIdentity:
    name: str               # registry name: "openai" | "offline"
    model: str              # the LLM or embedding model
    prompt_version: str     # PROMPT_VERSION of the LLM prompts, or the offline judge's rule version
    approximate: bool       # True for judges that only approximate the paper's LLM judge
    details: dict = field(default_factory=dict)   # endpoint, sampling settings, thresholds, ...
    metric_version: str = DEFAULT_METRIC_VERSION  # evaluation.metric_versions: official | strict

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """Changes whenever anything that can change a score changes (used to reuse finished rows)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode("utf-8")).hexdigest()[:16]


@dataclass
class ItemJudgement:
    precision: MetricResult
    relevance: MetricResult


OnResult = Callable[[ScoringItem, ItemJudgement], None]


@dataclass
class JudgeConfig:
    name: str                                   # registry name: "openai" | "offline"
    workers: int = 4                            # items judged at once (LLM judge: one request in flight each)
    llm: LLMSettings | None = None              # the endpoint and request settings (openai judge)
    embedding_model: str | None = None          # sentence-transformers folder (offline judge; default bundled)
    metric_version: str = DEFAULT_METRIC_VERSION   # what WSI-P / WSI-R mean (evaluation.metric_versions)

    def __post_init__(self) -> None:
        if self.name not in JUDGE_NAMES:
            raise JudgeConfigError(f"Unknown judge {self.name!r}; choose one of {sorted(JUDGE_NAMES)}.")
        if self.metric_version not in METRIC_VERSION_NAMES:
            raise JudgeConfigError(f"Unknown metric version {self.metric_version!r}; choose one of "
                                   f"{list(METRIC_VERSION_NAMES)}.")
        if self.workers < 1:
            raise JudgeConfigError(f"--workers must be at least 1, got {self.workers}.")


class Judge(ABC):
    identity: JudgeIdentity

    @abstractmethod
    def judge(self, items: Sequence[ScoringItem], on_result: OnResult) -> None:
        """Judge every item (open-ended only); call `on_result` once per item, from any thread."""

    @abstractmethod
    def dry_run(self, items: Sequence[ScoringItem]) -> dict:
        """What judging `items` would cost: requests, cached replies, tokens, dollars. Sends nothing."""

    def stats(self) -> dict:
        return {}

    def close(self) -> None:
        pass
