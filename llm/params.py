"""Chat Completions parameters a model may refuse, and the memory of which ones it refused in this run.

Reasoning models (OpenAI o-series, gpt-5, gpt-5-mini, the official WSI-Metric scripts' default judge)
answer HTTP 400 to `temperature` other than 1, to `seed` and to `max_tokens`, with an OpenAI error body

    {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use
               'max_completion_tokens' instead.", "type": "invalid_request_error", "param": "max_tokens",
               "code": "unsupported_parameter"}}

(`"code": "unsupported_value"` for a temperature it does not support). `refused_parameter(exc)` reads that
reply; `RefusedParameters` remembers it per model for the run so that every later request is sent
without it at once. Only the server's refusal decides: no model name is special-cased.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("llm.client")

# parameter -> the name it is sent under instead (None: omitted)
ADAPTABLE_PARAMETERS: dict[str, str | None] = {"temperature": None, "seed": None,
                                               "max_tokens": "max_completion_tokens"}
REFUSAL_CODES = ("unsupported_parameter", "unsupported_value")
# Added to a prompt's reply limit when it goes out as max_completion_tokens: a reasoning model's hidden
# reasoning tokens count against that limit, and a reply cut there arrives empty.
REASONING_TOKENS_ALLOWANCE = 8192


def refused_parameter(exc) -> tuple[str, str] | None:
    """(param, code) when an SDK error says the model refused one of `ADAPTABLE_PARAMETERS`, else None."""
    body = getattr(exc, "body", None)
    body = body.get("error", body) if isinstance(body, dict) else {}
    if not isinstance(body, dict):
        body = {}
    param = getattr(exc, "param", None) or body.get("param")
    code = getattr(exc, "code", None) or body.get("code")
    if param in ADAPTABLE_PARAMETERS and code in REFUSAL_CODES:
        return param, code
    return None


class RefusedParameters:
    """Thread-safe: model -> the adaptable parameters it refused during this run."""

    def __init__(self) -> None:
        self._refused: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def of(self, model: str) -> set[str]:
        with self._lock:
            return set(self._refused.get(model, ()))

    def add(self, model: str, param: str, code: str, where: str) -> None:
        """Remember a refusal; the first time for (model, param) it is logged."""
        with self._lock:
            known = self._refused.setdefault(model, set())
            if param in known:
                return
            known.add(param)
        instead = ADAPTABLE_PARAMETERS[param]
        log.warning("%s: model %s refused %r (%s); %s for the rest of this run", where, model, param, code,
                    f"sending {instead} instead" if instead else "omitting it")

    def adjustments(self, model: str) -> dict[str, str]:
        """{parameter: what was done instead} for the parameters `model` refused."""
        return {p: (f"sent as {ADAPTABLE_PARAMETERS[p]}" if ADAPTABLE_PARAMETERS[p] else
                    "omitted (the model refused it)") for p in sorted(self.of(model))}
