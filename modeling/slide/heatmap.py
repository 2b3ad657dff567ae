"""Per-tile values as pictures: an RGBA heatmap over the tile grid, and that heatmap over an overview.

Values are signed and drawn with a diverging colour map (blue = negative, near-white = 0, red =
positive), scaled by the largest magnitude (`scale`, so 0 is always the middle colour and the colour
of a tile is proportional to its value; pass `scale`, e.g. a high percentile of |values|, to saturate
a few extreme tiles and show the rest more strongly). Outside every tile the image is fully transparent
(no tissue, not tiled). Where tiles overlap, a pixel shows the mean of the tiles covering it.

    rgba = render_tile_heatmap(values, layout, level0_per_px=64)       # [H, W, 4] uint8
    write_heatmap_png(values, layout, "out/slide.evidence.png")         # longer side <= 2048 px
    image = blend_over_thumbnail(thumbnail, values, layout)             # PIL RGB, the thumbnail's size

Pixel frames: `level0_per_px` is level-0 pixels per output pixel (x and y may differ: an overview
thumbnail's size is rounded per axis). `heatmap_for_thumbnail` derives it from the thumbnail's size
and the slide's level-0 size, as `modeling.slide.thumbnail.render_overview` draws the whole slide.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from common.atomic import atomic_path
from modeling.slide.tile_layout import TileLayout

# Diverging anchors at -1, 0, +1 (ColorBrewer RdBu end and middle colours).
NEGATIVE_RGB = (33, 102, 172)
ZERO_RGB = (247, 247, 247)
POSITIVE_RGB = (178, 24, 43)
PNG_MAX_SIZE_PX = 2048          # the longer side of a written PNG, as the overview's
PNG_TILE_MAX_PX = 16            # a tile's side in a written PNG, at most


def diverging_colors(normalized: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] [N] -> RGB [N, 3] uint8 (linear between blue, near-white and red)."""
    t = np.clip(np.asarray(normalized, dtype=np.float64), -1.0, 1.0)[:, None]           # [N, 1]
    zero, negative, positive = (np.asarray(c, dtype=np.float64) for c in (ZERO_RGB, NEGATIVE_RGB, POSITIVE_RGB))
    rgb = np.where(t >= 0, zero + t * (positive - zero), zero + (-t) * (negative - zero))
    return np.round(rgb).astype(np.uint8)


def normalize_signed(values: np.ndarray, scale: float | None = None) -> np.ndarray:
    """values / scale (default: the largest |value|; all-zero values stay 0), clipped to [-1, 1]."""
    values = np.asarray(values, dtype=np.float64)
    scale = float(np.abs(values).max()) if scale is None else float(scale)
    if scale <= 0 or not math.isfinite(scale):
        return np.zeros_like(values)
    return np.clip(values / scale, -1.0, 1.0)


def _check(values: np.ndarray, layout: TileLayout) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) != len(layout):
        raise ValueError(f"{len(values)} values for {len(layout)} tiles of {layout.slide_id}")
    if not np.isfinite(values).all():
        raise ValueError(f"values for {layout.slide_id} contain NaN or infinite numbers")
    return values


