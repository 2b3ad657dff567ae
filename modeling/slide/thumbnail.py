"""The overview image people check before trusting a run: tissue contours and kept tiles on a thumbnail.

    image = render_overview(result)                 # PIL RGB, longer side <= 2048 px
    write_overview(result, "out/thumbnails/slide.jpg")   # JPEG (what `wsi-llava tile` writes) or .png

Drawn on the tissue view (`TissueMask.rgb`): kept tiles as a translucent blue fill with a thin outline,
tissue contours in green, holes in orange.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from common.atomic import atomic_path

OVERVIEW_JPEG_QUALITY = 90         # the overview is for people: JPEG, as CLAM and TRIDENT write theirs
OVERVIEW_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
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


def write_overview(result, path: str | Path, max_size_px: int = 2048) -> Path:
    """The overview as JPEG (quality 90, 4:4:4) or PNG (fast zlib level 1), by the file's suffix."""
    path = Path(path)
    fmt = OVERVIEW_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: an overview is written as {', '.join(OVERVIEW_FORMATS)}")
    image = render_overview(result, max_size_px)
    # 4:4:4 JPEG: 4:2:0 chroma subsampling would wash out the one-pixel coloured contour lines
    options = {"quality": OVERVIEW_JPEG_QUALITY, "subsampling": 0} if fmt == "JPEG" else {"compress_level": 1}
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **options)
    return path
