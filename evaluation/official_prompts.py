"""The official WSI-Metric judge prompts, VERBATIM, with the official user-message formats and reply readers.

These prompts define the metric: they are quoted verbatim, as specification, from the official release
github.com/yu5-kim/WSI-LLaVA at commit f9ac92194f970f5912c666a2ce6d855e71c68c47 (`WSI-Metric/`, by the
WSI-LLaVA authors), byte for byte, including the leading and trailing newlines and the trailing space
after "corresponding answer." (the sha256 of each text is checked by tests/evaluation/test_official_metric.py;
benchmarks/metric_parity.py compares them with a checkout of the release). They are sent as the system
message exactly as written (`Prompt.verbatim`: no response_format, no schema note), as the scripts do.

User messages, as the scripts build them:
- WSI-Precision stage 1 (claims of the ground truth): the ground-truth answer alone (the prompt mentions
  the question, but `extract_claims(client, PROMPT_TEMPLATE, text, model)` sends only the answer);
- WSI-Relevance stage 1 (claims of the model answer): the model answer alone;
- WSI-Precision stage 2: f"claims:{claims} \n pathology dialogue responses:{model_response}";
- WSI-Relevance stage 2: f"claims:{claims} \n ground truth answer:{ground_truth_text}";
  where `claims` is the Python list of the claim strings exactly as the judge returned them, so it
  appears as its repr (single quotes), as in the scripts.

Reading the replies (the scripts call `json.loads` and turn any failure into an empty, silently dropped
result; here a reply that cannot be read is invalid: the client retries it, then the item's metric is
`failed`, left out of the means, counted and listed):
- decoding: JSON; else the JSON inside a ```json fence or between the outermost brackets; else a Python
  literal (single quotes: the prompt asks for "a list of dictionaries in plain text format (not JSON)");
- claims: a list of non-blank strings (or {"claims": [...]}) kept exactly as written (they are echoed
  into the stage-2 message); an empty list is valid (no claims);
- evaluations: a list of objects with a numeric "score" on the scale 1 / 0.7 / 0.3 / 0 (or
  {"evaluations": [...]}); "claim" and "explanation" are read when present. WSI-Precision needs one
  evaluation per claim. WSI-Relevance follows "Ignore Unmentioned Claims": the judge may leave claims out,
  or give them a null / non-numeric score ("N/A"); those claims are not evaluated (`ignored_claims`) and
  leave the item's mean, as in the scripts, where stage 3 averages only numeric scores. A numeric string
  ("0.7"), a boolean, a number off the scale or more evaluations than claims is invalid.

Change any text -> bump PROMPT_VERSION (it keys the judge cache and is stored on every score row).
"""

from __future__ import annotations

import ast
import json
import math
from dataclasses import replace
from typing import Any

from llm.errors import ReplyError
from llm.types import Prompt, decode_json_reply
from evaluation.claim_scores import validate_scale_score
from evaluation.judge_prompts import claim_list, unwrap

OFFICIAL_REPOSITORY = "yu5-kim/WSI-LLaVA"
OFFICIAL_COMMIT = "f9ac92194f970f5912c666a2ce6d855e71c68c47"
PROMPT_VERSION = "wsi-metric-f9ac921-verbatim.1"

# WSI-Metric/WSI-Precision_stage1_extract_claims.py `PROMPT_TEMPLATE`, lines 11-30 (sha256 cc15a18663c93f0b...).
REFERENCE_CLAIMS_SYSTEM = """
You are an AI assistant specialized in processing pathological diagnosis Q&A pairs. I will provide you with a pathology diagnosis question and its corresponding answer. 

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

Output Format: Present the extracted claims as a list in the following format:
["claim1", "claim2", "claim3", ...]
"""

# WSI-Metric/WSI-Relevance_stage_1.py `PROMPT_TEMPLATE`, lines 12-30 (sha256 dedae5d588cd6f88...).
PREDICTION_CLAIMS_SYSTEM = """
You are an AI assistant specialized in processing pathological diagnosis texts. I will provide you with a pathology diagnosis text.

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

Output Format: Present the extracted claims as a list in the following format:
["claim1", "claim2", "claim3", ...]
"""

