"""WSI-Precision / WSI-Relevance arithmetic: per-claim scores -> item score -> group means. Pure, no I/O.

Definitions (../shared/notes/wsi-llava.md, the paper and the official WSI-Metric stage-3 scripts):
- every claim gets one score from the scale 1 / 0.7 / 0.3 / 0; any other value is invalid;
- item score = mean over the item's (evaluated) claims; rounded to `round_digits` places when the metric
  version says so (official: 3, as stage 3 does; strict: not rounded);
- task score and capability score = mean over the items of that task / capability; overall = mean over
  all items (never a mean of task means); the official version rounds these means of rounded items to 3
  places too (stage 3's `compute_average`).

Items without a score (which ones a metric version produces: evaluation.metric_versions):
- `no_claims`: the claim extraction validly returned an empty list. No score, left out of the means (the
  official scripts' `None` entries), counted per group as `n_no_claims`.
- `blank_prediction`: the prediction is empty or whitespace. Strict: 0.0 on both metrics (every reference
  claim scored 0 without a judge call; an answer asserting nothing is not rewarded by exclusion).
  Official: WSI-Precision 0.0 the same way, WSI-Relevance excluded (score None) as the official stage 1
  skips blank predictions. Counted per group (`n_blank_prediction`) and listed in the summary.
- `not_addressed` (official WSI-Relevance only): the judge evaluated none of the prediction's claims,
  because the ground truth addresses none of them ("Ignore Unmentioned Claims"). No score, excluded,
  counted (`n_not_addressed`) and listed. Claims the judge left out of an item that does have a score are
  kept on the result as `ignored_claims`.
- `failed`: the judge could not produce a valid reply after its retries. No score, left out of the
  means, counted as `n_failed` and listed in the summary; never turned into a 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

SCALE: tuple[float, ...] = (1.0, 0.7, 0.3, 0.0)

SCORED = "scored"
NO_CLAIMS = "no_claims"
BLANK_PREDICTION = "blank_prediction"
NOT_ADDRESSED = "not_addressed"
FAILED = "failed"
STATUSES = (SCORED, NO_CLAIMS, BLANK_PREDICTION, NOT_ADDRESSED, FAILED)
BLANK_EXPLANATION = "The prediction is blank: the claim is absent from it (score 0 by rule)."


def validate_scale_score(value) -> float:
    """A judge's score as a float from `SCALE`; raises ValueError for anything else (strings, 0.5, True)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"score must be one of 1, 0.7, 0.3, 0 (a JSON number), got {value!r}")
    for allowed in SCALE:
        if abs(float(value) - allowed) < 1e-9:
            return allowed
    raise ValueError(f"score {value!r} is outside the scale 1, 0.7, 0.3, 0")


def is_blank(text: str) -> bool:
    """A prediction that is empty or whitespace only (the `blank_prediction` rule)."""
    return not text.strip()


def mean_or_none(values: Sequence[float], round_digits: int | None = None) -> float | None:
    if not values:
        return None
    mean = sum(values) / len(values)
    return mean if round_digits is None else round(mean, round_digits)


@dataclass
class ClaimJudgement:
    claim: str                       # the claim as extracted (reference claim for P, prediction claim for R)
    score: float                     # one of SCALE
    explanation: str
    judge_claim: str | None = None   # the claim text as the judge echoed it, when it differs
    similarity: float | None = None  # offline judge only: the cosine similarity that gave the score

    def __post_init__(self) -> None:
        self.score = validate_scale_score(self.score)

    def to_dict(self) -> dict:
        data = {"claim": self.claim, "score": self.score, "explanation": self.explanation}
        if self.judge_claim is not None:
            data["judge_claim"] = self.judge_claim
        if self.similarity is not None:
            data["similarity"] = self.similarity
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ClaimJudgement":
        return cls(claim=data["claim"], score=data["score"], explanation=data["explanation"],
                   judge_claim=data.get("judge_claim"), similarity=data.get("similarity"))


