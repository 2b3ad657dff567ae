"""The review tab's shared screen: its components, the values that show one pair, and `surface`, which
turns every failure of a handler into a `gr.Error` carrying the real message.

`ui/review/tab.py` (annotator view) and `ui/review/lead.py` (lead view) both fill and read these
components; keeping them here lets the two modules share them without importing each other.
"""

from __future__ import annotations

import functools
import html

import gradio as gr

from curation.store.views import PairView, StaleVersionError
from ui.review import render
from ui.errors import redact, to_gr_error
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


class ReviewScreen:
    """The components both views use; created inside `build_review_tab`'s layout."""

    def __init__(self, settings: ReviewSettings, handle: StoreHandle) -> None:
        self.settings = settings
        self.handle = handle
        # set by build_review_tab:
        self.session: gr.State
        self.pair_state: gr.State
        self.message: gr.Markdown
        self.header: gr.Markdown
        self.thumbnail: gr.Image
        self.report: gr.HighlightedText
        self.enrichment: gr.HighlightedText
        self.context: gr.HighlightedText
        self.removed: gr.HighlightedText
        self.question: gr.Textbox
        self.options: gr.Textbox
        self.answer: gr.Textbox
        self.reason: gr.Radio
        self.comment: gr.Textbox
        self.checks: gr.Dataframe
        self.provenance: gr.JSON
        # set by build_lead_panel: the event (fn, inputs, outputs ...) filling the lead view after a sign-in
        self.lead_view_on_sign_in: dict

    @property
    def store(self):
        return self.handle.get()

    def pair_outputs(self) -> list:
        return [self.pair_state, self.header, self.thumbnail, self.report, self.enrichment, self.context,
                self.removed, self.question, self.options, self.answer, self.reason, self.comment, self.checks,
                self.provenance]

    def draft_inputs(self) -> list:
        return [self.question, self.options, self.answer]

    def pair_values(self, view: PairView | None, draft: Draft | None = None, reason: str | None = None,
                    comment: str = "") -> list:
        """Values for `pair_outputs()`: the pair (boxes from `draft` when given), or an empty screen."""
        if view is None:
            return [None, "Your queue is empty: nothing to review with these filters.",
                    gr.update(value=None, visible=False), [], gr.update(value=None, visible=False),
                    gr.update(value=None, visible=False), [], gr.update(value=""),
                    gr.update(value="", visible=False), gr.update(value=""), None, "", [], None]
        state = PairState.of(view)
        draft = draft or Draft.of(state)
        thumbnail = render.thumbnail_path(self.settings.thumbnails_dir, view.slide_id)
        enrichment = render.enrichment(view)
        context = render.context(view)
        return [
            state, render.header(view),
            gr.update(value=thumbnail, visible=thumbnail is not None, label=f"Slide {view.slide_id}"),
            render.cleaned_report(view),
            gr.update(value=enrichment, visible=enrichment is not None, label=render.enrichment_label(view)),
            gr.update(value=context, visible=context is not None),
            render.removed_by_cleaning(view),
            gr.update(value=draft.question, label=f"Question ({view.task_title})"),
            gr.update(value=draft.options, visible=view.options is not None),
            gr.update(value=draft.answer),
            reason, comment, render.checks_table(view),
            {**view.provenance, "uid": view.uid, "image": view.image, "aspect": view.aspect,
             "evidence": view.evidence},
        ]
