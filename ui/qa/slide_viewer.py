"""The Slide Q&A tab's deep-zoom viewer (ui.viewer): which slide it shows for the session's slide, and why
not when it cannot.

    value = show_tiled(services, session, tiled)       # an upload or server slide: tissue + kept tiles overlays
    value = show_example(services, session, example)   # a WSI-Bench example: its file under --slides-root, else why
    value = closed(services, session, "Opening …")     # no slide (yet): the handle is released, the note shown
    value = with_heatmap(services, session, cells)     # the current answer's heatmap on the slide shown

Each returns the viewer component's value (`ui.viewer.viewer_value`): it carries the session's secret viewer
token, so it is only ever a handler's output for that session (never a build-time value). The session's
handle is `session.viewer_handle`; the registry's slot "qa" holds one slide per session.
"""

from __future__ import annotations

import gradio as gr

from modeling.slide.errors import SlideError
from ui.qa.services import QaServices
from ui.qa.sessions import SlideQaSession
from ui.viewer.component import viewer_value
from ui.viewer.overlays import (
    Overlays,
    OverlayError,
    grid_overlay,
    heatmap_overlay,
    overlays_from_tiling,
    public_message,
)

SLOT = "qa"
NO_HEATMAP_YET = "no answer with a heatmap yet: ask a question"
NO_VIEWER = "The zoomable viewer is off in this app: the overview above shows the slide."
EXAMPLE_GRID_NOTE = "the model reads this example's released slide tokens: no tiles were laid out on the slide"


def closed(services: QaServices, session: SlideQaSession, note: str) -> str:
    """Release the session's slide in the viewer; the viewer shows `note` instead."""
    if services.viewer is not None and session.viewer_handle is not None:
        services.viewer.release(session.session_id, session.viewer_handle)
    session.viewer_handle = None
    return viewer_value(None, note=note if services.viewer is not None else NO_VIEWER)


def _opened(services: QaServices, session: SlideQaSession, path, **options) -> str:
    """Open `path` in the viewer for the session (an unreadable file: the note says why)."""
    try:
        view = services.viewer.open(session.session_id, path, slot=SLOT, **options)
    except (SlideError, ValueError) as exc:
        session.viewer_handle = None
        reason = services.sandbox.public_message(public_message(str(exc), path))
        return viewer_value(None, note=f"The zoomable viewer cannot open this slide ({reason}); the overview shows it.")
    session.viewer_handle = view.handle
    return viewer_value(view, services.viewer.settings)


def show_tiled(services: QaServices, session: SlideQaSession, tiled) -> str:
    """The session's tiled slide (upload or server slide) with its tissue contours and kept tiles."""
    if services.viewer is None:
        return viewer_value(None, note=NO_VIEWER)
    try:
        overlays = overlays_from_tiling(tiled.tiling, services.viewer.settings.max_grid_tiles)
    except OverlayError as exc:
        overlays = Overlays(tissue_lazy=True, notes={"grid": str(exc)})
    overlays.notes["heatmap"] = NO_HEATMAP_YET
    return _opened(services, session, tiled.path, name=session.name, mpp_override=tiled.mpp_override,
                   overlays=overlays, overview=tiled.overview)


def example_overlays(services: QaServices, inputs) -> Overlays:
    """An example's overlays: tissue found on the slide when first shown; the kept tiles of a features h5 (none
    for released slide tokens); why no heatmap can be drawn when its inputs have no tile positions."""
    from modeling.evidence import NoHeatmapError, check_explainable

    notes, grid = {}, None
    try:
        layout = check_explainable(inputs)
        grid = grid_overlay(layout.coords_level0, layout.tile_size_level0_px, services.viewer.settings.max_grid_tiles)
        notes["heatmap"] = NO_HEATMAP_YET
    except NoHeatmapError as exc:
        notes.update(grid=EXAMPLE_GRID_NOTE, heatmap=str(exc))
    except OverlayError as exc:
        notes.update(grid=str(exc), heatmap=NO_HEATMAP_YET)
    return Overlays(grid=grid, tissue_lazy=True, notes=notes)


def show_example(services: QaServices, session: SlideQaSession, example) -> str:
    """A WSI-Bench example's own slide file under --slides-root (tissue found when first shown), while the
    model reads the released features (`session.inputs`); otherwise the reason there is none."""
    if services.viewer is None:
        return viewer_value(None, note=NO_VIEWER)
    if services.slides_root is None:
        return closed(services, session, f"No zoomable slide for {example.slide_id}: the model reads its released "
                                         "features, and the app has no --slides-root with WSI-Bench slide files.")
    path, why = services.slides_root.find(example.slide_id)
    if path is None:
        return closed(services, session, f"No zoomable slide for {example.slide_id}: {why}. The model reads its "
                                         "released features.")
    return _opened(services, session, path, name=example.slide_id, overlays=example_overlays(services, session.inputs))


def with_heatmap(services: QaServices, session: SlideQaSession, cells: list[dict] | None, label: str = "",
                 note: str = "") -> str | None:
    """The viewer's value with `cells` (None: no heatmap, `note` says why) on the session's slide; None when
    the session shows no slide in the viewer (or its handle expired)."""
    if services.viewer is None or session.viewer_handle is None:
        return None
    overlay = None if cells is None else heatmap_overlay(cells, label=label, diverging=True)
    try:
        view = services.viewer.set_overlays(session.session_id, session.viewer_handle, heatmap=overlay,
                                            notes={"heatmap": note} if note else None)
    except KeyError:                     # expired or released meanwhile: nothing to update
        session.viewer_handle = None
        return None
    return viewer_value(view, services.viewer.settings)



def end_session(services: QaServices, request: gr.Request) -> None:
    """The browser tab is gone (demo.unload): its Q&A session ends (uploads deleted) and every viewer handle
    of that browser session goes, the review tab's too (their URLs answer 404 from now on)."""
    services.sessions.end(request.session_hash)
    if services.viewer is not None:
        services.viewer.release_session(request.session_hash)
