"""The API key's value is never written anywhere: it is replaced by "[REDACTED]" in everything built from
what a server sent (replies, error messages, logs) and, as a last guard, in the outputs of the commands.

Servers, proxies and judges may echo the key they received (an error page quoting the Authorization
header, a judge that repeats its input). `LLMClient` redacts every reply before it is parsed, cached or
returned and every message it raises or logs; writers of results (`evaluate score`) pass what they
write through `Redactor.value`. Keys shorter than `MIN_SECRET_CHARS` are placeholders for servers
without authentication ("x", "none") and are left alone.

    redact = Redactor.from_env("OPENAI_API_KEY")
    redact("Incorrect API key provided: sk-...")         # -> "Incorrect API key provided: [REDACTED]"
    redact.value({"explanation": ["... sk-..."]})        # the same, in every string of a JSON value
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 6


@dataclass(frozen=True)
class Redactor:
    key: str = ""

    @classmethod
    def from_env(cls, api_key_env: str | None) -> "Redactor":
        """The key held by the environment variable `api_key_env` now (none: nothing is redacted)."""
        return cls(os.environ.get(api_key_env, "") if api_key_env else "")

    @property
    def active(self) -> bool:
        return len(self.key) >= MIN_SECRET_CHARS

    def __call__(self, text: str) -> str:
        return text.replace(self.key, REDACTED) if self.active and text else text

    def value(self, value: Any) -> Any:
        """`value` (JSON-like: dicts, lists, strings) with the key redacted in every string and dict key."""
        if not self.active:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value
