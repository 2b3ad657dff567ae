"""Slide Q&A end to end in Chromium: upload a synthetic slide, watch the progress and the overview, ask
two questions and watch the tiny model's answers stream in; closing the tab deletes the upload."""

from __future__ import annotations

import re
import time

import pytest

from app import build_app, launch_kwargs
from tests.app.conftest import qa_config

pytestmark = pytest.mark.browser
SERVED = ("max_file_size", "css", "show_error")


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
