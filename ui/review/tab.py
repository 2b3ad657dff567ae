"""The Curation review tab: sign in, work through your queue of generated pairs, accept / edit / reject
(with a reason) / undo by mouse or keyboard; leads also see agreement, adjudicate, export and push.

Build it inside a `gr.Tab` (see app.py):

    with gr.Tab("Curation review"):
        build_review_tab(config.review_store, config.users_file)

Sign-in is a local name/password list (`python -m curation.store.users`), or Hugging Face OAuth on
a Space (`hf_oauth: true`); nothing is read or written anonymously. Everything goes through
`curation.store.review_store.ReviewStore` (optimistic locking: a save on an old version is refused and the
draft stays in the boxes). This module lays out and wires; the handlers are `ui.review.handlers` (plain
functions returning `{component: value}` dicts), the steps `ui.review.flow`, drawing `ui.review.render`, the
lead view `ui.review.lead`, the keys `ui.review.shortcuts`.
"""

from __future__ import annotations

import gradio as gr

from curation.pair_checks import CHECK_NAMES
from curation.store.status import REJECT_REASONS, STATUSES
from ui.events import bind
from ui.review import handlers, slide_view
from ui.review.lead import build_lead_panel
from ui.review.render import GROUNDING, INFERRED, PROGRESS_HEADERS, QUEUE_HEADERS
from ui.review.screen import STORE_EVENTS, ReviewScreen, on_message
from ui.review.session import ReviewSettings, StoreHandle
from ui.review.shortcuts import REASON_ID, ROOT_ID, handler_js, help_markdown
from ui.viewer.component import viewer_component
from wsi_bench.tasks import TASKS

YELLOW, VIOLET = "#fde68a", "#ddd6fe"


def build_review_tab(store_url: str, users_file: str | None, thumbnails_dir: str | None = None,
                     export_dir: str | None = None, sign_in: str = "auto", viewer=None, slides_root=None):
    """Lay out and wire the tab; the store is opened on first use, so start-up never waits on it. `viewer`
    (the app's ui.viewer.ViewerRegistry) shows the pair's slide from `slides_root` (ui.viewer.SlidesRoot).
    Returns the handler for `demo.unload` that releases the session's viewer handles (None without a viewer)."""
    build_review_screen(ReviewSettings(store_url, users_file, thumbnails_dir, export_dir, sign_in), viewer,
                        slides_root)
    return None if viewer is None else bind(release_viewer_handles, viewer)


def release_viewer_handles(viewer, request: gr.Request) -> None:
    """The browser tab is gone: its slides leave the viewer (their URLs answer 404 from now on)."""
    viewer.release_session(request.session_hash)


def build_review_screen(settings: ReviewSettings, viewer=None, slides_root=None) -> ReviewScreen:
    """`build_review_tab` returning its screen (tests close `screen.handle` afterwards)."""
    screen = ReviewScreen(settings, StoreHandle(settings.store_url), viewer, slides_root)
    with gr.Column(elem_id=ROOT_ID):
        gr.HTML("", js_on_load=handler_js(), elem_id="review-keys")
        _layout(screen)
        build_lead_panel(screen)
    load = _wire_sign_in(screen)
    _wire_queue(screen, load)
    _wire_verdicts(screen)
    if screen.viewer is not None:           # the viewer follows the pair on screen, whoever changed it
        screen.pair_state.change(bind(slide_view.show_pair_slide, screen), [screen.pair_state, screen.slide_shown],
                                 [screen.slide_viewer, screen.slide_shown], api_visibility="private",
                                 show_progress="hidden", concurrency_limit=None)
    return screen


def _layout(s: ReviewScreen) -> None:
    s.session, s.pair_state, s.listed, s.history = gr.State(None), gr.State(None), gr.State([]), gr.State([])
    _build_sign_in_section(s)
    with gr.Column(visible=False) as s.workspace, gr.Row():
        with gr.Column(scale=2, min_width=320):
            _build_queue_column(s)
        with gr.Column(scale=5):
            _build_pair_column(s)


