"""The Curation review tab end to end in a real browser (Playwright driving Debian's Chromium): sign in,
then accept, edit, reject and undo pairs with the keyboard only, and check the store changed. The lead
view (agreement statistics) is opened too, and Hugging Face sign-in runs through Gradio's local OAuth mock.
The pair's slide shows in the zoomable viewer from --slides-root, else the overview and the reason.
Screenshots go to test-artifacts/review-*.png."""

from __future__ import annotations

import time

import pytest

from curation.store.review_store import ReviewStore
from tests.app.browser import AppPage
from tests.app.viewer_page import canvas_stats, state, tile_responses, toggle, wait_ready
from tests.app.review_fixtures import (
    build_store,
    password_of,
    review_server,
    write_thumbnail,
    write_users,
)
from ui.review.session import oauth_installed

pytestmark = pytest.mark.browser          # the `chromium` fixture (tests/app/conftest.py) skips without Chromium
VIEWER = "#review-viewer .wsiv-host"


@pytest.fixture(scope="module")
def review_app(tmp_path_factory):
    """The review tab with thumbnails for both slides and, under its --slides-root, the first slide's file only."""
    from tests.helpers.synthetic_slides import write_aperio_slide

    folder = tmp_path_factory.mktemp("review-browser")
    path = build_store(folder / "store.sqlite", annotators=("ann",))
    store = ReviewStore.open(str(path))
    pairs = store.queue("ann", limit=100)
    store.close()
    first, other = pairs[0], next(p for p in pairs if p.slide_id != pairs[0].slide_id)
    for item in (first, other):
        write_thumbnail(folder / "thumbs", item.slide_id)
    (folder / "slides" / "TCGA-BRCA").mkdir(parents=True)
    write_aperio_slide(folder / "slides" / "TCGA-BRCA" / f"{first.slide_id}.svs", width=4096, height=4096, mpp=0.5)
    users = write_users(folder / "users.json", ("lead", "ann"))
    with review_server(path, users, folder / "slides", thumbnails_dir=str(folder / "thumbs")) as url:
        yield url, path, first, other


def signed_in(app_page, url: str, name: str) -> AppPage:
    page = app_page(url)
    page.fill("review-name", name)
    page.element("review-password").locator("input").fill(password_of(name))
    page.page.keyboard.press("Enter")                                     # the password box submits
    page.wait_for_text("review-who", f"Signed in as {name}")
    page.wait_for_text("review-header", r"Pair \d+")
    page.page.wait_for_function("window.__wsiReviewKeys === true")       # the tab's key handler is installed
    return page


def pair_on_screen(page: AppPage) -> int:
    return int(page.wait_for_text("review-header", r"Pair \d+").split("Pair ")[1].split(" ")[0])


def press(page: AppPage, keys: str, expect: str) -> str:
    page.page.keyboard.press(keys)
    return page.wait_for_text("review-message", expect)


def test_keyboard_review_changes_the_store(review_app, app_page):
    url, path, *_ = review_app
    page = signed_in(app_page, url, "ann")
    assert "Alt+A" in page.text("review-shortcuts") and "reason" in page.text("review-shortcuts")
    assert "grounds the answer" in page.text("review-report")
    thumbnail = page.element("review-thumbnail").locator("img")
    thumbnail.first.wait_for(timeout=60_000)                       # rendered after the pair, under load later
    assert thumbnail.count() == 1
    page.page.wait_for_timeout(500)
    page.screenshot("review-queue")
    first = pair_on_screen(page)

    press(page, "Alt+A", f"Saved: accepted pair {first}")
    second = pair_on_screen(page)
    assert second != first
    page.page.keyboard.press("Alt+W")                                     # focus the answer box
    page.page.keyboard.press("Control+A")
    page.page.keyboard.type("Invasive ductal carcinoma, edited by keyboard.")
    press(page, "Alt+E", f"Saved: edited pair {second}")

    third = pair_on_screen(page)
    page.page.keyboard.press("Alt+C")
    page.page.keyboard.type("no support in the report")
    page.page.keyboard.press("Alt+R")                                     # no reason yet: refused ...
    page.page.get_by_text("Choose a rejection reason first").wait_for()
    answer = page.element("review-answer")          # ... and the pair stays readable: no "Error" over the boxes
    assert answer.locator("textarea").is_visible() and answer.get_by_text("Error", exact=True).count() == 0
    assert pair_on_screen(page) == third
    page.page.locator("[data-testid=toast-close]").first.click()
    page.page.keyboard.press("Alt+1")                                     # reason 1: not grounded
    press(page, "Alt+R", f"Saved: rejected pair {third}")                # the comment typed before is kept
    press(page, "Alt+U", f"Undone: your verdict on pair {third}")
    assert pair_on_screen(page) == third

    page.element("review-header").click()                                 # out of the text boxes: bare keys
    page.page.keyboard.press("2")                                         # reason 2: factually wrong
    press(page, "r", f"Saved: rejected pair {third}")
    page.page.wait_for_timeout(800)                                       # let the last update settle
    page.screenshot("review-after-keyboard")

    store = ReviewStore.open(str(path))
    try:
        log = [(a.pair_id, a.action, a.details.get("verdict"), a.details.get("reason"), a.details.get("answer"))
               for a in store.audit_log(actor="ann") if a.action in ("review", "undo")]
        assert log == [(first, "review", "accepted", None, None),
                       (second, "review", "edited", None, "Invasive ductal carcinoma, edited by keyboard."),
                       (third, "review", "rejected", "not_grounded", None),
                       (third, "undo", "undo", None, None),
                       (third, "review", "rejected", "factually_wrong", None)]
        assert store.audit_log(pair_id=third, actor="ann")[0].details["comment"] == "no support in the report"
        progress = store.progress("ann")[0]
        assert (progress.accepted, progress.edited, progress.rejected) == (1, 1, 1)
    finally:
        store.close()
    assert page.error_toasts() == []


