"""Low-resolution views of a whole slide (the tissue view, thumbnails): which level, how big, how read.

    plan = ViewPlan.for_slide(slide, downsample=16)     # level, output size, level px per output px
    view = read_view_direct(backend, plan)              # JPEG tiles decoded at 1/2..1/8, or None
    view = read_view_chunks(slide.read_region_array, plan)   # any slide, chunk by chunk

`Slide.read_downsampled` tries the direct path first. Both give RGB [out_h, out_w, 3] uint8 over white,
with level pixel (lx, ly) landing on output pixel (lx / scale, ly / scale); they differ only in how the
level is shrunk: libjpeg's DCT scaling (then an area resize for what is left) against an area resize of
the full-size decode, a difference of a few grey levels at sharp edges (tests/slide/test_views.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modeling.slide.tiff_jpeg import REDUCTIONS

MAX_BAND_PX = 2**24                   # decoded px per band of the direct path (~64 MiB RGBX + 48 MiB RGB)


@dataclass(frozen=True)
class ViewPlan:
    level: int
    level_downsample: float
    level_size: tuple[int, int]       # (width, height) of the level read
    out_size: tuple[int, int]         # (width, height) of the view
    scale: float                      # level px per output px (>= 1)

    @classmethod
    def for_slide(cls, slide, downsample: float) -> ViewPlan:
        downsample = max(float(downsample), 1.0)
        level = slide.best_level_for_downsample(downsample)
        level_downsample = slide.level_downsamples[level]
        out_w = max(1, round(slide.dimensions[0] / downsample))
        out_h = max(1, round(slide.dimensions[1] / downsample))
        return cls(level, level_downsample, tuple(slide.level_dimensions[level]), (out_w, out_h),
                   max(1.0, downsample / level_downsample))

    @property
    def reduction(self) -> int:
        """The largest DCT scaling (1/8, 1/4, 1/2, 1/1) that does not go below the output size."""
        return next(r for r in REDUCTIONS if r <= self.scale * (1 + 1e-9))


def _resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    if pixels.shape[1] == width and pixels.shape[0] == height:
        return pixels
    return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)


def _place(pixels: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """`pixels` (at most `out_size`) at the top-left of a white view (no copy when it fills the view)."""
    out_w, out_h = out_size
    if pixels.shape[1] == out_w and pixels.shape[0] == out_h:
        return pixels
    out = np.full((out_h, out_w, 3), 255, np.uint8)
    out[:pixels.shape[0], :pixels.shape[1]] = pixels
    return out


def read_view_direct(backend, plan: ViewPlan, max_band_px: int = MAX_BAND_PX) -> np.ndarray | None:
    """The view decoded straight from the level's JPEG tiles, band by band (memory stays bounded on
    single-level slides), or None where that path does not apply or fails."""
    bands = backend.read_level_bands(plan.level, plan.reduction, max_band_px)
    if bands is None:
        return None
    (level_w, level_h), (out_w, out_h), scale = plan.level_size, plan.out_size, plan.scale
    width = min(round(level_w / scale), out_w)
    out = None
    for y0, y1, pixels in bands:                              # pixels: [ceil((y1 - y0) / r), ceil(lw / r), 3]
        if pixels is None:
            return None
        oy0, oy1 = min(round(y0 / scale), out_h), min(round(y1 / scale), out_h)
        if width < 1 or oy1 <= oy0:
            continue
        if plan.reduction == scale:                           # DCT scaling did it all: crop the partial pixel
            part = np.ascontiguousarray(pixels[:oy1 - oy0, :width])
        else:                                                 # area-resize what is left
            part = _resize(pixels, width, oy1 - oy0)
        if out is None and y0 == 0 and y1 == level_h:
            return _place(part, plan.out_size)                # one band: no view to copy into
        if out is None:
            out = np.full((out_h, out_w, 3), 255, np.uint8)
        out[oy0:oy0 + part.shape[0], :width] = part
    return out


def read_view_chunks(read_region_array, plan: ViewPlan, max_chunk_px: int = 4096) -> np.ndarray:
    """The view read region by region (`read_region_array(xy_level0, level, size_px)`), each region at most
    about `max_chunk_px` output px square, area-resized into place."""
    level_w, level_h = plan.level_size
    out_w, out_h = plan.out_size
    scale, level_downsample = plan.scale, plan.level_downsample
    step = max(1, int(max_chunk_px // scale)) * max(1, round(scale))      # chunk side in level px
    if step >= level_w and step >= level_h:                               # one region: no view to copy into
        chunk = read_region_array((0, 0), plan.level, (level_w, level_h))
        width, height = min(round(level_w / scale), out_w), min(round(level_h / scale), out_h)
        return _place(_resize(chunk, width, height), plan.out_size)
    out = np.full((out_h, out_w, 3), 255, np.uint8)
    for ly in range(0, level_h, step):
        for lx in range(0, level_w, step):
            cw, ch = min(step, level_w - lx), min(step, level_h - ly)
            ox0, oy0 = min(round(lx / scale), out_w), min(round(ly / scale), out_h)
            ox1, oy1 = min(round((lx + cw) / scale), out_w), min(round((ly + ch) / scale), out_h)
            if ox1 <= ox0 or oy1 <= oy0:
                continue
            chunk = read_region_array((round(lx * level_downsample), round(ly * level_downsample)), plan.level,
                                      (cw, ch))
            out[oy0:oy1, ox0:ox1] = _resize(chunk, ox1 - ox0, oy1 - oy0)
    return out
