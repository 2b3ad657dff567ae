"""The project's one LLM client: every LLM call (curation and evaluation judges) goes through `LLMClient`.

It talks to any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server) with the official
`openai` SDK and adds what the SDK does not: structured output with a fallback for servers that lack it
(json_schema -> json_object -> plain text parsed as JSON), validated replies, retries with backoff on
429/5xx/timeouts/invalid replies, a concurrency limit, a persistent SQLite cache keyed by
(model, prompt name + version, sampling settings, inputs), token counts and an estimated cost, and a
dry-run estimate that spends nothing. The API key is read from an environment variable at the first
real request; it is never logged, stored or returned, and its value is replaced by "[REDACTED]"
(`llm.redaction`) in every reply before it is parsed, cached or returned, in replies read from the cache,
and in every error and log message (proxies, self-hosted servers and judges may echo it). An HTTP 200
whose body is not a chat completion (a proxy's error page, a captive portal, a body cut short) is retried,
then a failed request saying what came back. In
"auto" structured-output mode a refused request is retried with json_object, then plain text; the
client keeps a lower mode only once a request in it was accepted.

Reasoning models (OpenAI o-series, gpt-5, gpt-5-mini: the official WSI-Metric scripts' default judge)
refuse `temperature` other than 1, `seed` and `max_tokens` in Chat Completions with HTTP 400 and an
error `code` of `unsupported_parameter` / `unsupported_value` naming the `param` (`llm.params`). The
client retries the same request without the parameter (`max_tokens` becomes `max_completion_tokens`,
plus `REASONING_TOKENS_ALLOWANCE` for the hidden reasoning tokens), remembers it for the model for the
rest of the run, logs it once, and reports it in `request_adjustments()`. No model name is special-cased.
Prompts marked `verbatim` are sent exactly as written: no response_format and no schema note, whatever
the structured-output mode.

    settings = LLMSettings(base_url="http://localhost:8000/v1", model="qwen2.5-7b", cache_path="cache.sqlite")
    client = LLMClient(settings)
    result = client.complete(MY_PROMPT, "user text")          # LLMResult, or raises LLMError
    for index, outcome in client.imap_unordered(MY_PROMPT, texts):   # N requests at once
        ...                                                    # LLMResult | LLMFailure
    print(client.estimate(MY_PROMPT, texts))                   # the dry run
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from llm.cache import ResponseCache
from llm.params import REASONING_TOKENS_ALLOWANCE, RefusedParameters, refused_parameter
from llm.redaction import Redactor
from llm.responses import not_a_completion, retry_after, status_text
from llm.types import (
    CostEstimate,
    LLMFailure,
    LLMResult,
    Prompt,
    RunStats,
    T,
    Usage,
    cost_usd,
    estimate_tokens,
)
from llm.errors import LLMConfigError, LLMError, ReplyError

log = logging.getLogger(__name__)

STRUCTURED_OUTPUT_MODES = ("auto", "json_schema", "json_object", "text")
_MODE_ORDER = ("json_schema", "json_object", "text")     # the auto mode's fallbacks, in order

# List prices in USD per 1M tokens (input, output), as published by OpenAI in 2025. Exact model names
# only: an unknown or local model has no price unless --price-input/--price-output are given.
PRICES_PER_1M_USD: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4o-2024-11-20": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5-mini": (0.25, 2.00),
}


@dataclass
class LLMSettings:
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-2024-08-06"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    seed: int | None = 0
    timeout_s: float = 120.0
    max_attempts: int = 4
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    concurrency: int = 4
    cache_path: str | None = None
    structured_output: str = "auto"
    price_input_per_1m_usd: float | None = None
    price_output_per_1m_usd: float | None = None

    def __post_init__(self) -> None:
        if not re.match(r"^https?://", self.base_url):
            raise LLMConfigError(f"base_url must start with http:// or https://, got {self.base_url!r}.")
        if not self.model:
            raise LLMConfigError("model must be set (the model name the endpoint serves).")
        if self.structured_output not in STRUCTURED_OUTPUT_MODES:
            raise LLMConfigError(f"structured_output must be one of {STRUCTURED_OUTPUT_MODES}, "
                                 f"got {self.structured_output!r}.")
        if not 0.0 <= self.temperature <= 2.0:
            raise LLMConfigError(f"temperature must be within [0, 2], got {self.temperature}.")
        if self.max_attempts < 1 or self.concurrency < 1:
            raise LLMConfigError("max_attempts and concurrency must be at least 1.")
        if self.timeout_s <= 0 or self.backoff_initial_s < 0 or self.backoff_max_s < 0:
            raise LLMConfigError("timeout_s must be positive and backoff times non-negative.")
        if (self.price_input_per_1m_usd is None) != (self.price_output_per_1m_usd is None):
            raise LLMConfigError("give both price_input_per_1m_usd and price_output_per_1m_usd, or neither.")

    @property
    def prices(self) -> tuple[float, float] | None:
        if self.price_input_per_1m_usd is not None:
            return (self.price_input_per_1m_usd, self.price_output_per_1m_usd)
        return PRICES_PER_1M_USD.get(self.model)

    def public_dict(self) -> dict:
        """What may be stored beside results: never the key (only the variable's name is kept)."""
        return {"base_url": self.base_url, "model": self.model, "temperature": self.temperature,
                "seed": self.seed, "structured_output": self.structured_output}


class LLMClient:
    def __init__(self, settings: LLMSettings, cache: ResponseCache | None = None) -> None:
        self.settings = settings
        self.cache = cache if cache is not None else ResponseCache(settings.cache_path)
        self.stats = RunStats()
        self._mode = "json_schema" if settings.structured_output == "auto" else settings.structured_output
        self._mode_lock = threading.Lock()
        self._sdk = None
        self._sdk_lock = threading.Lock()
        self._key: str | None = None
        self._refused = RefusedParameters()          # request parameters the model refused (this run)

    # -- keys, cache and estimates -------------------------------------------------------------
    def cache_key(self, prompt: Prompt, user: str) -> str:
        payload = {"model": self.settings.model, "prompt": prompt.name, "version": prompt.version,
                   "system": prompt.system, "schema": prompt.schema, "user": user,
                   "temperature": self.settings.temperature, "seed": self.settings.seed}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()

    def estimate(self, prompt: Prompt, users: Sequence[str]) -> CostEstimate:
        """The dry run: how many requests a run would send, their tokens and cost. Sends nothing."""
        uncached = [u for u in users if self.cache.get(self.cache_key(prompt, u)) is None]
        system_tokens = estimate_tokens(prompt.system + ("" if prompt.verbatim else json.dumps(prompt.schema)))
        input_tokens = sum(system_tokens + estimate_tokens(u) for u in uncached)
        output_tokens = prompt.max_output_tokens * len(uncached)
        return CostEstimate(n_requests=len(uncached), n_cached=len(users) - len(uncached),
                            input_tokens=input_tokens, output_tokens=output_tokens,
                            cost_usd=cost_usd(input_tokens, output_tokens, self.settings.prices))

    def cost_usd(self) -> float | None:
        return cost_usd(self.stats.input_tokens, self.stats.output_tokens, self.settings.prices)

    # -- calls -----------------------------------------------------------------------------------
    def complete(self, prompt: Prompt[T], user: str) -> LLMResult[T]:
        outcome = self.try_complete(prompt, user)
        if isinstance(outcome, LLMFailure):
            raise LLMError(f"{prompt.name}: {outcome.error} (after {outcome.attempts} attempt(s))")
        return outcome

    def try_complete(self, prompt: Prompt[T], user: str) -> LLMResult[T] | LLMFailure:
        """One validated reply (from the cache when possible), or an `LLMFailure` after all retries.
        Configuration errors (missing/rejected key, unknown model) raise `LLMConfigError`."""
        key = self.cache_key(prompt, user)
        hit = self.cache.get(key)
        if hit is not None:
            reply = self.redact(hit.reply)       # a cache written before replies were redacted
            try:
                value = prompt.parse(prompt.decode_reply(reply))
            except ReplyError as exc:  # a parser stricter than the one that validated it: ask again
                log.warning("%s: cached reply no longer validates (%s); requesting a new one", prompt.name,
                            self.redact(str(exc)))
            else:
                self.stats.add(cache_hits=1)
                return LLMResult(value, reply, True, Usage(hit.input_tokens, hit.output_tokens), 0, key)
        last_error, last_raw = "no attempt made", None
        for attempt in range(1, self.settings.max_attempts + 1):
            if attempt > 1:
                self.stats.add(retries=1)
            try:
                raw, usage = self._request(prompt, user)
            except _Retryable as exc:
                last_error = str(exc)
                self._sleep_before_retry(attempt, exc.retry_after_s)
                continue
            except _Fatal as exc:
                self.stats.add(failures=1)
                return LLMFailure(str(exc), attempt, key)
            raw = self.redact(raw)              # before it is parsed, cached or returned: it may echo the key
            try:
                value = prompt.parse(prompt.decode_reply(raw))
            except ReplyError as exc:
                self.stats.add(invalid_replies=1)
                last_error, last_raw = self.redact(f"invalid reply: {exc}"), raw
                log.warning("%s: invalid reply (attempt %d/%d): %s", prompt.name, attempt,
                            self.settings.max_attempts, last_error)
                continue
            self.cache.put(key, prompt.name, prompt.version, self.settings.model, raw,
                           usage.input_tokens, usage.output_tokens)
            return LLMResult(value, raw, False, usage, attempt, key)
        self.stats.add(failures=1)
        return LLMFailure(last_error, self.settings.max_attempts, key, last_raw)

    def imap_unordered(self, prompt: Prompt[T], users: Sequence[str]
                       ) -> Iterator[tuple[int, LLMResult[T] | LLMFailure]]:
        """(index, outcome) as each call finishes, at most `settings.concurrency` at once."""
        if not users:
            return
        with ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="llm") as pool:
            futures = {pool.submit(self.try_complete, prompt, user): i for i, user in enumerate(users)}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            finally:
                for future in futures:
                    future.cancel()

    def map(self, prompt: Prompt[T], users: Sequence[str]) -> list[LLMResult[T] | LLMFailure]:
        outcomes: list = [None] * len(users)
        for index, outcome in self.imap_unordered(prompt, users):
            outcomes[index] = outcome
        return outcomes

    # -- the HTTP request ------------------------------------------------------------------------
    def _client(self):
        with self._sdk_lock:
            if self._sdk is None:
                from openai import OpenAI

                api_key = os.environ.get(self.settings.api_key_env)
                if not api_key:
                    raise LLMConfigError(
                        f"The environment variable {self.settings.api_key_env} is not set. Export the API key "
                        f"for {self.settings.base_url} there (any non-empty value for servers without "
                        "authentication, such as vLLM or Ollama).")
                self._key = api_key
                self._sdk = OpenAI(base_url=self.settings.base_url, api_key=api_key,
                                   timeout=self.settings.timeout_s, max_retries=0)
            return self._sdk

    def _messages(self, prompt: Prompt, user: str, mode: str) -> list[dict]:
        system = prompt.system
        if mode != "json_schema" and not prompt.verbatim:
            system += ("\n\nReply with JSON only, no other text, matching this JSON schema:\n"
                       + json.dumps(prompt.schema))
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _request(self, prompt: Prompt, user: str) -> tuple[str, Usage]:
        import openai

        client = self._client()
        mode = "text" if prompt.verbatim else self._mode
        while True:
            kwargs = self._request_kwargs(prompt, user, mode)
            self.stats.add(requests_sent=1)
            # Errors below are re-raised `from None` with a redacted message: the SDK's exception holds the
            # server's reply, which may echo the key, and a chained cause would print it in any traceback.
            try:
                response = client.chat.completions.create(**kwargs)
            except openai.AuthenticationError as exc:
                raise LLMConfigError(self.redact(f"{self.settings.base_url} rejected the API key "
                                                 f"(${self.settings.api_key_env}): {status_text(exc)}")) from None
            except openai.NotFoundError as exc:
                raise LLMConfigError(self.redact(f"{self.settings.base_url} has no model {self.settings.model!r} or "
                                                 f"no chat completions endpoint: {status_text(exc)}")) from None
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if self._note_refused_parameter(exc, kwargs):
                    continue            # the same request without the parameter the model refused
                if self.settings.structured_output == "auto" and mode != "text" and not prompt.verbatim:
                    # Perhaps the server lacks this response_format: retry this request with the next mode.
                    # The client adopts that mode only once a request in it is accepted, so one request
                    # refused for another reason (too long, ...) does not downgrade the whole run.
                    mode = _MODE_ORDER[_MODE_ORDER.index(mode) + 1]
                    continue
                raise _Fatal(self.redact(f"the server refused the request: {status_text(exc)}")) from None
            except openai.RateLimitError as exc:
                raise _Retryable(self.redact(f"rate limited (429): {status_text(exc)}"), retry_after(exc)) from None
            except openai.APITimeoutError:
                raise _Retryable(f"timed out after {self.settings.timeout_s:g} s") from None
            except openai.APIConnectionError as exc:
                raise _Retryable(self.redact(f"cannot connect to {self.settings.base_url}: {exc}")) from None
            except openai.APIStatusError as exc:
                if exc.status_code >= 500 or exc.status_code in (408, 409):
                    raise _Retryable(self.redact(f"server error {status_text(exc)}"), retry_after(exc)) from None
                raise _Fatal(self.redact(f"the server answered {status_text(exc)}")) from None
            except openai.APIResponseValidationError as exc:
                raise _Retryable(self.redact(f"the server sent a malformed response: {exc}")) from None
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:   # the SDK reading a 200
                raise _Retryable(self.redact(not_a_completion(self.settings.base_url, *_unread_body(exc)))) from None
            if not prompt.verbatim:
                self._adopt(mode)
            return self._reply_text(response, prompt, user)

    def _request_kwargs(self, prompt: Prompt, user: str, mode: str) -> dict[str, Any]:
        """The Chat Completions arguments: sampling settings, less what this model refused earlier."""
        refused = self._refused.of(self.settings.model)
        kwargs: dict[str, Any] = dict(model=self.settings.model, messages=self._messages(prompt, user, mode))
        if "temperature" not in refused:
            kwargs["temperature"] = self.settings.temperature
        if self.settings.seed is not None and "seed" not in refused:
            kwargs["seed"] = self.settings.seed
        if "max_tokens" in refused:
            kwargs["max_completion_tokens"] = prompt.max_output_tokens + REASONING_TOKENS_ALLOWANCE
        else:
            kwargs["max_tokens"] = prompt.max_output_tokens
        if mode == "json_schema":
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": re.sub(r"[^A-Za-z0-9_-]", "_", prompt.name)[:64], "schema": prompt.schema,
                "strict": True}}
        elif mode == "json_object":
            kwargs["response_format"] = {"type": "json_object"}
        return kwargs

    def _note_refused_parameter(self, exc, sent: dict) -> bool:
        """True when a 400 says the model refused a parameter this request sent (`llm.params`): it is
        remembered for the model and the request can go again without it (each retry drops one more)."""
        refusal = refused_parameter(exc)
        if refusal is None or refusal[0] not in sent:
            return False
        self._refused.add(self.settings.model, *refusal, where=self.settings.base_url)
        return True

    def request_adjustments(self) -> dict[str, str]:
        """What this run changed in its requests because the model refused it: {parameter: what instead}."""
        return self._refused.adjustments(self.settings.model)

    def _reply_text(self, response, prompt: Prompt, user: str) -> tuple[str, Usage]:
        if isinstance(response, str):          # the SDK hands back a body that is not JSON as text
            raise _Retryable(self.redact(not_a_completion(self.settings.base_url, response, "not JSON")))
        if not isinstance(getattr(response, "choices", None), list):
            body = response.to_json(indent=None) if hasattr(response, "to_json") else json.dumps(response)
            what = "JSON but not a chat completion"
            raise _Retryable(self.redact(not_a_completion(self.settings.base_url, body, what)))
        choices = response.choices
        content = choices[0].message.content if choices and choices[0].message else None
        text = content or ""
        usage = getattr(response, "usage", None)
        if usage is not None and usage.prompt_tokens is not None:
            counted = Usage(int(usage.prompt_tokens), int(usage.completion_tokens or 0))
        else:
            counted = Usage(estimate_tokens(prompt.system + user), estimate_tokens(text), estimated=True)
        self.stats.add(input_tokens=counted.input_tokens, output_tokens=counted.output_tokens)
        if not text.strip() and choices and getattr(choices[0], "finish_reason", None) == "length":
            raise _Retryable("the reply is empty: the model stopped at its token limit (finish_reason 'length'; "
                             "a reasoning model may have spent it on reasoning)")
        return text, counted

    def _adopt(self, mode: str) -> None:
        """Remember a structured-output fallback that the server accepted (never goes back up)."""
        with self._mode_lock:
            if _MODE_ORDER.index(mode) > _MODE_ORDER.index(self._mode):
                log.warning("%s refused response_format %s; falling back to %s", self.settings.base_url,
                            self._mode, mode)
                self._mode = mode

    def redact(self, text: str) -> str:
        """`text` with the API key's value replaced (servers, proxies and judges may echo the key)."""
        return Redactor(self._key or os.environ.get(self.settings.api_key_env) or "")(text)

    def _sleep_before_retry(self, attempt: int, retry_after_s: float | None) -> None:
        if attempt >= self.settings.max_attempts:
            return
        backoff = min(self.settings.backoff_max_s, self.settings.backoff_initial_s * 2 ** (attempt - 1))
        wait = retry_after_s if retry_after_s is not None else backoff * (0.5 + random.random() / 2)
        wait = min(wait, self.settings.backoff_max_s)
        log.info("LLM request failed (attempt %d/%d); retrying in %.2f s", attempt, self.settings.max_attempts,
                 wait)
        time.sleep(wait)


class _Retryable(Exception):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _Fatal(Exception):
    pass


def _unread_body(exc: Exception) -> tuple[str | None, str]:
    """(the body, what is wrong with it) of a 200 the SDK could not read as JSON."""
    if isinstance(exc, UnicodeDecodeError):
        return bytes(exc.object).decode("utf-8", "replace"), "not UTF-8 JSON"
    if isinstance(exc, RecursionError):
        return None, "JSON nested too deeply to read"
    return exc.doc, "not JSON"
