"""Slide Q&A end to end in Chromium: upload a synthetic slide, watch the progress and the overview, ask
two questions and watch the tiny model's answers stream in; closing the tab deletes the upload. The zoomable
viewer: zoom in three levels, pan, toggle the overlays, the answer's heatmap arrives and toggles, tiles load
and a forged handle gets 404 (screenshot test-artifacts/qa-viewer-heatmap.png)."""

from __future__ import annotations

import re
import time

import pytest

from app import build_app, launch_kwargs
from tests.app.browser import ARTIFACTS
from tests.app.conftest import qa_config
from tests.app.viewer_page import canvas_stats, current_view, state, tile_responses, toggle, wait_ready
from tests.helpers.synthetic_slides import write_large_sparse_aperio

pytestmark = pytest.mark.browser
SERVED = ("max_file_size", "css", "show_error")
VIEWER = "#qa-viewer .wsiv-host"


@pytest.fixture(scope="module")
def qa_demo(qa_data, tmp_path_factory):
    config = qa_config(qa_data, "--max-new-tokens", "48", "--upload-dir", str(tmp_path_factory.mktemp("uploads")))
    demo = build_app(config)
    demo.services.models.wait(timeout_s=120)
    return demo, {k: v for k, v in launch_kwargs(config).items() if k in SERVED}


def test_upload_progress_overview_and_a_streamed_two_turn_chat(qa_demo, qa_data, app_page, serve):
    demo, options = qa_demo
    with serve(demo, **options) as url:
        page = app_page(url)
        assert "wsi-llava-tiny-random" in page.wait_for_text("qa-model-banner", r"UNTRAINED")
        page.watch_text("[data-testid=status-tracker]", "progress")
        page.upload("qa-upload", qa_data.large_slide)
        info = page.wait_for_text("qa-slide-info", r"Ready:")
        assert "large-resection.svs (uploaded)" in info and "tile features" in info and "slide encoding" in info
        progress = page.seen("progress")
        steps = r"(opening the slide|finding tissue|laying out tiles|tiles on tissue|tiles|slide encoding) - \d+\.\d%"
        assert any(re.search(steps, text) for text in progress), progress[:30]     # gr.Progress: step and percent
        overview = page.element("qa-thumbnail").locator("img")
        overview.wait_for()
        assert overview.evaluate("img => img.naturalWidth") >= 256
        page.screenshot("qa-slide-ready")

        answers = "#qa-chat [data-testid=bot]"
        page.watch_text(answers, "answers")
        page.fill("qa-question", "What is the histological type of this tumor?")
        page.click("qa-ask")
        page.wait_for_text("qa-turn-status", r"Turn 1 about")
        first = page.page.locator(answers).last.inner_text().strip()
        partial = [t for t in page.seen("answers") if t != "Loading content" and t != first]
        assert first and any(first.startswith(t) for t in partial), partial    # shown in pieces, then whole

        page.fill("qa-question", "And what is the grade?")
        page.click("qa-ask")
        status = page.wait_for_text("qa-turn-status", r"Turn 2 about")
        assert "encoded 1×" in status
        assert page.page.locator(answers).count() == 2
        assert page.page.locator("#qa-chat [data-testid=user]").last.inner_text().strip() == "And what is the grade?"
        assert page.error_toasts() == []
        page.screenshot("qa-two-turn-chat")
        page.fill("qa-question", "   ")
        page.click("qa-ask")                                  # refused: said on the turn line, chat untouched
        page.page.get_by_text("Type a question first").wait_for()
        chat = page.element("qa-chat")
        assert chat.get_by_text("Error", exact=True).count() == 0 and page.page.locator(answers).count() == 2

        assert len(demo.services.sandbox.sessions()) == 1      # the upload lives in the session's folder ...
        page.page.close()
        deadline = time.monotonic() + 15
        while demo.services.sandbox.sessions() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert demo.services.sandbox.sessions() == []          # ... until the tab is closed


def test_errors_reach_the_page_with_their_reason(qa_demo, app_page, serve, tmp_path):
    demo, options = qa_demo
    fake = tmp_path / "scan.svs"
    fake.write_text("patient,diagnosis\n")
    with serve(demo, **options) as url:
        page = app_page(url)
        page.upload("qa-upload", fake)
        deadline = time.monotonic() + 30
        while not page.error_toasts() and time.monotonic() < deadline:
            time.sleep(0.2)
        toasts = " ".join(page.error_toasts())
        assert "scan.svs: cannot open it as a slide: not a whole-slide image" in toasts
        assert "network error" not in toasts.lower()
        page.screenshot("qa-error-shown")


