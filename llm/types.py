"""Types shared by the LLM client and its callers: prompts with their schemas, results, failures, costs.

A `Prompt` carries its system text, the JSON schema of its reply, a `parse` function that validates the
decoded reply, and a version that is stored on every row generated with it (and keys the cache). A
`verbatim` prompt is sent exactly as written (no response_format, no schema note appended): for prompts
that are a specification, such as the official WSI-Metric prompts; its optional `decode` turns the reply
text into the value `parse` checks (default: `decode_json_reply`, which refuses JSON nested deeper than
`common.text_files.max_json_depth()`).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Generic, TypeVar

from common.text_files import JsonNestingError, loads_json
from llm.errors import ReplyError

T = TypeVar("T")
CHARS_PER_TOKEN = 4.0  # the dry run's token estimate; real counts come from the server's `usage`


@dataclass(frozen=True)
class Prompt(Generic[T]):
    """A prompt beside its output schema and version. `parse` validates the decoded JSON reply and
    returns the value (raising `ReplyError`); it must accept what `schema` describes."""

    name: str
    version: str
    system: str
    schema: dict
    parse: Callable[[Any], T]
    max_output_tokens: int = 1024
    verbatim: bool = False                              # send `system` as is: no response_format, no schema
    decode: Callable[[str], Any] | None = None          # reply text -> value for `parse` (None: JSON)

    def decode_reply(self, text: str) -> Any:
        return (self.decode or decode_json_reply)(text)


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False  # True when the server returned no `usage` and counts were estimated


@dataclass
class LLMResult(Generic[T]):
    value: T
    raw: str
    cached: bool
    usage: Usage
    attempts: int
    cache_key: str


@dataclass
class LLMFailure:
    error: str
    attempts: int
    cache_key: str
    raw: str | None = None  # the last (invalid) reply, when there was one


@dataclass
class CostEstimate:
    n_requests: int
    n_cached: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    note: str = f"approximate: ~{CHARS_PER_TOKEN:g} characters per token; output at each prompt's maximum"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunStats:
    requests_sent: int = 0
    cache_hits: int = 0
    retries: int = 0
    invalid_replies: int = 0
    failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def to_dict(self, prices: tuple[float, float] | None = None) -> dict:
        data = {name: getattr(self, name) for name in ("requests_sent", "cache_hits", "retries",
                                                       "invalid_replies", "failures", "input_tokens",
                                                       "output_tokens")}
        data["cost_usd"] = cost_usd(self.input_tokens, self.output_tokens, prices)
        return data


def cost_usd(input_tokens: int, output_tokens: int, prices: tuple[float, float] | None) -> float | None:
    if prices is None:
        return None
    return input_tokens / 1e6 * prices[0] + output_tokens / 1e6 * prices[1]


def estimate_tokens(text: str) -> int:
    return max(1, int(len(text) / CHARS_PER_TOKEN + 0.5))


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def decode_json_reply(text: str) -> Any:
    """The JSON value in a reply: bare, inside a ``` fence, or the outermost [...] / {...} span."""
    if text is None or not text.strip():
        raise ReplyError("the reply is empty")
    candidate = _FENCE.match(text)
    body = candidate.group(1) if candidate else text.strip()
    try:
        return loads_json(body)
    except JsonNestingError as exc:
        raise ReplyError(f"the reply is {exc}") from None
    except json.JSONDecodeError:
        pass
    for opener, closer in (("[", "]"), ("{", "}")):
        start, end = body.find(opener), body.rfind(closer)
        if 0 <= start < end:
            try:
                return loads_json(body[start:end + 1])
            except JsonNestingError as exc:
                raise ReplyError(f"the reply is {exc}") from None
            except json.JSONDecodeError:
                continue
    raise ReplyError(f"the reply is not valid JSON: {text[:200]!r}")
