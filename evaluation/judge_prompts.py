"""The `strict` metric version's four judge prompts beside their output schemas, strict parsers and
`PROMPT_VERSION` (`--metric-version strict`; the default, `official`, uses the official prompts verbatim:
evaluation/official_prompts.py; evaluation/metric_versions.py compares the two).

The instructions follow the official WSI-Metric scripts (github.com/yu5-kim/WSI-LLaVA, WSI-Metric/):
`WSI-Precision_stage1_extract_claims.py` (claims from the reference), `WSI-Precision_stage2_evaluate_claims.py`
(the prediction judged per reference claim), `WSI-Relevance_stage_1.py` (claims from the prediction) and
`WSI-Relevance_stage_2.py` (the reference judged per prediction claim). The instruction texts are the
official ones verbatim except for these differences, all on purpose:
- the reference-claims prompt receives the question as well as the answer (the official prompt asks to
  keep only claims that answer the question but its script never sends the question);
- precision scoring, criterion 0: "(or does not mention it)" is added, as the paper defines 0 as
  "incorrect or absent"; the official prompt says only "completely incorrect regarding the claim";
- relevance scoring: "A claim that the ground truth answer does not address scores 0." replaces the
  official "Ignore Unmentioned Claims: Do not evaluate claims that are not addressed ..." (skipped claims
  would silently drop out of the mean and inflate WSI-Relevance);
- output sections: claims "as a JSON list" (official: "as a list"), with "If nothing in the text
  qualifies as a claim, output []."; evaluations as a JSON list, exactly one per claim in the given order,
  the score one of the four numbers (the official prompt asks for "a list of dictionaries in plain text
  format (not JSON)" and then calls json.loads on the reply); both may be wrapped in an object (below);
- user messages: "Claims:\n<JSON list>\n\nPathology dialogue response:\n<answer>" (precision) and
  "Claims:\n<JSON list>\n\nGround truth answer:\n<reference>" (relevance), where the official scripts
  send f"claims:{python list repr} \n pathology dialogue responses:{answer}" and
  f"claims:{claims} \n ground truth answer:{text}"; the claims prompts send the text as the official
  ones do (plus the question, above);
- requests: temperature 0 and a seed (the official scripts set neither); replies are parsed strictly:
  a JSON array of non-empty strings; a JSON array of {claim, explanation, score} with exactly one entry
  per claim, in order (an entry echoing another claim's exact text means the judge reordered them), and
  score in {1, 0.7, 0.3, 0}; anything else is retried, then recorded as a
  failure (the official scripts turn an unparsable reply into an empty list, i.e. a silently dropped
  item). When the server supports structured output the same arrays arrive wrapped as
  {"claims": [...]} / {"evaluations": [...]} (strict JSON schemas need an object at the top); both
  shapes are accepted.

Change any prompt text -> bump `PROMPT_VERSION` (it keys the judge cache and is stored on every score).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from llm.types import Prompt
from llm.errors import ReplyError
from evaluation.claim_scores import validate_scale_score

PROMPT_VERSION = "wsi-metric-2025.1+strict-2026-11.1"

_CLAIMS_OUTPUT = """
Output Format: Present the extracted claims as a JSON list in the following format:
["claim1", "claim2", "claim3", ...]
(If you are asked for a JSON object instead, put that list under the key "claims".)
If nothing in the text qualifies as a claim, output [].
"""

# Source: WSI-Precision_stage1_extract_claims.py PROMPT_TEMPLATE (official), plus the output note above.
REFERENCE_CLAIMS_SYSTEM = """You are an AI assistant specialized in processing pathological diagnosis Q&A pairs. I will provide you with a pathology diagnosis question and its corresponding answer.

Your task is to:
Claims Extraction:
    • Carefully analyze the answer and remove any unnecessary information that is not directly relevant to the question.
    • Only extract claims that directly address the question. Discard any information that does not directly answer or pertain to the question.
    • Divide the refined answer into several distinct and granular claims.
    • Keep closely related information together in the same claim to preserve context and meaning. Do not split sentences or ideas that are logically connected.
    • Break down complex sentences into smaller, individual claims only if it does not disrupt the logical flow or separate connected ideas.
    • Ensure there is no omission or repetition among the claims.

Guidelines:
    • Only output the claims without including any additional text or explanations.
    • Each claim should be concise and represent a single fact or point directly related to the question.
    • Maintain the integrity of statements that are contextually connected.
