"""The Metrics tab through its Gradio API (gradio_client against a real server) and its data layer."""

import json
import shutil

import gradio as gr
import pytest
from gradio_client import Client, handle_file

from evaluation.errors import SchemaError
from evaluation.results_view import load_run, load_uploaded_run, radar_series, table2_frame
from evaluation.judge_types import JudgeConfig
from evaluation.scorer import ScoreConfig, run_scoring
from tests.evaluation.fixtures import own_rows, write_jsonl
from ui.metrics.tab import build_metrics_tab


@pytest.fixture(scope="module")
def results_root(tmp_path_factory):
    """One real scoring run (offline judge) under results/run-a, predictions partly wrong."""
    root = tmp_path_factory.mktemp("results")
    rows = own_rows({("Grading", "S2-4"): "The tumour is benign.", ("Diagnosis_choice", "S1-1"): "C"})
    predictions = write_jsonl(root / "preds.jsonl", rows)
    run_scoring(ScoreConfig(predictions=predictions, out_dir=root / "run-a", judge=JudgeConfig("offline")))
    return root


@pytest.fixture(scope="module")
def client(results_root):
    with gr.Blocks() as demo:
        build_metrics_tab(results_root)
    demo.launch(prevent_thread_lock=True, quiet=True, show_error=True)        # as the app launches (app.py)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_results_view_lays_out_runs_beside_baselines(results_root):
    run = load_run(results_root / "run-a")
    frame = table2_frame([run])
    assert list(frame["model"])[:2] == ["run-a (approximate judge)", "Quilt-LLaVA"]
    assert frame.iloc[-1]["Avg"] == pytest.approx(0.754)                       # WSI-LLaVA, published
    series = radar_series([run], "wsi_precision")
    assert len(series["axes"]) == 11 and series["series"]["run-a (approximate judge)"][5] is not None   # grading


def test_loading_bad_results_names_the_file(tmp_path):
    bad = tmp_path / "summary.json"
    bad.write_text(json.dumps({"schema": "something/else"}))
    with pytest.raises(SchemaError, match="summary.json"):
        load_uploaded_run([bad])
    with pytest.raises(SchemaError, match="one summary.json and/or one scores.jsonl"):
        load_uploaded_run([bad, bad])


def test_folder_run_fills_charts_tables_and_drill_down(client):
    status, radar_p, radar_r, bars, table2, table3, nlu, run_pick = client.predict(
        ["run-a"], True, api_name="/select_folder_runs")
    assert "run-a" in status and radar_p["type"] == "plotly"
    assert "Scatterpolar" in radar_p["plot"] or "scatterpolar" in radar_p["plot"]
    assert table2["data"][0][0] == "run-a (approximate judge)" and len(table2["data"]) == 5
    assert table3["data"][0][1] == "this run"
    markdown, claims = client.predict(0, "grading::S2-4", api_name="/show_item")
    assert "The tumour is benign." in markdown and "FIGO grade III" in markdown
    assert claims["data"] and {row[0] for row in claims["data"]} >= {"WSI-P (reference claim)"}


def test_uploaded_run_is_added(client, results_root, tmp_path):
    copy = tmp_path / "scores.jsonl"
    shutil.copy(results_root / "run-a" / "scores.jsonl", copy)
    status, *_, upload_box = client.predict([handle_file(str(copy))], True, api_name="/add_upload")
    assert "tiny" in status                      # named after the model in the rows
    assert upload_box is None                    # emptied: the next run's files are a new upload
    predictions = write_jsonl(tmp_path / "my-predictions.jsonl", own_rows({}))
    with pytest.raises(Exception, match=r"my-predictions.jsonl:1: missing field 'schema'\. This is not an output "
                                        r"of `wsi-llava evaluate score`") as refused:
        client.predict([handle_file(str(predictions))], True, api_name="/add_upload")
    assert "/gradio" not in str(refused.value) and str(tmp_path) not in str(refused.value)