def render_tile_heatmap(values, layout: TileLayout, level0_per_px: float | tuple[float, float],
                        size_px: tuple[int, int] | None = None, scale: float | None = None,
                        opacity: float = 1.0, fade_weak: bool = False) -> np.ndarray:
    """[H, W, 4] uint8 RGBA: every tile filled with its value's colour, transparent elsewhere.

    `size_px` (width, height) defaults to the layout's extent / level0_per_px; `opacity` is the alpha
    of tiles; with `fade_weak` a tile's alpha is also scaled by |value| / scale (weak evidence fades out,
    for overlays on tissue).
    """
    values = _check(values, layout)
    dx, dy = (float(level0_per_px),) * 2 if np.isscalar(level0_per_px) else map(float, level0_per_px)
    if dx <= 0 or dy <= 0:
        raise ValueError(f"level0_per_px must be positive, got {level0_per_px!r}")
    if size_px is None:
        extent_w, extent_h = layout.extent_px()
        size_px = (max(1, math.ceil(extent_w / dx)), max(1, math.ceil(extent_h / dy)))
    width, height = int(size_px[0]), int(size_px[1])
    total = np.zeros((height, width), dtype=np.float64)
    count = np.zeros((height, width), dtype=np.int32)
    side = layout.tile_size_level0_px
    for (x, y), value in zip(layout.coords_level0, values):
        x0, y0 = int(math.floor(x / dx)), int(math.floor(y / dy))
        x1, y1 = max(x0 + 1, int(math.ceil((x + side) / dx))), max(y0 + 1, int(math.ceil((y + side) / dy)))
        total[max(0, y0):min(height, y1), max(0, x0):min(width, x1)] += value
        count[max(0, y0):min(height, y1), max(0, x0):min(width, x1)] += 1
    covered = count > 0                                                    # [H, W]
    scale = float(np.abs(values).max()) if scale is None else float(scale)
    pixel_t = normalize_signed(total[covered] / count[covered], scale)      # mean value of covering tiles
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[covered, :3] = diverging_colors(pixel_t)
    alpha = float(opacity) * (np.abs(pixel_t) if fade_weak else np.ones_like(pixel_t))
    rgba[covered, 3] = np.round(255 * np.clip(alpha, 0.0, 1.0)).astype(np.uint8)
    return rgba


def png_level0_per_px(layout: TileLayout, max_size_px: int = PNG_MAX_SIZE_PX) -> float:
    """Level-0 px per PNG px: the slide's longer side fits in `max_size_px`, and a tile is never drawn
    larger than PNG_TILE_MAX_PX pixels (a small slide gives a small PNG, not a blown-up one)."""
    width, height = layout.extent_px()
    return max(max(width, height) / max_size_px, layout.tile_size_level0_px / PNG_TILE_MAX_PX, 1.0)


def write_heatmap_png(values, layout: TileLayout, path: str | Path, level0_per_px: float | None = None,
                      scale: float | None = None) -> Path:
    """The opaque-tile heatmap (transparent where there is no tile) as an RGBA PNG, written atomically."""
    path = Path(path)
    rgba = render_tile_heatmap(values, layout, level0_per_px or png_level0_per_px(layout), scale=scale)
    with atomic_path(path) as tmp:
        Image.fromarray(rgba).save(tmp, format="PNG")
    return path


def heatmap_for_thumbnail(values, layout: TileLayout, thumbnail_size_px: tuple[int, int],
                          opacity: float = 0.65, scale: float | None = None) -> Image.Image:
    """An RGBA overlay of exactly `thumbnail_size_px` (width, height) for an overview of the whole slide
    (weak evidence faded out); needs the slide's level-0 size in the layout."""
    if layout.level0_size_px is None:
        raise ValueError(f"{layout.slide_id}: the slide's level-0 size is unknown, so the overlay cannot be "
                         "aligned with a thumbnail of the whole slide; give a layout with level0_size_px.")
    width, height = (int(v) for v in thumbnail_size_px)
    level0_per_px = (layout.level0_size_px[0] / width, layout.level0_size_px[1] / height)
    rgba = render_tile_heatmap(values, layout, level0_per_px, size_px=(width, height), scale=scale,
                               opacity=opacity, fade_weak=True)
    return Image.fromarray(rgba)


def blend_over_thumbnail(thumbnail: Image.Image, values, layout: TileLayout, opacity: float = 0.65,
                         scale: float | None = None) -> Image.Image:
    """`thumbnail` (an overview of the whole slide, any mode) with the heatmap composited over it (RGB)."""
    overlay = heatmap_for_thumbnail(values, layout, thumbnail.size, opacity, scale)
    return Image.alpha_composite(thumbnail.convert("RGBA"), overlay).convert("RGB")
