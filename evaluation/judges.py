"""The judge registry: what scores claims for WSI-Precision / WSI-Relevance, chosen by name.

    judge = build_judge(JudgeConfig("openai", workers=8, llm=LLMSettings(model="gpt-4o-2024-08-06", ...)))
    judge.judge(items, on_result)            # on_result(item, ItemJudgement) as each item finishes
    judge.identity.to_dict()                 # stored with every score: name, model, prompt version, ...

Judges:
- `openai`  (evaluation.llm_judge.LLMJudge): any OpenAI-compatible endpoint through the project's one
  LLM client (`llm.client`): the metric version's prompts (official: verbatim), temperature 0 and a
  seed unless the model refuses them, cache, retries.
- `offline` (evaluation.offline_judge.OfflineJudge): no network; sentence claims matched with a local
  sentence-embedding model. APPROXIMATE: `identity.approximate` is True and every output says so.
"""

from __future__ import annotations

from typing import Callable

from evaluation.judge_types import JUDGE_NAMES, Judge, JudgeConfig


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


assert tuple(JUDGES) == JUDGE_NAMES, "evaluation.judge_types.JUDGE_NAMES must list the registry's names"


def build_judge(config: JudgeConfig) -> Judge:
    return JUDGES[config.name](config)
