"""The viewer's overlays, in level-0 pixels: tissue contours, the kept tile grid, a per-tile heatmap.

    overlays = overlays_from_tiling(tiled.tiling)                 # tissue contours + kept tiles of a tiling
    overlays = Overlays(tissue_lazy=True)                          # contours found on first request
    registry.set_overlays(session_id, handle, heatmap=heatmap_overlay(cells, label="relevance"))

Wire format (the JSON each overlay route answers; `available` false with a `note` saying why otherwise):
- tissue: a GeoJSON FeatureCollection of polygons (`modeling.slide.tissue.TissueMask.to_geojson`);
- grid: {"patch_size_level0": P, "coords_level0": [x0, y0, x1, y1, ...]} (top-left corners);
- heatmap: {"cells": [[x, y, w, h, value], ...], "min": v, "max": v, "label": "..."}, and "scale": "diverging"
  for signed values (drawn around 0: blue below, red above, 0 transparent; min = -max = the largest |value|).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

OVERLAY_KINDS = ("tissue", "grid", "heatmap")


class OverlayError(ValueError):
    """An overlay given in a shape the viewer cannot draw; the message names the field."""


@dataclass
class Overlays:
    tissue: dict | None = None
    grid: dict | None = None
    heatmap: dict | None = None
    tissue_lazy: bool = False                              # find contours on the slide when first asked
    notes: dict[str, str] = field(default_factory=dict)    # kind -> why it is not available

    def available(self) -> dict[str, dict]:
        """kind -> {"available": bool, "note": str} (what the viewer's toggles show)."""
        out = {}
        for kind in OVERLAY_KINDS:
            present = getattr(self, kind) is not None or (kind == "tissue" and self.tissue_lazy)
            note = self.notes.get(kind, "") if not present else ""
            if not present and not note:
                note = {"tissue": "no tissue contours for this slide", "grid": "the slide was not tiled",
                        "heatmap": "no answer with a heatmap yet"}[kind]
            out[kind] = {"available": present, "note": note}
        return out


def tissue_overlay(source) -> dict:
    """A TissueMask (its `to_geojson()`) or a GeoJSON FeatureCollection dict."""
    geojson = source.to_geojson() if hasattr(source, "to_geojson") else source
    if not isinstance(geojson, Mapping) or geojson.get("type") != "FeatureCollection" \
            or not isinstance(geojson.get("features"), list):
        raise OverlayError("tissue overlay: expected a GeoJSON FeatureCollection (type, features)")
    return dict(geojson)


def grid_overlay(coords_level0, patch_size_level0: int, max_tiles: int = 500_000) -> dict:
    """Kept tiles: `coords_level0` [N, 2] top-left x/y in level-0 px, squares of `patch_size_level0`."""
    coords = np.asarray(coords_level0, dtype=np.int64).reshape(-1, 2) if len(coords_level0) else \
        np.zeros((0, 2), np.int64)
    if len(coords) > max_tiles:
        raise OverlayError(f"grid overlay: {len(coords)} tiles is more than the viewer draws ({max_tiles})")
    if patch_size_level0 <= 0:
        raise OverlayError(f"grid overlay: patch_size_level0 must be positive, got {patch_size_level0}")
    return {"patch_size_level0": int(patch_size_level0), "coords_level0": coords.ravel().tolist()}


def heatmap_overlay(cells: Iterable[Mapping], label: str = "", max_cells: int = 500_000,
                    diverging: bool = False) -> dict:
    """Per-tile values: each cell {x, y, w, h (level-0 px), value}; values need not be normalised.
    `diverging`: signed values, coloured by sign and scaled by the largest magnitude (evidence for / against)."""
    rows = []
    for index, cell in enumerate(cells):
        if index >= max_cells:
            raise OverlayError(f"heatmap overlay: more than {max_cells} cells")
        try:
            x, y, w, h, value = (float(cell[name]) for name in ("x", "y", "w", "h", "value"))
        except (KeyError, TypeError, ValueError) as exc:
            raise OverlayError(f"heatmap overlay: cell {index} needs numeric x, y, w, h, value ({exc})") from exc
        if not all(math.isfinite(v) for v in (x, y, w, h, value)) or w <= 0 or h <= 0:
            raise OverlayError(f"heatmap overlay: cell {index} has a non-finite value or a size <= 0")
        rows.append([round(x, 1), round(y, 1), round(w, 1), round(h, 1), value])
    values = [row[4] for row in rows]
    if diverging:
        peak = max((abs(v) for v in values), default=0.0) or 1.0
        return {"cells": rows, "min": -peak, "max": peak, "label": label, "scale": "diverging"}
    return {"cells": rows, "min": min(values, default=0.0), "max": max(values, default=0.0), "label": label}


def overlays_from_tiling(result, max_tiles: int = 500_000) -> Overlays:
    """Tissue contours and kept tiles of a `modeling.slide.tiling.TilingResult`."""
    return Overlays(tissue=tissue_overlay(result.tissue.to_geojson(result.slide_id)),
                    grid=grid_overlay(result.coords_level0, result.patch_size_level0, max_tiles))


def detect_tissue_geojson(path, mpp_override: float | None = None) -> tuple[dict | None, str]:
    """Tissue contours found on the slide now: (GeoJSON, "") or (None, why not)."""
    from modeling.slide.errors import SlideError
    from modeling.slide.reader import open_slide
    from modeling.slide.tissue import detect_tissue

    try:
        with open_slide(path, mpp_override=mpp_override) as slide:
            return tissue_overlay(detect_tissue(slide).to_geojson(slide.slide_id)), ""
    except (SlideError, ValueError) as exc:
        return None, "tissue detection failed: " + public_message(str(exc), path)


def public_message(text: str, path) -> str:
    """`text` without the server's folders: the browser sees the slide's file name only."""
    from pathlib import Path

    path = Path(path)
    for shown in (str(path.resolve()), str(path)):
        text = text.replace(shown, path.name)
    return text