def _build_sign_in_section(s: ReviewScreen) -> None:
    with gr.Row(equal_height=True):
        if s.settings.uses_huggingface:
            gr.LoginButton(scale=0)
        with gr.Row(elem_id="review-sign-in-form") as s.sign_in_form:
            if s.settings.uses_huggingface:
                s.sign_in_button = gr.Button("Continue with my Hugging Face account", elem_id="review-sign-in")
            else:
                s.name = gr.Textbox(label="Annotator name", elem_id="review-name", max_lines=1)
                s.password = gr.Textbox(label="Password", type="password", elem_id="review-password", max_lines=1)
                s.sign_in_button = gr.Button("Sign in", variant="primary", elem_id="review-sign-in", scale=0)
    with gr.Row(equal_height=True):
        s.who = gr.Markdown(" ".join(filter(None, (handlers.NOT_SIGNED_IN, s.settings.sign_in_note))),
                            elem_id="review-who")
        s.sign_out_button = gr.Button("Sign out", elem_id="review-sign-out", scale=0, size="sm", visible=False)


def _build_queue_column(s: ReviewScreen) -> None:
    s.tasks = gr.Dropdown([(t.title, t.task) for t in TASKS], multiselect=True, label="Tasks (all when empty)",
                          elem_id="review-filter-tasks")
    s.statuses = gr.Dropdown(list(STATUSES), value=["pending"], multiselect=True, label="Status",
                             info="Ignored for annotators in blind mode.", elem_id="review-filter-status")
    s.checks_failed = gr.Dropdown(list(CHECK_NAMES), multiselect=True, label="Only pairs failing checks",
                                  elem_id="review-filter-checks")
    s.include_reviewed = gr.Checkbox(label="Include pairs I already reviewed", elem_id="review-filter-mine")
    s.refresh = gr.Button("Refresh queue", elem_id="review-refresh")
    # narrow column: the pair number, a short task and the question come first, the rest scrolls sideways
    s.queue = gr.Dataframe(headers=QUEUE_HEADERS, interactive=False, max_height=460, wrap=True,
                           column_widths=["58px", "110px", "260px", "90px", "110px", "220px"],
                           label="Your queue (click a row)", elem_id="review-queue")
    s.progress = gr.Dataframe(headers=PROGRESS_HEADERS, interactive=False, label="Progress",
                              elem_id="review-progress")
    with gr.Accordion("Keyboard shortcuts", open=True):
        gr.Markdown(help_markdown(), elem_id="review-shortcuts")


def _build_pair_column(s: ReviewScreen) -> None:
    s.message = gr.Markdown(elem_id="review-message")
    s.header = gr.Markdown(elem_id="review-header")
    with gr.Row():
        s.prev = gr.Button("◀ Previous (Alt+P)", elem_id="review-prev", size="sm")
        s.next = gr.Button("Next (Alt+N) ▶", elem_id="review-next", size="sm")
        s.reload = gr.Button("Reload (Alt+L)", elem_id="review-reload", size="sm")
        s.go_to = gr.Number(None, label="Open pair #", precision=0, elem_id="review-go-to", min_width=100)
        s.open_button = gr.Button("Open", elem_id="review-open", size="sm")
    with gr.Row():
        with gr.Column(scale=3):
            _build_report_section(s)
        with gr.Column(scale=2):
            _build_editor_section(s)
    if s.viewer is not None:
        with gr.Accordion("The pair's slide (zoomable, from --slides-root)", open=True, elem_id="review-slide"):
            s.slide_viewer, s.slide_shown = viewer_component(elem_id="review-viewer"), gr.State(None)
    with gr.Accordion("Checks and provenance", open=False):
        s.checks = gr.Dataframe(headers=["check", "status", "detail"], interactive=False, wrap=True)
        s.provenance = gr.JSON(label="Provenance")


def _build_report_section(s: ReviewScreen) -> None:
    s.report = gr.HighlightedText(label="Cleaned report (highlighted: the text that grounds the answer)",
                                  show_legend=True, color_map={GROUNDING: YELLOW}, elem_id="review-report")
    s.enrichment = gr.HighlightedText(show_legend=True, visible=False, elem_id="review-enrichment",
                                      color_map={GROUNDING: YELLOW, INFERRED: VIOLET})
    s.context = gr.HighlightedText(label="Clinical context (IHC text removed by cleaning; the generator saw it)",
                                   show_legend=True, visible=False, color_map={GROUNDING: YELLOW},
                                   elem_id="review-context")
    with gr.Accordion("What cleaning removed (the original report)", open=False):
        s.removed = gr.HighlightedText(show_legend=True, show_label=False, elem_id="review-removed")