def test_paths_outside_the_results_folder_are_refused(client):
    with pytest.raises(Exception, match="not inside the results folder"):
        client.predict(["../../etc"], True, api_name="/select_folder_runs")


def test_handlers_answer_with_component_dicts_without_a_server(results_root):
    from ui.metrics import handlers
    from ui.metrics.layout import build_metrics_layout
    from ui.metrics.views import NO_RUN, status_markdown

    with gr.Blocks():
        view = build_metrics_layout(results_root)
    shown = handlers.select_folder_runs(view, ["run-a"], [], True)
    assert set(shown) == {view.runs, *view.run_outputs()}
    assert shown[view.status] == status_markdown(shown[view.runs]) == ("1 run(s): run-a (approximate judge) "
                                                                     "[metric version official; Table 2 Acc: grouping inferred]")
    assert status_markdown([]) == NO_RUN and shown[view.run_pick]["value"] == 0
    picked = handlers.pick_run(view, 0, shown[view.runs])
    assert picked[view.task_pick]["choices"][0] == ("all tasks", "")
    item = handlers.show_item(view, 0, picked[view.item_pick]["value"], shown[view.runs])
    assert "**Question.**" in item[view.item] and item[view.claims]
    assert handlers.show_item(view, None, None, []) == {view.item: "", view.claims: None}


def test_typed_values_reach_the_toast_as_text_not_markup(client):
    """Reported: user-typed values went into the Metrics tab's error toasts unescaped."""
    for call, shown in (
            (lambda: client.predict(["../<img src=x onerror=alert(1)>"], True, api_name="/select_folder_runs"),
             "&#x27;../&lt;img src=x onerror=alert(1)&gt;&#x27; is not inside the results folder"),
            (lambda: client.predict(0, "<script>alert(1)</script>", api_name="/show_item"),
             "is not one of the run&#x27;s items: pick an item from the list"),
            (lambda: client.predict(0, "grading::<b>S9</b>", api_name="/show_item"),
             "has no item &#x27;&lt;b&gt;S9&lt;/b&gt;&#x27; in task &#x27;grading&#x27;")):
        with pytest.raises(Exception) as refused:
            client.predict(["run-a"], True, api_name="/select_folder_runs")
            call()
        message = str(refused.value)
        assert shown.replace("&#x27;", "'") in message.replace("&#x27;", "'") and "<" not in message


def test_internal_errors_become_messages_a_person_can_act_on(client, monkeypatch, caplog):
    """Reported: raw Python messages ("list index out of range") in the toasts."""
    client.predict(["run-a"], True, api_name="/select_folder_runs")
    for index in (-5, 99, "abc"):
        with pytest.raises(Exception, match=r"is not one of the \d+ run\(s\) on screen: pick a run from the list") as refused:
            client.predict(index, api_name="/pick_run")
        assert "out of range" not in str(refused.value) and "not supported" not in str(refused.value)
    from ui.metrics import handlers

    def broken(*args, **kwargs):
        raise KeyError("task_title")

    monkeypatch.setattr(handlers, "item_choices", broken)
    with pytest.raises(Exception, match=r"Could not list the run's items\. The run's files may come from another "
                                        r"version of `wsi-llava evaluate score`") as refused:
        client.predict(0, api_name="/pick_run")
    assert "KeyError" not in str(refused.value) and "task_title" in caplog.text      # the details: the log only


def test_the_results_folders_path_is_never_shown(client, results_root):
    """Reported: the results folder's server path showed in the tab and in its messages."""
    import httpx

    (results_root / "broken-run").mkdir(exist_ok=True)
    with pytest.raises(Exception, match="broken-run: no summary.json or scores.jsonl in this folder") as refused:
        client.predict(["broken-run"], True, api_name="/select_folder_runs")
    assert str(results_root) not in str(refused.value)
    assert str(results_root) not in httpx.get(f"{client.src.rstrip('/')}/config").text
