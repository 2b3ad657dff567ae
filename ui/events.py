"""Handlers as plain functions: `bind(fn, *first)` fixes a handler's first arguments (its services and the
tab's components) and hands Gradio what it reads off an event function.

Gradio reads the function itself: its name (the API endpoint when no `api_name` is given), its signature
(the API's parameter names and defaults), its type hints (`gr.Request`, `gr.SelectData`, `gr.OAuthProfile`
arguments are filled in by Gradio) and whether it is a generator (streamed outputs). `functools.partial`
keeps none of the last three, so the tabs bind through this instead:

    def ask(services, view, text, temperature, request: gr.Request): ...      # ui/qa/chat_handlers.py
    button.click(bind(ask, services, view), [question, temperature], outputs)  # ui/qa/tab.py
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable


def bind(fn: Callable, *first) -> Callable:
    """`fn` with its first `len(first)` positional arguments fixed; name, remaining signature, type hints and
    generator-ness kept. Raises TypeError at build time when `fn`'s type hints cannot be resolved (Gradio
    would then silently stop filling in `gr.Request` and friends)."""
    signature = inspect.signature(fn)
    parameters = list(signature.parameters.values())
    if len(first) > len(parameters):
        raise TypeError(f"{fn.__name__} takes {len(parameters)} arguments, {len(first)} were bound.")
    if inspect.isgeneratorfunction(fn):
        def handler(*args, **kwargs):
            yield from fn(*first, *args, **kwargs)
    else:
        def handler(*args, **kwargs):
            return fn(*first, *args, **kwargs)
    functools.update_wrapper(handler, fn)
    handler.__signature__ = signature.replace(parameters=parameters[len(first):])
    try:
        typing.get_type_hints(handler)
    except (NameError, TypeError) as exc:
        raise TypeError(f"the type hints of {fn.__module__}.{fn.__qualname__} do not resolve ({exc}): import the "
                        "names they use at module level.") from exc
    return handler
