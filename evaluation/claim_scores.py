"""WSI-Precision / WSI-Relevance arithmetic: per-claim scores -> item score -> group means. Pure, no I/O.

Definitions (../shared/notes/wsi-llava.md, the paper and the official WSI-Metric stage-3 scripts):
- every claim gets one score from the scale 1 / 0.7 / 0.3 / 0; any other value is invalid;
- item score = mean over the item's claims (not rounded; the official script rounds items to 3 places);
- task score and capability score = mean over the items of that task / capability; overall = mean over
  all items (never a mean of task means).

The rule for items without claims (documented in evaluation/README.md):
- `no_claims`: the claim extraction validly returned an empty list (the text asserts nothing that
  answers the question). The item has no score for that metric and is left out of the means, as the
  official scripts do (their `None` entries), but it is counted per group as `n_no_claims`.
- `blank_prediction`: the prediction is empty or whitespace. It scores 0.0 on BOTH metrics: on
  WSI-Precision every reference claim is scored 0 without a judge call ("absent" is 0 on the scale);
  on WSI-Relevance an answer that asserts nothing is not rewarded by being left out.
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
FAILED = "failed"
STATUSES = (SCORED, NO_CLAIMS, BLANK_PREDICTION, FAILED)
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


def mean_or_none(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


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

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status == SCORED:
            expected = mean_or_none([c.score for c in self.claims])
            if expected is None or self.score is None or abs(self.score - expected) > 1e-9:
                raise ValueError(f"a scored result needs claims and score = their mean ({expected}), "
                                 f"got {self.score!r}")
        elif self.status == BLANK_PREDICTION and self.score != 0.0:
            raise ValueError(f"a blank prediction scores 0.0, got {self.score!r}")
        elif self.status in (NO_CLAIMS, FAILED) and self.score is not None:
            raise ValueError(f"a {self.status} result has no score, got {self.score!r}")

    @classmethod
    def scored(cls, judgements: Sequence[ClaimJudgement]) -> "MetricResult":
        if not judgements:
            return cls.no_claims()
        return cls(SCORED, mean_or_none([j.score for j in judgements]), list(judgements))

    @classmethod
    def no_claims(cls) -> "MetricResult":
        return cls(NO_CLAIMS, None)

    @classmethod
    def blank_prediction(cls, claims: Sequence[str] = ()) -> "MetricResult":
        return cls(BLANK_PREDICTION, 0.0, [ClaimJudgement(c, 0.0, BLANK_EXPLANATION) for c in claims])

    @classmethod
    def failed(cls, error: str, stage: str, attempts: int | None = None) -> "MetricResult":
        return cls(FAILED, None, error=error, stage=stage, attempts=attempts)

    def to_dict(self) -> dict:
        return {"status": self.status, "score": self.score, "claims": [c.to_dict() for c in self.claims],
                "error": self.error, "stage": self.stage, "attempts": self.attempts}

    @classmethod
    def from_dict(cls, data: dict) -> "MetricResult":
        return cls(status=data["status"], score=data["score"],
                   claims=[ClaimJudgement.from_dict(c) for c in data.get("claims") or []],
                   error=data.get("error"), stage=data.get("stage"), attempts=data.get("attempts"))


def aggregate_metric(results: Iterable[MetricResult]) -> dict:
    """Group statistics for one metric: the mean over items that have a score, and every status counted."""
    counts = {status: 0 for status in STATUSES}
    values = []
    for result in results:
        counts[result.status] += 1
        if result.score is not None:
            values.append(result.score)
    return {"mean": mean_or_none(values), "n_items": sum(counts.values()),
            "n_scored": counts[SCORED] + counts[BLANK_PREDICTION], "n_failed": counts[FAILED],
            "n_no_claims": counts[NO_CLAIMS], "n_blank_prediction": counts[BLANK_PREDICTION]}
