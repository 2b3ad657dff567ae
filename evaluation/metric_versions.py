"""What each `--metric-version` means: the one home of the WSI-Precision / WSI-Relevance definitions.

    version = get_metric_version("official")      # the default (DEFAULT_METRIC_VERSION)
    version.prompts.reference_claims, version.prompts.precision_scoring_user(claims, prediction)
    version.item_result(judgements, ignored), version.blank_result("wsi_relevance", claims)
    version.describe()                            # stored in summary.json, shown in summary.md and the app

- `official` (default) reproduces the official WSI-Metric scripts (yu5-kim/WSI-LLaVA f9ac921,
  evaluation/official_prompts.py): their four system prompts verbatim, their user messages, reference
  claims extracted from the ground-truth answer alone, WSI-Relevance ignoring the claims the ground truth
  does not address (the judge leaves them out; an item none of whose claims is addressed has no score),
  items rounded to 3 places and means of the rounded items rounded to 3 places (stage 3), blank
  predictions excluded from WSI-Relevance and from BLEU/ROUGE/METEOR (the scripts skip them), counted and
  listed. Where the scripts fail (a crash, a silently dropped reply) it keeps the definition and reports
  the failure instead; evaluation/README.md lists every such deviation.
- `strict` is this project's earlier, stricter variant (evaluation/judge_prompts.py): the question is
  sent with the ground truth for claim extraction, a claim the ground truth does not address scores 0,
  one evaluation per claim in order, JSON replies (structured output when the server has it), no
  rounding, blank predictions score 0 on both metrics and on the NLU metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from llm.types import Prompt
from evaluation import judge_prompts as strict_prompts
from evaluation import official_prompts
from evaluation.claim_scores import ClaimJudgement, MetricResult
from evaluation.errors import EvaluationError

Pairing = Callable[[list[str], list[dict]], "tuple[list[tuple[str, dict]], list[str]]"]


@dataclass(frozen=True)
class PromptSet:
    """The four judge prompts of a metric version and how their user messages are built."""

    version: str
    reference_claims: Prompt
    prediction_claims: Prompt
    precision_scoring: Prompt
    relevance_scoring: Prompt
    reference_claims_user: Callable[[str, str], str]            # (question, reference) -> user message
    prediction_claims_user: Callable[[str], str]                # (prediction)
    precision_scoring_user: Callable[[list[str], str], str]     # (reference claims, prediction)
    relevance_scoring_user: Callable[[list[str], str], str]     # (prediction claims, reference)
    for_claims: Callable[[Prompt, list[str]], Prompt]           # scoring prompt whose reader knows the claims
    pair: Pairing                                               # evaluations -> (claim, evaluation), ignored

    def versions(self) -> dict[str, str]:
        return {p.name: p.version for p in (self.reference_claims, self.prediction_claims,
                                            self.precision_scoring, self.relevance_scoring)}


def _pair_in_order(claims: list[str], entries: list[dict]) -> tuple[list[tuple[str, dict]], list[str]]:
    return list(zip(claims, entries)), []


OFFICIAL_PROMPTS = PromptSet(
    official_prompts.PROMPT_VERSION, official_prompts.REFERENCE_CLAIMS, official_prompts.PREDICTION_CLAIMS,
    official_prompts.PRECISION_SCORING, official_prompts.RELEVANCE_SCORING, official_prompts.reference_claims_user,
    official_prompts.prediction_claims_user, official_prompts.precision_scoring_user,
    official_prompts.relevance_scoring_user, official_prompts.for_claims, official_prompts.pair_with_claims)
STRICT_PROMPTS = PromptSet(
    strict_prompts.PROMPT_VERSION, strict_prompts.REFERENCE_CLAIMS, strict_prompts.PREDICTION_CLAIMS,
    strict_prompts.PRECISION_SCORING, strict_prompts.RELEVANCE_SCORING, strict_prompts.reference_claims_user,
    strict_prompts.prediction_claims_user, strict_prompts.precision_scoring_user,
    strict_prompts.relevance_scoring_user, strict_prompts.for_claims, _pair_in_order)


@dataclass(frozen=True)
class MetricVersion:
    name: str
    title: str
    prompts: PromptSet
    reference_claims_from: str          # what the reference-claims prompt is given
    unaddressed_claims: str             # WSI-Relevance: what happens to claims the ground truth does not address
    round_digits: int | None            # items and group means rounded to this many places (None: not rounded)
    blank_excluded_from: tuple[str, ...]   # metrics a blank prediction is left out of (else it scores 0)
    replies: str                        # how judge replies are read
    requests: str                       # what the requests carry

    def blank_result(self, metric: str, claims: list[str] = ()) -> MetricResult:
        """A blank prediction's result for `metric` (wsi_precision: every reference claim scored 0)."""
        return MetricResult.blank_prediction(claims, excluded=metric in self.blank_excluded_from)

    def excludes_blank_from(self, metric: str) -> bool:
        return metric in self.blank_excluded_from

    def item_result(self, judgements: list[ClaimJudgement], ignored: list[str] = ()) -> MetricResult:
        return MetricResult.scored(judgements, self.round_digits, ignored)

    def describe(self) -> dict:
        return {"name": self.name, "title": self.title, "prompt_version": self.prompts.version,
                "prompt_versions": self.prompts.versions(), "reference_claims_from": self.reference_claims_from,
                "unaddressed_claims": self.unaddressed_claims, "round_digits": self.round_digits,
                "blank_predictions_excluded_from": list(self.blank_excluded_from),
                "blank_predictions": ("excluded from " + ", ".join(self.blank_excluded_from) + "; WSI-Precision "
                                      "0.0" if self.blank_excluded_from else "0.0 on WSI-Precision, "
                                      "WSI-Relevance and the NLU metrics"),
                "replies": self.replies, "requests": self.requests}