# WSI-Metric/WSI-Precision_stage2_evaluate_claims.py `EVALUATION_PROMPT`, lines 12-38 (sha256 a6e5ea73c5f9e1df...).
PRECISION_SCORING_SYSTEM = """
Please act as an impartial judge and evaluate the correctness of the AI assistant's pathology dialogue for each claim based on the following scoring criteria. Provide an explanation for each evaluation and assign a score.

**Scoring Criteria:**
- **1**: The information in the pathology dialogue is completely correct regarding the claim.
- **0.7**: The information is mostly correct and closely aligns with the claim.
- **0.3**: The claim is mentioned but contains errors in the core content (e.g., mistakes in differentiation degree or malignancy).
- **0**: The information in the pathology dialogue is completely incorrect regarding the claim.

Output Requirements:

Please output your evaluations as a list of dictionaries in plain text format (not JSON). The format should be as follows:

[
    {
        "claim": "Original claim1",
        "explanation": "Explanation for the score",
        "score": 1 or 0.7 or 0.3 or 0
    },
    {
        "claim": "Original claim2",
        "explanation": "Explanation for the score",
        "score": 1 or 0.7 or 0.3 or 0
    },
    ...
]
"""

# WSI-Metric/WSI-Relevance_stage_2.py `EVALUATION_PROMPT`, lines 11-40 (sha256 51684b338fb5171f...).
RELEVANCE_SCORING_SYSTEM = """
Please act as an impartial judge and evaluate the relevance of the original ground truth answer to each claim derived from the model's answer. Provide an explanation for each evaluation and assign a score based on the following criteria.

Scoring Criteria:
- **1**: The content in the ground truth answer is completely relevant to the claim.
- **0.7**: The content is mostly relevant but has minor omissions or deviations.
- **0.3**: The content is partially relevant with significant omissions or irrelevant information.
- **0**: The content in the ground truth answer is not relevant to the claim.

Evaluation Guidelines:
    • Focus on Relevance: Assess how well the content in the ground truth answer pertains to the claim derived from the model's answer.
    • Use Partial Credit: Utilize intermediate scores (0.7 and 0.3) to reflect varying degrees of relevance.
    • Ignore Unmentioned Claims: Do not evaluate claims that are not addressed in the ground truth answer.

Output Requirements:
Please output your evaluations as a list of dictionaries in plain text format (not JSON). The format should be as follows:
[
    {
        "claim": "Original claim1",
        "explanation": "Explanation for the score",
        "score": 1 or 0.7 or 0.3 or 0
    },
    {
        "claim": "Original claim2",
        "explanation": "Explanation for the score",
        "score": 1 or 0.7 or 0.3 or 0
    },
    ...
]
"""


# The official scripts send no response_format; these schemas describe what the readers accept and are
# kept beside the prompts (house rule), never sent.
CLAIMS_SCHEMA = {"type": "array", "items": {"type": "string"}}
SCORES_SCHEMA = {"type": "array", "items": {"type": "object", "properties": {
    "claim": {"type": "string"}, "explanation": {"type": "string"},
    "score": {"type": ["number", "null"], "enum": [1, 0.7, 0.3, 0, None]}}, "required": ["score"]}}


def decode_reply(text: str) -> Any:
    """JSON (bare, fenced, or the outermost bracketed span), else a Python literal list/dict."""
    try:
        return decode_json_reply(text)
    except ReplyError as json_error:
        body = (text or "").strip()
        start, end = body.find("["), body.rfind("]")
        candidates = [body] + ([body[start:end + 1]] if 0 <= start < end else [])
        for candidate in candidates:
            try:
                value = ast.literal_eval(candidate)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, (list, dict)):
                return value
        raise json_error


def parse_claims(obj: Any) -> list[str]:
    """A list of non-blank claim strings, kept exactly as the judge wrote them (the official scripts pass
    them on as they are); [] is valid."""
    return claim_list(obj)


def _entry_score(entry: dict, index: int, may_skip: bool) -> float | None:
    value = entry.get("score")
    if may_skip and (value is None or (isinstance(value, str) and not _numeric(value))):
        return None                      # not evaluated ("Ignore Unmentioned Claims")
    try:
        return validate_scale_score(value)
    except ValueError as exc:
        raise ReplyError(f"evaluation {index}: {exc}") from exc


