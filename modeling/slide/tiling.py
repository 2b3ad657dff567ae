"""Tile a slide on tissue at a target resolution; coordinates are level-0 pixels.

Defaults are the Prov-GigaPath setting: 256 px tiles at 0.5 um/px (20x), no overlap. The grid is laid
out in level-0 pixels with a side of `patch_size_level0 = round(tile_size_px * target_mpp / level0_mpp)`
(512 for a 0.25 um/px scan); only tiles entirely inside the slide are considered, and a tile is kept
when at least `min_tissue_fraction` of it lies on the tissue mask (default 0.1, the occupancy threshold
of Prov-GigaPath's own tiling). Tiles are read from the coarsest pyramid level at least as fine as the
target and resized to `tile_size_px` when the level does not match (see `ReadPlan`). Upsampling (a slide
coarser than the target) is allowed up to `max_upsample` and recorded in the attrs.

    result = tile_slide("slide.svs", target_mpp=0.5, tile_size_px=256)
    result.coords_level0        # [N, 2] int64 x/y top-left, level-0 px
    result.attrs()              # everything the coords h5 stores
    tile = read_tile(slide, result.coords_level0[0], result.read_plan, result.tile_size_px)

Only the low-resolution view (tissue) and the grid arithmetic touch the slide here: tiling a
60,000 x 60,000 px slide reads a few megapixels (see benchmarks/slide_tiling.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modeling.slide.config import TilingConfig
from modeling.slide.errors import SlideError
from modeling.slide.mpp import MppOverrides
from modeling.slide.provenance import software_version, utc_now
from modeling.slide.reader import Slide, open_slide
from modeling.slide.tissue import (
    TissueConfig,
    TissueMask,
    detect_tissue,
    tissue_fraction,
)

Progress = Callable[[float, str], None]
RESAMPLE = Image.Resampling.BICUBIC   # read level -> target resolution (antialiased when shrinking)


@dataclass(frozen=True)
class ReadPlan:
    """How one tile is read: `size_px` square at `level`, then resized to the tile size if different."""

    level: int
    size_px: int                  # tile side in pixels of `level`
    level_downsample: float

    def to_dict(self) -> dict:
        return asdict(self)


def patch_size_level0_for(tile_size_px: int, target_mpp: float, level0_mpp: float) -> int:
    return max(1, round(tile_size_px * target_mpp / level0_mpp))


def plan_tile_reads(slide: Slide, patch_size_level0: int, tile_size_px: int) -> ReadPlan:
    """Read from the coarsest level whose resolution is at least the target's (within 1%)."""
    level = slide.best_level_for_downsample(patch_size_level0 / tile_size_px)
    downsample = slide.level_downsamples[level]
    return ReadPlan(level, max(1, round(patch_size_level0 / downsample)), downsample)


def read_tile(slide: Slide, xy_level0, plan: ReadPlan, tile_size_px: int) -> Image.Image:
    """One tile at the target resolution as PIL RGB (`tile_size_px` square)."""
    image = slide.read_region((int(xy_level0[0]), int(xy_level0[1])), plan.level, (plan.size_px, plan.size_px))
    if plan.size_px != tile_size_px:
        image = image.resize((tile_size_px, tile_size_px), RESAMPLE)
    return image


def grid_level0(width: int, height: int, patch_size_level0: int, stride_level0: int) -> np.ndarray:
    """Top-left corners [N, 2] (x, y; row-major) of every tile that fits entirely inside the slide."""
    xs = np.arange(0, width - patch_size_level0 + 1, stride_level0, dtype=np.int64)
    ys = np.arange(0, height - patch_size_level0 + 1, stride_level0, dtype=np.int64)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)


