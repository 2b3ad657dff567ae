"""The viewer's HTTP routes, on the app's own server (Gradio's FastAPI app), relative to the app's root.

    register_viewer_routes(demo.app, registry)        # after demo.launch(prevent_thread_lock=True)

    GET viewer/assets/openseadragon.min.js            the --viewer-js file or the npm copy (404 in CDN mode)
    GET viewer/assets/viewer.js                       the viewer's own script (standalone page)
    GET viewer/s/{token}/{handle}/slide.dzi           Deep Zoom descriptor (XML)
    GET viewer/s/{token}/{handle}/slide_files/{level}/{col}_{row}.jpeg
    GET viewer/s/{token}/{handle}/status.json         unreadable tiles, as a message
    GET viewer/s/{token}/{handle}/overlays/{kind}.json    tissue | grid | heatmap
    GET viewer/s/{token}/{handle}/overview.png        the fallback picture
    GET viewer/s/{token}/{handle}/view                a page with just the viewer ("copy link" opens it)

Every handle route answers 404 (a short JSON body) unless the handle is live for the token's session
(`ViewerRegistry.lookup`), 429 with Retry-After past the session's rate, and 404 for a level or tile
outside the slide's grid. An unreadable tile is a grey JPEG with the header `X-Viewer-Tile: unreadable`.
No response carries a traceback or a server path: unexpected failures are logged and answered
{"error": "internal error"} with status 500.
"""

from __future__ import annotations

import json
import logging
import math
import re

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from ui.viewer.component import standalone_page, viewer_config, viewer_js
from ui.viewer.handles import ViewerRegistry
from ui.viewer.overlays import OVERLAY_KINDS
from ui.viewer.tiles import SourceClosed, TileOutOfRange

log = logging.getLogger("wsi_llava.viewer")

PREFIX = "/viewer"
TILE_NAME = re.compile(r"(\d{1,7})_(\d{1,7})\.jpeg")
LEVEL_TEXT = re.compile(r"\d{1,3}")
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
PRIVATE_CACHE = "private, max-age=3600"     # handle URLs are per session; their tiles never change
NOT_FOUND = {"error": "no such slide view (closed, expired, or not this session's)"}


def _json(body: dict, status: int = 200, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={**COMMON_HEADERS, "Cache-Control": "no-store",
                                                            **(headers or {})})


def not_found(reason: dict = NOT_FOUND) -> JSONResponse:
    return _json(reason, 404)


def _guarded(registry: ViewerRegistry, handler):
    """Check the rate and the handle, then run `handler(entry, **params)`; never leak an exception."""

    def route(request: Request):
        params = dict(request.path_params)
        token, handle = params.pop("token", ""), params.pop("handle", "")
        try:
            allowed, retry_after_s = registry.allow(token)
            if not allowed:
                return _json({"error": "too many requests for this session; slow down"}, 429,
                             {"Retry-After": str(max(1, math.ceil(retry_after_s)))})
            entry = registry.lookup(token, handle)
            if entry is None:
                return not_found()
            return handler(entry, **params)
        except (TileOutOfRange, SourceClosed):
            return not_found({"error": "no such tile"})
        except Exception:  # never a traceback to the browser; the log has it
            log.exception("viewer route %s failed", handler.__name__)
            return _json({"error": "internal error"}, 500)

    return route


class _Handlers:
    """One method per route; the handle routes get the checked registry entry."""

    def __init__(self, registry: ViewerRegistry):
        self.registry = registry
        self.source = registry.settings.script_source()

    @staticmethod
    def _body(data, media_type: str, cache: str = "no-store") -> Response:
        return Response(data, media_type=media_type, headers={**COMMON_HEADERS, "Cache-Control": cache})

    def dzi(self, entry):
        return self._body(entry.source.dzi_xml(), "application/xml", PRIVATE_CACHE)

    def tile(self, entry, level: str, name: str):
        match = TILE_NAME.fullmatch(name)
        if match is None or LEVEL_TEXT.fullmatch(level) is None:
            return not_found({"error": "no such tile"})
        result = entry.source.tile(int(level), int(match.group(1)), int(match.group(2)))
        response = self._body(result.data, "image/jpeg", PRIVATE_CACHE if result.status == "ok" else "no-store")
        response.headers["X-Viewer-Tile"] = result.status
        return response

    def status(self, entry):
        return _json(entry.source.status())

    def overlay(self, entry, kind: str):
        if kind not in OVERLAY_KINDS:
            return not_found({"error": "no such overlay"})
        if kind == "tissue":
            data, note = self.registry.tissue_geojson(entry)
        else:
            data, note = getattr(entry.overlays, kind), entry.overlays.available()[kind]["note"]
        body = {"available": data is not None, "note": note if data is None else "", "version": entry.version,
                "data": data}
        return self._body(json.dumps(body, separators=(",", ":")), "application/json")

    def overview(self, entry):
        return self._body(self.registry.overview_png(entry), "image/png")

    def view(self, entry):
        described = self.registry.describe(entry.session_id, entry.handle)
        if described is None:
            return not_found()
        config = viewer_config(described, self.source, root="../../../../")     # the page is 4 folders down
        return self._body(standalone_page(config, described.name), "text/html")

    def osd_script(self):
        if self.source.file is None:
            return not_found({"error": "OpenSeadragon is loaded from its CDN"})
        return FileResponse(self.source.file, media_type="text/javascript",
                            headers={**COMMON_HEADERS, "Cache-Control": "public, max-age=86400"})

    def viewer_script(self):
        return self._body(viewer_js(), "text/javascript", "no-cache")


def register_viewer_routes(app, registry: ViewerRegistry) -> None:
    """Add the viewer's routes to a FastAPI/Starlette app (Gradio's `demo.app`, after launch)."""
    handlers = _Handlers(registry)
    for path, handler in ((f"{PREFIX}/assets/openseadragon.min.js", handlers.osd_script),
                          (f"{PREFIX}/assets/viewer.js", handlers.viewer_script)):
        app.add_api_route(path, handler, methods=["GET"], include_in_schema=False)
    base = PREFIX + "/s/{token}/{handle}"
    for path, handler in ((f"{base}/slide.dzi", handlers.dzi), (f"{base}/slide_files/{{level}}/{{name}}", handlers.tile),
                          (f"{base}/status.json", handlers.status), (f"{base}/overlays/{{kind}}.json", handlers.overlay),
                          (f"{base}/overview.png", handlers.overview), (f"{base}/view", handlers.view)):
        app.add_api_route(path, _guarded(registry, handler), methods=["GET"], include_in_schema=False)
