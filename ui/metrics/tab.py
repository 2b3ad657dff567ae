"""The Metrics tab: load evaluation runs (results folder or uploads) and compare them with the paper.

Radar charts of WSI-Precision / WSI-Relevance per task, bars per capability, the Table 2 / Table 3
layouts beside the published baselines, NLU-versus-WSI metrics for report generation, and a drill-down
to any item's claims, scores and the judge's explanations. Data comes from `evaluation.results_view`;
this module only draws and wires. Build it inside a `gr.Tab` (see app.py).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from evaluation.errors import EvaluationError
from evaluation.results_view import (
    Run,
    capability_bars,
    find_runs,
    item_choices,
    item_detail,
    load_run,
    load_uploaded_run,
    nlu_vs_wsi,
    radar_series,
    table2_frame,
    table3_frame,
)


def _two_lines(label: str, width: int = 16) -> str:
    """A long task title broken at a space into two lines (the spoke labels at 3 o'clock are not cut off)."""
    if len(label) <= width or " " not in label:
        return label
    cut = min((i for i, ch in enumerate(label) if ch == " "), key=lambda i: abs(i - len(label) / 2))
    return f"{label[:cut]}<br>{label[cut + 1:]}"


def radar_figure(runs: list[Run], metric: str, title: str):
    import plotly.graph_objects as go

    data = radar_series(runs, metric)
    data = {**data, "axes": [_two_lines(axis) for axis in data["axes"]]}
    figure = go.Figure()
    for label, values in data["series"].items():
        # A task the run did not score is a gap on its spoke, never a 0.
        kept = [(axis, value) for axis, value in zip(data["axes"], values) if value is not None]
        if not kept:
            continue
        theta, r = [axis for axis, _ in kept], [value for _, value in kept]
        figure.add_trace(go.Scatterpolar(r=r + r[:1], theta=theta + theta[:1], fill="toself", name=label,
                                         opacity=0.6, mode="lines+markers"))
    if not figure.data:        # nothing scored yet: draw the empty spokes (plotly would draw x/y axes instead)
        figure.add_trace(go.Scatterpolar(r=[0] * len(data["axes"]), theta=data["axes"], mode="lines",
                                         line={"color": "rgba(0,0,0,0)"}, showlegend=False, hoverinfo="skip"))
        figure.add_annotation(text="Load a run to see its scores per task<br>(the paper publishes no per-task "
                                   "baselines)", showarrow=False, x=0.5, y=-0.12, xref="paper", yref="paper")
    figure.update_layout(title=title, height=480, margin={"l": 120, "r": 120, "t": 70, "b": 50}, showlegend=True,
                         legend={"orientation": "h", "y": -0.12},
                         polar={"radialaxis": {"range": [0, 1]},
                                "angularaxis": {"categoryarray": data["axes"], "categoryorder": "array",
                                                "type": "category"}})
    return figure


def capability_figure(runs: list[Run], with_baselines: bool):
    import plotly.express as px

    frame = capability_bars(runs, with_baselines)
    figure = px.bar(frame, x="capability", y="value", color="model", barmode="group", facet_col="metric",
                    range_y=[0, 1], height=420, title="Per capability (Table 2 cells)")
    figure.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    return figure


def nlu_figure(runs: list[Run]):
    """METEOR vs WSI-Precision per report-generation item, one colour per run (runs without NLU metrics are
    left out)."""
    import pandas as pd
    import plotly.express as px

    frames = []
    for run in runs:
        frame = nlu_vs_wsi(run)
        if not frame.empty:
            frames.append(frame.assign(run=run.label))
    if not frames:
        return None
    frame = pd.concat(frames, ignore_index=True)
    return px.scatter(frame, x="meteor", y="wsi_precision", color="run",
                      hover_data=["question_id", "bleu_4", "rouge_l", "wsi_relevance"],
                      range_x=[0, 1], range_y=[0, 1], height=420,
                      title="Report generation: METEOR vs WSI-Precision per item")


def _number(value) -> str:
    return "—" if value is None else f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def _detail_markdown(detail: dict) -> str:
    metrics = detail["metrics"]
    lines = [f"### {detail['task']} · `{detail['question_id']}`",
             "**Approximate judge (offline).**" if detail["approximate"] else "",
             f"**Question.** {detail['question']}", f"**Reference.** {detail['reference']}",
             f"**Prediction.** {detail['prediction']}"]
    if detail["accuracy"]:
        acc = detail["accuracy"]
        verdict = {True: "correct", False: "wrong", None: "not decidable (reference unreadable)"}[acc["correct"]]
        read = (f"the prediction reads as {acc['extracted']!r} (rule {acc['rule']})" if acc["extracted"] is not None
                else "no option or yes/no could be read from the prediction")
        lines.append(f"**Accuracy.** {verdict}: {read}; reference {acc['reference_answer']!r}.")
    else:
        lines.append(f"**WSI-Precision** {_number(metrics['wsi_precision'])} ({metrics['wsi_precision_status']}) · "
                     f"**WSI-Relevance** {_number(metrics['wsi_relevance'])} ({metrics['wsi_relevance_status']})")
    if detail["nlu"]:
        lines.append("**NLU.** " + ", ".join(f"{k} {v:.3f}" for k, v in detail["nlu"].items() if v is not None))
    judge = detail["judge"] or {}
    if judge.get("name"):
        lines.append(f"_Judge: {judge['name']} {judge.get('model') or ''}, prompt version {detail['prompt_version']}_")
    else:
        lines.append(f"_Scored by answer extraction (no judge), extractor version {detail['prompt_version']}_")
    return "\n\n".join(line for line in lines if line)


def _folder_choices(results_root: str | Path | None) -> list[str]:
    if not results_root:
        return []
    root = Path(results_root)
    return [str(p.relative_to(root)) for p in find_runs(root)]


def build_metrics_tab(results_root: str | Path | None) -> None:
    runs_state = gr.State([])  # list[Run]: the runs on screen

    gr.Markdown("Load `wsi-llava evaluate score` results and compare them with the paper's baselines. "
                "Runs scored with the offline judge are labelled approximate.")
    with gr.Row():
        folder_runs = gr.Dropdown(label=f"Runs in the results folder ({results_root or 'not configured'})",
                                  choices=_folder_choices(results_root), multiselect=True, scale=3, allow_custom_value=True,
                                  elem_id="metrics-folder-runs")
        refresh = gr.Button("Refresh list", scale=0)
    with gr.Row():
        uploads = gr.File(label="Or upload summary.json and/or scores.jsonl of one run", file_count="multiple",
                          file_types=[".json", ".jsonl"], elem_id="metrics-upload")
        show_baselines = gr.Checkbox(value=True, label="Show the paper's baselines")
    status = gr.Markdown("No run loaded: the baselines only.", elem_id="metrics-status")
    with gr.Row():
        radar_p = gr.Plot(label="WSI-Precision per task", elem_id="metrics-radar-precision")
        radar_r = gr.Plot(label="WSI-Relevance per task", elem_id="metrics-radar-relevance")
    bars = gr.Plot(label="Per capability")
    gr.Markdown("#### Table 2: open (WSI-P / WSI-R) and closed (accuracy) questions")
    table2 = gr.Dataframe(value=table2_frame([]), interactive=False, elem_id="metrics-table2")
    gr.Markdown("#### Table 3: report generation")
    table3 = gr.Dataframe(value=table3_frame([]), interactive=False, elem_id="metrics-table3")
    nlu_plot = gr.Plot(label="NLU vs WSI metrics")
    gr.Markdown("#### Drill-down")
    with gr.Row():
        run_pick = gr.Dropdown(label="Run", choices=[], allow_custom_value=True, elem_id="metrics-run-pick")
        task_pick = gr.Dropdown(label="Task filter", choices=[], allow_custom_value=True, elem_id="metrics-task-pick")
        item_pick = gr.Dropdown(label="Item", choices=[], allow_custom_value=True, elem_id="metrics-item-pick")
    item_md = gr.Markdown(elem_id="metrics-item")
    claims = gr.Dataframe(headers=["metric", "claim", "score", "explanation"], interactive=False,
                          wrap=True, column_widths=["18%", "40%", "8%", "34%"], elem_id="metrics-claims")

    def list_folder_runs():
        return gr.update(choices=_folder_choices(results_root))

    def render(runs: list[Run], baselines: bool):
        names = [run.caption for run in runs]        # label [metric version; Table 2 Acc grouping]
        message = (f"{len(runs)} run(s): " + "; ".join(names)) if runs else "No run loaded: the baselines only."
        return (message, radar_figure(runs, "wsi_precision", "WSI-Precision per task"),
                radar_figure(runs, "wsi_relevance", "WSI-Relevance per task"),
                capability_figure(runs, baselines), table2_frame(runs, baselines).round(3),
                table3_frame(runs, baselines).round(4),
                nlu_figure(runs),
                gr.update(choices=[(run.label, i) for i, run in enumerate(runs) if run.scores],
                          value=next((i for i, run in enumerate(runs) if run.scores), None)))

    outputs = [status, radar_p, radar_r, bars, table2, table3, nlu_plot, run_pick]
    # progress and a refusal show on the status line: the charts and tables on screen stay readable
    on_status = {"show_progress_on": [status]}

    def select_folder_runs(selected: list[str], uploaded: list[Run], baselines: bool):
        root = Path(results_root) if results_root else None
        runs = [r for r in uploaded if r.source.startswith("upload:")]
        for relative in selected or []:
            folder = (root / relative).resolve()
            if root is None or not folder.is_relative_to(root.resolve()):
                raise gr.Error(f"{relative!r} is not inside the results folder.")
            try:
                runs.append(load_run(folder, name=relative))
            except EvaluationError as exc:
                raise gr.Error(str(exc)) from exc
        return runs, *render(runs, baselines)

    def add_upload(files, runs: list[Run], baselines: bool):
        """One run from the files in the box; the box is emptied afterwards, ready for the next run's files."""
        if not files:
            return runs, *render(runs, baselines), gr.skip()
        paths = [getattr(f, "name", f) for f in files]
        try:
            run = load_uploaded_run(paths)
        except EvaluationError as exc:
            raise gr.Error(_upload_message(str(exc), paths), title="Metrics") from exc
        run.source = "upload:" + run.source
        taken = {r.name for r in runs}
        if run.name in taken:                 # two uploads of one model: tell them apart on the charts
            run.name = next(f"{run.name} ({n})" for n in range(2, len(runs) + 3) if f"{run.name} ({n})" not in taken)
        runs = [*runs, run]
        return runs, *render(runs, baselines), None

    def pick_run(index, runs: list[Run]):
        if index is None or index >= len(runs):
            return gr.update(choices=[], value=None), gr.update(choices=[], value=None)
        run = runs[index]
        tasks = sorted({(r["task_title"], r["task"]) for r in run.scores or []})
        choices = item_choices(run)
        return (gr.update(choices=[("all tasks", "")] + tasks, value=""),
                gr.update(choices=choices, value=choices[0][1] if choices else None))

    def filter_items(index, task, runs: list[Run]):
        if index is None or index >= len(runs):
            return gr.update(choices=[], value=None)
        choices = item_choices(runs[index], task or None)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def show_item(index, value, runs: list[Run]):
        if index is None or not value or index >= len(runs):
            return "", None
        task, question_id = value.split("::", 1)
        try:
            detail = item_detail(runs[index], task, question_id)
        except EvaluationError as exc:
            raise gr.Error(str(exc)) from exc
        rows = [[c["metric"], c["claim"], c["score"], c["explanation"]] for c in detail["claims"]]
        return _detail_markdown(detail), rows

    refresh.click(list_folder_runs, outputs=folder_runs)
    folder_runs.change(select_folder_runs, [folder_runs, runs_state, show_baselines], [runs_state, *outputs],
                       **on_status)
    uploads.upload(add_upload, [uploads, runs_state, show_baselines], [runs_state, *outputs, uploads],
                   **on_status).failure(lambda: None, None, uploads, api_visibility="private", show_progress="hidden")
    def rerender(runs: list[Run], baselines: bool):
        return render(runs, baselines)

    show_baselines.change(rerender, [runs_state, show_baselines], outputs, **on_status)
    # the page opens with the paper's baselines drawn (the charts are empty until something is rendered)
    gr.on(None, rerender, [runs_state, show_baselines], outputs, api_visibility="private", show_progress="hidden")
    run_pick.change(pick_run, [run_pick, runs_state], [task_pick, item_pick])
    task_pick.change(filter_items, [run_pick, task_pick, runs_state], item_pick)
    item_pick.change(show_item, [run_pick, item_pick, runs_state], [item_md, claims],
                     show_progress_on=[item_md])


def _upload_message(text: str, paths: list[str]) -> str:
    """A refused upload said with the file names only (never the server's upload folders), and what to do."""
    for path in paths:
        text = text.replace(str(path), Path(path).name)
    if "missing field 'schema'" in text:
        text += (" This is not an output of `wsi-llava evaluate score`: upload the summary.json and/or "
                 "scores.jsonl it wrote (a predictions file must be scored first: `wsi-llava evaluate score "
                 "PREDICTIONS --out DIR`).")
    if "per run" in text:
        text += " Upload one run's files at a time (the box is emptied after each run)."
    return text
