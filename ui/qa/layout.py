"""The Slide Q&A tab's components: `build_qa_layout(services)` draws them (inside the caller's `gr.Tab`) and
returns them as one `QaView`, which the handlers key their `{component: value}` results by.

Sections: the model banner, the slide sources (upload, DICOM folder, microns per pixel, WSI-Bench example,
server slide), the overview, the zoomable slide viewer (ui.viewer), the conversation with the answer's
evidence heatmap (status line and files), the generation settings and the WSI-Bench reference and score. Element ids are part of the page's contract (browser tests, keyboard users): keep them.

Generation settings live in `GenerationControls` (one place): a new setting is a field there, a control
in `_build_generation_section`, and a parameter of `ui.qa.chat_handlers.ask` (which passes it to
`generation_settings`), in the order of `GenerationControls.inputs()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ui.qa.services import QaServices
from ui.qa.upload_sandbox import UPLOAD_SUFFIXES, human_size
from ui.qa.views import banner_markdown, example_choices, examples_markdown
from ui.viewer.component import viewer_component


@dataclass
class GenerationControls:
    """The answer's decoding settings, in the order `ask` takes them (and the /ask API lists them)."""

    temperature: gr.Slider
    max_new_tokens: gr.Slider
    conversation_template: gr.Dropdown

    def inputs(self) -> list:
        return [self.temperature, self.max_new_tokens, self.conversation_template]


@dataclass
class QaView:
    banner: gr.Markdown
    use_demo: gr.Button
    upload: gr.File
    upload_folder: gr.File
    mpp: gr.Number
    mpp_retry: gr.State                 # bumped when a typed microns-per-pixel value should reload the slide
    example: gr.Dropdown
    examples_status: gr.Markdown
    server_slide: gr.Dropdown
    thumbnail: gr.Image
    slide_info: gr.Markdown
    viewer: gr.HTML                     # the deep-zoom viewer (its value: ui.qa.slide_viewer)
    chatbot: gr.Chatbot
    question: gr.Textbox
    ask_button: gr.Button
    turn_status: gr.Markdown
    heatmap_status: gr.Markdown         # the latest answer's evidence heatmap: progress, result, or why none
    heatmap_files: gr.File              # its GeoJSON (QuPath) and PNG
    new_chat: gr.Button
    generation: GenerationControls
    bench_question: gr.Dropdown
    reference: gr.Markdown
    score: gr.Markdown
    timer: gr.Timer

    def slide_outputs(self) -> list:
        """What loading a slide changes (an upload's handler clears its file box too)."""
        return [self.thumbnail, self.slide_info, self.chatbot, self.bench_question, self.reference, self.score,
                self.turn_status, self.viewer]

    def heatmap_outputs(self) -> list:
        """What drawing an answer's evidence heatmap changes."""
        return [self.viewer, self.thumbnail, self.heatmap_status, self.heatmap_files]

    def status_outputs(self) -> list:
        """What the status refresh (timer and page load) changes."""
        return [self.banner, self.use_demo, self.examples_status, self.example, self.server_slide, self.timer]


def build_qa_layout(services: QaServices) -> QaView:
    parts: dict = {}
    with gr.Row():
        parts.update(_build_banner(services))
    with gr.Row():
        with gr.Column(scale=1):
            parts.update(_build_sources_section(services))
        with gr.Column(scale=1):
            parts.update(_build_overview_section())
    with gr.Accordion("Zoomable slide (full resolution)", open=True, elem_id="qa-viewer-section"):
        parts["viewer"] = viewer_component(elem_id="qa-viewer")     # never a slide at build time: see ui.viewer
    with gr.Row():
        with gr.Column(scale=3):
            parts.update(_build_conversation_section(services))
        with gr.Column(scale=2):
            parts.update(_build_reference_section())
    return QaView(**parts, mpp_retry=gr.State(0), timer=gr.Timer(1.0))


def _build_banner(services: QaServices) -> dict:
    models, config = services.models, services.config
    return dict(
        banner=gr.Markdown(lambda: banner_markdown(models.status(), config), elem_id="qa-model-banner"),
        use_demo=gr.Button("Use the untrained demo model", visible=False, variant="secondary", scale=0,
                           elem_id="qa-use-demo"))


