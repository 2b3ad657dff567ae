"""End-to-end browser helpers: a Gradio app on a free loopback port, Debian's Chromium driven by
Playwright, and page helpers that find components by `elem_id`. Shared by every browser test (the
fixtures are in tests/app/conftest.py: `chromium`, `serve`, `app_page`).

    with serve_blocks(demo) as url:                       # in-process, prevent_thread_lock, closed after
        page = AppPage(browser.new_page(), url).open()
        page.tab("Metrics")
        page.upload("qa-upload", slide_path)
        page.wait_for_text("qa-slide-info", "Ready")
        page.screenshot("qa-after-upload")               # test-artifacts/qa-after-upload.png

Chromium runs with the flags of ../shared/notes/environment.md (headless, no sandbox, no background
networking), so it never tries to reach the internet. `chromium_path()` is None when Debian's Chromium
is not installed: tests skip with that reason (tests/run.sh installs it).
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
VIEWPORT = {"width": 1400, "height": 1000}


def chromium_path() -> Path | None:
    return CHROMIUM if CHROMIUM.is_file() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_blocks(demo, **launch_kwargs):
    """Launch `demo` on 127.0.0.1:<free port> in this process; yields its URL; closes it afterwards. An app
    with a slide viewer (`demo.viewer_registry`, app.build_app) gets the viewer's routes, as app.main does."""
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                **launch_kwargs)
    try:
        if getattr(demo, "viewer_registry", None) is not None:
            from ui.viewer import attach_viewer

            attach_viewer(demo)
        yield demo.local_url.rstrip("/")
    finally:
        demo.close()


@contextlib.contextmanager
def launch_chromium():
    """A Playwright Browser on Debian's Chromium (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class AppPage:
    """One browser tab on the app. Components are addressed by their Gradio `elem_id`."""

    def __init__(self, page, url: str, timeout_s: float = 60.0):
        self.page, self.url = page, url
        self.page.set_default_timeout(timeout_s * 1000)

    def open(self) -> "AppPage":
        self.page.goto(self.url)
        self.page.wait_for_selector("gradio-app .gradio-container")
        self.page.get_by_role("tab").first.wait_for()      # the app's layout has rendered
        return self

    def element(self, elem_id: str):
        return self.page.locator(f"#{elem_id}")

    def tab(self, title: str) -> None:
        self.page.get_by_role("tab", name=title).click()

    def upload(self, elem_id: str, *paths: Path) -> None:
        self.element(elem_id).locator("input[type=file]").set_input_files([str(p) for p in paths])

    def fill(self, elem_id: str, text: str) -> None:
        self.element(elem_id).locator("textarea, input").first.fill(text)

    def click(self, elem_id: str) -> None:
        self.element(elem_id).click()

    def choose(self, elem_id: str, option: str) -> None:
        """Pick `option` (its visible label, a regex is allowed) in a Gradio dropdown."""
        self.element(elem_id).locator("input").first.click()
        self.page.get_by_role("option", name=re.compile(option)).first.click()
        self.page.keyboard.press("Escape")

    def text(self, elem_id: str) -> str:
        return self.element(elem_id).inner_text()

    def wait_for_text(self, elem_id: str, pattern: str, timeout_s: float = 60.0) -> str:
        """Wait until the component's text matches `pattern` (a regex); returns the text."""
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.text(elem_id)
            if re.search(pattern, text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"#{elem_id} never matched {pattern!r}; last text: {text[:500]!r}; "
                                     f"errors shown: {self.error_toasts()}")
            self.page.wait_for_timeout(100)

    def error_toasts(self) -> list[str]:
        return [t.strip() for t in self.page.locator(".toast-body").all_inner_texts()]

    def watch_text(self, selector: str, name: str) -> None:
        """Record every distinct text the elements matching `selector` show from now on, in order of first
        appearance, into `window.__seen[name]` (a MutationObserver: catches progress bars, streamed text)."""
        self.page.evaluate("""([selector, name]) => {
            window.__seen = window.__seen || {};
            const seen = window.__seen[name] = [];
            const record = () => document.querySelectorAll(selector).forEach(el => {
                const text = el.innerText.trim();
                if (text && seen.length < 2000 && !seen.includes(text)) seen.push(text);
            });
            new MutationObserver(record).observe(document.body,
                {subtree: true, childList: true, characterData: true, attributes: true});
            record();
        }""", [selector, name])

    def seen(self, name: str) -> list[str]:
        return self.page.evaluate("name => (window.__seen || {})[name] || []", name)

    def screenshot(self, name: str, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path
