"""The Curation review tab: sign in, work through your queue of generated pairs, accept / edit / reject
(with a reason) / undo by mouse or keyboard; leads also see agreement, adjudicate, export and push.

Build it inside a `gr.Tab` (see app.py):

    with gr.Tab("Curation review"):
        build_review_tab(config.review_store, config.users_file)

Sign-in is a local name/password list (`python -m curation.store.users`), or Hugging Face OAuth on
a Space (`hf_oauth: true`); nothing is read or written anonymously. Everything goes through
`curation.store.review_store.ReviewStore` (optimistic locking: a save on an old version is refused and the
draft stays in the boxes). Logic lives in `ui.review.flow`, drawing in `ui.review.render`, the lead
view in `ui.review.lead`, the keys in `ui.review.shortcuts`.
"""

from __future__ import annotations

import gradio as gr

from curation.pair_checks import CHECK_NAMES
from curation.store.status import REJECT_REASONS, STATUSES, ReviewInputError
from wsi_bench.tasks import TASKS
from ui.review import flow
from ui.review.lead import build_lead_panel
from ui.review.render import GROUNDING, INFERRED, PROGRESS_HEADERS, QUEUE_HEADERS, progress_rows, queue_rows
from ui.review.screen import STORE_EVENTS, ReviewScreen, on_message, surface
from ui.review.session import (
    ReviewSession,
    ReviewSettings,
    SignInError,
    StoreHandle,
    huggingface_sign_in,
    password_sign_in,
    require,
)
from ui.review.shortcuts import REASON_ID, ROOT_ID, handler_js, help_markdown

NOT_SIGNED_IN = "**Not signed in.** Sign in to see your queue; nothing is shown or saved anonymously."
YELLOW, VIOLET = "#fde68a", "#ddd6fe"


def build_review_tab(store_url: str, users_file: str | None, thumbnails_dir: str | None = None,
                     export_dir: str | None = None, sign_in: str = "auto") -> None:
    """Lay out and wire the tab; the store is opened on first use, so start-up never waits on it.
    Returns None: the tab has no per-session clean-up (app.py passes a returned handler to demo.unload)."""
    build_review_screen(ReviewSettings(store_url, users_file, thumbnails_dir, export_dir, sign_in))


def build_review_screen(settings: ReviewSettings) -> ReviewScreen:
    """`build_review_tab` returning its screen (tests close `screen.handle` afterwards)."""
    screen = ReviewScreen(settings, StoreHandle(settings.store_url))
    with gr.Column(elem_id=ROOT_ID):
        gr.HTML("", js_on_load=handler_js(), elem_id="review-keys")
        _layout(screen)
        build_lead_panel(screen)
    _wire(screen)
    return screen


def _layout(s: ReviewScreen) -> None:
    s.session, s.pair_state, s.listed, s.history = gr.State(None), gr.State(None), gr.State([]), gr.State([])
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
        s.who = gr.Markdown(" ".join(filter(None, (NOT_SIGNED_IN, s.settings.sign_in_note))), elem_id="review-who")
        s.sign_out_button = gr.Button("Sign out", elem_id="review-sign-out", scale=0, size="sm", visible=False)
    with gr.Column(visible=False) as s.workspace, gr.Row():
        with gr.Column(scale=2, min_width=320):
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
        with gr.Column(scale=5):
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
                    s.report = gr.HighlightedText(
                        label="Cleaned report (highlighted: the text that grounds the answer)", show_legend=True,
                        color_map={GROUNDING: YELLOW}, elem_id="review-report")
                    s.enrichment = gr.HighlightedText(show_legend=True, visible=False, elem_id="review-enrichment",
                                                      color_map={GROUNDING: YELLOW, INFERRED: VIOLET})
                    s.context = gr.HighlightedText(
                        label="Clinical context (IHC text removed by cleaning; the generator saw it)",
                        show_legend=True, visible=False, color_map={GROUNDING: YELLOW}, elem_id="review-context")
                    with gr.Accordion("What cleaning removed (the original report)", open=False):
                        s.removed = gr.HighlightedText(show_legend=True, show_label=False, elem_id="review-removed")
                with gr.Column(scale=2):
                    s.thumbnail = gr.Image(visible=False, interactive=False, type="filepath", height=240,
                                           elem_id="review-thumbnail")
                    s.question = gr.Textbox("", label="Question", lines=2, elem_id="review-question")
                    s.options = gr.Textbox("", label="Options (one per line: A) text)", lines=4, visible=False,
                                           elem_id="review-options")
                    s.answer = gr.Textbox("", label="Answer", lines=4, elem_id="review-answer")
                    s.reason = gr.Radio([(f"{(i + 1) % 10} · {text}", key) for i, (key, text) in
                                         enumerate(REJECT_REASONS.items())], label="Rejection reason",
                                        elem_id=REASON_ID)
                    s.comment = gr.Textbox("", label="Comment (optional)", max_lines=3, elem_id="review-comment")
                    with gr.Row():
                        s.accept = gr.Button("Accept (Alt+A)", variant="primary", elem_id="review-accept")
                        s.edit = gr.Button("Save edit (Alt+E)", elem_id="review-edit")
                        s.reject = gr.Button("Reject (Alt+R)", variant="stop", elem_id="review-reject")
                        s.undo = gr.Button("Undo (Alt+U)", elem_id="review-undo")
            with gr.Accordion("Checks and provenance", open=False):
                s.checks = gr.Dataframe(headers=["check", "status", "detail"], interactive=False, wrap=True)
                s.provenance = gr.JSON(label="Provenance")


