"""How failures reach a person: the real reason as a `gr.Error`, with every secret value removed.

    @reports_errors                   # on every event handler (functions and generators alike)
    def upload(...): ...              # SlideError -> gr.Error("...the reason...", title="Slide")

- The package exceptions (`SlideError`, `ModelError`, `EvaluationError`, `CurationError`, `BenchError`,
  `LLMError`, `HubError`, `TrainingError`) keep their message, which names the file and the fix; their title says which part
  failed. Anything else shows its type and message (never a bare "Error") and is logged with its
  traceback.
- `redact(text)` replaces the values of secret environment variables (HF_TOKEN, *_API_KEY, *_TOKEN,
  *_SECRET, *_PASSWORD and the judge's key variable) and token-shaped strings by a marker;
  `install_log_redaction()` applies it to every log record of the process.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
import os
import re

import gradio as gr

from common.hub import HubError
from curation.errors import CurationError
from evaluation.errors import EvaluationError
from llm.errors import LLMError
from modeling.errors import ModelError
from modeling.slide.errors import SlideError
from training.errors import TrainingError
from wsi_bench.errors import BenchError

log = logging.getLogger("wsi_llava.app")

ERROR_TITLES: dict[type[BaseException], str] = {   # most specific first is not needed: no subclassing between
    SlideError: "Slide",
    ModelError: "Model",
    EvaluationError: "Scoring",
    CurationError: "Curation",
    TrainingError: "Training",
    BenchError: "WSI-Bench",
    LLMError: "LLM",
    HubError: "Hugging Face Hub",
}
SECRET_NAMES = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "OPENAI_API_KEY"}
_SECRET_NAME = re.compile(r"(_TOKEN|_API_KEY|_SECRET|_PASSWORD|_PASSWD|_KEY)$")
_TOKEN_SHAPES = re.compile(r"\b(hf_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_-]{16,})\b")
_extra_secret_names: set[str] = set()
MIN_SECRET_LENGTH = 6
ERROR_SECONDS = 20


def register_secret_env(name: str) -> None:
    """Treat the value of the environment variable `name` as a secret too (e.g. the judge's key variable)."""
    _extra_secret_names.add(name)


def _secret_values() -> list[tuple[str, str]]:
    found = []
    for name, value in os.environ.items():
        if (name in SECRET_NAMES or name in _extra_secret_names or _SECRET_NAME.search(name)) and \
                len(value) >= MIN_SECRET_LENGTH:
            found.append((name, value))
    return sorted(found, key=lambda pair: -len(pair[1]))


def redact(text: str) -> str:
    for name, value in _secret_values():
        text = text.replace(value, f"[{name} hidden]")
    return _TOKEN_SHAPES.sub("[token hidden]", text)


def install_log_redaction() -> None:
    """Redact every log record of the process (any logger, any handler) once, at creation."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacting", False):
        return

    def make_record(*args, **kwargs):
        record = factory(*args, **kwargs)
        message = redact(record.getMessage())
        record.msg, record.args = message, ()
        if record.exc_info:
            import traceback

            record.msg = message + "\n" + redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info, record.exc_text = None, None
        return record

    make_record.redacting = True
    logging.setLogRecordFactory(make_record)


def _shown(text: str, title: str) -> gr.Error:
    # gr.Error renders its message as HTML: escape it, a file name must never become markup
    return gr.Error(html.escape(redact(text), quote=False), title=title, duration=ERROR_SECONDS,
                    print_exception=False)


def to_gr_error(exc: BaseException) -> gr.Error:
    """The gr.Error a person sees for `exc`: its real reason, secrets removed."""
    if isinstance(exc, gr.Error):          # made by user_error/_shown already
        return exc
    for kind, title in ERROR_TITLES.items():
        if isinstance(exc, kind):
            return _shown(str(exc), title)
    log.error("unexpected error in the app", exc_info=exc)
    return _shown(f"{type(exc).__name__}: {exc}", "Unexpected error")


def user_error(message: str, title: str = "Slide Q&A") -> gr.Error:
    """A precondition the person can fix (no slide yet, empty question), shown like the others."""
    return _shown(message, title)


def reports_errors(function):
    """Turn any exception of an event handler into `to_gr_error(exc)`; works for generators too."""
    if inspect.isgeneratorfunction(function):
        @functools.wraps(function)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from function(*args, **kwargs)
            except Exception as exc:
                raise to_gr_error(exc) from exc
        return generator_wrapper

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            raise to_gr_error(exc) from exc
    return wrapper
