"""Per-tile measurements as GeoJSON that QuPath opens as tile objects with a measurement map.

One Feature per tile: a closed square Polygon in level-0 pixel coordinates (QuPath's image frame:
x right, y down, full resolution) and properties `objectType: "tile"` (QuPath creates a
`PathTileObject`, a detection, which is what Measure > Show measurement maps colours) and
`measurements` as an object {name: number} (the form QuPath 0.4+ writes and reads; it also reads the
older list of {"name", "value"}; QuPath 0.3 and earlier read only that list). Non-finite numbers are
refused (JSON has no NaN). Extra top-level members (provenance) are allowed by GeoJSON (RFC 7946
"foreign members") and ignored by QuPath.

Open in QuPath (0.4 or later): open the slide, then File > Import objects from file (or drag the
.geojson onto the viewer), then Measure > Show measurement maps and pick the measurement.

    collection = tiles_feature_collection(layout, {"relevance": scores}, metadata={"method": "..."})
    write_tiles_geojson("out/slide.evidence.geojson", layout, {"relevance": scores})
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_text
from modeling.slide.tile_layout import TileLayout

QUPATH_OBJECT_TYPE = "tile"


def _measurement_columns(layout: TileLayout, measurements: dict[str, np.ndarray]) -> dict[str, list[float]]:
    if not measurements:
        raise ValueError("at least one measurement is needed")
    columns = {}
    for name, values in measurements.items():
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(values) != len(layout):
            raise ValueError(f"measurement {name!r} has {len(values)} values for {len(layout)} tiles")
        if not np.isfinite(values).all():
            raise ValueError(f"measurement {name!r} holds NaN or infinite values; JSON cannot store them")
        columns[name] = values.tolist()
    return columns


def tiles_feature_collection(layout: TileLayout, measurements: dict[str, np.ndarray],
                             metadata: dict | None = None) -> dict:
    """A FeatureCollection of the layout's tiles with `properties.measurements` per tile.

    `metadata` goes into a top-level "wsi_llava" member (with the slide id and the tile size)."""
    columns = _measurement_columns(layout, measurements)
    side = layout.tile_size_level0_px
    features = []
    for index, (x, y) in enumerate(layout.coords_level0.tolist()):
        ring = [[x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]]
        features.append({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"objectType": QUPATH_OBJECT_TYPE, "name": f"tile {index}",
                           "measurements": {name: column[index] for name, column in columns.items()}},
        })
    extra = {"slide_id": layout.slide_id, "tile_size_level0_px": side, "coordinates": "level-0 pixels"}
    return {"type": "FeatureCollection", "wsi_llava": extra | (metadata or {}), "features": features}


def write_tiles_geojson(path: str | Path, layout: TileLayout, measurements: dict[str, np.ndarray],
                        metadata: dict | None = None) -> Path:
    """Write `tiles_feature_collection(...)` atomically (compact JSON: slides have thousands of tiles)."""
    path = Path(path)
    collection = tiles_feature_collection(layout, measurements, metadata)
    atomic_write_text(path, json.dumps(collection, ensure_ascii=False, separators=(",", ":"),
                                       allow_nan=False) + "\n")
    return path

