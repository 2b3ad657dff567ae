"""Where a slide's tiles lie at level 0: the geometry every per-tile overlay (heatmap PNG, GeoJSON,
deep-zoom viewer values) is drawn on.

A `TileLayout` holds the tile origins in level-0 pixels ([N, 2] x/y of each tile's top-left corner, row i
= feature row i), the tile side in level-0 pixels and, when known, the slide's level-0 size. It comes
from the slide pipeline's `SlideFeatures` / a features h5 (`from_features`): `coords`,
`patch_size_level0`, `name`, `level0_width`/`level0_height`.

    layout = TileLayout.from_features(read_features_h5("slide.h5"), source="slide.h5")
    layout.extent_px()          # (width, height) level-0 px the overlays cover
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modeling.slide.errors import CoordsFileError


@dataclass(frozen=True)
class TileLayout:
    slide_id: str
    coords_level0: np.ndarray                      # [N, 2] int64 x/y of tile top-left corners, level-0 px
    tile_size_level0_px: int                       # a tile's side at level 0
    level0_size_px: tuple[int, int] | None = None  # (width, height) of the slide at level 0, when known

    def __post_init__(self) -> None:
        coords = np.asarray(self.coords_level0)
        if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) == 0:
            raise ValueError(f"TileLayout.coords_level0 must be [N, 2] with N >= 1, got shape {coords.shape}")
        if not np.isfinite(coords).all():
            raise ValueError("TileLayout.coords_level0 must be finite level-0 pixel positions")
        object.__setattr__(self, "coords_level0", coords.astype(np.int64))
        if int(self.tile_size_level0_px) != self.tile_size_level0_px or self.tile_size_level0_px <= 0:
            raise ValueError("TileLayout.tile_size_level0_px must be a positive integer, got "
                             f"{self.tile_size_level0_px!r}")
        object.__setattr__(self, "tile_size_level0_px", int(self.tile_size_level0_px))
        if self.level0_size_px is not None:
            width, height = (int(v) for v in self.level0_size_px)
            if width <= 0 or height <= 0:
                raise ValueError(f"TileLayout.level0_size_px must be positive, got {self.level0_size_px!r}")
            object.__setattr__(self, "level0_size_px", (width, height))

    def __len__(self) -> int:
        return len(self.coords_level0)

    @classmethod
    def from_features(cls, features, source: str = "") -> "TileLayout":
        """From `SlideFeatures` (or anything with `.coords_level0` and `.attrs` holding `patch_size_level0`;
        `name`, `level0_width`, `level0_height` are used when present). The slide id is `name`, else the
        file name of `source` without its suffix."""
        attrs = features.attrs
        if attrs.get("patch_size_level0") is None:
            raise CoordsFileError(f"{source}: attribute 'patch_size_level0' missing; the tile size at level 0 "
                                  "is needed to draw tiles (re-extract with `wsi-llava features`).")
        width, height = attrs.get("level0_width"), attrs.get("level0_height")
        size = (int(width), int(height)) if width is not None and height is not None else None
        slide_id = str(attrs.get("name") or Path(source).stem or "slide")
        coords = np.asarray(features.coords_level0).reshape(-1, 2)
        return cls(slide_id, coords, int(attrs["patch_size_level0"]), size)

    def extent_px(self) -> tuple[int, int]:
        """(width, height) in level-0 px: the slide's size when known, else the tiles' bounding box from 0."""
        if self.level0_size_px is not None:
            return self.level0_size_px
        far = self.coords_level0.max(axis=0) + self.tile_size_level0_px
        return int(far[0]), int(far[1])

    def boxes_level0(self) -> np.ndarray:
        """[N, 4] int64 (x, y, w, h) of every tile in level-0 px."""
        side = np.full((len(self), 2), self.tile_size_level0_px, dtype=np.int64)
        return np.concatenate([self.coords_level0, side], axis=1)
