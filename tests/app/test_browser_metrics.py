"""The Metrics tab end to end in Chromium, inside the full app: pick a run from the results folder, see
the radar charts and the drill-down to one item's claims; upload a second run's scores.jsonl."""

from __future__ import annotations

import pytest

from app import build_app, launch_kwargs
from evaluation.judge_types import JudgeConfig
from evaluation.scorer import ScoreConfig, run_scoring
from tests.app.conftest import qa_config
from tests.evaluation.fixtures import own_rows, write_jsonl

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """One offline-judge scoring run under results/run-a, two predictions wrong (without the report item:
    its NLU metrics take ~15 s and this test is about the charts and the drill-down)."""
    root = tmp_path_factory.mktemp("results")
    rows = [row for row in own_rows({("Grading", "S2-4"): "The tumour is benign.", ("Diagnosis_choice", "S1-1"): "C"})
            if row["task"] != "1_Report"]
    run_scoring(ScoreConfig(predictions=write_jsonl(root / "preds.jsonl", rows), out_dir=root / "run-a",
                            judge=JudgeConfig("offline")), emit=lambda message: None)
    return root


def test_pick_a_run_see_radar_charts_and_drill_down(results, qa_data, app_page, serve, tmp_path):
    config = qa_config(qa_data, "--results-dir", str(results), "--benchmark", "", "--preload", "false",
                       "--upload-dir", str(tmp_path / "uploads"))
    demo = build_app(config)
    with serve(demo, **{k: v for k, v in launch_kwargs(config).items() if k in ("max_file_size", "css")}) as url:
        page = app_page(url)
        page.tab("Metrics")
        page.choose("metrics-folder-runs", "run-a")
        page.wait_for_text("metrics-status", r"1 run\(s\): run-a \(approximate judge\)")
        for radar in ("metrics-radar-precision", "metrics-radar-relevance"):
            page.element(radar).locator(".js-plotly-plot .scatterlayer, .js-plotly-plot .polarlayer").first.wait_for()
        assert "WSI-Precision per task" in page.text("metrics-radar-precision")
        item = page.wait_for_text("metrics-item", r"Question\.")
        assert "Reference." in item and "Prediction." in item
        assert "approximate (offline judge)" in page.wait_for_text("metrics-claims", r"WSI-P \(reference claim\)")
        page.screenshot("metrics-radar-and-drill-down")

        page.choose("metrics-item-pick", "S2-4")
        assert "The tumour is benign." in page.wait_for_text("metrics-item", r"S2-4")
        page.upload("metrics-upload", results / "run-a" / "scores.jsonl")
        page.wait_for_text("metrics-status", r"2 run\(s\)")
        assert page.error_toasts() == []

        # a typed value that is not a run: the toast shows it as text (never markup), and no server path
        assert str(results) not in page.text("metrics-folder-runs")
        box = page.element("metrics-folder-runs").locator("input").first
        box.fill("../<b>bold</b>")
        box.press("Enter")
        page.page.locator(".toast-body").first.wait_for()
        toasts = page.error_toasts()
        assert any("'../<b>bold</b>' is not inside the results folder" in toast for toast in toasts), toasts
        assert page.page.locator(".toast-body b").count() == 0
