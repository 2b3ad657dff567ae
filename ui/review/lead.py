"""The lead view of the review tab: agreement statistics and progress of everyone, blind mode, assignment,
the adjudication queue (a pair opens in the main editor; the final verdict uses its boxes), export of the
settled pairs and their push to the Hugging Face Hub.

Shown to leads only; this module lays it out (`LeadPanel`, ui.review.screen) and wires it, the handlers are
`ui.review.lead_handlers` (each checks the lead role in the store again).
"""

from __future__ import annotations

import gradio as gr

from ui.events import bind
from ui.review import lead_handlers as handlers
from ui.review.render import PROGRESS_HEADERS, QUEUE_HEADERS
from ui.review.screen import LeadPanel, ReviewScreen, on_message

FINAL_VERDICTS = ("accepted", "edited", "rejected")


def build_lead_panel(s: ReviewScreen) -> None:
    parts: dict = {}
    with gr.Column(visible=False, elem_id="review-lead") as panel:
        gr.Markdown("## Lead view")
        parts.update(_build_statistics_section())
        gr.Markdown("### Adjudication queue")
        parts.update(_build_adjudication_section())
        gr.Markdown("### Export and push to the Hub")
        parts.update(_build_export_section(s))
    s.lead = LeadPanel(panel=panel, **parts)
    _wire(s)


def _build_statistics_section() -> dict:
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
    return dict(stats_button=stats_button, blind=blind, k=k, assign=assign, stats_text=stats_text, by_task=by_task,
                everyone=everyone)


def _build_adjudication_section() -> dict:
    adj_listed = gr.State([])
    adj_refresh = gr.Button("Refresh adjudication queue", elem_id="review-adj-refresh")
    adj_queue = gr.Dataframe(headers=QUEUE_HEADERS, interactive=False, elem_id="review-adj-queue",
                             label="Pairs whose verdicts disagree (click a row: it opens in the editor above)")
    with gr.Row():
        final = gr.Radio(list(FINAL_VERDICTS), value="accepted", elem_id="review-final",
                         label="Final verdict (edited uses the boxes above; rejected uses the reason above)")
        adjudicate = gr.Button("Adjudicate (Alt+J)", variant="primary", elem_id="review-adjudicate")
        undo_adjudication = gr.Button("Undo my adjudication of this pair", elem_id="review-adj-undo")
    return dict(adj_listed=adj_listed, adj_refresh=adj_refresh, adj_queue=adj_queue, final=final,
                adjudicate=adjudicate, undo_adjudication=undo_adjudication)


def _build_export_section(s: ReviewScreen) -> dict:
    with gr.Row():
        export_name = gr.Textbox(value="curated", label=f"Export folder name (inside {handlers.export_root(s)})",
                                 elem_id="review-export-name")
        export = gr.Button("Export the settled pairs", elem_id="review-export")
    with gr.Row():
        repo_id = gr.Textbox(label="Hub dataset repository (org/name)", elem_id="review-repo-id")
        private = gr.Checkbox(value=True, label="Private repository")
        push = gr.Button("Push that export to the Hub", elem_id="review-push")
    result = gr.JSON(label="Export / push result", elem_id="review-export-result")
    return dict(export_name=export_name, export=export, repo_id=repo_id, private=private, push=push, result=result)


def _wire(s: ReviewScreen) -> None:
    lead = s.lead
    events = on_message(s)                    # refusals on the message line: the pair in the editor stays visible
    on_stats = {**events, "show_progress_on": [lead.stats_text]}
    changed = [*lead.adjudication_outputs(), *s.pair_outputs(), s.message]
    s.lead_view_on_sign_in = dict(fn=bind(handlers.lead_view_on_sign_in, s), inputs=[s.session],
                                  outputs=[*lead.stats_outputs(), *lead.adjudication_outputs()],
                                  api_visibility="private", **on_stats)
    lead.stats_button.click(bind(handlers.stats, s), [s.session], lead.stats_outputs(), api_name="lead_stats",
                            **on_stats)
    lead.blind.input(bind(handlers.set_blind, s), [s.session, lead.blind], [s.message], api_name="set_blind_mode",
                     **events)
    lead.assign.click(bind(handlers.assign_pairs, s), [s.session, lead.k], [s.message], api_name="assign", **events)
    lead.adj_refresh.click(bind(handlers.adjudication_queue, s), [s.session], lead.adjudication_outputs(),
                           api_name="adjudication_queue", **{**events, "show_progress_on": [lead.adj_queue]})
    lead.adj_queue.select(bind(handlers.open_adjudication, s), [s.session, lead.adj_listed],
                          [*s.pair_outputs(), s.message], api_visibility="private", **events)
    lead.adjudicate.click(bind(handlers.adjudicate_pair, s),
                          [s.session, s.pair_state, lead.final, *s.draft_inputs(), s.reason, s.comment], changed,
                          api_name="adjudicate", **events)
    lead.undo_adjudication.click(bind(handlers.undo_adjudicated, s), [s.session, s.pair_state], changed,
                                 api_name="undo_adjudication", **events)
    lead.export.click(bind(handlers.export_pairs, s), [s.session, lead.export_name], [lead.result], api_name="export",
                      concurrency_limit=1)
    lead.push.click(bind(handlers.push_pairs, s), [s.session, lead.export_name, lead.repo_id, lead.private],
                    [lead.result], api_name="push", concurrency_limit=1)
