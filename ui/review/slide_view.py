"""The review tab's zoomable slide: the pair's own slide file from the app's --slides-root in the deep-zoom
viewer (ui.viewer; tissue contours found when first shown), otherwise a line saying why, beside the
overview thumbnail when there is one.

    value, shown = pair_slide(s, state, shown, request.session_hash)   # the viewer's value, the (slide id, handle)

The viewer follows the pair on screen (`pair_state.change`); moving to another pair of the same slide keeps
the view (and its place). The value carries the browser session's secret viewer token: it is only ever this
handler's output for that session.
"""

from __future__ import annotations

import gradio as gr

from modeling.slide.errors import SlideError
from ui.review import render
from ui.review.flow import PairState
from ui.review.screen import ReviewScreen
from ui.viewer.component import viewer_value
from ui.viewer.overlays import Overlays, public_message

SLOT = "review"
GRID_NOTE = "a review pair has no tiles laid out on its slide"
HEATMAP_NOTE = "heatmaps belong to answers in the Slide Q&A tab"


def _missing(s: ReviewScreen, slide_id: str, why: str) -> str:
    has_overview = render.thumbnail_path(s.settings.thumbnails_dir, slide_id) is not None
    shown = "showing its overview instead." if has_overview else "and there is no overview of it either."
    return f"The pair's slide {slide_id} is not zoomable here: {why}; {shown}"


def pair_slide(s: ReviewScreen, state: PairState | None, shown: tuple | None, session_id: str) -> tuple[object, tuple | None]:
    """(the viewer's value or gr.skip() when it already shows the slide, what it shows now)."""
    registry, root = s.viewer, s.slides_root
    if state is None:
        if shown is not None:
            registry.release(session_id, shown[1])
        return viewer_value(None, note="No pair open."), None
    if shown is not None and shown[0] == state.slide_id and registry.describe(session_id, shown[1]) is not None:
        return gr.skip(), shown
    if shown is not None:
        registry.release(session_id, shown[1])
    if root is None:
        return viewer_value(None, note=_missing(s, state.slide_id, "the app was started without --slides-root "
                                                                  "(a folder of WSI-Bench slide files)")), None
    path, why = root.find(state.slide_id)
    if path is None:
        return viewer_value(None, note=_missing(s, state.slide_id, why)), None
    try:
        view = registry.open(session_id, path, slot=SLOT, name=state.slide_id,
                             overlays=Overlays(tissue_lazy=True, notes={"grid": GRID_NOTE, "heatmap": HEATMAP_NOTE}))
    except (SlideError, ValueError) as exc:
        reason = f"its file cannot be read ({public_message(str(exc), path)})"
        return viewer_value(None, note=_missing(s, state.slide_id, reason)), None
    return viewer_value(view, registry.settings), (state.slide_id, view.handle)


def show_pair_slide(s: ReviewScreen, state, shown, request: gr.Request):
    """The handler bound to `pair_state.change`: the viewer box and the `slide_shown` state."""
    value, now = pair_slide(s, state, shown, request.session_hash)
    return {s.slide_viewer: value, s.slide_shown: now}