""" + _CLAIMS_OUTPUT

# Source: WSI-Relevance_stage_1.py PROMPT_TEMPLATE (official), plus the output note above.
PREDICTION_CLAIMS_SYSTEM = """You are an AI assistant specialized in processing pathological diagnosis texts. I will provide you with a pathology diagnosis text.

Your task is to:

Claims Extraction:
    • Divide the text into several distinct and granular claims.
    • Keep closely related information together in the same claim to preserve context and meaning. Do not split sentences or ideas that are logically connected.
    • Break down complex sentences into smaller, individual claims only if it does not disrupt the logical flow or separate connected ideas.
    • Ensure there is no omission or repetition among the claims.

Guidelines:
    • Only output the claims without including any additional text or explanations.
    • Each claim should be concise and represent a single fact or point.
    • Maintain the integrity of statements that are contextually connected.
""" + _CLAIMS_OUTPUT

_SCORES_OUTPUT = """
Output Requirements:
Output one evaluation per claim, in the order the claims are given, as a JSON list in the following format:
[
    {
        "claim": "Original claim1",
        "explanation": "Explanation for the score",
        "score": 1 or 0.7 or 0.3 or 0
    },
    ...
]
The score must be exactly one of the numbers 1, 0.7, 0.3 or 0. (If you are asked for a JSON object
instead, put that list under the key "evaluations".)
"""

# Source: WSI-Precision_stage2_evaluate_claims.py EVALUATION_PROMPT (official); output section made strict.
PRECISION_SCORING_SYSTEM = """Please act as an impartial judge and evaluate the correctness of the AI assistant's pathology dialogue for each claim based on the following scoring criteria. Provide an explanation for each evaluation and assign a score.

**Scoring Criteria:**
- **1**: The information in the pathology dialogue is completely correct regarding the claim.
- **0.7**: The information is mostly correct and closely aligns with the claim.
- **0.3**: The claim is mentioned but contains errors in the core content (e.g., mistakes in differentiation degree or malignancy).
- **0**: The information in the pathology dialogue is completely incorrect regarding the claim (or does not mention it).
""" + _SCORES_OUTPUT

# Source: WSI-Relevance_stage_2.py EVALUATION_PROMPT (official); output section made strict.
RELEVANCE_SCORING_SYSTEM = """Please act as an impartial judge and evaluate the relevance of the original ground truth answer to each claim derived from the model's answer. Provide an explanation for each evaluation and assign a score based on the following criteria.

Scoring Criteria:
- **1**: The content in the ground truth answer is completely relevant to the claim.
- **0.7**: The content is mostly relevant but has minor omissions or deviations.
- **0.3**: The content is partially relevant with significant omissions or irrelevant information.
- **0**: The content in the ground truth answer is not relevant to the claim.

Evaluation Guidelines:
    • Focus on Relevance: Assess how well the content in the ground truth answer pertains to the claim derived from the model's answer.
    • Use Partial Credit: Utilize intermediate scores (0.7 and 0.3) to reflect varying degrees of relevance.
    • A claim that the ground truth answer does not address scores 0.
""" + _SCORES_OUTPUT

CLAIMS_SCHEMA = {"type": "object", "properties": {"claims": {"type": "array", "items": {"type": "string"}}},
                 "required": ["claims"], "additionalProperties": False}
SCORES_SCHEMA = {"type": "object", "properties": {"evaluations": {"type": "array", "items": {
    "type": "object",
    "properties": {"claim": {"type": "string"}, "explanation": {"type": "string"},
                   "score": {"type": "number", "enum": [1, 0.7, 0.3, 0]}},
    "required": ["claim", "explanation", "score"], "additionalProperties": False}}},
    "required": ["evaluations"], "additionalProperties": False}


def unwrap(obj: Any, key: str) -> Any:
    """A reply's list, given as the list itself or as an object with the single key `key`."""
    if isinstance(obj, dict):
        if set(obj) != {key}:
            raise ReplyError(f"expected a JSON array (or an object with the single key {key!r}), "
                             f"got an object with keys {sorted(obj)}")
        return obj[key]
    return obj


def claim_list(obj: Any) -> list[str]:
    """A JSON array of non-empty claim strings (or {"claims": [...]}), kept as written; [] is valid."""
    claims = unwrap(obj, "claims")
    if not isinstance(claims, list):
        raise ReplyError(f"expected a JSON array of claim strings, got {type(claims).__name__}")
    for index, claim in enumerate(claims):
        if not isinstance(claim, str) or not claim.strip():
            raise ReplyError(f"claim {index} is not a non-empty string: {claim!r}")
    return list(claims)