@dataclass
class MetricResult:
    """One metric (WSI-Precision or WSI-Relevance) for one item."""

    status: str
    score: float | None
    claims: list[ClaimJudgement] = field(default_factory=list)
    error: str | None = None         # failed only: why
    stage: str | None = None         # failed only: which judge step failed
    attempts: int | None = None      # failed only: how many requests were tried
    round_digits: int | None = None  # the item score is the claims' mean rounded to this many places
    ignored_claims: list[str] = field(default_factory=list)   # claims the judge did not evaluate

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status == SCORED:
            expected = mean_or_none([c.score for c in self.claims], self.round_digits)
            if expected is None or self.score is None or abs(self.score - expected) > 1e-9:
                raise ValueError(f"a scored result needs claims and score = their mean ({expected}), "
                                 f"got {self.score!r}")
        elif self.status == BLANK_PREDICTION and self.score not in (0.0, None):
            raise ValueError(f"a blank prediction scores 0.0 or is excluded (None), got {self.score!r}")
        elif self.status in (NO_CLAIMS, NOT_ADDRESSED, FAILED) and self.score is not None:
            raise ValueError(f"a {self.status} result has no score, got {self.score!r}")

    @classmethod
    def scored(cls, judgements: Sequence[ClaimJudgement], round_digits: int | None = None,
               ignored: Sequence[str] = ()) -> "MetricResult":
        if not judgements:
            return cls(NOT_ADDRESSED, None, ignored_claims=list(ignored)) if ignored else cls.no_claims()
        return cls(SCORED, mean_or_none([j.score for j in judgements], round_digits), list(judgements),
                   round_digits=round_digits, ignored_claims=list(ignored))

    @classmethod
    def no_claims(cls) -> "MetricResult":
        return cls(NO_CLAIMS, None)

    @classmethod
    def blank_prediction(cls, claims: Sequence[str] = (), excluded: bool = False) -> "MetricResult":
        """0.0 with every given claim scored 0, or (excluded=True) no score: left out of the means."""
        if excluded:
            return cls(BLANK_PREDICTION, None)
        return cls(BLANK_PREDICTION, 0.0, [ClaimJudgement(c, 0.0, BLANK_EXPLANATION) for c in claims])

    @classmethod
    def failed(cls, error: str, stage: str, attempts: int | None = None) -> "MetricResult":
        return cls(FAILED, None, error=error, stage=stage, attempts=attempts)

    def to_dict(self) -> dict:
        data = {"status": self.status, "score": self.score, "claims": [c.to_dict() for c in self.claims],
                "error": self.error, "stage": self.stage, "attempts": self.attempts}
        if self.round_digits is not None:
            data["round_digits"] = self.round_digits
        if self.ignored_claims:
            data["ignored_claims"] = list(self.ignored_claims)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "MetricResult":
        return cls(status=data["status"], score=data["score"],
                   claims=[ClaimJudgement.from_dict(c) for c in data.get("claims") or []],
                   error=data.get("error"), stage=data.get("stage"), attempts=data.get("attempts"),
                   round_digits=data.get("round_digits"), ignored_claims=list(data.get("ignored_claims") or []))


def aggregate_metric(results: Iterable[MetricResult], round_digits: int | None = None) -> dict:
    """Group statistics for one metric: the mean over items that have a score (rounded to `round_digits`
    places when given, as the official stage 3), and every status counted."""
    counts = {status: 0 for status in STATUSES}
    values = []
    for result in results:
        counts[result.status] += 1
        if result.score is not None:
            values.append(result.score)
    return {"mean": mean_or_none(values, round_digits), "n_items": sum(counts.values()),
            "n_scored": len(values), "n_failed": counts[FAILED], "n_no_claims": counts[NO_CLAIMS],
            "n_blank_prediction": counts[BLANK_PREDICTION], "n_not_addressed": counts[NOT_ADDRESSED]}
