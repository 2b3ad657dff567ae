"""The viewer's routes on a real Gradio server, over HTTP: tiles and descriptors for a live handle only,
404 for forged, foreign, expired and released handles and for tiles outside the grid, 429 past the rate,
never a traceback or a server path."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from tests.app.browser import serve_blocks
from tests.helpers.synthetic_slides import write_aperio_slide, write_slide_with_corrupt_tile
from ui.viewer import ViewerRegistry, ViewerSettings, attach_viewer
from ui.viewer.overlays import Overlays, heatmap_overlay
from ui.viewer.settings import NPM_OSD_FILE


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import gradio as gr

    root = tmp_path_factory.mktemp("viewer-server")
    (root / "private-folder").mkdir()
    slide = write_aperio_slide(root / "private-folder" / "slide.svs", width=2048, height=2048).path
    corrupt, bad_xy = write_slide_with_corrupt_tile(root / "private-folder" / "corrupt.svs")
    clock = Clock()
    registry = ViewerRegistry(ViewerSettings(rate_per_s=5, rate_burst=200), clock=clock)
    with gr.Blocks() as demo:
        gr.Markdown("viewer routes")
    with serve_blocks(demo) as url:
        attach_viewer(demo, registry)
        with httpx.Client(base_url=url + "/", timeout=30) as client:
            yield {"url": url, "client": client, "registry": registry, "clock": clock, "slide": slide,
                   "corrupt": corrupt.path, "bad_xy": bad_xy, "root": root}


def get(server, view, rest: str, token: str | None = None, handle: str | None = None) -> httpx.Response:
    return server["client"].get(f"viewer/s/{token or view.session_token}/{handle or view.handle}/{rest}")


def assert_not_found(response: httpx.Response, server) -> None:
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) & {"error", "detail"} and len(response.text) < 200   # ours, or no such route
    assert str(server["root"]) not in response.text and "Traceback" not in response.text


def test_a_live_handle_gets_the_descriptor_and_jpeg_tiles(server):
    view = server["registry"].open("session-a", server["slide"], overlays=Overlays(tissue_lazy=True))
    dzi = get(server, view, "slide.dzi")
    assert dzi.status_code == 200 and dzi.headers["content-type"].startswith("application/xml")
    assert 'Width="2048"' in dzi.text and 'TileSize="254"' in dzi.text and 'Format="jpeg"' in dzi.text
    tile = get(server, view, "slide_files/11/2_2.jpeg")
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/jpeg"
    assert tile.headers["x-viewer-tile"] == "ok" and "private" in tile.headers["cache-control"]
    assert Image.open(io.BytesIO(tile.content)).size == (256, 256)
    assert get(server, view, "status.json").json()["unreadable_tiles"] == 0
    assert Image.open(io.BytesIO(get(server, view, "overview.png").content)).format == "PNG"
    tissue = get(server, view, "overlays/tissue.json").json()
    assert tissue["available"] and tissue["data"]["type"] == "FeatureCollection"
    assert get(server, view, "overlays/heatmap.json").json() == {
        "available": False, "note": "no answer with a heatmap yet", "version": 1, "data": None}
    for rest in ("slide.dzi", "overlays/tissue.json", "status.json"):
        assert str(server["root"]) not in get(server, view, rest).text


def test_forged_foreign_expired_and_released_handles_get_404(server):
    registry, clock = server["registry"], server["clock"]
    mine = registry.open("session-b", server["slide"])
    theirs = registry.open("session-c", server["slide"])
    assert get(server, mine, "slide.dzi").status_code == 200
    assert_not_found(get(server, mine, "slide.dzi", handle="AAAAAAAAAAAAAAAAAAAAAA"), server)       # forged
    assert_not_found(get(server, mine, "slide.dzi", token="made-up-token"), server)
    assert_not_found(get(server, mine, "slide.dzi", handle=theirs.handle), server)                 # foreign
    assert_not_found(get(server, mine, "slide_files/11/0_0.jpeg", handle=theirs.handle), server)
    clock.now += registry.settings.handle_ttl_s + 1                                                # expired
    assert_not_found(get(server, mine, "slide.dzi"), server)
    again = registry.open("session-b", server["slide"])
    registry.release_session("session-b")                                                          # ended
    assert_not_found(get(server, again, "slide_files/11/0_0.jpeg"), server)


@pytest.mark.parametrize("rest", ["slide_files/12/0_0.jpeg", "slide_files/11/9_0.jpeg", "slide_files/11/0_9.jpeg",
                                  "slide_files/11/-1_0.jpeg", "slide_files/x/0_0.jpeg", "slide_files/11/0_0.png",
                                  "slide_files/11/0_0.jpeg.bak", "slide_files/99999/0_0.jpeg",
                                  "overlays/secrets.json", "slide_files/11/0_0.jpeg/x"])
def test_tiles_outside_the_grid_and_unknown_routes_get_404(server, rest):
    view = server["registry"].open("session-d", server["slide"])
    assert_not_found(get(server, view, rest), server)


def test_past_the_sessions_rate_requests_get_429_with_retry_after(server):
    registry = server["registry"]
    view = registry.open("session-e", server["slide"])
    other = registry.open("session-f", server["slide"])
    codes = [get(server, view, "slide_files/8/0_0.jpeg").status_code for _ in range(205)]
    assert codes[:200] == [200] * 200 and codes[-1] == 429                 # burst 200 (the clock is frozen)
    limited = get(server, view, "slide.dzi")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "slow down" in limited.json()["error"]
    assert get(server, other, "slide.dzi").status_code == 200              # another session is not slowed
    server["clock"].now += 1.0                                              # 5 requests/s come back
    assert get(server, view, "slide.dzi").status_code == 200


def test_unreadable_tiles_are_grey_with_a_header_and_a_status_message(server):
    view = server["registry"].open("session-g", server["corrupt"])
    x, y = server["bad_xy"]
    top = server["registry"].lookup(view.session_token, view.handle).source.level_count - 1
    tile = get(server, view, f"slide_files/{top}/{x // 254}_{y // 254}.jpeg")
    assert tile.status_code == 200 and tile.headers["x-viewer-tile"] == "unreadable"
    assert tile.headers["cache-control"] == "no-store"
    assert get(server, view, f"slide_files/{top}/0_0.jpeg").headers["x-viewer-tile"] == "ok"
    status = get(server, view, "status.json").json()
    assert status["unreadable_tiles"] >= 1 and "could not be read" in status["message"]
    assert str(server["root"]) not in status["message"]


def test_a_failing_route_answers_500_without_a_traceback(server, monkeypatch):
    view = server["registry"].open("session-h", server["slide"])
    entry = server["registry"].lookup(view.session_token, view.handle)

    def broken():
        raise RuntimeError(f"boom at {server['root']}/private-folder")

    monkeypatch.setattr(entry.source, "dzi_xml", broken)
    response = get(server, view, "slide.dzi")
    assert response.status_code == 500 and response.json() == {"error": "internal error"}


def test_heatmap_updates_are_served_and_the_standalone_page_has_no_path(server):
    registry = server["registry"]
    view = registry.open("session-i", server["slide"])
    registry.set_overlays("session-i", view.handle, heatmap=heatmap_overlay(
        [{"x": 0, "y": 0, "w": 512, "h": 512, "value": 0.5}], label="relevance"))
    heat = get(server, view, "overlays/heatmap.json").json()
    assert heat["available"] and heat["version"] == 2 and heat["data"]["cells"] == [[0, 0, 512, 512, 0.5]]
    page = get(server, view, "view")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert view.handle in page.text and str(server["root"]) not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"


def test_the_scripts_are_served(server):
    client = server["client"]
    own = client.get("viewer/assets/viewer.js")
    assert own.status_code == 200 and "window.WsiViewer" in own.text
    library = client.get("viewer/assets/openseadragon.min.js")
    if NPM_OSD_FILE.is_file():
        assert library.status_code == 200 and library.content == NPM_OSD_FILE.read_bytes()
    else:
        assert library.status_code == 404
