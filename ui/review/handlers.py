"""The review tab's annotator handlers: sign in and out, load the queue, open a pair (by number, row, next /
previous), reload it keeping an unsaved edit, save a verdict, undo.

Plain functions over the tab's `ReviewScreen` (its store and components), returning `{component: value}`
dicts; the steps themselves are `ui.review.flow`'s (no Gradio there). Every handler is wrapped by `surface`,
so a failure reaches the person as a `gr.Error` with the store's message. `ui.review.tab` binds them to
their events (`ui.events.bind`).
"""

from __future__ import annotations

import html

import gradio as gr

from curation.store.status import ReviewInputError
from ui.review import flow
from ui.review.render import progress_rows, queue_rows
from ui.review.screen import ReviewScreen, surface
from ui.review.session import (
    ReviewSession,
    SignInError,
    huggingface_sign_in,
    password_sign_in,
    require,
)

NOT_SIGNED_IN = "**Not signed in.** Sign in to see your queue; nothing is shown or saved anonymously."
VERDICT_ENDPOINTS = {"accepted": "accept", "edited": "save_edit", "rejected": "reject"}


def filters_of(tasks, statuses, checks_failed, include_reviewed) -> flow.QueueFilters:
    return flow.QueueFilters(list(tasks or []), list(statuses or []), list(checks_failed or []),
                             bool(include_reviewed))


def queue_updates(s: ReviewScreen, me: ReviewSession, filters: flow.QueueFilters) -> tuple[list[int], dict]:
    """(the listed pair ids, `{component: value}` for `s.queue_outputs()`)."""
    items = flow.list_queue(s.store, me, filters)
    ids = [i.pair_id for i in items]
    progress = progress_rows(s.store.progress(None if me.is_lead else me.name))
    return ids, {s.listed: ids, s.queue: queue_rows(items), s.progress: progress}


# -- sign-in ------------------------------------------------------------------------------------------------
def signed_in(s: ReviewScreen, me: ReviewSession) -> dict:
    via = "Hugging Face" if me.via == "huggingface" else "password"
    blind = " · blind mode on: you see only your own verdicts" if s.store.blind_mode() and not me.is_lead else ""
    return {s.session: me, s.who: f"Signed in as **{me.name}** ({me.role}, via {via}){blind}.",
            s.sign_in_form: gr.update(visible=False), s.sign_out_button: gr.update(visible=True),
            s.workspace: gr.update(visible=True), s.lead_panel: gr.update(visible=me.is_lead)}


