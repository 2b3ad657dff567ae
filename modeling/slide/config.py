"""The slide pipeline's settings: tissue detection (`TissueConfig`) and tiling (`TilingConfig`).

Plain validated dataclasses that import nothing heavy, so the command line can build its parser and
settings before numpy, OpenCV or OpenSlide load (`modeling.slide.commands`). `tissue` and `tiling` use
them, describe the methods they drive, and re-export them (`from modeling.slide.tiling import
TilingConfig` keeps working).
"""

from __future__ import annotations

from dataclasses import dataclass, field

TISSUE_METHODS = ("saturation", "luminance")


@dataclass(frozen=True)
class TissueConfig:
    method: str = "saturation"          # "saturation" (H&E and most stains) or "luminance" (unstained/grey)
    mask_mpp: float = 8.0               # um/px of the view the mask is computed on...
    min_mask_px: int = 1024             # ...unless the slide's longer side would be fewer px at it:
    small_slide_mask_mpp: float = 4.0   # then this (when finer than mask_mpp)
    max_mask_mpp: float = 8.0           # use an existing level up to this coarse instead of reading a finer one
    direct_jpeg: bool = True            # decode the view from JPEG tiles where possible (False: OpenSlide only)
    blur_um: float = 16.0               # median blur aperture
    min_threshold: int = 20             # floor for Otsu (0-255): saturation / darkness below this is background
    closing_um: float = 32.0
    opening_um: float = 16.0
    min_tissue_area_mm2: float = 0.02   # smaller connected pieces are debris
    min_hole_area_mm2: float = 0.01     # smaller holes are filled
    simplify_px: float = 1.0            # polygon simplification tolerance at mask resolution

    def __post_init__(self):
        if self.method not in TISSUE_METHODS:
            raise ValueError(f"tissue method {self.method!r} is not one of {TISSUE_METHODS}")
        if not 0 < self.mask_mpp <= self.max_mask_mpp:
            raise ValueError(f"need 0 < mask_mpp ({self.mask_mpp}) <= max_mask_mpp ({self.max_mask_mpp})")
        if self.min_mask_px < 0 or not self.small_slide_mask_mpp > 0:
            raise ValueError(f"need min_mask_px >= 0 and small_slide_mask_mpp > 0, got {self.min_mask_px}, "
                             f"{self.small_slide_mask_mpp}")
        if not 0 <= self.min_threshold <= 255:
            raise ValueError(f"min_threshold {self.min_threshold} must be in 0..255")
        for name in ("blur_um", "closing_um", "opening_um", "min_tissue_area_mm2", "min_hole_area_mm2",
                     "simplify_px"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def method_name(self) -> str:
        return f"otsu-{self.method}"

    def mask_mpp_for(self, longer_side_um: float) -> float:
        """The mask resolution for a slide whose longer side is `longer_side_um` microns. Two values only,
        not a continuum: odd kernel sizes and tile boxes in mask px stay as on the slides tuned for."""
        if longer_side_um / self.mask_mpp < self.min_mask_px:
            return min(self.mask_mpp, self.small_slide_mask_mpp)
        return self.mask_mpp


@dataclass(frozen=True)
class TilingConfig:
    target_mpp: float = 0.5
    tile_size_px: int = 256              # tile side at the target resolution ("patch_size")
    overlap_px: int = 0                  # at the target resolution
    min_tissue_fraction: float = 0.1
    max_upsample: float = 2.0            # refuse targets finer than level 0 by more than this factor
    tissue: TissueConfig = field(default_factory=TissueConfig)

    def __post_init__(self):
        if not self.target_mpp > 0:
            raise ValueError(f"target_mpp must be > 0, got {self.target_mpp}")
        if self.tile_size_px < 8:
            raise ValueError(f"tile_size_px must be >= 8, got {self.tile_size_px}")
        if not 0 <= self.overlap_px < self.tile_size_px:
            raise ValueError(f"overlap_px must be in 0..tile_size_px-1, got {self.overlap_px}")
        if not 0 <= self.min_tissue_fraction <= 1:
            raise ValueError(f"min_tissue_fraction must be in 0..1, got {self.min_tissue_fraction}")
        if self.max_upsample < 1:
            raise ValueError(f"max_upsample must be >= 1, got {self.max_upsample}")
