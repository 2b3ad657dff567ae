"""The overview image people check before trusting a run: tissue contours and kept tiles on a thumbnail.

    image = render_overview(result)                 # PIL RGB, longer side <= 2048 px
    write_overview_png(result, "out/thumbnails/slide.png")

Drawn on the tissue view (`TissueMask.rgb`): kept tiles as a translucent blue fill with a thin outline,
tissue contours in green, holes in orange.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from common.atomic import atomic_path

TILE_COLOR = (40, 90, 220)
CONTOUR_COLOR = (20, 160, 60)
HOLE_COLOR = (240, 140, 20)


def render_overview(result, max_size_px: int = 2048, draw_tiles: bool = True) -> Image.Image:
    """`result` is a `TilingResult`; returns an RGB PIL image."""
    import cv2

    tissue = result.tissue
    base = tissue.rgb
    scale = min(1.0, max_size_px / max(base.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(base.shape[1] * scale)), max(1, round(base.shape[0] * scale)))
        base = cv2.resize(base, size, interpolation=cv2.INTER_AREA)
    canvas = np.ascontiguousarray(base.copy())
    to_canvas = scale / tissue.downsample                     # level-0 px -> canvas px
    if draw_tiles and len(result.coords_level0):
        overlay = canvas.copy()
        side = result.patch_size_level0 * to_canvas
        corners = result.coords_level0.astype(np.float64) * to_canvas
        for x, y in corners:
            cv2.rectangle(overlay, (int(x), int(y)), (int(x + side), int(y + side)), TILE_COLOR, thickness=-1)
        canvas = cv2.addWeighted(overlay, 0.25, canvas, 0.75, 0)
        if side >= 4:
            for x, y in corners:
                cv2.rectangle(canvas, (int(x), int(y)), (int(x + side), int(y + side)), TILE_COLOR, thickness=1)
    width = max(1, round(max(canvas.shape[:2]) / 600))
    for polygon in tissue.polygons:
        rings = [(polygon.exterior, CONTOUR_COLOR)] + [(hole, HOLE_COLOR) for hole in polygon.holes]
        for ring, color in rings:
            points = np.round(ring * to_canvas).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(canvas, [points], isClosed=True, color=color, thickness=width, lineType=cv2.LINE_AA)
    return Image.fromarray(canvas)


def write_overview_png(result, path: str | Path, max_size_px: int = 2048) -> Path:
    path = Path(path)
    image = render_overview(result, max_size_px)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=False)
    return path
