"""The lead view's handlers: statistics, blind mode, assignment, the adjudication queue and verdicts, export of
the settled pairs and their push to the Hugging Face Hub.

Plain functions over the tab's `ReviewScreen` (its store, components and `LeadPanel`), returning
`{component: value}` dicts. Every one checks the lead role in the store again (`require_lead`), so an
annotator calling these endpoints through the API is refused with the store's message. Exports go to
`<export_dir>/<name>`; the name is a plain folder name, so no request reaches another path.
"""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from curation.errors import CurationError
from curation.export import export_dataset
from curation.hub_push import push_export
from curation.store.status import ReviewInputError
from ui.review import flow
from ui.review.render import by_task_rows, progress_rows, queue_rows, stats_markdown
from ui.review.screen import ReviewScreen, surface
from ui.review.session import ReviewSession, require

DEFAULT_EXPORT_DIR = "review-exports"
_EXPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def export_root(s: ReviewScreen) -> Path:
    return Path(s.settings.export_dir or DEFAULT_EXPORT_DIR).expanduser().resolve()


def export_folder(s: ReviewScreen, name: str) -> Path:
    name = (name or "").strip()
    if not _EXPORT_NAME.match(name):
        raise ReviewInputError(f"export name {name!r}: use a plain folder name (letters, digits, '.', '_', '-'); "
                               f"exports go inside {export_root(s)}.")
    return export_root(s) / name


def _lead(s: ReviewScreen, session: ReviewSession | None) -> ReviewSession:
    me = require(session)
    s.store.require_lead(me.name)
    return me


@surface
def stats(s: ReviewScreen, session):
    _lead(s, session)
    numbers = s.store.stats()
    headers, rows = by_task_rows(numbers)
    return {s.lead.stats_text: stats_markdown(numbers), s.lead.by_task: gr.update(value=rows, headers=headers),
            s.lead.everyone: progress_rows(s.store.progress()), s.lead.blind: numbers["blind_mode"]}


@surface
def set_blind(s: ReviewScreen, session, enabled: bool):
    me = _lead(s, session)
    s.store.set_blind_mode(bool(enabled), actor=me.name)
    return {s.message: f"Blind mode is now **{'on' if enabled else 'off'}**."}


@surface
def assign_pairs(s: ReviewScreen, session, reviews_per_pair):
    me = _lead(s, session)
    done = s.store.assign(me.name, k=int(reviews_per_pair or 0))
    return {s.message: f"Assigned {done['assignments']} review(s) over {done['pairs']} pair(s): "
                       + (", ".join(f"{name} {n}" for name, n in sorted(done["per_annotator"].items()))
                          or "no change") + "."}


@surface
def adjudication_queue(s: ReviewScreen, session):
    me = _lead(s, session)
    items = s.store.adjudication_queue(me.name, limit=flow.QUEUE_LIMIT)
    return {s.lead.adj_listed: [i.pair_id for i in items], s.lead.adj_queue: queue_rows(items)}


@surface
def open_adjudication(s: ReviewScreen, session, listed, event: gr.SelectData):
    me = _lead(s, session)
    view = s.store.get_pair(listed[event.index[0]], me.name)
    return {**s.pair_updates(view), s.message: f"Opened pair {view.pair_id} for adjudication."}


@surface
def adjudicate_pair(s: ReviewScreen, session, state, final_verdict, question, options, answer, reason, comment):
    me = _lead(s, session)
    outcome = flow.adjudicate(s.store, me, state, final_verdict, draft=flow.Draft(question, options, answer),
                              reason=reason, comment=comment)
    queue = adjudication_queue(s, session)
    target = flow.next_pair_id(queue[s.lead.adj_listed], outcome.pair_id)
    view = s.store.get_pair(target, me.name) if target is not None else None
    message = (f"Adjudicated pair {outcome.pair_id}: {final_verdict} (version {outcome.version}, status "
               f"{outcome.status}).")
    return {**queue, **s.pair_updates(view), s.message: message}


@surface
def undo_adjudicated(s: ReviewScreen, session, state):
    me = _lead(s, session)
    if state is None:
        raise ReviewInputError("Open the adjudicated pair first.")
    outcome = s.store.undo(state.pair_id, me.name, state.version, kind="adjudication")
    return {**adjudication_queue(s, session), **s.pair_updates(s.store.get_pair(outcome.pair_id, me.name)),
            s.message: f"Your adjudication of pair {outcome.pair_id} is taken back (status {outcome.status})."}


@surface
def export_pairs(s: ReviewScreen, session, name):
    me = _lead(s, session)
    done = export_dataset(s.store, export_folder(s, name), actor=me.name)
    # not "path": clients read that as a file
    return {s.lead.result: {"export_folder": str(done["path"]), **done["summary"]}}


@surface
def push_pairs(s: ReviewScreen, session, name, repo, is_private):
    me = _lead(s, session)
    if not _REPO_ID.match((repo or "").strip()):
        raise ReviewInputError(f"repository {repo!r}: write it as org/name (the token's user or organisation).")
    folder = export_folder(s, name)
    try:
        return {s.lead.result: push_export(s.store, folder, repo.strip(), actor=me.name, private=bool(is_private))}
    except CurationError:
        raise
    except Exception as exc:          # the network, mostly: say so, and that the export is safe
        raise CurationError(f"Pushing {folder.name} to the Hub dataset {repo.strip()} failed: {_push_reason(exc)}. "
                            f"The export is still in {folder}: press Push again once the Hub can be reached, "
                            "or push it from a connected machine with `wsi-llava curate push --store STORE "
                            f"--export-dir {folder} --repo-id {repo.strip()} --as {me.name}`.") from exc


@surface
def lead_view_on_sign_in(s: ReviewScreen, session):
    """Right after a lead signs in: statistics, the blind-mode box as it is, and the adjudication queue."""
    if session is None or not session.is_lead:
        return gr.skip()
    return {**stats(s, session), **adjudication_queue(s, session)}


def _push_reason(exc: BaseException) -> str:
    chain, seen = exc, 0
    while chain is not None and seen < 10:
        if type(chain).__name__ in ("ConnectError", "ConnectTimeout", "OfflineModeIsEnabled") or \
                isinstance(chain, (ConnectionError, TimeoutError)):
            return "the Hugging Face Hub cannot be reached from this machine (offline?)"
        chain, seen = chain.__cause__ or chain.__context__, seen + 1
    return f"{type(exc).__name__}: {exc}"