def client_address(request: gr.Request | None) -> str | None:
    """The address a request came from (what sign-ins are throttled by); None when Gradio has none."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or None


@surface
def sign_in_password(s: ReviewScreen, name: str, password: str, request: gr.Request):
    me = password_sign_in(s.settings, s.store, name, password, client=client_address(request))
    return {**signed_in(s, me), s.password: ""}


@surface
def sign_in_huggingface(s: ReviewScreen, profile: gr.OAuthProfile | None):
    return signed_in(s, huggingface_sign_in(s.store, profile.username if profile else None))


@surface
def sign_in_huggingface_on_load(s: ReviewScreen, profile: gr.OAuthProfile | None):
    """Page load: signed in on the Hub -> signed in here; otherwise say why, without an error toast."""
    if profile is None:
        return {s.session: None, s.who: NOT_SIGNED_IN + " Use **Sign in with Hugging Face** above."}
    try:
        return signed_in(s, huggingface_sign_in(s.store, profile.username))
    except SignInError as exc:
        return {s.session: None, s.who: f"**Not signed in.** {html.escape(str(exc), quote=False)}"}


def sign_out(s: ReviewScreen):
    return {s.session: None, s.who: NOT_SIGNED_IN, s.sign_in_form: gr.update(visible=True),
            s.sign_out_button: gr.update(visible=False), s.workspace: gr.update(visible=False),
            s.lead_panel: gr.update(visible=False), s.pair_state: None, s.listed: [], s.history: []}


# -- the queue and the pair on screen -----------------------------------------------------------------------
@surface
def load_screen(s: ReviewScreen, me, state, tasks, statuses, checks_failed, include_reviewed, question, options,
                answer, reason, comment):
    """The queue with these filters; the pair on screen refreshed (keeping an unsaved edit), else the first."""
    me = require(me)
    ids, queue = queue_updates(s, me, filters_of(tasks, statuses, checks_failed, include_reviewed))
    draft = flow.Draft(question or "", options or "", answer or "")
    if state is not None and (state.pair_id in ids or draft.differs_from(state)):
        view = flow.open_pair(s.store, me, state.pair_id)
        _, kept, was_kept = flow.reload_keeping_draft(view, state, draft)
        pair = s.pair_updates(view, kept, reason if was_kept else None, comment if was_kept else "")
    else:
        pair = s.pair_updates(s.store.get_pair(ids[0], me.name) if ids else None)
    shown = f"{len(ids)} pair(s) in your queue" + (" (the first ones; filter to see others)"
                                                     if len(ids) >= flow.QUEUE_LIMIT else "") + "."
    if me.is_lead and not ids:
        shown += " Leads are usually not assigned pairs: the lead view (statistics, adjudication) is below."
    return {**queue, **pair, s.message: shown}


def load_if_signed_in(s: ReviewScreen, me, state, tasks, statuses, checks_failed, include_reviewed, question,
                      options, answer, reason, comment):
    if me is None:
        return gr.skip()
    return load_screen(s, me, state, tasks, statuses, checks_failed, include_reviewed, question, options, answer,
                       reason, comment)


@surface
def open_by_id(s: ReviewScreen, me, listed, pair_id):
    if pair_id is None:
        raise ReviewInputError("Type a pair number first.")
    view = flow.open_pair(s.store, me, int(pair_id))
    return {**s.pair_updates(view), s.message: f"Opened pair {view.pair_id}."}


@surface
def open_row(s: ReviewScreen, me, listed, event: gr.SelectData):
    return open_by_id(s, me, listed, listed[event.index[0]])


@surface
def step(s: ReviewScreen, direction: int, me, listed, state):
    """The next (direction 1) or previous (-1) pair of the listed queue."""
    target = flow.next_pair_id(listed, state.pair_id if state else None, direction)
    if target is None:
        raise ReviewInputError("Your queue is empty with these filters: refresh it or change the filters.")
    return open_by_id(s, me, listed, target)


@surface
def reload(s: ReviewScreen, me, listed, state, question, options, answer, reason, comment):
    if state is None:
        raise ReviewInputError("Open a pair first.")
    view = flow.open_pair(s.store, me, state.pair_id)
    _, kept, was_kept = flow.reload_keeping_draft(view, state, flow.Draft(question, options, answer))
    message = (f"Reloaded pair {view.pair_id} (version {view.version}); your unsaved edit is kept in the boxes."
               if was_kept else f"Reloaded pair {view.pair_id} (version {view.version}).")
    return {**s.pair_updates(view, kept, reason, comment if was_kept else ""), s.message: message}


# -- verdicts -----------------------------------------------------------------------------------------------
def after_change(s: ReviewScreen, me: ReviewSession, history, filters: flow.QueueFilters, current_id: int,
                 message: str) -> dict:
    """The screen after a save: the queue again, the pair after the one just saved."""
    ids, queue = queue_updates(s, me, filters)
    target = flow.next_pair_id(ids, current_id)
    view = s.store.get_pair(target, me.name) if target is not None else None
    return {s.history: history, **queue, **s.pair_updates(view), s.message: message}


def saved_message(s: ReviewScreen, me: ReviewSession, verb: str, outcome) -> str:
    status = "" if s.store.blind_mode() and not me.is_lead else f", status {outcome.status}"
    return f"Saved: {verb} pair {outcome.pair_id} (version {outcome.version}{status}). Alt+U undoes it."


@surface
def save_verdict(s: ReviewScreen, kind: str, me, state, history, tasks, statuses, checks_failed, include_reviewed,
                 question, options, answer, reason, comment):
    """Accept, save the edit in the boxes, or reject (`kind`: accepted | edited | rejected)."""
    me = require(me)
    boxes = flow.Draft(question, options, answer)
    edits = flow.edit_fields(state, boxes) if kind == "edited" and state else None
    outcome = flow.save_verdict(s.store, me, state, kind, edits=edits, reason=reason, comment=comment)
    return after_change(s, me, flow.remember(history, outcome),
                        filters_of(tasks, statuses, checks_failed, include_reviewed), state.pair_id,
                        saved_message(s, me, kind, outcome))


@surface
def undo(s: ReviewScreen, me, state, history, tasks, statuses, checks_failed, include_reviewed):
    me = require(me)
    outcome, history, pair_id = flow.undo(s.store, me, state, history)
    _, queue = queue_updates(s, me, filters_of(tasks, statuses, checks_failed, include_reviewed))
    view = s.store.get_pair(pair_id, me.name)
    message = (f"Undone: your verdict on pair {pair_id} is taken back (version {outcome.version})." if outcome
               else f"Nothing was undone: pair {pair_id} changed after you saved it (now version {view.version}). "
               "It is open now; press Alt+U again to take back your current verdict on it.")
    return {s.history: history, **queue, **s.pair_updates(view), s.message: message}