def _numeric(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def parse_scores(obj: Any, claims: list[str], may_skip: bool) -> list[dict]:
    """[{claim, explanation, score (None = not evaluated)}]: one per claim (precision), or at most one per
    claim with claims left out or unscored allowed (relevance, `may_skip`)."""
    entries = unwrap(obj, "evaluations")
    if not isinstance(entries, list):
        raise ReplyError(f"expected a list of evaluations, got {type(entries).__name__}")
    if len(entries) > len(claims) or (not may_skip and len(entries) != len(claims)):
        raise ReplyError(f"expected {'at most ' if may_skip else ''}{len(claims)} evaluation(s), one per claim, "
                         f"got {len(entries)}")
    parsed = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "score" not in entry:
            raise ReplyError(f"evaluation {index} must be an object with a score, got {entry!r:.100}")
        claim, explanation = entry.get("claim", ""), entry.get("explanation", "")
        parsed.append({"claim": claim if isinstance(claim, str) else json.dumps(claim),
                       "explanation": explanation if isinstance(explanation, str) else json.dumps(explanation),
                       "score": _entry_score(entry, index, may_skip)})
    return parsed


def _same_text(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .;:")


def pair_with_claims(claims: list[str], entries: list[dict]) -> tuple[list[tuple[str, dict]], list[str]]:
    """Which claim each evaluation is about: the claim whose text it echoes, else the next unpaired claim
    in order. Returns ((claim, entry) for the evaluated claims, the claims not evaluated)."""
    unpaired = list(range(len(claims)))
    pairs: dict[int, dict] = {}
    pending = []
    for entry in entries:
        echo = _same_text(entry["claim"])
        match = next((i for i in unpaired if _same_text(claims[i]) == echo), None)
        if match is None:
            pending.append(entry)
        else:
            unpaired.remove(match)
            pairs[match] = entry
    for entry in pending:
        pairs[unpaired.pop(0)] = entry
    evaluated = [(claims[i], pairs[i]) for i in sorted(pairs) if pairs[i]["score"] is not None]
    ignored = [claims[i] for i in range(len(claims)) if i not in pairs or pairs[i]["score"] is None]
    return evaluated, ignored


def _prompt(name: str, system: str, schema: dict, parse, max_output_tokens: int) -> Prompt:
    return Prompt(name=name, version=PROMPT_VERSION, system=system, schema=schema, parse=parse,
                  max_output_tokens=max_output_tokens, verbatim=True, decode=decode_reply)


REFERENCE_CLAIMS = _prompt("official.wsi_precision.reference_claims", REFERENCE_CLAIMS_SYSTEM, CLAIMS_SCHEMA,
                           parse_claims, 1024)
PREDICTION_CLAIMS = _prompt("official.wsi_relevance.prediction_claims", PREDICTION_CLAIMS_SYSTEM, CLAIMS_SCHEMA,
                            parse_claims, 1024)
PRECISION_SCORING = _prompt("official.wsi_precision.scoring", PRECISION_SCORING_SYSTEM, SCORES_SCHEMA,
                            lambda obj: parse_scores(obj, [], may_skip=False), 2048)
RELEVANCE_SCORING = _prompt("official.wsi_relevance.scoring", RELEVANCE_SCORING_SYSTEM, SCORES_SCHEMA,
                            lambda obj: parse_scores(obj, [], may_skip=True), 2048)


def for_claims(prompt: Prompt, claims: list[str]) -> Prompt:
    """The scoring prompt whose reader knows the claims (same name, version, system: same cache key)."""
    may_skip = prompt.name == RELEVANCE_SCORING.name
    return replace(prompt, parse=lambda obj: parse_scores(obj, list(claims), may_skip=may_skip))


def reference_claims_user(question: str, reference: str) -> str:
    return reference                      # WSI-Precision stage 1 sends the ground-truth answer alone


def prediction_claims_user(prediction: str) -> str:
    return prediction


def precision_scoring_user(claims: list[str], prediction: str) -> str:
    return f"claims:{list(claims)} \n pathology dialogue responses:{prediction}"


def relevance_scoring_user(claims: list[str], reference: str) -> str:
    return f"claims:{list(claims)} \n ground truth answer:{reference}"
