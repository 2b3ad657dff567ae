"""Reading what an OpenAI-compatible server sent back, for the client's messages and retries.

`status_text` is the short text of an HTTP error (the server's own message when its body has one),
`retry_after` the seconds its Retry-After header asks for, and `not_a_completion` the message for an HTTP
200 whose body is not a chat completion: a proxy's error page, a captive portal's login page, or a body
cut short. The client redacts the API key from all of them (`llm.redaction`).
"""

from __future__ import annotations

BODY_SHOWN_CHARS = 120     # how much of an unexpected body a message quotes


def status_text(exc) -> str:
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    detail = body.get("message") if isinstance(body, dict) and "message" in body else (body or exc)
    return f"HTTP {status}: {str(detail)[:300]}" if status else str(detail)[:300]


def retry_after(exc) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def not_a_completion(base_url: str, body: str | None, what: str) -> str:
    """ "<url> answered HTTP 200 with a body that is not JSON (starts with '<html>...'): a proxy or ..." """
    if body is None:
        shown = ""
    else:
        shown = f" (starts with {body[:BODY_SHOWN_CHARS]!r})" if body.strip() else " (an empty body)"
    return (f"{base_url} answered HTTP 200 with a body that is {what}{shown}: a proxy or captive portal? "
            "Check the endpoint's base URL (--base-url / --judge-base-url) and the network")
