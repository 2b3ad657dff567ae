"""The Metrics tab's handlers: pick runs from the results folder, add an uploaded run, draw the runs on screen,
drill down to one item. Plain functions over the tab's `MetricsView` and the runs in its state, returning
`{component: value}` dicts; `ui.metrics.tab` binds them to their events (`ui.events.bind`).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from evaluation.errors import EvaluationError
from evaluation.results_view import (
    Run,
    item_choices,
    item_detail,
    load_run,
    load_uploaded_run,
    table2_frame,
    table3_frame,
)
from ui.metrics.figures import capability_figure, nlu_figure, radar_figure
from ui.metrics.layout import MetricsView
from ui.metrics.views import (
    claim_rows,
    detail_markdown,
    folder_choices,
    status_markdown,
    upload_message,
)


def list_folder_runs(view: MetricsView):
    return {view.folder_runs: gr.update(choices=folder_choices(view.results_root))}


def drawn(view: MetricsView, runs: list[Run], baselines: bool) -> dict:
    """The status line, charts, tables and run picker for `runs` (with or without the paper's baselines)."""
    return {view.status: status_markdown(runs),
            view.radar_precision: radar_figure(runs, "wsi_precision", "WSI-Precision per task"),
            view.radar_relevance: radar_figure(runs, "wsi_relevance", "WSI-Relevance per task"),
            view.bars: capability_figure(runs, baselines),
            view.table2: table2_frame(runs, baselines).round(3),
            view.table3: table3_frame(runs, baselines).round(4),
            view.nlu_plot: nlu_figure(runs),
            view.run_pick: gr.update(choices=[(run.label, i) for i, run in enumerate(runs) if run.scores],
                                     value=next((i for i, run in enumerate(runs) if run.scores), None))}


def rerender(view: MetricsView, runs: list[Run], baselines: bool):
    return drawn(view, runs, baselines)


def select_folder_runs(view: MetricsView, selected: list[str], uploaded: list[Run], baselines: bool):
    """The runs picked in the results folder, after the uploaded ones."""
    root = Path(view.results_root) if view.results_root else None
    runs = [r for r in uploaded if r.source.startswith("upload:")]
    for relative in selected or []:
        folder = (root / relative).resolve() if root is not None else None
        if folder is None or not folder.is_relative_to(root.resolve()):
            raise gr.Error(f"{relative!r} is not inside the results folder.")
        try:
            runs.append(load_run(folder, name=relative))
        except EvaluationError as exc:
            raise gr.Error(str(exc)) from exc
    return {view.runs: runs, **drawn(view, runs, baselines)}


def add_upload(view: MetricsView, files, runs: list[Run], baselines: bool):
    """One run from the files in the box; the box is emptied afterwards, ready for the next run's files."""
    if not files:
        return {view.runs: runs, **drawn(view, runs, baselines), view.uploads: gr.skip()}
    paths = [getattr(f, "name", f) for f in files]
    try:
        run = load_uploaded_run(paths)
    except EvaluationError as exc:
        raise gr.Error(upload_message(str(exc), paths), title="Metrics") from exc
    run.source = "upload:" + run.source
    taken = {r.name for r in runs}
    if run.name in taken:                 # two uploads of one model: tell them apart on the charts
        run.name = next(f"{run.name} ({n})" for n in range(2, len(runs) + 3) if f"{run.name} ({n})" not in taken)
    runs = [*runs, run]
    return {view.runs: runs, **drawn(view, runs, baselines), view.uploads: None}


def _item_update(choices: list) -> dict:
    return gr.update(choices=choices, value=choices[0][1] if choices else None)


def pick_run(view: MetricsView, index, runs: list[Run]):
    if index is None or index >= len(runs):
        return {view.task_pick: gr.update(choices=[], value=None), view.item_pick: gr.update(choices=[], value=None)}
    run = runs[index]
    tasks = sorted({(r["task_title"], r["task"]) for r in run.scores or []})
    return {view.task_pick: gr.update(choices=[("all tasks", "")] + tasks, value=""),
            view.item_pick: _item_update(item_choices(run))}


def filter_items(view: MetricsView, index, task, runs: list[Run]):
    if index is None or index >= len(runs):
        return {view.item_pick: gr.update(choices=[], value=None)}
    return {view.item_pick: _item_update(item_choices(runs[index], task or None))}


def show_item(view: MetricsView, index, value, runs: list[Run]):
    if index is None or not value or index >= len(runs):
        return {view.item: "", view.claims: None}
    task, question_id = value.split("::", 1)
    try:
        detail = item_detail(runs[index], task, question_id)
    except EvaluationError as exc:
        raise gr.Error(str(exc)) from exc
    return {view.item: detail_markdown(detail), view.claims: claim_rows(detail)}