@dataclass
class TilingResult:
    slide_id: str
    slide_path: str
    coords_level0: np.ndarray        # [N, 2] int64 x/y top-left in level-0 px
    tissue_fraction: np.ndarray      # [N] float32
    tile_size_px: int                # "patch_size": px at the target resolution
    patch_size_level0: int
    target_mpp: float
    level0_mpp: float
    mpp_source: str
    overlap_px: int
    read_plan: ReadPlan
    level0_width: int
    level0_height: int
    objective_power: float | None
    vendor: str
    tissue: TissueMask
    config: TilingConfig
    grid_size: int                   # tiles considered before the tissue filter

    def __len__(self) -> int:
        return len(self.coords_level0)

    @property
    def patch_size(self) -> int:
        return self.tile_size_px

    @property
    def tile_mpp(self) -> float:
        """The resolution tiles really have after rounding patch_size_level0 to whole pixels."""
        return self.patch_size_level0 * self.level0_mpp / self.tile_size_px

    @property
    def upsample_factor(self) -> float:
        return max(1.0, self.tile_size_px / (self.patch_size_level0 / self.read_plan.level_downsample))

    def attrs(self) -> dict:
        """The coords h5 attributes (TRIDENT names first, then this pipeline's provenance)."""
        attrs = {
            "patch_size": int(self.tile_size_px),
            "patch_size_level0": int(self.patch_size_level0),
            "target_magnification": round(10.0 / self.target_mpp, 4),
            "overlap": int(self.overlap_px),
            "name": self.slide_id,
            "target_mpp": float(self.target_mpp),
            "tile_mpp": float(self.tile_mpp),
            "level0_mpp": float(self.level0_mpp),
            "mpp_source": self.mpp_source,
            "level0_width": int(self.level0_width),
            "level0_height": int(self.level0_height),
            "coords_frame": "level0 px, x/y of the tile's top-left corner",
            "read_level": int(self.read_plan.level),
            "read_size_px": int(self.read_plan.size_px),
            "read_level_downsample": float(self.read_plan.level_downsample),
            "upsample_factor": float(self.upsample_factor),
            "min_tissue_fraction": float(self.config.min_tissue_fraction),
            "tissue_method": self.tissue.config.method_name,
            "tissue_params": json.dumps(self.tissue.params()),
            "tissue_area_mm2": float(self.tissue.tissue_area_mm2),
            "grid_size": int(self.grid_size),
            "vendor": self.vendor,
            "slide_path": self.slide_path,
            "software_version": software_version(),
            "created_at": utc_now(),
        }
        if self.objective_power:
            attrs["level0_magnification"] = float(self.objective_power)
        return attrs


def tile_slide(slide_path: str | Path | Slide, target_mpp: float = 0.5, tile_size_px: int = 256,
               mpp_override: float | None = None, *, overlap_px: int = 0, min_tissue_fraction: float = 0.1,
               tissue_config: TissueConfig | None = None, config: TilingConfig | None = None,
               mpp_from_objective: bool = False, overrides: MppOverrides | None = None,
               progress: Progress | None = None) -> TilingResult:
    """Detect tissue and lay out the tile grid. Accepts a path or an open `Slide` (left open).

    `config` (a `TilingConfig`) replaces the individual keyword settings when given.
    """
    config = config or TilingConfig(target_mpp=target_mpp, tile_size_px=tile_size_px, overlap_px=overlap_px,
                                    min_tissue_fraction=min_tissue_fraction,
                                    tissue=tissue_config or TissueConfig())
    if isinstance(slide_path, Slide):
        if mpp_override is not None or mpp_from_objective or overrides is not None:
            raise ValueError("MPP options apply when opening a slide: pass them to open_slide, not with an open Slide")
        return _tile_open_slide(slide_path, config, progress)
    with open_slide(slide_path, mpp_override=mpp_override, mpp_from_objective=mpp_from_objective,
                    overrides=overrides) as slide:
        return _tile_open_slide(slide, config, progress)


def _tile_open_slide(slide: Slide, config: TilingConfig, progress: Progress | None) -> TilingResult:
    report = progress or (lambda fraction, message: None)
    level0_mpp = slide.mpp
    psl0 = patch_size_level0_for(config.tile_size_px, config.target_mpp, level0_mpp)
    upsample = config.tile_size_px / psl0
    if upsample > config.max_upsample * (1 + 1e-6):
        raise SlideError(
            f"{slide.path}: level 0 is {level0_mpp:g} um/px; tiles at {config.target_mpp:g} um/px would be upsampled "
            f"{upsample:.2f}x (more than {config.max_upsample:g}x). Choose a coarser target (--target-mpp >= "
            f"{level0_mpp / config.max_upsample:g}) or check the slide's MPP.")
    report(0.0, "finding tissue")
    tissue = detect_tissue(slide, config.tissue)
    report(0.8, "laying out tiles")
    stride = max(1, round((config.tile_size_px - config.overlap_px) * config.target_mpp / level0_mpp))
    width, height = slide.dimensions
    grid = grid_level0(width, height, psl0, stride)
    fractions = tissue_fraction(tissue, grid, psl0)
    keep = fractions >= config.min_tissue_fraction if config.min_tissue_fraction > 0 else fractions > 0
    report(1.0, f"{int(keep.sum())} tiles on tissue")
    return TilingResult(
        slide_id=slide.slide_id, slide_path=str(slide.path), coords_level0=grid[keep].astype(np.int64),
        tissue_fraction=fractions[keep], tile_size_px=config.tile_size_px, patch_size_level0=psl0,
        target_mpp=config.target_mpp, level0_mpp=level0_mpp, mpp_source=slide.mpp_source,
        overlap_px=config.overlap_px, read_plan=plan_tile_reads(slide, psl0, config.tile_size_px),
        level0_width=width, level0_height=height, objective_power=slide.objective_power, vendor=slide.vendor,
        tissue=tissue, config=config, grid_size=len(grid))
