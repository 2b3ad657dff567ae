"""The Metrics tab's charts (plotly figures for `gr.Plot`): radar charts of WSI-Precision / WSI-Relevance per
task, bars per capability beside the paper's baselines, METEOR versus WSI-Precision per report item. Data
comes from `evaluation.results_view`; plotly is imported when a chart is drawn.
"""

from __future__ import annotations

from evaluation.results_view import Run, capability_bars, nlu_vs_wsi, radar_series


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
