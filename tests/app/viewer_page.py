"""Browser-side helpers for the slide viewer (ui.viewer) in Playwright tests: the tile responses a page gets,
waiting until the viewer is ready and every tile it wants is drawn, where it looks, what its canvases show,
ticking overlays. `host` is the CSS selector of the viewer's host element (`#<elem_id> .wsiv-host`)."""

from __future__ import annotations

import re

HOST = "#viewer .wsiv-host"            # the standalone viewer test's component
TILE_URL = re.compile(r"/viewer/s/[^/]+/[^/]+/slide_files/(\d+)/\d+_\d+\.jpeg$")


def tile_responses(page) -> list[tuple[int, int]]:
    """(status, Deep Zoom level) of every tile response this page gets from now on."""
    seen: list[tuple[int, int]] = []

    def record(response):
        match = TILE_URL.search(response.url.split("?")[0])
        if match:
            seen.append((response.status, int(match.group(1))))

    page.on("response", record)
    return seen


def wait_ready(page, host: str = HOST) -> None:
    """Until the viewer is ready (or fell back), its animation has ended and every tile it wants is drawn."""
    page.wait_for_function(f"""() => {{
        const host = document.querySelector({host!r});
        if (!host || host.dataset.state === "fallback") return host && host.dataset.state === "fallback";
        const v = host.wsiv && host.wsiv.viewer;
        if (host.dataset.state !== "ready" || !v.world.getItemCount()) return false;
        const vp = v.viewport, still = Math.abs(vp.getZoom(true) / vp.getZoom(false) - 1) < 1e-4
            && vp.getCenter(true).distanceTo(vp.getCenter(false)) < 1e-6;
        if (!still) {{ host.__settled = 0; return false; }}
        host.__settled = (host.__settled || 0) + 1;           // a few polls after the animation ended
        return host.__settled > 3 && v.world.getItemAt(0).getFullyLoaded();
    }}""", timeout=30_000, polling=100)
    page.wait_for_timeout(300)                       # the last frame drawn


def state(page, host: str = HOST) -> str:
    return page.eval_on_selector(host, "h => h.dataset.state")


def current_view(page, host: str = HOST) -> dict:
    return page.eval_on_selector(host, "h => h.wsiv.currentView()")


def canvas_stats(page, which: str, host: str = HOST) -> dict:
    """Opaque pixels and distinct colours (sampled) on the slide canvas ("slide") or the overlay canvas."""
    return page.eval_on_selector(host, """(h, which) => {
        const canvas = which === "slide" ? h.wsiv.viewer.drawer.canvas : h.wsiv.canvas;
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let opaque = 0; const colours = new Set();
        for (let i = 0; i < data.length; i += 4) {
            if (data[i + 3] > 0) opaque++;
            if (i % 400 === 0) colours.add((data[i] >> 3) + "," + (data[i + 1] >> 3) + "," + (data[i + 2] >> 3));
        }
        return {opaque: opaque, total: data.length / 4, colours: colours.size};
    }""", which)


def toggle(page, kind: str, on: bool, host: str = HOST) -> dict:
    """Tick or untick an overlay's box; the overlay canvas's statistics once it is drawn."""
    box = page.locator(f"{host} input[data-overlay={kind}]")
    box.check() if on else box.uncheck()
    page.wait_for_timeout(400)                        # the overlay's JSON fetched and drawn
    return canvas_stats(page, "overlay", host)