def _build_editor_section(s: ReviewScreen) -> None:
    s.thumbnail = gr.Image(visible=False, interactive=False, type="filepath", height=240, elem_id="review-thumbnail")
    s.question = gr.Textbox("", label="Question", lines=2, elem_id="review-question")
    s.options = gr.Textbox("", label="Options (one per line: A) text)", lines=4, visible=False,
                           elem_id="review-options")
    s.answer = gr.Textbox("", label="Answer", lines=4, elem_id="review-answer")
    s.reason = gr.Radio([(f"{(i + 1) % 10} · {text}", key) for i, (key, text) in enumerate(REJECT_REASONS.items())],
                        label="Rejection reason", elem_id=REASON_ID)
    s.comment = gr.Textbox("", label="Comment (optional)", max_lines=3, elem_id="review-comment")
    with gr.Row():
        s.accept = gr.Button("Accept (Alt+A)", variant="primary", elem_id="review-accept")
        s.edit = gr.Button("Save edit (Alt+E)", elem_id="review-edit")
        s.reject = gr.Button("Reject (Alt+R)", variant="stop", elem_id="review-reject")
        s.undo = gr.Button("Undo (Alt+U)", elem_id="review-undo")


def _wire_sign_in(s: ReviewScreen) -> dict:
    """Sign-in and sign-out; returns the queue-loading event (run after a sign-in, on refresh and filters)."""
    on_who = {**STORE_EVENTS, "show_progress_on": [s.who]}
    signed = s.signed_outputs()
    load = dict(fn=bind(handlers.load_screen, s),
                inputs=[s.session, s.pair_state, *s.filter_inputs(), *s.draft_inputs(), s.reason, s.comment],
                outputs=[*s.queue_outputs(), *s.pair_outputs(), s.message], api_visibility="private",
                **on_message(s))        # progress and refusals on the message line: the pair stays visible
    lead_view = s.lead_view_on_sign_in            # statistics, blind mode and adjudication queue, leads only
    if s.settings.uses_huggingface:
        s.sign_in_button.click(bind(handlers.sign_in_huggingface, s), None, signed, api_name="sign_in",
                               **on_who).success(**load).success(**lead_view)
        gr.on(None, bind(handlers.sign_in_huggingface_on_load, s), None, signed, api_visibility="private").then(
            **{**load, "fn": bind(handlers.load_if_signed_in, s)}).then(**lead_view)
    else:
        gr.on([s.sign_in_button.click, s.password.submit], bind(handlers.sign_in_password, s),
              [s.name, s.password], [*signed, s.password], api_name="sign_in", **on_who).success(
            **load).success(**lead_view)
    s.sign_out_button.click(bind(handlers.sign_out, s), None, [*signed, s.pair_state, s.listed, s.history],
                            api_name="sign_out")
    return load


def _wire_queue(s: ReviewScreen, load: dict) -> None:
    events = on_message(s)
    opened = [*s.pair_outputs(), s.message]
    s.refresh.click(**{**load, "api_visibility": "public"}, api_name="load_queue")
    for box in s.filter_inputs():
        box.input(**load)
    s.open_button.click(bind(handlers.open_by_id, s), [s.session, s.listed, s.go_to], opened, api_name="open_pair",
                        **events)
    s.queue.select(bind(handlers.open_row, s), [s.session, s.listed], opened, api_visibility="private", **events)
    moves = [s.session, s.listed, s.pair_state]
    s.next.click(bind(handlers.step, s, 1), moves, opened, api_name="next_pair", **events)
    s.prev.click(bind(handlers.step, s, -1), moves, opened, api_name="previous_pair", **events)
    s.reload.click(bind(handlers.reload, s), [*moves, *s.draft_inputs(), s.reason, s.comment], opened,
                   api_name="reload_pair", **events)


def _wire_verdicts(s: ReviewScreen) -> None:
    events = on_message(s)
    changed = [s.history, *s.queue_outputs(), *s.pair_outputs(), s.message]
    screen_in = [s.session, s.pair_state, s.history, *s.filter_inputs()]
    for button, kind in ((s.accept, "accepted"), (s.edit, "edited"), (s.reject, "rejected")):
        button.click(bind(handlers.save_verdict, s, kind), [*screen_in, *s.draft_inputs(), s.reason, s.comment],
                     changed, api_name=handlers.VERDICT_ENDPOINTS[kind], **events)
    s.undo.click(bind(handlers.undo, s), screen_in, changed, api_name="undo", **events)
