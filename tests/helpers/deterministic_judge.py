"""A deterministic WSI-Metric judge for the loopback OpenAI-compatible server: replies are a pure function
of the request's messages, so the official WSI-Metric scripts and `evaluate score` can be run against the
same "judge" and their prompts, messages, parsing, skipping and arithmetic compared exactly.

    with OpenAIStandIn(responder=judge_reply) as server: ...      # tests/helpers/openai_server.py

Which prompt (by a sentence of the SYSTEM message; the official prompts and the strict ones share it):
  "pathological diagnosis Q&A pairs" -> reference claims; "pathological diagnosis texts" -> prediction
  claims; "evaluate the correctness" -> precision scoring; "evaluate the relevance" -> relevance scoring.
Claims: the text's sentences (split after . ! ? and white space), as a JSON list; a strict-format
  message ("Question:\\n...\\n\\nAnswer:\\n<answer>") is split after "Answer:\\n".
Scores: the user message in the official format f"claims:{python list} \\n pathology dialogue
  responses:{text}" (or "... \\n ground truth answer:{text}") or the strict one ("Claims:\\n<JSON>\\n\\n
  Pathology dialogue response:\\n<text>"); per claim r = the share of its content words (lowercase
  [a-z0-9]+ words, stop words removed) found in the text: 1 if r >= 0.75, 0.7 if >= 0.5, 0.3 if >= 0.25,
  else 0, in claim order. Relevance, official prompt ("Ignore Unmentioned Claims"): a claim with no content
  word in the ground truth is left out of the reply (not evaluated); with the strict prompt it scores 0.
  With a response_format the list is wrapped as {"claims": [...]} / {"evaluations": [...]}.
Markers in the user message change the reply (and are removed before any of the above):
  "[[JUDGE:FENCED]]" the reply inside a ```json fence; "[[JUDGE:GARBAGE]]" prose without JSON;
  "[[JUDGE:STRSCORE]]" scores as strings ("0.7"); "[[JUDGE:PYTHON]]" a Python literal (single quotes).
Unknown system prompt -> HTTP 400.
"""

from __future__ import annotations

import ast
import json
import re

from tests.helpers.openai_server import Reply

KINDS = (("reference_claims", "pathological diagnosis Q&A pairs"),
         ("prediction_claims", "pathological diagnosis texts"),
         ("precision_scoring", "evaluate the correctness of the AI assistant's pathology dialogue"),
         ("relevance_scoring", "evaluate the relevance of the original ground truth answer"))
MARKERS = ("[[JUDGE:FENCED]]", "[[JUDGE:GARBAGE]]", "[[JUDGE:STRSCORE]]", "[[JUDGE:PYTHON]]")
STOPWORDS = frozenset("""a an the of and or in on at to for with without by from is are was were be been being
this that these those it its as there their which who whom than then into within no not any some can may also
such both each other very""".split())
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9]+")
_OFFICIAL_SEPARATORS = (" \n pathology dialogue responses:", " \n ground truth answer:")
_STRICT = re.compile(r"^Claims:\n(?P<claims>.*?)\n\n(?:Pathology dialogue response|Ground truth answer):\n"
                     r"(?P<text>.*)\Z", re.S)


def kind_of(system: str) -> str | None:
    return next((kind for kind, sentence in KINDS if sentence in system), None)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


def overlap(claim: str, text: str) -> float:
    words = content_words(claim)
    return len(words & content_words(text)) / len(words) if words else 0.0


def scale(r: float) -> float:
    return 1 if r >= 0.75 else 0.7 if r >= 0.5 else 0.3 if r >= 0.25 else 0


def claims_source(user: str) -> str:
    """The text to split into claims: the strict message's answer part, else the whole message."""
    match = re.match(r"^Question:\n.*?\n\nAnswer:\n(?P<answer>.*)\Z", user, re.S)
    return match.group("answer") if match else user


def parse_scoring_user(user: str) -> tuple[list[str], str, str]:
    """(claims, the text they are judged against, "official" | "strict") of a scoring message."""
    if user.startswith("claims:"):
        for separator in _OFFICIAL_SEPARATORS:
            at = user.find(separator)
            if at >= 0:
                value = ast.literal_eval(user[len("claims:"):at])
                return list(value or []), user[at + len(separator):], "official"
    match = _STRICT.match(user)
    if match:
        return json.loads(match.group("claims")), match.group("text"), "strict"
    raise ValueError(f"not a scoring message: {user[:80]!r}")


def _evaluations(kind: str, system: str, user: str) -> list[dict]:
    claims, text, _ = parse_scoring_user(user)
    ignore_unaddressed = kind == "relevance_scoring" and "Ignore Unmentioned Claims" in system
    evaluations = []
    for claim in claims:
        r = overlap(claim, text)
        if ignore_unaddressed and not content_words(claim) & content_words(text):
            continue                                  # not addressed: not evaluated
        evaluations.append({"claim": claim, "explanation": f"{r:.2f} of its content words appear", "score": scale(r)})
    return evaluations


def judge_reply(request: dict) -> str | Reply:
    """The reply to one Chat Completions request (for OpenAIStandIn's `responder`)."""
    messages = request.get("messages") or []
    system = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    user = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
    kind = kind_of(system)
    if kind is None:
        return Reply(status=400, raw_body=json.dumps({"error": {"message": "unrecognised system prompt",
                                                                "type": "invalid_request_error"}}))
    marker = next((m for m in MARKERS if m in user), None)
    for m in MARKERS:
        user = user.replace(m, "")
    if kind.endswith("_claims"):
        key, value = "claims", sentences(claims_source(user))
    else:
        key, value = "evaluations", _evaluations(kind, system, user)
        if marker == "[[JUDGE:STRSCORE]]":
            value = [{**e, "score": str(e["score"])} for e in value]
    if (request.get("response_format") or {}).get("type") in ("json_schema", "json_object"):
        value = {key: value}
    body = json.dumps(value, ensure_ascii=False)
    if marker == "[[JUDGE:FENCED]]":
        return "```json\n" + body + "\n```"
    if marker == "[[JUDGE:GARBAGE]]":
        return "I reviewed the text carefully; every claim is discussed above in prose."
    if marker == "[[JUDGE:PYTHON]]":
        return repr(value)
    return body
