"""Tissue detection on a low-resolution view of a slide: mask, contours and QuPath GeoJSON.

Method (`TissueConfig`, all sizes in microns so results do not depend on the scan resolution):
1. read the slide at `mask_mpp` (default 8 um/px; a slide whose longer side would then be under
   `min_mask_px` = 1024 px, i.e. under 8.2 mm, at `small_slide_mask_mpp` = 4 um/px instead) from
   the coarsest pyramid level that is fine enough (a level up to `max_mask_mpp`, default 8 um/px, is used
   as it is, so a slide whose only coarse level is 8 um/px is never upsampled). Aperio and generic JPEG
   TIFFs are decoded straight from that level's JPEG tiles, shrunk while decoding (`tiff_jpeg`),
   OpenSlide otherwise. On large slides 8 um/px keeps the tiles the former fixed 4 um/px kept to within
   0.3% from a quarter of the pixels (tests/slide/test_views.py, benchmarks/slide_tiling.py), and small
   slides, where the view is cheap anyway, keep their former mask;
   `mask_mpp=4.0, direct_jpeg=False` is the former default exactly;
2. median-blur, then Otsu's threshold on HSV saturation (stained tissue is coloured, glass is grey or
   white) or on darkness (`method="luminance"`), never below `min_threshold` so a blank slide is blank;
3. morphological closing then opening (elliptic kernels of `closing_um` / `opening_um`);
4. contours as a tree: outer boundaries smaller than `min_tissue_area_mm2` are debris and dropped, holes
   smaller than `min_hole_area_mm2` are filled, larger holes (lumina, fat) stay holes;
5. the cleaned mask is redrawn from the kept contours, so mask, GeoJSON and thumbnail agree.

Output: `TissueMask` with the mask ([H, W] bool at `downsample` from level 0), the RGB view it was
found on, polygons in level-0 pixel coordinates, and `to_geojson()` (a FeatureCollection of
"Tissue" annotations that QuPath imports with File > Import objects).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from common.atomic import atomic_path, atomic_write_json
from modeling.slide.config import TISSUE_METHODS, TissueConfig  # noqa: F401  (TISSUE_METHODS: re-exported)
from modeling.slide.reader import Slide


@dataclass
class TissuePolygon:
    exterior: np.ndarray                                  # [K, 2] float64 level-0 x/y
    holes: list[np.ndarray] = field(default_factory=list)
    area_mm2: float = 0.0                                 # exterior minus holes


@dataclass
class TissueMask:
    mask: np.ndarray                  # [H, W] bool, True = tissue
    rgb: np.ndarray                   # [H, W, 3] uint8, the view the mask was computed on
    downsample: float                 # level-0 px per mask px
    mask_mpp: float
    polygons: list[TissuePolygon]
    threshold: int                    # the threshold actually applied (0-255)
    config: TissueConfig

    @property
    def tissue_area_mm2(self) -> float:
        return float(sum(p.area_mm2 for p in self.polygons))

    def params(self) -> dict:
        """Method parameters for provenance (h5 attrs, summaries)."""
        return {"method": self.config.method_name, **asdict(self.config), "threshold_used": int(self.threshold),
                "mask_downsample": float(self.downsample), "mask_mpp_actual": float(self.mask_mpp)}

    def to_geojson(self, slide_id: str = "") -> dict:
        """QuPath-compatible FeatureCollection; coordinates in level-0 pixels."""
        features = []
        for index, polygon in enumerate(self.polygons):
            rings = [_closed_ring(polygon.exterior)] + [_closed_ring(hole) for hole in polygon.holes]
            features.append({
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": rings},
                "properties": {"objectType": "annotation", "name": f"tissue {index + 1}",
                               "classification": {"name": "Tissue", "color": [20, 160, 60]},
                               "area_mm2": round(polygon.area_mm2, 6), "slide_id": slide_id,
                               "method": self.config.method_name},
            })
        return {"type": "FeatureCollection", "features": features}


def _closed_ring(points: np.ndarray) -> list[list[float]]:
    ring = [[round(float(x), 1), round(float(y), 1)] for x, y in points]
    if ring and ring[0] != ring[-1]:
        ring.append(list(ring[0]))
    return ring


def _odd(n: float) -> int:
    n = max(1, round(n))
    return n if n % 2 else n + 1


def _threshold(view: np.ndarray, config: TissueConfig, mpp: float) -> tuple[np.ndarray, int]:
    import cv2

    if config.method == "saturation":
        channel = cv2.cvtColor(view, cv2.COLOR_RGB2HSV)[..., 1]
    else:
        channel = 255 - cv2.cvtColor(view, cv2.COLOR_RGB2GRAY)
    blur = _odd(config.blur_um / mpp)
    if blur >= 3:
        channel = cv2.medianBlur(channel, min(blur, 255))
    otsu, _ = cv2.threshold(channel, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = int(max(otsu, config.min_threshold))
    return channel > threshold, threshold


def _morphology(mask: np.ndarray, config: TissueConfig, mpp: float) -> np.ndarray:
    import cv2

    out = mask.astype(np.uint8)
    for size_um, op in ((config.closing_um, cv2.MORPH_CLOSE), (config.opening_um, cv2.MORPH_OPEN)):
        size = _odd(size_um / mpp)
        if size >= 3:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
            out = cv2.morphologyEx(out, op, kernel)
    return out


def _contours(binary: np.ndarray, config: TissueConfig, mpp: float, downsample: float
              ) -> tuple[np.ndarray, list[TissuePolygon]]:
    """Filter the contour tree; return the redrawn mask and polygons in level-0 coordinates."""
    import cv2

    contours, hierarchy = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    clean = np.zeros_like(binary)
    polygons: list[TissuePolygon] = []
    if hierarchy is None:
        return clean.astype(bool), polygons
    hierarchy = hierarchy[0]                                   # [N, 4]: next, previous, first child, parent
    px_to_mm2 = (mpp / 1000.0) ** 2
    depth = np.zeros(len(contours), int)
    for index in range(len(contours)):
        parent = hierarchy[index][3]
        while parent >= 0:
            depth[index] += 1
            parent = hierarchy[parent][3]
    # Even depth: a tissue boundary (depth 2, 4, ... are islands inside holes); odd depth: a hole.
    kept_outer = [i for i in range(len(contours))
                  if depth[i] % 2 == 0 and cv2.contourArea(contours[i]) * px_to_mm2 >= config.min_tissue_area_mm2]

    def to_level0(points: np.ndarray) -> np.ndarray:                  # pixel centres -> level-0 px, [K, 2]
        return (points.reshape(-1, 2).astype(np.float64) + 0.5) * downsample

    for index in sorted(kept_outer, key=lambda i: depth[i]):        # outer first, islands drawn over holes
        outer = cv2.approxPolyDP(contours[index], config.simplify_px, True) if config.simplify_px else contours[index]
        if len(outer) < 3:
            continue
        cv2.drawContours(clean, [outer], -1, 1, thickness=cv2.FILLED)
        holes, hole_area = [], 0.0
        child = hierarchy[index][2]
        while child >= 0:
            area = cv2.contourArea(contours[child]) * px_to_mm2
            if area >= config.min_hole_area_mm2:
                hole = cv2.approxPolyDP(contours[child], config.simplify_px, True) if config.simplify_px \
                    else contours[child]
                if len(hole) >= 3:
                    cv2.drawContours(clean, [hole], -1, 0, thickness=cv2.FILLED)
                    holes.append(to_level0(hole))
                    hole_area += area
            child = hierarchy[child][0]
        area = cv2.contourArea(outer) * px_to_mm2 - hole_area
        polygons.append(TissuePolygon(to_level0(outer), holes, float(area)))
    return clean.astype(bool), polygons


def detect_tissue(slide: Slide, config: TissueConfig | None = None) -> TissueMask:
    """Find tissue on a low-resolution view of `slide` (needs its MPP; raises `MppError` otherwise)."""
    config = config or TissueConfig()
    level0_mpp = slide.mpp
    wanted_mpp = config.mask_mpp_for(max(slide.dimensions) * level0_mpp)
    wanted_downsample = max(wanted_mpp / level0_mpp, 1.0)
    # Prefer an existing level up to max_mask_mpp over shrinking a much larger finer level.
    coarse_level = slide.best_level_for_downsample(max(config.max_mask_mpp / level0_mpp, 1.0))
    downsample = max(wanted_downsample, slide.level_downsamples[coarse_level])
    view = slide.read_downsampled(downsample, direct_jpeg=config.direct_jpeg)
    # the actual scale after rounding the view size
    actual_downsample = slide.dimensions[0] / view.shape[1]
    mpp = level0_mpp * actual_downsample
    binary, threshold = _threshold(view, config, mpp)
    binary = _morphology(binary, config, mpp)
    mask, polygons = _contours(binary, config, mpp, actual_downsample)
    return TissueMask(mask, view, actual_downsample, mpp, polygons, threshold, config)


def tissue_fraction(mask: TissueMask, coords_level0: np.ndarray, patch_size_level0: int) -> np.ndarray:
    """Fraction [N] of each square tile (top-left `coords_level0`, side `patch_size_level0`) on tissue."""
    import cv2

    if len(coords_level0) == 0:
        return np.zeros(0, np.float32)
    integral = cv2.integral(mask.mask.astype(np.uint8))        # [H + 1, W + 1]
    height, width = mask.mask.shape
    scale = 1.0 / mask.downsample
    x0 = np.clip(np.round(coords_level0[:, 0] * scale).astype(np.int64), 0, width)
    y0 = np.clip(np.round(coords_level0[:, 1] * scale).astype(np.int64), 0, height)
    x1 = np.clip(np.round((coords_level0[:, 0] + patch_size_level0) * scale).astype(np.int64), 0, width)
    y1 = np.clip(np.round((coords_level0[:, 1] + patch_size_level0) * scale).astype(np.int64), 0, height)
    x1, y1 = np.maximum(x1, np.minimum(x0 + 1, width)), np.maximum(y1, np.minimum(y0 + 1, height))
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return (inside / area).astype(np.float32)


def write_mask_png(mask: TissueMask, path) -> None:
    """The mask as a 1-bit PNG (1 = tissue; most readers give 0/255, PIL mode "1") with its scale in the
    PNG text chunks."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("wsi_llava:downsample_from_level0", f"{mask.downsample:.6f}")
    info.add_text("wsi_llava:mask_mpp", f"{mask.mask_mpp:.6f}")
    info.add_text("wsi_llava:tissue_params", json.dumps(mask.params()))
    with atomic_path(path) as tmp:
        Image.fromarray(mask.mask).save(tmp, format="PNG", pnginfo=info)           # bool -> mode "1"


def write_geojson(mask: TissueMask, path, slide_id: str = "") -> None:
    atomic_write_json(path, mask.to_geojson(slide_id), indent=2)