@pytest.fixture(scope="module")
def zoom_slide(tmp_path_factory):
    """8192 px square (Deep Zoom levels up to 13): three zoom levels above the viewer's whole-slide view."""
    return write_large_sparse_aperio(tmp_path_factory.mktemp("qa-zoom") / "resection.svs", width=8192, height=8192,
                                     mpp=0.5, downsamples=(1, 4, 16))


def zoom_in_three_levels(page, tiles: list, blob) -> None:
    home = max(level for _, level in tiles)
    page.eval_on_selector(VIEWER, "(h, b) => h.wsiv.goTo({x: b[0], y: b[1], ds: h.wsiv.currentView().ds})",
                          [blob.cx, blob.cy])
    levels = [home]
    for _ in range(3):
        page.click(f"{VIEWER} button[data-act=zoom-in]")
        wait_ready(page, VIEWER)
        levels.append(max(level for _, level in tiles))
    assert levels == [home + step for step in range(4)], levels
    pixels = canvas_stats(page, "slide", VIEWER)
    assert pixels["opaque"] == pixels["total"] and pixels["colours"] > 20       # tissue drawn, not blank


def pan(page) -> None:
    stage = page.locator(f"{VIEWER} .wsiv-stage")
    stage.scroll_into_view_if_needed()                     # mouse coordinates are the window's
    wait_ready(page, VIEWER)
    before = current_view(page, VIEWER)
    box = stage.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx - 200, cy - 100, steps=8)
    page.mouse.up()
    wait_ready(page, VIEWER)
    after = current_view(page, VIEWER)
    assert after["x"] - before["x"] == pytest.approx(200 * before["ds"], rel=0.25)


def test_the_viewer_zooms_pans_toggles_overlays_and_shows_the_answers_heatmap(qa_demo, app_page, serve, zoom_slide):
    demo, options = qa_demo
    with serve(demo, **options) as url:
        app = app_page(url)
        page = app.page
        tiles = tile_responses(page)
        app.upload("qa-upload", zoom_slide.path)
        app.wait_for_text("qa-slide-info", r"Ready:")
        wait_ready(page, VIEWER)
        assert state(page, VIEWER) == "ready"
        zoom_in_three_levels(page, tiles, zoom_slide.blobs[1])
        pan(page)
        page.click(f"{VIEWER} button[data-act=home]")
        wait_ready(page, VIEWER)
        for kind in ("tissue", "grid"):
            assert toggle(page, kind, True, VIEWER)["opaque"] > 500, kind
            assert toggle(page, kind, False, VIEWER)["opaque"] == 0, kind
        heat_box = page.locator(f"{VIEWER} input[data-overlay=heatmap]")
        assert heat_box.is_disabled()

        app.fill("qa-question", "Where is the tumour?")
        app.click("qa-ask")
        app.wait_for_text("qa-heatmap-status", r"Evidence heatmap of answer 1", timeout_s=120)
        page.wait_for_function(f"!document.querySelector('{VIEWER} input[data-overlay=heatmap]').disabled")
        assert toggle(page, "heatmap", True, VIEWER)["opaque"] > 10_000
        toggle(page, "tissue", True, VIEWER)
        files = app.text("qa-heatmap-files")                   # offered as downloads
        assert re.search(r"resection-answer1\s*\.geojson", files) and re.search(r"resection-answer1\s*\.png", files)
        app.element("qa-viewer").scroll_into_view_if_needed()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        app.element("qa-viewer-section").screenshot(path=str(ARTIFACTS / "qa-viewer-heatmap.png"))
        toggle(page, "tissue", False, VIEWER)
        assert toggle(page, "heatmap", False, VIEWER)["opaque"] == 0

        assert tiles and {status for status, _ in tiles} == {200}
        base = page.eval_on_selector(VIEWER, "h => h.wsiv.base")
        forged = re.sub(r"/[^/]+/$", "/AAAAAAAAAAAAAAAAAAAAAA/", base)
        codes = page.evaluate("urls => Promise.all(urls.map(u => fetch(u).then(r => r.status)))",
                              [base + "slide.dzi", forged + "slide.dzi", forged + "slide_files/9/0_0.jpeg"])
        assert codes == [200, 404, 404]
        assert app.error_toasts() == []
