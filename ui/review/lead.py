"""The lead view of the review tab: agreement statistics and progress of everyone, blind mode, assignment,
the adjudication queue (a pair opens in the main editor; the final verdict uses its boxes), export of the
settled pairs and their push to the Hugging Face Hub.

Shown to leads only, and every handler checks the lead role in the store again (`require_lead`), so an
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
from ui.review.render import PROGRESS_HEADERS, QUEUE_HEADERS, by_task_rows, progress_rows, queue_rows, stats_markdown
from ui.review.screen import ReviewScreen, on_message, surface
from ui.review.session import ReviewSession, require

DEFAULT_EXPORT_DIR = "review-exports"
_EXPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
FINAL_VERDICTS = ("accepted", "edited", "rejected")


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


def build_lead_panel(s: ReviewScreen) -> None:
    with gr.Column(visible=False, elem_id="review-lead") as s.lead_panel:
        gr.Markdown("## Lead view")
        with gr.Row():
            stats_button = gr.Button("Refresh statistics", elem_id="review-stats-refresh")
            blind = gr.Checkbox(label="Blind mode (annotators see only their queue and their own verdicts)",
                                elem_id="review-blind")
            k = gr.Number(value=2, precision=0, minimum=1, label="Reviews per pair (k)", elem_id="review-k")
            assign = gr.Button("Assign pending pairs", elem_id="review-assign")
        stats_text = gr.Markdown("Statistics appear here once loaded.", elem_id="review-stats")
        with gr.Row():
            by_task = gr.Dataframe(headers=["task", "total"], label="Pairs per task and status", interactive=False,
                                   elem_id="review-by-task")
            everyone = gr.Dataframe(headers=PROGRESS_HEADERS, label="Progress of every annotator", interactive=False)
        gr.Markdown("### Adjudication queue")
        adj_listed = gr.State([])
        adj_refresh = gr.Button("Refresh adjudication queue", elem_id="review-adj-refresh")
        adj_queue = gr.Dataframe(headers=QUEUE_HEADERS, interactive=False, elem_id="review-adj-queue",
                                 label="Pairs whose verdicts disagree (click a row: it opens in the editor above)")
        with gr.Row():
            final = gr.Radio(list(FINAL_VERDICTS), value="accepted", elem_id="review-final",
                             label="Final verdict (edited uses the boxes above; rejected uses the reason above)")
            adjudicate = gr.Button("Adjudicate (Alt+J)", variant="primary", elem_id="review-adjudicate")
            undo_adjudication = gr.Button("Undo my adjudication of this pair", elem_id="review-adj-undo")
        gr.Markdown("### Export and push to the Hub")
        with gr.Row():
            export_name = gr.Textbox(value="curated", label=f"Export folder name (inside {export_root(s)})",
                                     elem_id="review-export-name")
            export = gr.Button("Export the settled pairs", elem_id="review-export")
        with gr.Row():
            repo_id = gr.Textbox(label="Hub dataset repository (org/name)", elem_id="review-repo-id")
            private = gr.Checkbox(value=True, label="Private repository")
            push = gr.Button("Push that export to the Hub", elem_id="review-push")
        result = gr.JSON(label="Export / push result", elem_id="review-export-result")

    events = on_message(s)                    # refusals on the message line: the pair in the editor stays visible
    pair_out = s.pair_outputs()

    @surface
    def stats(session):
        _lead(s, session)
        numbers = s.store.stats()
        headers, rows = by_task_rows(numbers)
        return (stats_markdown(numbers), gr.update(value=rows, headers=headers), progress_rows(s.store.progress()),
                numbers["blind_mode"])

    @surface
    def set_blind(session, enabled: bool):
        me = _lead(s, session)
        s.store.set_blind_mode(bool(enabled), actor=me.name)
        return f"Blind mode is now **{'on' if enabled else 'off'}**."

    @surface
    def assign_pairs(session, reviews_per_pair):
        me = _lead(s, session)
        done = s.store.assign(me.name, k=int(reviews_per_pair or 0))
        return (f"Assigned {done['assignments']} review(s) over {done['pairs']} pair(s): "
                + (", ".join(f"{name} {n}" for name, n in sorted(done["per_annotator"].items())) or "no change") + ".")

    @surface
    def adjudication_queue(session):
        me = _lead(s, session)
        items = s.store.adjudication_queue(me.name, limit=flow.QUEUE_LIMIT)
        return [i.pair_id for i in items], queue_rows(items)

    @surface
    def open_adjudication(session, listed, event: gr.SelectData):
        me = _lead(s, session)
        view = s.store.get_pair(listed[event.index[0]], me.name)
        return [*s.pair_values(view), f"Opened pair {view.pair_id} for adjudication."]

    @surface
    def adjudicate_pair(session, state, final_verdict, question, options, answer, reason, comment):
        me = _lead(s, session)
        outcome = flow.adjudicate(s.store, me, state, final_verdict, draft=flow.Draft(question, options, answer),
                                  reason=reason, comment=comment)
        listed, rows = adjudication_queue(session)
        target = flow.next_pair_id(listed, outcome.pair_id)
        view = s.store.get_pair(target, me.name) if target is not None else None
        message = (f"Adjudicated pair {outcome.pair_id}: {final_verdict} (version {outcome.version}, status "
                   f"{outcome.status}).")
        return [listed, rows, *s.pair_values(view), message]

    @surface
    def undo_adjudicated(session, state):
        me = _lead(s, session)
        if state is None:
            raise ReviewInputError("Open the adjudicated pair first.")
        outcome = s.store.undo(state.pair_id, me.name, state.version, kind="adjudication")
        listed, rows = adjudication_queue(session)
        return [listed, rows, *s.pair_values(s.store.get_pair(outcome.pair_id, me.name)),
                f"Your adjudication of pair {outcome.pair_id} is taken back (status {outcome.status})."]

    @surface
    def export_pairs(session, name):
        me = _lead(s, session)
        done = export_dataset(s.store, export_folder(s, name), actor=me.name)
        return {"export_folder": str(done["path"]), **done["summary"]}     # not "path": clients read that as a file

    @surface
    def push_pairs(session, name, repo, is_private):
        me = _lead(s, session)
        if not _REPO_ID.match((repo or "").strip()):
            raise ReviewInputError(f"repository {repo!r}: write it as org/name (the token's user or organisation).")
        folder = export_folder(s, name)
        try:
            return push_export(s.store, folder, repo.strip(), actor=me.name, private=bool(is_private))
        except CurationError:
            raise
        except Exception as exc:          # the network, mostly: say so, and that the export is safe
            raise CurationError(f"Pushing {folder.name} to the Hub dataset {repo.strip()} failed: {_push_reason(exc)}. "
                                f"The export is still in {folder}: press Push again once the Hub can be reached, "
                                "or push it from a connected machine with `wsi-llava curate push --store STORE "
                                f"--export-dir {folder} --repo-id {repo.strip()} --as {me.name}`.") from exc

    @surface
    def lead_view_on_sign_in(session):
        """Right after a lead signs in: statistics, the blind-mode box as it is, and the adjudication queue."""
        if session is None or not session.is_lead:
            return [gr.skip()] * 6
        return [*stats(session), *adjudication_queue(session)]

    s.lead_view_on_sign_in = dict(fn=lead_view_on_sign_in, inputs=[s.session],
                                  outputs=[stats_text, by_task, everyone, blind, adj_listed, adj_queue],
                                  api_visibility="private", **{**events, "show_progress_on": [stats_text]})

    stats_button.click(stats, [s.session], [stats_text, by_task, everyone, blind], api_name="lead_stats",
                       **{**events, "show_progress_on": [stats_text]})
    blind.input(set_blind, [s.session, blind], [s.message], api_name="set_blind_mode", **events)
    assign.click(assign_pairs, [s.session, k], [s.message], api_name="assign", **events)
    adj_refresh.click(adjudication_queue, [s.session], [adj_listed, adj_queue], api_name="adjudication_queue",
                      **{**events, "show_progress_on": [adj_queue]})
    adj_queue.select(open_adjudication, [s.session, adj_listed], [*pair_out, s.message], api_visibility="private",
                     **events)
    adjudicate.click(adjudicate_pair, [s.session, s.pair_state, final, *s.draft_inputs(), s.reason, s.comment],
                     [adj_listed, adj_queue, *pair_out, s.message], api_name="adjudicate", **events)
    undo_adjudication.click(undo_adjudicated, [s.session, s.pair_state], [adj_listed, adj_queue, *pair_out, s.message],
                            api_name="undo_adjudication", **events)
    export.click(export_pairs, [s.session, export_name], [result], api_name="export", concurrency_limit=1)
    push.click(push_pairs, [s.session, export_name, repo_id, private], [result], api_name="push", concurrency_limit=1)


def _push_reason(exc: BaseException) -> str:
    chain, seen = exc, 0
    while chain is not None and seen < 10:
        if type(chain).__name__ in ("ConnectError", "ConnectTimeout", "OfflineModeIsEnabled") or \
                isinstance(chain, (ConnectionError, TimeoutError)):
            return "the Hugging Face Hub cannot be reached from this machine (offline?)"
        chain, seen = chain.__cause__ or chain.__context__, seen + 1
    return f"{type(exc).__name__}: {exc}"
