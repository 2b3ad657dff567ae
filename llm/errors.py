"""The LLM client's exception family (every failure of an OpenAI-compatible call or of its reply).

`LLMConfigError` is a setting the user must change (missing or rejected key, unknown model, bad option);
`ReplyError` a reply that is not valid JSON or does not fit the prompt's schema. Callers turn them into
their own package's errors where they add context.
"""


class LLMError(Exception):
    """An LLM call that could not produce a valid reply; the message says why and what to do."""


class LLMConfigError(LLMError):
    """A setting problem: missing API key, rejected key, unknown model, bad option, unusable cache."""


class ReplyError(LLMError):
    """A reply that is not valid JSON or does not match the prompt's schema."""
