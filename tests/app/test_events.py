"""`ui.events.bind`: a handler with its services bound still looks to Gradio like the function it wraps (the
API name and parameters, gr.Request filled in, streamed outputs), and a handler whose hints cannot resolve
is refused when the tab is built instead of silently losing its gr.Request."""

from __future__ import annotations

import inspect

import gradio as gr
import pytest
from gradio.helpers import special_args

from ui.events import bind


def answer(services: dict, view: str, text: str, request: gr.Request, progress=gr.Progress()):
    return {view: services["prefix"] + text + request.session_hash}


def streamed(services: dict, text: str):
    yield from (services["prefix"] + piece for piece in text.split())


def test_bound_handler_keeps_name_parameters_and_request():
    handler = bind(answer, {"prefix": "> "}, "box")
    assert handler.__name__ == "answer"
    assert list(inspect.signature(handler).parameters) == ["text", "request", "progress"]
    request = gr.Request(session_hash="abc")
    inputs, progress_index, _, _ = special_args(handler, ["hello "], request)
    assert inputs[1] is request and progress_index == 2             # what Gradio fills in, it still finds
    assert handler(*inputs) == {"box": "> hello abc"}


def test_bound_generator_stays_a_generator():
    handler = bind(streamed, {"prefix": "+"})
    assert inspect.isgeneratorfunction(handler) and list(handler("a b")) == ["+a", "+b"]


def test_unresolvable_hints_and_too_many_arguments_are_refused():
    def broken(services, request: "NoSuchType"):            # noqa: F821
        return services

    with pytest.raises(TypeError, match="do not resolve"):
        bind(broken, {})
    with pytest.raises(TypeError, match="takes 2 arguments, 3 were bound"):
        bind(streamed, 1, 2, 3)
