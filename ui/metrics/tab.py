"""The Metrics tab: load evaluation runs (results folder or uploads) and compare them with the paper.

Radar charts of WSI-Precision / WSI-Relevance per task, bars per capability, the Table 2 / Table 3
layouts beside the published baselines, NLU-versus-WSI metrics for report generation, and a drill-down
to any item's claims, scores and the judge's explanations. Data comes from `evaluation.results_view`;
`ui.metrics.layout` draws, `ui.metrics.handlers` answers the events (text in `ui.metrics.views`, charts in
`ui.metrics.figures`), this module wires. Build it inside a `gr.Tab` (see app.py):

    with gr.Tab("Metrics"):
        build_metrics_tab(results_root)
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ui.events import bind
from ui.metrics import handlers
from ui.metrics.layout import build_metrics_layout


def build_metrics_tab(results_root: str | Path | None) -> None:
    v = build_metrics_layout(results_root)
    shown = v.run_outputs()
    # progress and a refusal show on the status line: the charts and tables on screen stay readable
    on_status = {"show_progress_on": [v.status]}
    v.refresh.click(bind(handlers.list_folder_runs, v), outputs=v.folder_runs, api_name="list_folder_runs")
    v.folder_runs.change(bind(handlers.select_folder_runs, v), [v.folder_runs, v.runs, v.show_baselines],
                         [v.runs, *shown], api_name="select_folder_runs", **on_status)
    v.uploads.upload(bind(handlers.add_upload, v), [v.uploads, v.runs, v.show_baselines], [v.runs, *shown, v.uploads],
                     api_name="add_upload", **on_status).failure(lambda: None, None, v.uploads,
                                                                 api_visibility="private", show_progress="hidden")
    rerender = bind(handlers.rerender, v)
    v.show_baselines.change(rerender, [v.runs, v.show_baselines], shown, api_name="rerender", **on_status)
    # the page opens with the paper's baselines drawn (the charts are empty until something is rendered)
    gr.on(None, rerender, [v.runs, v.show_baselines], shown, api_visibility="private", show_progress="hidden")
    v.run_pick.change(bind(handlers.pick_run, v), [v.run_pick, v.runs], [v.task_pick, v.item_pick],
                      api_name="pick_run")
    v.task_pick.change(bind(handlers.filter_items, v), [v.run_pick, v.task_pick, v.runs], v.item_pick,
                       api_name="filter_items")
    v.item_pick.change(bind(handlers.show_item, v), [v.run_pick, v.item_pick, v.runs], [v.item, v.claims],
                       api_name="show_item", show_progress_on=[v.item])