def _filters(tasks, statuses, checks_failed, include_reviewed) -> flow.QueueFilters:
    return flow.QueueFilters(list(tasks or []), list(statuses or []), list(checks_failed or []),
                             bool(include_reviewed))


def _progress(s: ReviewScreen, me: ReviewSession) -> list[list]:
    return progress_rows(s.store.progress(None if me.is_lead else me.name))


def _queue_values(s: ReviewScreen, me: ReviewSession, filters: flow.QueueFilters) -> tuple[list[int], list]:
    items = flow.list_queue(s.store, me, filters)
    return [i.pair_id for i in items], [[i.pair_id for i in items], queue_rows(items), _progress(s, me)]


def _wire(s: ReviewScreen) -> None:
    filters = [s.tasks, s.statuses, s.checks_failed, s.include_reviewed]
    draft = s.draft_inputs()
    pair_out = s.pair_outputs()
    queue_out = [s.listed, s.queue, s.progress]
    signed_out = [s.session, s.who, s.sign_in_form, s.sign_out_button, s.workspace, s.lead_panel]
    events = on_message(s)                    # progress and refusals on the message line: the pair stays visible
    on_who = {**STORE_EVENTS, "show_progress_on": [s.who]}

    def signed_in(me: ReviewSession) -> list:
        via = "Hugging Face" if me.via == "huggingface" else "password"
        blind = " · blind mode on: you see only your own verdicts" if s.store.blind_mode() and not me.is_lead else ""
        return [me, f"Signed in as **{me.name}** ({me.role}, via {via}){blind}.", gr.update(visible=False),
                gr.update(visible=True), gr.update(visible=True), gr.update(visible=me.is_lead)]

    @surface
    def sign_in_password(name: str, password: str):
        return signed_in(password_sign_in(s.settings, s.store, name, password)) + [""]

    @surface
    def sign_in_huggingface(profile: gr.OAuthProfile | None):
        return signed_in(huggingface_sign_in(s.store, profile.username if profile else None))

    @surface
    def sign_in_huggingface_on_load(profile: gr.OAuthProfile | None):
        """Page load: signed in on the Hub -> signed in here; otherwise say why, without an error toast."""
        if profile is None:
            return [None, NOT_SIGNED_IN + " Use **Sign in with Hugging Face** above.", *[gr.skip()] * 4]
        try:
            return signed_in(huggingface_sign_in(s.store, profile.username))
        except SignInError as exc:
            return [None, f"**Not signed in.** {exc}", *[gr.skip()] * 4]

    def load_if_signed_in(me, *values):
        return load_screen(me, *values) if me is not None else [gr.skip()] * (len(queue_out) + len(pair_out) + 1)

    def sign_out():
        return [None, NOT_SIGNED_IN, gr.update(visible=True), gr.update(visible=False), gr.update(visible=False),
                gr.update(visible=False), None, [], []]

    @surface
    def load_screen(me, state, tasks, statuses, checks_failed, include_reviewed, question, options, answer, reason,
                    comment):
        me = require(me)
        ids, queue_values = _queue_values(s, me, _filters(tasks, statuses, checks_failed, include_reviewed))
        draft = flow.Draft(question or "", options or "", answer or "")
        if state is not None and (state.pair_id in ids or draft.differs_from(state)):
            view = flow.open_pair(s.store, me, state.pair_id)         # the pair on screen, refreshed
            _, kept, was_kept = flow.reload_keeping_draft(view, state, draft)
            pair_values = s.pair_values(view, kept, reason if was_kept else None, comment if was_kept else "")
        else:
            pair_values = s.pair_values(s.store.get_pair(ids[0], me.name) if ids else None)
        shown = f"{len(ids)} pair(s) in your queue" + (" (the first ones; filter to see others)"
                                                         if len(ids) >= flow.QUEUE_LIMIT else "") + "."
        if me.is_lead and not ids:
            shown += " Leads are usually not assigned pairs: the lead view (statistics, adjudication) is below."
        return [*queue_values, *pair_values, shown]

    @surface
    def open_by_id(me, listed, pair_id):
        if pair_id is None:
            raise ReviewInputError("Type a pair number first.")
        view = flow.open_pair(s.store, me, int(pair_id))
        return [*s.pair_values(view), f"Opened pair {view.pair_id}."]

    @surface
    def open_row(me, listed, event: gr.SelectData):
        return open_by_id(me, listed, listed[event.index[0]])

    @surface
    def step(me, listed, state, direction: int):
        target = flow.next_pair_id(listed, state.pair_id if state else None, direction)
        if target is None:
            raise ReviewInputError("Your queue is empty with these filters: refresh it or change the filters.")
        return open_by_id(me, listed, target)

    @surface
    def reload(me, listed, state, question, options, answer, reason, comment):
        if state is None:
            raise ReviewInputError("Open a pair first.")
        view = flow.open_pair(s.store, me, state.pair_id)
        _, kept, was_kept = flow.reload_keeping_draft(view, state, flow.Draft(question, options, answer))
        message = (f"Reloaded pair {view.pair_id} (version {view.version}); your unsaved edit is kept in the boxes."
                   if was_kept else f"Reloaded pair {view.pair_id} (version {view.version}).")
        return [*s.pair_values(view, kept, reason, comment if was_kept else ""), message]

    def after_change(me, history, filters_values, current_id, message):
        ids, queue_values = _queue_values(s, me, _filters(*filters_values))
        target = flow.next_pair_id(ids, current_id)
        view = s.store.get_pair(target, me.name) if target is not None else None
        return [history, *queue_values, *s.pair_values(view), message]

    def saved_message(me, verb, outcome) -> str:
        status = "" if s.store.blind_mode() and not me.is_lead else f", status {outcome.status}"
        return f"Saved: {verb} pair {outcome.pair_id} (version {outcome.version}{status}). Alt+U undoes it."

    def verdict(kind: str):
        @surface
        def save(me, state, history, tasks, statuses, checks_failed, include_reviewed, question, options, answer,
                 reason, comment):
            me = require(me)
            boxes = flow.Draft(question, options, answer)
            edits = flow.edit_fields(state, boxes) if kind == "edited" and state else None
            outcome = flow.save_verdict(s.store, me, state, kind, edits=edits, reason=reason, comment=comment)
            return after_change(me, flow.remember(history, outcome), (tasks, statuses, checks_failed, include_reviewed),
                                state.pair_id, saved_message(me, kind, outcome))
        save.__name__ = {"accepted": "accept", "edited": "save_edit", "rejected": "reject"}[kind]
        return save

    @surface
    def undo(me, state, history, tasks, statuses, checks_failed, include_reviewed):
        me = require(me)
        outcome, history, pair_id = flow.undo(s.store, me, state, history)
        _, queue_values = _queue_values(s, me, _filters(tasks, statuses, checks_failed, include_reviewed))
        view = s.store.get_pair(pair_id, me.name)
        message = (f"Undone: your verdict on pair {pair_id} is taken back (version {outcome.version})." if outcome
                   else f"Nothing was undone: pair {pair_id} changed after you saved it (now version {view.version}). "
                   "It is open now; press Alt+U again to take back your current verdict on it.")
        return [history, *queue_values, *s.pair_values(view), message]

    change_out = [s.history, *queue_out, *pair_out, s.message]
    screen_in = [s.session, s.pair_state]
    load = dict(fn=load_screen, inputs=[*screen_in, *filters, *draft, s.reason, s.comment],
                outputs=[*queue_out, *pair_out, s.message],
                api_visibility="private", **events)
    lead_view = s.lead_view_on_sign_in            # statistics, blind mode and adjudication queue, leads only
    if s.settings.uses_huggingface:
        s.sign_in_button.click(sign_in_huggingface, None, signed_out, api_name="sign_in", **on_who).success(
            **load).success(**lead_view)
        gr.on(None, sign_in_huggingface_on_load, None, signed_out, api_visibility="private").then(
            **{**load, "fn": load_if_signed_in}).then(**lead_view)
    else:
        trigger = [s.sign_in_button.click, s.password.submit]
        gr.on(trigger, sign_in_password, [s.name, s.password], [*signed_out, s.password], api_name="sign_in",
              **on_who).success(**load).success(**lead_view)
    s.sign_out_button.click(sign_out, None, [*signed_out, s.pair_state, s.listed, s.history], api_name="sign_out")
    s.refresh.click(**{**load, "api_visibility": "public"}, api_name="load_queue")
    for box in filters:
        box.input(**load)
    s.open_button.click(open_by_id, [s.session, s.listed, s.go_to], [*pair_out, s.message], api_name="open_pair",
                        **events)
    s.queue.select(open_row, [s.session, s.listed], [*pair_out, s.message], api_visibility="private", **events)
    s.next.click(lambda me, listed, state: step(me, listed, state, 1), [s.session, s.listed, s.pair_state],
                 [*pair_out, s.message], api_name="next_pair", **events)
    s.prev.click(lambda me, listed, state: step(me, listed, state, -1), [s.session, s.listed, s.pair_state],
                 [*pair_out, s.message], api_name="previous_pair", **events)
    s.reload.click(reload, [s.session, s.listed, s.pair_state, *draft, s.reason, s.comment], [*pair_out, s.message],
                   api_name="reload_pair", **events)
    verdict_in = [*screen_in, s.history, *filters, *draft, s.reason, s.comment]
    for button, kind in ((s.accept, "accepted"), (s.edit, "edited"), (s.reject, "rejected")):
        handler = verdict(kind)
        button.click(handler, verdict_in, change_out, api_name=handler.__name__, **events)
    s.undo.click(undo, [*screen_in, s.history, *filters], change_out, api_name="undo", **events)