def _build_sources_section(services: QaServices) -> dict:
    config = services.config
    upload = gr.File(label=f"Upload a slide (up to {human_size(config.max_upload_bytes)}; DICOM, MIRAX or "
                           "VMS as a .zip)", file_types=list(UPLOAD_SUFFIXES), elem_id="qa-upload")
    with gr.Accordion("Upload a DICOM folder", open=False):
        upload_folder = gr.File(label="DICOM WSI folder", file_count="directory", elem_id="qa-upload-folder")
    mpp = gr.Number(label="Microns per pixel, only for slides without resolution metadata (0: from the slide)",
                    value=0, minimum=0, elem_id="qa-mpp")
    example = gr.Dropdown(label="Or a WSI-Bench example (released slide tokens)",
                          choices=example_choices(services), value=None, allow_custom_value=True,
                          elem_id="qa-example")   # the list may arrive after the page: checked by the handler
    examples_status = gr.Markdown(lambda: examples_markdown(services), elem_id="qa-examples-status")
    server_slide = gr.Dropdown(label="Or a slide on this server", choices=services.server_slides(),
                               value=None, allow_custom_value=True, visible=bool(config.allowed_roots),
                               elem_id="qa-server-slide")
    return dict(upload=upload, upload_folder=upload_folder, mpp=mpp, example=example,
                examples_status=examples_status, server_slide=server_slide)


def _build_overview_section() -> dict:
    return dict(
        thumbnail=gr.Image(label="Overview: tissue (green), holes (orange), tiles (blue)", type="pil",
                           format="png", interactive=False, height=420, elem_id="qa-thumbnail"),
        slide_info=gr.Markdown("No slide yet.", elem_id="qa-slide-info"))


def _build_conversation_section(services: QaServices) -> dict:
    chatbot = gr.Chatbot(label="Conversation about the slide", height=420, elem_id="qa-chat")
    with gr.Row():
        question = gr.Textbox(label="Question", placeholder="What is the histological type of this tumor?",
                              scale=4, lines=2, elem_id="qa-question")
        ask_button = gr.Button("Ask", variant="primary", scale=1, elem_id="qa-ask")
    turn_status = gr.Markdown("No question yet.", elem_id="qa-turn-status")
    heatmap_status = gr.Markdown("", elem_id="qa-heatmap-status")
    heatmap_files = gr.File(label="Evidence heatmap of the latest answer: GeoJSON (QuPath: File > Import objects) "
                                  "and PNG", file_count="multiple", interactive=False, visible=False,
                            elem_id="qa-heatmap-files")
    with gr.Row():
        new_chat = gr.Button("New conversation (same slide)", size="sm", elem_id="qa-new-conversation")
    with gr.Accordion("Generation settings", open=False):
        generation = _build_generation_section(services)
    return dict(chatbot=chatbot, question=question, ask_button=ask_button, turn_status=turn_status,
                heatmap_status=heatmap_status, heatmap_files=heatmap_files, new_chat=new_chat, generation=generation)


def _build_generation_section(services: QaServices) -> GenerationControls:
    """Every generation setting, with its default from the app config (ui.config, the one home of defaults)."""
    config = services.config
    return GenerationControls(
        temperature=gr.Slider(0.0, 1.5, value=config.temperature, step=0.05,
                              label="Temperature (0 = greedy; official 0.2)", elem_id="qa-temperature"),
        max_new_tokens=gr.Slider(8, max(4096, config.max_new_tokens), value=config.max_new_tokens, step=8,
                                 label="Max new tokens (official 2048)", elem_id="qa-max-new-tokens"),
        conversation_template=gr.Dropdown(
            label="Prompt template", value=config.conv_template or "", elem_id="qa-conv-template",
            choices=[("the checkpoint's (llava_v1, as the official inference)", ""),
                     ("llava_v1 (official inference)", "llava_v1"), ("vicuna_v1 (training)", "vicuna_v1")]))


def _build_reference_section() -> dict:
    return dict(
        bench_question=gr.Dropdown(label="WSI-Bench question of this example", choices=[], value=None,
                                   visible=False, elem_id="qa-bench-question"),
        reference=gr.Markdown(elem_id="qa-reference"),
        score=gr.Markdown(elem_id="qa-score"))
