"""The judge registry: what scores claims for WSI-Precision / WSI-Relevance, chosen by name.

    judge = build_judge(JudgeConfig("openai", workers=8, llm=LLMSettings(model="gpt-4o-2024-08-06", ...)))
    judge.judge(items, on_result)            # on_result(item, ItemJudgement) as each item finishes
    judge.identity.to_dict()                 # stored with every score: name, model, prompt version, ...

Judges:
- `openai`  (evaluation.llm_judge.LLMJudge): any OpenAI-compatible endpoint through the project's one
  LLM client (`curation.llm_client`): temperature 0, seed, structured output, cache, retries.
- `offline` (evaluation.offline_judge.OfflineJudge): no network; sentence claims matched with a local
  sentence-embedding model. APPROXIMATE: `identity.approximate` is True and every output says so.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from curation.llm_client import LLMSettings
from evaluation.claim_scores import MetricResult
from evaluation.errors import JudgeConfigError
from evaluation.predictions import ScoringItem


@dataclass(frozen=True)
class JudgeIdentity:
    name: str               # registry name: "openai" | "offline"
    model: str              # the LLM or embedding model
    prompt_version: str     # PROMPT_VERSION of the LLM prompts, or the offline judge's rule version
    approximate: bool       # True for judges that only approximate the paper's LLM judge
    details: dict = field(default_factory=dict)   # endpoint, sampling settings, thresholds, ...

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

    def __post_init__(self) -> None:
        if self.name not in JUDGES:
            raise JudgeConfigError(f"Unknown judge {self.name!r}; choose one of {sorted(JUDGES)}.")
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


def _make_llm(config: JudgeConfig) -> Judge:
    from evaluation.llm_judge import LLMJudge

    return LLMJudge.from_config(config)


def _make_offline(config: JudgeConfig) -> Judge:
    from evaluation.offline_judge import OfflineJudge

    return OfflineJudge.from_config(config)


# The registry: judge name -> factory. A new judge is one entry here plus its module.
JUDGES: dict[str, Callable[[JudgeConfig], Judge]] = {
    "openai": _make_llm,
    "offline": _make_offline,
}


def build_judge(config: JudgeConfig) -> Judge:
    return JUDGES[config.name](config)