METRIC_VERSIONS: dict[str, MetricVersion] = {
    "official": MetricVersion(
        name="official", prompts=OFFICIAL_PROMPTS,
        title="the official WSI-Metric scripts (yu5-kim/WSI-LLaVA f9ac921)",
        reference_claims_from="the ground-truth answer alone",
        unaddressed_claims="ignored (the judge leaves them out; an item with none addressed has no score)",
        round_digits=3, blank_excluded_from=("wsi_relevance", "nlu"),
        replies="JSON, fenced JSON or a Python literal; WSI-P one evaluation per claim; WSI-R may leave claims "
                "out; scores on the scale 1/0.7/0.3/0; unreadable -> retried, then failed and listed",
        requests="official system prompts verbatim, official user messages, no response_format"),
    "strict": MetricVersion(
        name="strict", prompts=STRICT_PROMPTS, title="this project's strict variant",
        reference_claims_from="the question and the ground-truth answer",
        unaddressed_claims="scored 0", round_digits=None, blank_excluded_from=(),
        replies="JSON only; exactly one evaluation per claim, in order; scores on the scale 1/0.7/0.3/0; "
                "invalid -> retried, then failed and listed",
        requests="official prompts with stricter output sections, JSON user messages, structured output "
                 "(json_schema -> json_object -> text) where the server has it"),
}
DEFAULT_METRIC_VERSION = "official"
METRIC_VERSION_NAMES = tuple(METRIC_VERSIONS)


def get_metric_version(name: str | None) -> MetricVersion:
    """The version by name (None: the default)."""
    try:
        return METRIC_VERSIONS[name or DEFAULT_METRIC_VERSION]
    except KeyError as exc:
        raise EvaluationError(f"Unknown metric version {name!r}; choose one of {list(METRIC_VERSIONS)} "
                              "(evaluation/README.md compares them).") from exc


def version_of_rows(rows: list[dict]) -> MetricVersion:
    """The metric version a run's score rows were made with. Rows written before versions existed were
    made with what is now `strict`. Rows of several versions cannot be summarised together."""
    names = set()
    for row in rows:
        if row.get("metric_version"):
            names.add(row["metric_version"])
        elif row.get("wsi_precision") is not None or row.get("wsi_relevance") is not None:
            names.add("strict")
    if len(names) > 1:
        raise EvaluationError(f"the score rows mix metric versions {sorted(names)}; score them again with one "
                              "--metric-version.")
    return get_metric_version(names.pop() if names else DEFAULT_METRIC_VERSION)
