"""The viewer as a Gradio component, and the standalone page a "copy link to this view" URL opens.

    view_box = viewer_component(elem_id="qa-viewer")                   # a gr.HTML, in the tab's layout
    ...
    view = registry.open(request.session_hash, path, slot="qa")         # in a handler
    return {view_box: viewer_value(view, registry.settings)}
    return {view_box: viewer_value(None, note="No slide file for this pair: showing the overview.")}

The component's value is a JSON config (`viewer_config`): the handle's URL base, the slide's size, MPP and
objective power, which overlays exist, and where OpenSeadragon comes from. Its template is constant, so a
new value never re-renders the viewer's DOM; the script (`viewer.js`, run by gr.HTML's `js_on_load`, as
`<script>` tags inside gr.HTML do not run) remounts the viewer on a new slide and only refreshes the
overlays for the same one, keeping the place.
"""

from __future__ import annotations

import html
import json
from functools import lru_cache
from pathlib import Path

from ui.viewer.handles import ViewerHandle
from ui.viewer.settings import ScriptSource, ViewerSettings

VIEWER_JS_FILE = Path(__file__).resolve().parent / "viewer.js"
VIEWER_CSS_FILE = Path(__file__).resolve().parent / "viewer.css"
ASSET_OSD = "viewer/assets/openseadragon.min.js"
ASSET_VIEWER = "viewer/assets/viewer.js"
DEFAULT_HEIGHT_PX = 560
HOST_TEMPLATE = '<div class="wsiv-host"></div>'


@lru_cache(maxsize=1)
def viewer_js() -> str:
    """viewer.js with its styles (viewer.css) in front, as one script."""
    css = VIEWER_CSS_FILE.read_text(encoding="utf-8")
    return f"window.WSIV_STYLE = {json.dumps(css)};\n" + VIEWER_JS_FILE.read_text(encoding="utf-8")


def script_config(source: ScriptSource) -> dict:
    if source.file is not None:
        return {"src": ASSET_OSD, "integrity": None, "kind": source.kind}
    return {"src": source.cdn_url, "integrity": source.integrity, "kind": source.kind}


def viewer_config(view: ViewerHandle | None, source: ScriptSource, *, note: str = "", root: str | None = None,
                  height_px: int = DEFAULT_HEIGHT_PX) -> dict:
    """The JSON the browser side mounts (`root`: the app's root relative to the page; None inside the app)."""
    if view is None:
        return {"handle": None, "note": note or "No slide open."}
    return {"handle": view.handle, "base": view.url_base, "name": view.name, "width": view.width,
            "height": view.height, "mpp": view.mpp, "objective_power": view.objective_power,
            "overlays": view.overlays, "version": view.version, "script": script_config(source), "note": note,
            "root": root, "height_px": height_px}


def viewer_value(view: ViewerHandle | None, settings: ViewerSettings | None = None, *, note: str = "",
                 height_px: int = DEFAULT_HEIGHT_PX) -> str:
    """The value to give the component: the slide `view` (from `ViewerRegistry.open`), or None with a note
    saying why there is no zoomable slide. Pass the registry's settings (they say where the script is)."""
    source = (settings or ViewerSettings()).script_source()
    return json.dumps(viewer_config(view, source, note=note, height_px=height_px), separators=(",", ":"))


def viewer_component(value: str = "", *, elem_id: str | None = None, **html_kwargs):
    """A gr.HTML that shows the viewer for its value (`viewer_value`)."""
    import gradio as gr

    js_on_load = viewer_js() + "\nwindow.WsiViewer.bindGradio(element, props, watch);\n"
    return gr.HTML(value=value, html_template=HOST_TEMPLATE, js_on_load=js_on_load, elem_id=elem_id,
                   apply_default_css=False, **html_kwargs)


def standalone_page(config: dict, title: str) -> str:
    """A page with only the viewer; it reads the place to show from the URL's #x=..&y=..&ds=.."""
    config = {**config, "read_hash": True, "height_px": None}
    data = json.dumps(config).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)} · slide viewer</title>
<style>html,body{{margin:0;height:100%}} #wsiv-page{{height:100%;display:flex;flex-direction:column}}
#wsiv-page .wsiv{{flex:1;padding:6px}} #wsiv-page .wsiv-stage{{flex:1;height:auto}}</style></head>
<body><div id="wsiv-page"></div>
<script type="application/json" id="wsiv-config">{data}</script>
<script src="{html.escape(config["root"] or "")}{ASSET_VIEWER}"></script>
<script>WsiViewer.mount(document.getElementById("wsiv-page"),
  JSON.parse(document.getElementById("wsiv-config").textContent));</script>
</body></html>"""