def parse_claims(obj: Any) -> list[str]:
    """`claim_list`, each claim stripped (the strict version)."""
    return [claim.strip() for claim in claim_list(obj)]


def _same_claim_text(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .;:")


def parse_scores(obj: Any, n_claims: int | None = None, claims: list[str] | None = None) -> list[dict]:
    """A JSON array of {claim, explanation, score} (or {"evaluations": [...]}), one per claim, in order.

    With `claims`, an evaluation that echoes ANOTHER claim's text exactly (not its own) means the judge
    reordered them: invalid (scores are matched to claims by position). Reworded echoes are accepted."""
    if claims is not None:
        n_claims = len(claims)
    entries = unwrap(obj, "evaluations")
    if not isinstance(entries, list):
        raise ReplyError(f"expected a JSON array of evaluations, got {type(entries).__name__}")
    if n_claims is not None and len(entries) != n_claims:
        raise ReplyError(f"expected {n_claims} evaluation(s), one per claim, got {len(entries)}")
    parsed = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"claim", "explanation", "score"}:
            keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise ReplyError(f"evaluation {index} must have exactly the keys claim, explanation, score; got {keys}")
        if not isinstance(entry["claim"], str) or not isinstance(entry["explanation"], str):
            raise ReplyError(f"evaluation {index}: claim and explanation must be strings")
        try:
            score = validate_scale_score(entry["score"])
        except ValueError as exc:
            raise ReplyError(f"evaluation {index}: {exc}") from exc
        parsed.append({"claim": entry["claim"], "explanation": entry["explanation"], "score": score})
    if claims is not None:
        given = [_same_claim_text(c) for c in claims]
        for index, entry in enumerate(parsed):
            echo = _same_claim_text(entry["claim"])
            if echo != given[index] and echo in given:
                raise ReplyError(f"evaluation {index} echoes claim {given.index(echo)}: the evaluations are out "
                                 "of order (they must follow the claims' order)")
    return parsed


REFERENCE_CLAIMS = Prompt(name="wsi_precision.reference_claims", version=PROMPT_VERSION,
                          system=REFERENCE_CLAIMS_SYSTEM, schema=CLAIMS_SCHEMA, parse=parse_claims,
                          max_output_tokens=1024)
PREDICTION_CLAIMS = Prompt(name="wsi_relevance.prediction_claims", version=PROMPT_VERSION,
                           system=PREDICTION_CLAIMS_SYSTEM, schema=CLAIMS_SCHEMA, parse=parse_claims,
                           max_output_tokens=1024)
PRECISION_SCORING = Prompt(name="wsi_precision.scoring", version=PROMPT_VERSION,
                           system=PRECISION_SCORING_SYSTEM, schema=SCORES_SCHEMA, parse=parse_scores,
                           max_output_tokens=2048)
RELEVANCE_SCORING = Prompt(name="wsi_relevance.scoring", version=PROMPT_VERSION,
                           system=RELEVANCE_SCORING_SYSTEM, schema=SCORES_SCHEMA, parse=parse_scores,
                           max_output_tokens=2048)


def for_claims(prompt: Prompt, claims: list[str] | int) -> Prompt:
    """The scoring prompt whose parser also checks one evaluation per claim, in the claims' order. Same name,
    version, system and schema, so the same cache key (the cache key never includes the parser)."""
    if isinstance(claims, int):
        return replace(prompt, parse=lambda obj: parse_scores(obj, claims))
    return replace(prompt, parse=lambda obj: parse_scores(obj, claims=list(claims)))


def reference_claims_user(question: str, reference: str) -> str:
    return f"Question:\n{question}\n\nAnswer:\n{reference}"


def prediction_claims_user(prediction: str) -> str:
    return prediction


def precision_scoring_user(claims: list[str], prediction: str) -> str:
    return (f"Claims:\n{json.dumps(claims, ensure_ascii=False)}\n\n"
            f"Pathology dialogue response:\n{prediction}")


def relevance_scoring_user(claims: list[str], reference: str) -> str:
    return f"Claims:\n{json.dumps(claims, ensure_ascii=False)}\n\nGround truth answer:\n{reference}"
