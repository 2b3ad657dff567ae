"""The LLM judge: WSI-Precision and WSI-Relevance through the project's one LLM client.

Per open-ended item, the four prompts of the metric version (evaluation.metric_versions; official by
default: the official WSI-Metric prompts and messages, evaluation/official_prompts.py): claims of the
reference -> the prediction scored against each; claims of the prediction -> the reference scored
against each. Every call goes through `llm.client.LLMClient` (temperature 0 and a seed unless the model
refuses them, persistent cache, retries with backoff on 429/5xx/timeouts/invalid replies; structured
output only for the strict prompts), so a re-run with the same judge reads every reply from the cache
and sends nothing. `workers` items are
judged at once, one request in flight per worker. A step whose reply stays invalid after the client's
retries becomes a `failed` MetricResult naming the step and the reason; configuration errors (no API
key, rejected key, unknown model) stop the whole run instead of failing every item.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from typing import Sequence

from llm.client import LLMClient
from llm.types import (
    LLMFailure,
    Prompt,
    cost_usd,
    estimate_tokens,
)
from llm.errors import LLMConfigError, ReplyError
from evaluation.claim_scores import ClaimJudgement, MetricResult, is_blank
from evaluation.errors import JudgeConfigError
from evaluation.judge_types import ItemJudgement, Judge, JudgeConfig, JudgeIdentity, OnResult
from evaluation.metric_versions import DEFAULT_METRIC_VERSION, get_metric_version
from evaluation.nltk_resources import split_sentences
from evaluation.predictions import ScoringItem

_EXPLANATION_TOKENS = 45      # dry-run expectation per judged claim: explanation text and JSON keys


class LLMJudge(Judge):
    def __init__(self, client: LLMClient, workers: int = 4, metric_version: str = DEFAULT_METRIC_VERSION) -> None:
        self.client = client
        self.workers = workers
        self.version = get_metric_version(metric_version)
        self.prompts = self.version.prompts
        details = {**client.settings.public_dict(), "prompt_versions": self.prompts.versions()}
        if self.prompts.precision_scoring.verbatim:
            details["structured_output"] = "not used: the prompts are sent verbatim, as the official scripts do"
        self.identity = JudgeIdentity(name="openai", model=client.settings.model,
                                      prompt_version=self.prompts.version, approximate=False,
                                      details=details, metric_version=self.version.name)

    @classmethod
    def from_config(cls, config: JudgeConfig) -> "LLMJudge":
        if config.llm is None or not config.llm.model:
            raise JudgeConfigError("The openai judge needs --judge-model (the model name the endpoint serves, "
                                   "e.g. gpt-4o-2024-08-06).")
        # Judges always run at temperature 0 with `workers` requests in flight.
        settings = replace(config.llm, temperature=0.0, concurrency=config.workers)
        return cls(LLMClient(settings), workers=config.workers, metric_version=config.metric_version)

    # -- judging -----------------------------------------------------------------------------------
    def judge(self, items: Sequence[ScoringItem], on_result: OnResult) -> None:
        if not items:
            return
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="judge")
        try:
            futures = {pool.submit(self.judge_item, item): item for item in items}
            for future in as_completed(futures):
                on_result(futures[future], future.result())   # re-raises a configuration error here
        except LLMConfigError as exc:
            raise JudgeConfigError(f"the judge endpoint cannot be used: {exc}") from exc
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def judge_item(self, item: ScoringItem) -> ItemJudgement:
        return ItemJudgement(precision=self._precision(item), relevance=self._relevance(item))

    def _call(self, prompt: Prompt, user: str, stage: str):
        """(value, None) on success, (None, failed MetricResult) after the client's retries."""
        try:
            outcome = self.client.try_complete(prompt, user)
        except ReplyError as exc:   # a cached reply that this parser rejects
            return None, MetricResult.failed(f"invalid cached reply: {exc}", stage, 0)
        if isinstance(outcome, LLMFailure):
            return None, MetricResult.failed(outcome.error, stage, outcome.attempts)
        return outcome.value, None

    def _scored(self, claims: list[str], evaluations: list[dict]) -> MetricResult:
        pairs, ignored = self.prompts.pair(claims, evaluations)
        return self.version.item_result([
            ClaimJudgement(claim, e["score"], e["explanation"],
                           judge_claim=e["claim"] if e["claim"].strip() != claim.strip() else None)
            for claim, e in pairs], ignored)

    def _precision(self, item: ScoringItem) -> MetricResult:
        ps = self.prompts
        claims, failure = self._call(ps.reference_claims, ps.reference_claims_user(item.question, item.reference),
                                     "reference_claims")
        if failure:
            return failure
        if not claims:
            return MetricResult.no_claims()
        if is_blank(item.prediction):
            return self.version.blank_result("wsi_precision", claims)
        evaluations, failure = self._call(ps.for_claims(ps.precision_scoring, claims),
                                          ps.precision_scoring_user(claims, item.prediction), "precision_scoring")
        return failure or self._scored(claims, evaluations)

    def _relevance(self, item: ScoringItem) -> MetricResult:
        if is_blank(item.prediction):
            return self.version.blank_result("wsi_relevance")
        ps = self.prompts
        claims, failure = self._call(ps.prediction_claims, ps.prediction_claims_user(item.prediction),
                                     "prediction_claims")
        if failure:
            return failure
        if not claims:
            return MetricResult.no_claims()
        evaluations, failure = self._call(ps.for_claims(ps.relevance_scoring, claims),
                                          ps.relevance_scoring_user(claims, item.reference), "relevance_scoring")
        return failure or self._scored(claims, evaluations)

    # -- the dry run -------------------------------------------------------------------------------
    def _cached_claims(self, prompt: Prompt, user: str) -> list[str] | None:
        hit = self.client.cache.get(self.client.cache_key(prompt, user))
        if hit is None:
            return None
        try:
            return prompt.parse(prompt.decode_reply(hit.reply))
        except ReplyError:
            return None

    def dry_run(self, items: Sequence[ScoringItem]) -> dict:
        """Exact request counts and input tokens for the claim prompts; for the scoring prompts exact where
        the claims are cached, else estimated with the text's sentences standing in for its (unknown)
        claims. Output tokens twice: at each prompt's maximum (`output_tokens`, `cost_usd`: an upper bound)
        and as expected (`output_tokens_expected`, `cost_usd_expected`): a claims reply restates its text
        (~its tokens + 10%), a scoring reply echoes each claim plus ~45 tokens of explanation and keys."""
        users = {"reference_claims": [], "prediction_claims": [], "precision_scoring": [], "relevance_scoring": []}
        expected = {name: [] for name in users}

        def add(name: str, user: str, output_tokens: int) -> None:
            users[name].append(user)
            expected[name].append(output_tokens)

        def claims_output(text: str) -> int:
            return int(estimate_tokens(text) * 1.1) + 2

        def scores_output(claims: list[str]) -> int:
            return sum(estimate_tokens(c) + _EXPLANATION_TOKENS for c in claims) + 2

        ps = self.prompts
        for item in items:
            ref_user = ps.reference_claims_user(item.question, item.reference)
            add("reference_claims", ref_user, claims_output(item.reference))
            if is_blank(item.prediction):
                continue
            pred_user = ps.prediction_claims_user(item.prediction)
            add("prediction_claims", pred_user, claims_output(item.prediction))
            ref_claims = self._cached_claims(ps.reference_claims, ref_user)
            pred_claims = self._cached_claims(ps.prediction_claims, pred_user)
            if ref_claims != []:
                claims = ref_claims or split_sentences(item.reference)
                add("precision_scoring", ps.precision_scoring_user(claims, item.prediction), scores_output(claims))
            if pred_claims != []:
                claims = pred_claims or split_sentences(item.prediction)
                add("relevance_scoring", ps.relevance_scoring_user(claims, item.reference), scores_output(claims))
        prompts = {"reference_claims": ps.reference_claims, "prediction_claims": ps.prediction_claims,
                   "precision_scoring": ps.precision_scoring, "relevance_scoring": ps.relevance_scoring}
        per_prompt = {}
        for name, prompt in prompts.items():
            estimate = self.client.estimate(prompt, users[name]).to_dict()
            uncached = [min(out, prompt.max_output_tokens) for user, out in zip(users[name], expected[name])
                        if self.client.cache.get(self.client.cache_key(prompt, user)) is None]
            estimate["output_tokens_expected"] = sum(uncached)
            estimate["cost_usd_expected"] = cost_usd(estimate["input_tokens"], sum(uncached),
                                                     self.client.settings.prices)
            per_prompt[name] = estimate

        def total(key: str):
            values = [p[key] for p in per_prompt.values()]
            return None if any(v is None for v in values) else sum(values)

        return {"judge": self.identity.to_dict(),
                "n_requests": total("n_requests"), "n_cached": total("n_cached"),
                "input_tokens": total("input_tokens"), "output_tokens": total("output_tokens"),
                "cost_usd": total("cost_usd"), "output_tokens_expected": total("output_tokens_expected"),
                "cost_usd_expected": total("cost_usd_expected"), "per_prompt": per_prompt,
                "note": "approximate: ~4 characters per token; output_tokens / cost_usd count every reply at its "
                        "prompt's maximum (an upper bound), *_expected at its likely length; scoring prompts "
                        "whose claims are not cached yet are estimated from the text's sentences"}

    def stats(self) -> dict:
        return {**self.client.stats.to_dict(self.client.settings.prices),
                "request_adjustments": self.client.request_adjustments()}

    def close(self) -> None:
        self.client.cache.close()
