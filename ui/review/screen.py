"""The review tab's shared screen: its components (`ReviewScreen`, the lead's `LeadPanel`), the
`{component: value}` updates that show one pair, and `surface`, which turns every failure of a handler into a
`gr.Error` carrying the real message.

`ui/review/tab.py` (annotator view) and `ui/review/lead.py` (lead view) both fill and read these
components; keeping them here lets the two modules share them without importing each other.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass

import gradio as gr

from curation.store.views import PairView, StaleVersionError
from ui.errors import redact, to_gr_error
from ui.review import render
from ui.review.flow import Draft, PairState
from ui.review.session import ReviewSettings, StoreHandle

# Every store-bound event shares one pool of this many concurrent calls (SQLite serialises the writes anyway).
STORE_EVENTS = {"concurrency_limit": 16, "concurrency_id": "review-store"}
STALE_HINT = ("Your text is still in the boxes: press Reload (Alt+L), which keeps your unsaved edit, "
              "look at the pair again and save once more.")
STALE_SECONDS = 60          # long enough to read; a later successful save must not sit under a "NOT saved"


def stale_message(exc: StaleVersionError) -> str:
    return (f"Pair {exc.pair_id} changed after you opened it (you opened version {exc.expected_version}, it is now "
            f"version {exc.current_version}): another annotator reviewed it (in blind mode you do not see their "
            "verdict) or you saved it in another tab. Your verdict was NOT saved (the attempt is kept in the audit "
            f"log). {STALE_HINT}")


def on_message(screen: "ReviewScreen", **events) -> dict:
    """Event options: progress and a refusal show on the message line, so the pair, the queue and the text being
    edited stay visible (Gradio covers every output component of a failed event with an "Error" badge)."""
    return {**STORE_EVENTS, **events, "show_progress_on": [screen.message]}


def surface(fn):
    """Run a handler; every failure becomes a `gr.Error` with its real message (ui.errors), and a stale
    save says that nothing was saved, that the draft is kept, and what to do."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StaleVersionError as exc:
            raise gr.Error(html.escape(redact(stale_message(exc)), quote=False), duration=STALE_SECONDS,
                           title="Not saved: the pair changed", print_exception=False) from exc
        except Exception as exc:
            raise to_gr_error(exc) from exc
    return wrapper


@dataclass
class LeadPanel:
    """The lead view's components (ui.review.lead draws them; shown to leads only)."""

    panel: gr.Column
    stats_button: gr.Button
    blind: gr.Checkbox
    k: gr.Number
    assign: gr.Button
    stats_text: gr.Markdown
    by_task: gr.Dataframe
    everyone: gr.Dataframe
    adj_listed: gr.State
    adj_refresh: gr.Button
    adj_queue: gr.Dataframe
    final: gr.Radio
    adjudicate: gr.Button
    undo_adjudication: gr.Button
    export_name: gr.Textbox
    export: gr.Button
    repo_id: gr.Textbox
    private: gr.Checkbox
    push: gr.Button
    result: gr.JSON

    def stats_outputs(self) -> list:
        return [self.stats_text, self.by_task, self.everyone, self.blind]

    def adjudication_outputs(self) -> list:
        return [self.adj_listed, self.adj_queue]


