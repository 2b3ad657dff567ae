"""The Slide Q&A tab's conversation and status handlers: ask (streamed), score the answer against the WSI-Bench
reference, redraw the slide panel, start a new conversation, switch to the demo model, refresh the model and
listing status, end a browser session.

Plain functions over `QaServices` and the tab's `QaView`, returning `{component: value}` dicts; `ui.qa.tab`
binds them to their events (`ui.events.bind`).
"""

from __future__ import annotations

import time

import gradio as gr

from modeling.generation_settings import check_question_length
from ui.errors import redact, reports_errors, user_error
from ui.qa.layout import QaView
from ui.qa.model_manager import FAILED_STATE, LOADING, NOT_STARTED, READY
from ui.qa.services import QaServices
from ui.qa.sessions import NoSlideError, SlideQaSession, ensure_chat
from ui.qa.slide_handlers import (
    encode_on_gpu,
    extract_on_gpu,
    scaled_progress,
    session_of,
    stream_on_gpu,
)
from ui.qa.views import (
    banner_markdown,
    chat_messages,
    example_choices,
    examples_markdown,
    ready_note,
    score_markdown,
    slide_markdown,
    turn_markdown,
)


def generation_settings(services: QaServices, temperature_value, max_tokens_value, template_value):
    """The decoding settings of one answer: the app's generation profile (ui.config) with the generation
    controls' values on top (layout.GenerationControls); "" as the template means the checkpoint's."""
    return services.config.generation_settings(temperature=temperature_value, max_new_tokens=max_tokens_value,
                                               conversation_template=template_value or None)


def wait_for_model(services: QaServices, session: SlideQaSession, progress):
    models = services.models
    models.begin(demo=session.use_demo)
    while (status := models.status(demo=session.use_demo)).state in (LOADING, NOT_STARTED):
        progress(None, desc=f"waiting for the model: {redact(status.detail)} ({status.elapsed_s:.0f} s)")
        time.sleep(0.5)
    return models.get(demo=session.use_demo)


@reports_errors
def ask(services: QaServices, view: QaView, text, temperature_value, max_tokens_value, template_value,
        request: gr.Request, progress=gr.Progress()):
    text = (text or "").strip()
    if not text:
        raise user_error("Type a question first.")
    check_question_length(text, services.config.max_question_chars)     # refused before any model work
    session = session_of(services, request)
    if not session.has_slide:
        raise NoSlideError("No slide yet: upload a slide, pick a slide on this server or a WSI-Bench example.")
    settings = generation_settings(services, temperature_value, max_tokens_value, template_value)
    with session.lock:
        loaded = wait_for_model(services, session, progress)
        mpp_value = session.tiled.mpp_override if session.tiled else None
        ensure_chat(session, loaded, services.pipeline(mpp_value), scaled_progress(progress, 0, 1.0),
                    extract_on_gpu, encode_on_gpu, generation=settings)
        history, answer = session.history(), ""
        yield {view.chatbot: chat_messages(history, (text, "")), view.question: "",
               view.turn_status: f"Answering question {len(history) + 1} …"}
        for piece in session.stream(text, settings, generate=stream_on_gpu):
            answer += piece
            yield {view.chatbot: chat_messages(history, (text, answer)), view.question: "",
                   view.turn_status: gr.skip()}
        yield {view.chatbot: chat_messages(session.history()), view.question: "",
               view.turn_status: turn_markdown(session)}


@reports_errors
def score_answer(services: QaServices, view: QaView, request: gr.Request):
    session = session_of(services, request)
    item, history = session.bench_item, session.history()
    if item is None or not history:
        return {view.score: ""}
    asked, answer = history[-1]
    if asked.strip() != item.question.strip():
        note = f"_Not scored: question {len(history)} is not the selected WSI-Bench question._"
        if session.bench_score is None:
            return {view.score: note}
        return {view.score: f"{score_markdown(session.bench_score)}\n\n{note} _The score above is the WSI-Bench "
                            "question's, asked earlier in this conversation._"}
    session.bench_score = services.scorer.score(item, answer)
    return {view.score: score_markdown(session.bench_score)}


def slide_panel(services: QaServices, view: QaView, request: gr.Request):
    """The slide panel after a question: the steps run for it (tile features, slide encoding) are listed, and
    the overview is redrawn when the slide was tiled again for the model's tile encoder."""
    session = services.sessions.peek(request.session_hash)
    if session is None or not session.has_slide:
        return {view.thumbnail: gr.skip(), view.slide_info: gr.skip()}
    overview = gr.skip()
    if session.overview_redrawn and session.tiled is not None:
        overview, session.overview_redrawn = session.tiled.overview, False
    return {view.thumbnail: overview, view.slide_info: slide_markdown(session, ready_note(session))}


@reports_errors
def new_conversation(services: QaServices, view: QaView, request: gr.Request):
    session = session_of(services, request)
    with session.lock:
        session.new_conversation()
    return {view.chatbot: [], view.score: "", view.turn_status: "No question yet."}


@reports_errors
def accept_demo(services: QaServices, view: QaView, request: gr.Request, progress=gr.Progress()):
    session = session_of(services, request)
    progress(None, desc="building the untrained demo model")
    services.models.wait(demo=True)
    with session.lock:
        session.use_demo = True
        session.chat = session.chat_model = None      # rebuilt on the demo model at the next question
    return {view.banner: banner_markdown(services.models.status(demo=True), services.config),
            view.use_demo: gr.update(visible=False)}


def refresh(services: QaServices, view: QaView, request: gr.Request):
    """The model banner, the demo button, the examples and server listings; the timer stops once all are final."""
    session = services.sessions.peek(request.session_hash)
    demo = bool(session and session.use_demo)
    status = services.models.status(demo=demo)
    listed = services.listings_final
    final = status.state in (READY, FAILED_STATE) and listed
    return {view.banner: banner_markdown(status, services.config),
            view.use_demo: gr.update(visible=status.state == FAILED_STATE and not demo),
            view.examples_status: examples_markdown(services),
            view.example: gr.update(choices=example_choices(services)) if listed else gr.skip(),
            view.server_slide: gr.update(choices=services.server_slides()) if listed else gr.skip(),
            view.timer: gr.Timer(active=not final)}
