"""The slide viewer in a real Chromium (Playwright), on a minimal Blocks page that embeds it for an uploaded
slide: zoom in three levels, pan, toggle each overlay, tiles load (200, canvas not blank), another
session's or a forged handle gets 404, "copy link" reopens the same place; OpenSeadragon from the CDN
(routed to the npm copy: the tests are offline), and the overview with the reason when it cannot load.
Screenshots: test-artifacts/viewer-*.png."""

from __future__ import annotations

import contextlib

import re
import time

import gradio as gr
import pytest

from tests.app.browser import AppPage
from tests.app.viewer_page import HOST, canvas_stats, current_view, state, tile_responses, toggle, wait_ready
from tests.helpers.synthetic_slides import write_large_sparse_aperio
from ui.viewer import (
    ViewerRegistry,
    attach_viewer,
    heatmap_overlay,
    overlays_from_tiling,
    viewer_component,
    viewer_value,
)
from ui.viewer import settings as viewer_settings
from ui.viewer.settings import NPM_OSD_FILE, OSD_CDN_URL

pytestmark = pytest.mark.browser


def needs_npm_package():
    if not NPM_OSD_FILE.is_file():
        pytest.fail("openseadragon is not installed: run `npm ci --prefix ui/viewer` (tests/run.sh does it)")


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    return write_large_sparse_aperio(tmp_path_factory.mktemp("viewer-browser") / "biopsy.svs", width=8192,
                                     height=8192, mpp=0.5, downsamples=(1, 4, 16))


@contextlib.contextmanager
def served_viewer(serve, registry: ViewerRegistry):
    """The viewer demo on a real server with the viewer's routes attached; yields its URL."""
    demo = viewer_demo(registry)
    with serve(demo) as url:
        attach_viewer(demo, registry)
        yield url


def viewer_demo(registry: ViewerRegistry):
    """Upload a slide -> tiled (tissue + kept tiles) -> the viewer; a button adds a heatmap to the view."""
    from modeling.slide.tiling import tile_slide

    views: dict[str, tuple] = {}
    with gr.Blocks() as demo, gr.Tabs(), gr.Tab("Viewer"):       # AppPage waits for the app's tabs
        upload = gr.File(label="Slide", elem_id="viewer-upload")
        box = viewer_component(elem_id="viewer")
        heat = gr.Button("Show a heatmap", elem_id="viewer-heatmap")

        def show(file, request: gr.Request):
            tiling = tile_slide(file, target_mpp=2.0, tile_size_px=256)
            view = registry.open(request.session_hash, file, name="biopsy.svs", overlays=overlays_from_tiling(tiling))
            views[request.session_hash] = (view, tiling)
            return viewer_value(view, registry.settings)

        def add_heatmap(request: gr.Request):
            view, tiling = views[request.session_hash]
            size = tiling.patch_size_level0
            cells = [{"x": int(x), "y": int(y), "w": size, "h": size, "value": float(x)}
                     for x, y in tiling.coords_level0]
            updated = registry.set_overlays(request.session_hash, view.handle,
                                            heatmap=heatmap_overlay(cells, label="x position"))
            return viewer_value(updated, registry.settings)

        def end_session(request: gr.Request):
            registry.release_session(request.session_hash)

        upload.upload(show, upload, box)
        heat.click(add_heatmap, None, box)
        demo.unload(end_session)
    return demo


def open_slide_page(app_page, url, slide):
    app = app_page(url)
    tiles = tile_responses(app.page)
    app.upload("viewer-upload", slide.path)
    wait_ready(app.page)
    return app, tiles