class ReviewScreen:
    """The components both views use; created inside `build_review_tab`'s layout (ui.review.tab), the lead's
    in `build_lead_panel` (ui.review.lead). Handlers key their `{component: value}` results by them."""

    # set by build_review_tab: the browser tab's state ...
    session: gr.State                         # ReviewSession | None
    pair_state: gr.State                      # PairState | None: the pair on screen as loaded
    listed: gr.State                          # the pair ids of the queue on screen
    history: gr.State                         # [(pair id, version)] saved in this browser tab
    # ... sign-in ...
    sign_in_form: gr.Row
    sign_in_button: gr.Button
    name: gr.Textbox                          # password sign-in only
    password: gr.Textbox
    who: gr.Markdown
    sign_out_button: gr.Button
    workspace: gr.Column
    # ... the queue ...
    tasks: gr.Dropdown
    statuses: gr.Dropdown
    checks_failed: gr.Dropdown
    include_reviewed: gr.Checkbox
    refresh: gr.Button
    queue: gr.Dataframe
    progress: gr.Dataframe
    # ... and the pair
    message: gr.Markdown
    header: gr.Markdown
    prev: gr.Button
    next: gr.Button
    reload: gr.Button
    go_to: gr.Number
    open_button: gr.Button
    thumbnail: gr.Image
    report: gr.HighlightedText
    enrichment: gr.HighlightedText
    context: gr.HighlightedText
    removed: gr.HighlightedText
    question: gr.Textbox
    options: gr.Textbox
    answer: gr.Textbox
    reason: gr.Radio
    comment: gr.Textbox
    accept: gr.Button
    edit: gr.Button
    reject: gr.Button
    undo: gr.Button
    checks: gr.Dataframe
    provenance: gr.JSON
    slide_viewer: gr.HTML                     # the pair's slide, zoomable (ui.review.slide_view); None: no viewer
    slide_shown: gr.State                     # (slide id, viewer handle) the viewer shows, or None
    # set by build_lead_panel: its components, and the event (fn, inputs, outputs ...) filling the lead view
    # after a sign-in
    lead: LeadPanel
    lead_view_on_sign_in: dict

    def __init__(self, settings: ReviewSettings, handle: StoreHandle, viewer=None, slides_root=None) -> None:
        self.settings = settings
        self.handle = handle
        self.viewer = viewer                  # the app's ui.viewer.ViewerRegistry (None: no zoomable slide)
        self.slides_root = slides_root        # ui.viewer.SlidesRoot of --slides-root (None: not given)
        self.slide_viewer = self.slide_shown = None

    @property
    def store(self):
        return self.handle.get()

    @property
    def lead_panel(self) -> gr.Column:
        return self.lead.panel

    def filter_inputs(self) -> list:
        return [self.tasks, self.statuses, self.checks_failed, self.include_reviewed]

    def queue_outputs(self) -> list:
        return [self.listed, self.queue, self.progress]

    def signed_outputs(self) -> list:
        """What signing in or out changes."""
        return [self.session, self.who, self.sign_in_form, self.sign_out_button, self.workspace, self.lead_panel]

    def pair_outputs(self) -> list:
        return [self.pair_state, self.header, self.thumbnail, self.report, self.enrichment, self.context,
                self.removed, self.question, self.options, self.answer, self.reason, self.comment, self.checks,
                self.provenance]

    def draft_inputs(self) -> list:
        return [self.question, self.options, self.answer]

    def pair_updates(self, view: PairView | None, draft: Draft | None = None, reason: str | None = None,
                     comment: str = "") -> dict:
        """`{component: value}` for `pair_outputs()`: the pair (boxes from `draft` when given), or an empty
        screen."""
        if view is None:
            return {self.pair_state: None, self.header: "Your queue is empty: nothing to review with these filters.",
                    self.thumbnail: gr.update(value=None, visible=False), self.report: [],
                    self.enrichment: gr.update(value=None, visible=False),
                    self.context: gr.update(value=None, visible=False), self.removed: [],
                    self.question: gr.update(value=""), self.options: gr.update(value="", visible=False),
                    self.answer: gr.update(value=""), self.reason: None, self.comment: "", self.checks: [],
                    self.provenance: None}
        state = PairState.of(view)
        draft = draft or Draft.of(state)
        thumbnail = render.thumbnail_path(self.settings.thumbnails_dir, view.slide_id)
        enrichment = render.enrichment(view)
        context = render.context(view)
        return {
            self.pair_state: state, self.header: render.header(view),
            self.thumbnail: gr.update(value=thumbnail, visible=thumbnail is not None, label=f"Slide {view.slide_id}"),
            self.report: render.cleaned_report(view),
            self.enrichment: gr.update(value=enrichment, visible=enrichment is not None,
                                       label=render.enrichment_label(view)),
            self.context: gr.update(value=context, visible=context is not None),
            self.removed: render.removed_by_cleaning(view),
            self.question: gr.update(value=draft.question, label=f"Question ({view.task_title})"),
            self.options: gr.update(value=draft.options, visible=view.options is not None),
            self.answer: gr.update(value=draft.answer),
            self.reason: reason, self.comment: comment, self.checks: render.checks_table(view),
            self.provenance: {**view.provenance, "uid": view.uid, "image": view.image, "aspect": view.aspect,
                              "evidence": view.evidence},
        }
