"""The Slide Q&A tab: load a slide (upload, DICOM folder, a slide on this server, a WSI-Bench example),
see its overview with tissue and tiles, and chat with WSI-LLaVA about it; WSI-Bench answers are scored
live against their reference.

This module only wires: `ui.qa.layout` draws the components, `ui.qa.slide_handlers`,
`ui.qa.chat_handlers` and `ui.qa.evidence_handlers` (the answer's heatmap, after it) hold the handlers (plain functions over `QaServices`, returning `{component: value}`
dicts), `ui.qa.views` the text they show. Build it inside a `gr.Tab` with `QaServices` (app.py makes
them); it returns the handler to register with `demo.unload`:

    with gr.Tab("Slide Q&A"):
        end_session = build_qa_tab(services)
    demo.unload(end_session)

State is per browser session (Gradio's `session_hash`), kept in `services.sessions`.
"""

from __future__ import annotations

import gradio as gr

from ui.events import bind
from ui.qa import chat_handlers as chat
from ui.qa import evidence_handlers as evidence
from ui.qa import slide_viewer
from ui.qa import slide_handlers as slides
from ui.qa.layout import QaView, build_qa_layout
from ui.qa.services import QaServices

GPU_QUEUE = {"concurrency_limit": 1, "concurrency_id": "gpu"}
STATUS_EVENT = {"concurrency_limit": None, "show_progress": "hidden"}
INSTANT = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "private"}


def build_qa_tab(services: QaServices):
    view = build_qa_layout(services)
    _wire_slide_events(services, view)
    _wire_chat_events(services, view)
    _wire_evidence_stops(services, view)
    return bind(slide_viewer.end_session, services)


def _wire_slide_events(services: QaServices, v: QaView) -> None:
    slide_outputs = v.slide_outputs()
    on_slide = {"show_progress_on": [v.thumbnail], **GPU_QUEUE}     # the slide panel stays readable
    v.upload.upload(bind(slides.upload_slide, services, v), [v.upload, v.mpp], [*slide_outputs, v.upload],
                    api_name="upload_slide", **on_slide)
    v.upload_folder.upload(bind(slides.upload_dicom_folder, services, v), [v.upload_folder, v.mpp],
                           [*slide_outputs, v.upload_folder], api_name="upload_dicom_folder", **on_slide)
    v.server_slide.input(bind(slides.pick_server_slide, services, v), [v.server_slide, v.mpp], slide_outputs,
                         api_name="pick_server_slide", **on_slide)
    v.example.input(bind(slides.pick_example, services, v), [v.example], slide_outputs, api_name="pick_example",
                    **on_slide)
    v.bench_question.input(bind(slides.pick_bench_question, services, v), [v.bench_question],
                           [v.question, v.reference, v.score], api_name="pick_bench_question")
    # typing the microns per pixel reloads the slide that lacked them; the check is instant and outside the GPU
    # queue, so leaving the field otherwise never waits behind someone else's slide
    gr.on([v.mpp.submit, v.mpp.blur], bind(slides.wants_retry, services), [v.mpp, v.mpp_retry], v.mpp_retry,
          api_visibility="private", show_progress="hidden", concurrency_limit=None)
    v.mpp_retry.change(bind(slides.retry_with_mpp, services, v), [v.mpp], slide_outputs, api_name="set_mpp",
                       **on_slide)


def _wire_chat_events(services: QaServices, v: QaView) -> None:
    # progress and a refusal show on the turn line: the conversation stays readable (an error on the chatbot
    # would cover it until the next answer)
    asked = gr.on([v.ask_button.click, v.question.submit], bind(chat.ask, services, v),
                  [v.question, *v.generation.inputs()], [v.chatbot, v.question, v.turn_status], api_name="ask",
                  show_progress_on=[v.turn_status], **GPU_QUEUE)
    asked.success(bind(chat.score_answer, services, v), None, v.score, api_name="score_answer")
    asked.success(bind(chat.slide_panel, services, v), None, [v.thumbnail, v.slide_info], api_visibility="private",
                  show_progress="hidden").then(
        bind(evidence.explain_latest_answer, services, v), None, v.heatmap_outputs(), api_name="explain_answer",
        show_progress_on=[v.heatmap_status], **GPU_QUEUE)      # after the answer, in the GPU queue (see there)
    v.new_chat.click(bind(chat.new_conversation, services, v), None, [v.chatbot, v.score, v.turn_status],
                     api_name="new_conversation")
    v.use_demo.click(bind(chat.accept_demo, services, v), None, [v.banner, v.use_demo], api_name="use_demo_model")
    refresh = bind(chat.refresh, services, v)
    v.timer.tick(refresh, None, v.status_outputs(), api_name="refresh_status", **STATUS_EVENT)
    # at page load too: the example list is there at once, not a second later
    gr.on(None, refresh, None, v.status_outputs(), api_visibility="private", **STATUS_EVENT)


def _wire_evidence_stops(services: QaServices, v: QaView) -> None:
    """A new question, slide or conversation stops the heatmap of the answers before (instant, unqueued)."""
    gr.on([v.ask_button.click, v.question.submit], bind(evidence.stop_for_question, services), [v.question], None,
          **INSTANT)
    gr.on([v.upload.upload, v.upload_folder.upload, v.server_slide.input, v.example.input, v.mpp_retry.change],
          bind(evidence.stop_for_slide, services, v), None, [v.heatmap_status, v.heatmap_files], **INSTANT)
    v.new_chat.click(bind(evidence.stop_for_new_conversation, services, v), None, v.heatmap_outputs(), **INSTANT)