def test_zoom_pan_overlays_tiles_and_forged_handles(app_page, serve, slide):
    needs_npm_package()
    registry = ViewerRegistry()
    with served_viewer(serve, registry) as url:
        app, tiles = open_slide_page(app_page, url, slide)
        page = app.page
        assert state(page) == "ready"
        home_level = max(level for _, level in tiles)
        app.screenshot("viewer-home")
        blob = slide.blobs[1]                                    # centre a blob, then zoom in on it
        page.eval_on_selector(HOST, "(h, b) => h.wsiv.goTo({x: b[0], y: b[1], ds: h.wsiv.currentView().ds})",
                              [blob.cx, blob.cy])
        levels = [home_level]
        for _ in range(3):                                       # zoom in three levels
            page.click(f"{HOST} button[data-act=zoom-in]")
            wait_ready(page)
            levels.append(max(level for _, level in tiles))
        assert levels == [home_level + step for step in range(4)], levels
        slide_pixels = canvas_stats(page, "slide")
        assert slide_pixels["opaque"] == slide_pixels["total"] and slide_pixels["colours"] > 20  # tissue, not blank
        app.screenshot("viewer-zoomed")

        before = current_view(page)                              # pan: drag the slide by 300 x 150 px
        box = page.locator(f"{HOST} .wsiv-stage").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx - 150, cy - 75, steps=5)
        page.mouse.move(cx - 300, cy - 150, steps=5)
        page.mouse.up()
        wait_ready(page)
        after = current_view(page)
        assert after["x"] - before["x"] == pytest.approx(300 * before["ds"], rel=0.25)
        assert after["y"] - before["y"] == pytest.approx(150 * before["ds"], rel=0.25)
        assert canvas_stats(page, "slide")["colours"] > 3
        app.screenshot("viewer-panned")

        page.click(f"{HOST} button[data-act=home]")
        wait_ready(page)
        assert canvas_stats(page, "overlay")["opaque"] == 0
        for kind in ("tissue", "grid"):                          # toggle each overlay on, then off
            assert toggle(page, kind, True)["opaque"] > 500, kind
            app.screenshot(f"viewer-overlay-{kind}")
            assert toggle(page, kind, False)["opaque"] == 0, kind
        assert page.locator(f"{HOST} input[data-overlay=heatmap]").is_disabled()
        place = current_view(page)
        app.click("viewer-heatmap")                              # an answer's heatmap arrives for the same slide
        page.wait_for_function(f"!document.querySelector('{HOST} input[data-overlay=heatmap]').disabled")
        assert current_view(page) == pytest.approx(place)        # the same place, not remounted
        assert toggle(page, "heatmap", True)["opaque"] > 10_000
        toggle(page, "tissue", True)
        app.screenshot("viewer-overlay-heatmap")
        assert toggle(page, "heatmap", False)["opaque"] > 0 and toggle(page, "tissue", False)["opaque"] == 0

        scale = page.locator(f"{HOST} .wsiv-scale")
        assert re.fullmatch(r"\d+(\.\d+)? (µm|mm)", scale.inner_text().strip())
        bar_px = page.eval_on_selector(f"{HOST} .wsiv-scale-bar", "b => b.getBoundingClientRect().width")
        um = float(scale.get_attribute("data-um"))
        assert bar_px * current_view(page)["ds"] * 0.5 == pytest.approx(um, rel=0.02)   # 0.5 um/px at level 0
        assert re.match(r"×\d", page.locator(f"{HOST} .wsiv-mag").inner_text())

        assert tiles and {status for status, _ in tiles} == {200}
        base = page.eval_on_selector(HOST, "h => h.wsiv.base")
        forged = re.sub(r"/[^/]+/$", "/AAAAAAAAAAAAAAAAAAAAAA/", base)
        other = app_page(url)                                    # a second browser session, its own slide
        other.upload("viewer-upload", slide.path)
        wait_ready(other.page)
        other_handle = other.page.eval_on_selector(HOST, "h => h.wsiv.config.handle")
        foreign = re.sub(r"/[^/]+/$", f"/{other_handle}/", base)
        codes = page.evaluate("""urls => Promise.all(urls.map(u => fetch(u).then(r => r.status)))""",
                              [base + "slide.dzi", forged + "slide.dzi", foreign + "slide.dzi",
                               forged + "slide_files/9/0_0.jpeg", base + "slide_files/99/0_0.jpeg"])
        assert codes == [200, 404, 404, 404, 404]
        other.page.context.close()


