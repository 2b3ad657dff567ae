"""The Metrics tab's components: `build_metrics_layout(results_root)` draws them (inside the caller's
`gr.Tab`) and returns them as one `MetricsView`, which the handlers key their `{component: value}` results
by. Sections: the run sources (results folder, uploads), the charts and tables, the drill-down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from evaluation.results_view import table2_frame, table3_frame
from ui.metrics.views import NO_RUN, folder_choices


@dataclass
class MetricsView:
    results_root: str | Path | None
    runs: gr.State                      # list[Run]: the runs on screen
    folder_runs: gr.Dropdown
    refresh: gr.Button
    uploads: gr.File
    show_baselines: gr.Checkbox
    status: gr.Markdown
    radar_precision: gr.Plot
    radar_relevance: gr.Plot
    bars: gr.Plot
    table2: gr.Dataframe
    table3: gr.Dataframe
    nlu_plot: gr.Plot
    run_pick: gr.Dropdown
    task_pick: gr.Dropdown
    item_pick: gr.Dropdown
    item: gr.Markdown
    claims: gr.Dataframe

    def run_outputs(self) -> list:
        """What drawing the runs on screen changes."""
        return [self.status, self.radar_precision, self.radar_relevance, self.bars, self.table2, self.table3,
                self.nlu_plot, self.run_pick]


def build_metrics_layout(results_root: str | Path | None) -> MetricsView:
    parts: dict = {"runs": gr.State([])}
    gr.Markdown("Load `wsi-llava evaluate score` results and compare them with the paper's baselines. "
                "Runs scored with the offline judge are labelled approximate.")
    parts.update(_build_sources_section(results_root))
    parts.update(_build_charts_section())
    parts.update(_build_drill_down_section())
    return MetricsView(results_root=results_root, **parts)


def _build_sources_section(results_root: str | Path | None) -> dict:
    with gr.Row():
        # the folder's path stays on the server: the label says only whether there is one
        folder_runs = gr.Dropdown(label="Runs in the results folder" if results_root else
                                  "Runs in the results folder (none is configured: --results-dir)",
                                  choices=folder_choices(results_root), multiselect=True, scale=3,
                                  allow_custom_value=True, elem_id="metrics-folder-runs")
        refresh = gr.Button("Refresh list", scale=0)
    with gr.Row():
        uploads = gr.File(label="Or upload summary.json and/or scores.jsonl of one run", file_count="multiple",
                          file_types=[".json", ".jsonl"], elem_id="metrics-upload")
        show_baselines = gr.Checkbox(value=True, label="Show the paper's baselines")
    status = gr.Markdown(NO_RUN, elem_id="metrics-status")
    return dict(folder_runs=folder_runs, refresh=refresh, uploads=uploads, show_baselines=show_baselines,
                status=status)


def _build_charts_section() -> dict:
    with gr.Row():
        radar_precision = gr.Plot(label="WSI-Precision per task", elem_id="metrics-radar-precision")
        radar_relevance = gr.Plot(label="WSI-Relevance per task", elem_id="metrics-radar-relevance")
    bars = gr.Plot(label="Per capability")
    gr.Markdown("#### Table 2: open (WSI-P / WSI-R) and closed (accuracy) questions")
    table2 = gr.Dataframe(value=table2_frame([]), interactive=False, elem_id="metrics-table2")
    gr.Markdown("#### Table 3: report generation")
    table3 = gr.Dataframe(value=table3_frame([]), interactive=False, elem_id="metrics-table3")
    nlu_plot = gr.Plot(label="NLU vs WSI metrics")
    return dict(radar_precision=radar_precision, radar_relevance=radar_relevance, bars=bars, table2=table2,
                table3=table3, nlu_plot=nlu_plot)


def _build_drill_down_section() -> dict:
    gr.Markdown("#### Drill-down")
    with gr.Row():
        run_pick = gr.Dropdown(label="Run", choices=[], allow_custom_value=True, elem_id="metrics-run-pick")
        task_pick = gr.Dropdown(label="Task filter", choices=[], allow_custom_value=True, elem_id="metrics-task-pick")
        item_pick = gr.Dropdown(label="Item", choices=[], allow_custom_value=True, elem_id="metrics-item-pick")
    item = gr.Markdown(elem_id="metrics-item")
    claims = gr.Dataframe(headers=["metric", "claim", "score", "explanation"], interactive=False,
                          wrap=True, column_widths=["18%", "40%", "8%", "34%"], elem_id="metrics-claims")
    return dict(run_pick=run_pick, task_pick=task_pick, item_pick=item_pick, item=item, claims=claims)