def test_lead_view_shows_agreement(review_app, app_page):
    url, *_ = review_app
    page = signed_in(app_page, url, "lead")
    page.wait_for_text("review-stats", "percent agreement")              # filled at sign-in, no click needed
    assert page.element("review-blind").locator("input").is_checked()     # the store's blind mode, as it is
    page.click("review-stats-refresh")
    page.wait_for_text("review-stats", "percent agreement")
    page.element("review-lead").scroll_into_view_if_needed()
    page.screenshot("review-lead-view")


def test_the_pairs_slide_is_zoomable_from_the_slides_root_else_the_overview_and_why(review_app, app_page):
    url, _, first, other = review_app
    page = signed_in(app_page, url, "lead")
    tiles = tile_responses(page.page)
    page.element("review-go-to").locator("input").fill(str(first.pair_id))
    page.click("review-open")
    page.wait_for_text("review-header", f"Pair {first.pair_id} ")
    wait_ready(page.page, VIEWER)
    assert state(page.page, VIEWER) == "ready" and page.page.eval_on_selector(VIEWER, "h => h.wsiv.config.name") == \
        first.slide_id
    assert canvas_stats(page.page, "slide", VIEWER)["colours"] > 3 and tiles and {s for s, _ in tiles} == {200}
    assert toggle(page.page, "tissue", True, VIEWER)["opaque"] > 500          # contours found on the slide
    assert page.page.locator(f"{VIEWER} input[data-overlay=grid]").is_disabled()
    page.element("review-viewer").scroll_into_view_if_needed()
    page.screenshot("review-viewer")

    page.element("review-go-to").locator("input").fill(str(other.pair_id))
    page.click("review-open")
    page.wait_for_text("review-header", f"Pair {other.pair_id} ")
    note = page.wait_for_text("review-viewer", "is not zoomable here")
    assert f"no file for slide {other.slide_id} under --slides-root" in note and "showing its overview" in note
    assert page.element("review-thumbnail").locator("img").count() == 1          # the overview, beside the reason
    page.screenshot("review-viewer-overview-only")


def mocked_hub_login(username: str) -> dict:
    """What Gradio's local OAuth mock stores in the session (on a Space the Hub's OAuth server does this)."""
    now = int(time.time())
    return {"access_token": "mock-oauth-token", "token_type": "bearer", "expires_in": 3600, "id_token": "x",
            "scope": "openid profile", "expires_at": now + 3600,
            "userinfo": {"sub": "1", "name": username, "preferred_username": username, "profile": "", "picture": "",
                         "website": "", "aud": "", "auth_time": now, "nonce": "", "iat": now, "exp": now + 3600,
                         "iss": "https://huggingface.co"}}


@pytest.mark.skipif(not oauth_installed(), reason="Hugging Face sign-in needs Gradio's oauth extra "
                    "(gradio[oauth]: authlib, itsdangerous)")
def test_hugging_face_sign_in_then_keyboard_accept(app_page, tmp_path, monkeypatch):
    import gradio.oauth

    monkeypatch.setattr(gradio.oauth, "_get_mocked_oauth_info", lambda: mocked_hub_login("tester"))
    path = build_store(tmp_path / "store.sqlite", annotators=("tester",))
    with review_server(path, None, sign_in="huggingface") as url:
        page = app_page(url)
        page.wait_for_text("review-who", "Use Sign in with Hugging Face above")
        assert page.error_toasts() == [] and page.element("review-name").count() == 0     # no password form
        page.page.get_by_role("button", name="Sign in with Hugging Face").click()
        page.wait_for_text("review-who", r"Signed in as tester \(annotator, via Hugging Face\)")
        page.page.wait_for_function("window.__wsiReviewKeys === true")
        first = pair_on_screen(page)
        press(page, "Alt+A", f"Saved: accepted pair {first}")
    store = ReviewStore.open(str(path))
    try:
        assert [(a.actor, a.pair_id) for a in store.audit_log() if a.action == "review"] == [("tester", first)]
    finally:
        store.close()