def test_copy_link_reopens_the_same_place_in_the_session(app_page, serve, slide):
    needs_npm_package()
    registry = ViewerRegistry()
    with served_viewer(serve, registry) as url:
        app, _ = open_slide_page(app_page, url, slide)
        page = app.page
        for _ in range(2):
            page.click(f"{HOST} button[data-act=zoom-in]")
        page.wait_for_timeout(800)
        page.eval_on_selector(HOST, "h => h.wsiv.viewer.viewport.panBy(new OpenSeadragon.Point(0.07, -0.05), true)")
        wait_ready(page)
        place = current_view(page)
        page.click(f"{HOST} button[data-act=copy-link]")
        link = page.locator(f"{HOST} .wsiv-link").input_value()
        assert re.search(r"/viewer/s/[^/]+/[^/]+/view#x=\d+&y=\d+&ds=[\d.]+$", link), link
        page.wait_for_function(f"""() => /Link copied|Copy the link shown/.test(
            document.querySelector({HOST!r}).innerText)""", timeout=10_000)   # after the clipboard's promise
        reopened = page.context.new_page()
        reopened.set_viewport_size({"width": 900, "height": 700})     # another window size: the same place
        reopened.goto(link)
        wait_ready(reopened, "#wsiv-page")
        again = current_view(reopened, "#wsiv-page")
        assert again["x"] == pytest.approx(place["x"], abs=2) and again["y"] == pytest.approx(place["y"], abs=2)
        assert again["ds"] == pytest.approx(place["ds"], rel=0.01)
        assert canvas_stats(reopened, "slide", "#wsiv-page")["colours"] > 3
        app.screenshot("viewer-link-source")
        AppPage(reopened, link).screenshot("viewer-link-reopened")
        page.close()                                                       # the session ends: the link is dead
        deadline = time.monotonic() + 30
        while registry.stats()["handles"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert reopened.context.request.get(link.split("#")[0]).status == 404


@pytest.fixture
def cdn_mode(monkeypatch, tmp_path):
    """No npm copy on the server: the page loads OpenSeadragon from the pinned CDN URL with its hash."""
    monkeypatch.setattr(viewer_settings, "NPM_OSD_FILE", tmp_path / "not-installed.js")


def test_openseadragon_from_the_cdn_with_its_integrity_hash(app_page, serve, slide, cdn_mode):
    needs_npm_package()
    registry = ViewerRegistry()
    with served_viewer(serve, registry) as url:
        app = app_page(url)
        served = []

        def from_npm(route):                                      # offline tests: the CDN URL -> the npm copy
            served.append(route.request.url)
            route.fulfill(status=200, body=NPM_OSD_FILE.read_bytes(), content_type="text/javascript",
                          headers={"Access-Control-Allow-Origin": "*"})

        app.page.route(OSD_CDN_URL, from_npm)
        tiles = tile_responses(app.page)
        app.upload("viewer-upload", slide.path)
        wait_ready(app.page)
        assert state(app.page) == "ready" and served == [OSD_CDN_URL]
        assert tiles and {status for status, _ in tiles} == {200}
        assert canvas_stats(app.page, "slide")["colours"] > 3
        app.screenshot("viewer-cdn")


@pytest.mark.parametrize("how", ["offline", "tampered"])
def test_without_a_loadable_script_the_overview_is_shown_with_the_reason(app_page, serve, slide, cdn_mode, how):
    registry = ViewerRegistry()
    with served_viewer(serve, registry) as url:
        app = app_page(url)
        if how == "offline":
            app.page.route(OSD_CDN_URL, lambda route: route.abort("internetdisconnected"))
        else:                                                      # other bytes than the pinned file: SRI refuses
            app.page.route(OSD_CDN_URL, lambda route: route.fulfill(
                status=200, body="window.OpenSeadragon = function () {};", content_type="text/javascript",
                headers={"Access-Control-Allow-Origin": "*"}))
        app.upload("viewer-upload", slide.path)
        app.page.wait_for_function(f"document.querySelector('{HOST}')?.dataset.state === 'fallback'")
        message = app.text("viewer")
        assert "could not load OpenSeadragon" in message and "--viewer-js" in message
        app.page.wait_for_function(f"document.querySelector('{HOST} img.wsiv-fallback')?.naturalWidth > 0")
        assert app.page.evaluate("typeof window.OpenSeadragon") == "undefined"
        app.screenshot(f"viewer-fallback-{how}")
