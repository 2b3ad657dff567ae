"""The deep-zoom slide viewer shared by the app's tabs: Deep Zoom tiles from the slide itself (OpenSlide),
served by the app's own server on routes that take an opaque per-session handle, and OpenSeadragon in
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
formats), `cache` (LRU of encoded tiles), `handles` (the per-session registry), `ratelimit`, `overlays`,
`routes` (FastAPI), `component` (gr.HTML + standalone page), `viewer.js` (the browser side), `slides_root`
(a WSI-Bench slide's file under --slides-root). The browser library is installed by
`npm ci --prefix ui/viewer` (package.json pins openseadragon 6.1.1; node_modules is never committed).
"""

from __future__ import annotations

from ui.viewer.component import viewer_component, viewer_value
from ui.viewer.handles import ViewerHandle, ViewerRegistry
from ui.viewer.overlays import Overlays, grid_overlay, heatmap_overlay, overlays_from_tiling, tissue_overlay
from ui.viewer.routes import register_viewer_routes
from ui.viewer.settings import ViewerSettings

__all__ = ["Overlays", "ViewerHandle", "ViewerRegistry", "ViewerSettings", "attach_viewer", "grid_overlay",
           "heatmap_overlay", "overlays_from_tiling", "register_viewer_routes", "tissue_overlay",
           "viewer_component", "viewer_value"]


def attach_viewer(demo, registry: ViewerRegistry | None = None) -> ViewerRegistry:
    """Register the viewer's routes on a launched Blocks app (`demo.app`); returns the registry used
    (`registry`, else `demo.viewer_registry`, else a new one with default settings), kept as
    `demo.viewer_registry`."""
    registry = registry or getattr(demo, "viewer_registry", None) or ViewerRegistry()
    if getattr(demo, "app", None) is None:
        raise RuntimeError("attach_viewer: launch the app first (demo.launch(prevent_thread_lock=True))")
    register_viewer_routes(demo.app, registry)
    demo.viewer_registry = registry
    return registry
