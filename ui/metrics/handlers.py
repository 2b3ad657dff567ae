"""The Metrics tab's handlers: pick runs from the results folder, add an uploaded run, draw the runs on screen,
drill down to one item. Plain functions over the tab's `MetricsView` and the runs in its state, returning
`{component: value}` dicts; `ui.metrics.tab` binds them to their events (`ui.events.bind`).

Every handler is wrapped by `reports_metrics_errors(action)`: a refusal reaches the person as a `gr.Error`
whose text is escaped (typed values and file contents never become markup) and names no server path (the
results folder is "the results folder"); a value that is not one of the choices offered says so; any other
failure says what to do, and its details go to the server log only.
"""

from __future__ import annotations

import functools
import logging
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
from ui.errors import user_error
from ui.metrics.figures import capability_figure, nlu_figure, radar_figure
from ui.metrics.layout import MetricsView
from ui.metrics.views import (
    claim_rows,
    detail_markdown,
    folder_choices,
    public_text,
    status_markdown,
    upload_message,
)

log = logging.getLogger("wsi_llava.app")
TITLE = "Metrics"


class ChoiceError(ValueError):
    """A value that is not one of the choices the tab offers (typed into a dropdown, sent through the API)."""


def reports_metrics_errors(action: str):
    """The handler's failures as escaped `gr.Error`s without server paths; unexpected ones with what to do."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(view: MetricsView, *args, **kwargs):
            try:
                return function(view, *args, **kwargs)
            except gr.Error:
                raise
            except (EvaluationError, ChoiceError) as exc:
                raise user_error(public_text(str(exc), view.results_root), title=TITLE) from exc
            except Exception as exc:
                log.error("Metrics tab: could not %s", action, exc_info=exc)
                raise user_error(f"Could not {action}. The run's files may come from another version of `wsi-llava "
                                 "evaluate score` (score the predictions again), or this page is out of date (reload "
                                 "it). The server log has the details.", title=TITLE) from exc
        return wrapper
    return decorate


def run_at(runs: list[Run], index) -> Run | None:
    """The run picked by its position in the run picker; None when nothing is picked."""
    if index is None or index == "":
        return None
    try:
        position = int(str(index).strip())
    except ValueError:
        position = None
    if position is None or not 0 <= position < len(runs):
        raise ChoiceError(f"{index!r} is not one of the {len(runs)} run(s) on screen: pick a run from the list.")
    return runs[position]


@reports_metrics_errors("list the runs of the results folder")
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


@reports_metrics_errors("draw the runs")
def rerender(view: MetricsView, runs: list[Run], baselines: bool):
    return drawn(view, runs, baselines)


@reports_metrics_errors("load the runs picked in the results folder")
def select_folder_runs(view: MetricsView, selected: list[str], uploaded: list[Run], baselines: bool):
    """The runs picked in the results folder, after the uploaded ones."""
    root = Path(view.results_root).resolve() if view.results_root else None
    runs = [r for r in uploaded if r.source.startswith("upload:")]
    for relative in selected or []:
        if not isinstance(relative, str) or not relative.strip():
            raise ChoiceError(f"{relative!r} is not a run of the results folder: pick one from the list.")
        folder = (root / relative).resolve() if root is not None else None
        if folder is None or not folder.is_relative_to(root):
            raise ChoiceError(f"{relative!r} is not inside the results folder: pick a run from the list.")
        runs.append(load_run(folder, name=relative))
    return {view.runs: runs, **drawn(view, runs, baselines)}


@reports_metrics_errors("add the uploaded run")
def add_upload(view: MetricsView, files, runs: list[Run], baselines: bool):
    """One run from the files in the box; the box is emptied afterwards, ready for the next run's files."""
    if not files:
        return {view.runs: runs, **drawn(view, runs, baselines), view.uploads: gr.skip()}
    paths = [getattr(f, "name", f) for f in files]
    try:
        run = load_uploaded_run(paths)
    except EvaluationError as exc:
        raise user_error(upload_message(str(exc), paths), title=TITLE) from exc
    run.source = "upload:" + run.source
    taken = {r.name for r in runs}
    if run.name in taken:                 # two uploads of one model: tell them apart on the charts
        run.name = next(f"{run.name} ({n})" for n in range(2, len(runs) + 3) if f"{run.name} ({n})" not in taken)
    runs = [*runs, run]
    return {view.runs: runs, **drawn(view, runs, baselines), view.uploads: None}


def _item_update(choices: list) -> dict:
    return gr.update(choices=choices, value=choices[0][1] if choices else None)


@reports_metrics_errors("list the run's items")
def pick_run(view: MetricsView, index, runs: list[Run]):
    run = run_at(runs, index)
    if run is None:
        return {view.task_pick: gr.update(choices=[], value=None), view.item_pick: gr.update(choices=[], value=None)}
    tasks = sorted({(r["task_title"], r["task"]) for r in run.scores or []})
    return {view.task_pick: gr.update(choices=[("all tasks", "")] + tasks, value=""),
            view.item_pick: _item_update(item_choices(run))}


@reports_metrics_errors("filter the run's items")
def filter_items(view: MetricsView, index, task, runs: list[Run]):
    run = run_at(runs, index)
    if run is None:
        return {view.item_pick: gr.update(choices=[], value=None)}
    return {view.item_pick: _item_update(item_choices(run, task or None))}


@reports_metrics_errors("show the item")
def show_item(view: MetricsView, index, value, runs: list[Run]):
    run = run_at(runs, index)
    if run is None or not value:
        return {view.item: "", view.claims: None}
    if not isinstance(value, str) or "::" not in value:
        raise ChoiceError(f"{value!r} is not one of the run's items: pick an item from the list.")
    task, question_id = value.split("::", 1)
    detail = item_detail(run, task, question_id)
    return {view.item: detail_markdown(detail), view.claims: claim_rows(detail)}
