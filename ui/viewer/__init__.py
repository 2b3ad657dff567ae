"""The deep-zoom slide viewer shared by the app's tabs: Deep Zoom tiles from the slide itself (OpenSlide's
Deep Zoom geometry; JPEG-tiled TIFFs decoded straight from their own tiles), served by the app's own server on routes that take an opaque per-session handle, and OpenSeadragon in
the browser with toggleable overlays, a scale bar, the magnification and "copy link to this view".

    from ui.viewer import ViewerRegistry, ViewerSettings, attach_viewer, viewer_component, viewer_value

    registry = ViewerRegistry(ViewerSettings(viewer_js=..., handle_ttl_s=...))  # one per app
    with gr.Blocks() as demo:
        box = viewer_component(elem_id="qa-viewer")                           # in a tab's layout
        def show(path, request: gr.Request):                                  # a handler
            view = registry.open(request.session_hash, path, slot="qa", name="biopsy.svs",
                                 mpp_override=None, overlays=overlays_from_tiling(tiling), overview=image)
            return viewer_value(view, registry.settings)
        # no slide file: viewer_value(None, note="why"); a new heatmap for the same slide:
        #   viewer_value(registry.set_overlays(session_id, view.handle, heatmap=heatmap_overlay(cells)), ...)
        demo.unload(end_session)            # end_session(request) calls registry.release_session(session_hash)
    demo.launch(prevent_thread_lock=True)
    attach_viewer(demo, registry)                                             # adds the routes

Never give the component a slide as its initial (build-time) value: the value carries the session's
secret token and must reach only that session's page, as a handler's output.

Modules: `settings` (defaults, where OpenSeadragon comes from), `tiles` (Deep Zoom over open_slide's
formats), `direct_tiles` (the JPEG fast path), `shared` (decoded slide data every handle shares), `cache` (LRU
of encoded tiles or decoded arrays, bounded by bytes), `handles` (the per-session registry), `ratelimit`, `overlays`,
`routes` (FastAPI), `component` (gr.HTML + standalone page), `viewer.js` (the browser side), `slides_root`
(a WSI-Bench slide's file under --slides-root). The browser library is installed by
`npm ci --prefix ui/viewer` (package.json pins openseadragon 6.1.1; node_modules is never committed).
"""

from __future__ import annotations

import importlib

# Names resolved on first use (PEP 562), so `ui.config` can read the viewer's defaults (`ui.viewer.settings`)
# without importing the server side (starlette, OpenSlide) at start-up: `python app.py --help` stays fast.
_EXPORTS = {
    "viewer_component": "component", "viewer_value": "component",
    "ViewerHandle": "handles", "ViewerRegistry": "handles",
    "Overlays": "overlays", "grid_overlay": "overlays", "heatmap_overlay": "overlays",
    "overlays_from_tiling": "overlays", "tissue_overlay": "overlays",
    "register_viewer_routes": "routes", "ViewerSettings": "settings", "SlidesRoot": "slides_root",
}

__all__ = sorted([*_EXPORTS, "attach_viewer"])


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ui.viewer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ui.viewer.{module}"), name)
    globals()[name] = value
    return value


def attach_viewer(demo, registry=None):
    """Register the viewer's routes on a launched Blocks app (`demo.app`); returns the registry used
    (`registry`, else `demo.viewer_registry`, else a new one with default settings), kept as
    `demo.viewer_registry`. Attaching the same registry to the same server twice does nothing."""
    from ui.viewer.handles import ViewerRegistry
    from ui.viewer.routes import register_viewer_routes

    registry = registry or getattr(demo, "viewer_registry", None) or ViewerRegistry()
    app = getattr(demo, "app", None)
    if app is None:
        raise RuntimeError("attach_viewer: launch the app first (demo.launch(prevent_thread_lock=True))")
    if getattr(app, "viewer_registry", None) is not registry:
        register_viewer_routes(app, registry)
        app.viewer_registry = registry
    demo.viewer_registry = registry
    return registry
