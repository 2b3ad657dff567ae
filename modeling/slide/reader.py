"""Open any whole-slide image and read regions in an explicit coordinate frame.

`open_slide(path)` reads every format OpenSlide 4 reads (Aperio SVS, generic tiled TIFF, Hamamatsu
NDPI/VMS, MIRAX, Leica SCN, Ventana BIF, Philips TIFF, Sakura, DICOM WSI folders) and falls back to
plain PNG/JPEG/TIFF images small enough to hold in memory. Every failure (missing path, empty file,
non-slide, truncated or corrupt TIFF, a tile that will not decode) raises a `SlideError` subclass with
the path and the reason; no OpenSlide/ctypes/PIL exception escapes this module.

    with open_slide("slide.svs", mpp_override=None) as slide:
        slide.dimensions, slide.level_downsamples, slide.mpp, slide.vendor
        tile = slide.read_region(xy_level0=(x, y), level=1, size_px=(256, 256))   # PIL RGB
        thumb = slide.thumbnail(max_size_px=1024)

Frames: `xy_level0` is the top-left corner in level-0 pixels; `size_px` is in pixels of `level`.
Transparent areas (outside the scanned region) come back white.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modeling.slide.errors import MppError, SlideError, SlideFormatError, SlideReadError
from modeling.slide.files import (
    check_exists,
    diagnose_tiff,
    diagnose_unopenable,
    dicom_folder_entry,
    slide_id_for,
    sniff,
)
from modeling.slide.mpp import MppOverrides, MppResolution, metadata_mpp, objective_power, resolve_mpp

MAX_PLAIN_IMAGE_PIXELS = 8192 * 8192   # plain images are loaded whole; bigger ones must be pyramidal TIFFs
LEVEL_MATCH_TOLERANCE = 0.01           # a level within 1% of a wanted downsample counts as that downsample
# OpenSlide vendors whose levels are exactly the TIFF's tiled pages, which OpenSlide itself decodes with
# libjpeg when they are JPEG: low-resolution views of these are decoded straight from the tiles.
DIRECT_JPEG_VENDORS = ("aperio", "generic-tiff")


class _OpenSlideBackend:
    def __init__(self, target: Path):
        import openslide

        self._target = target
        self._osr = openslide.OpenSlide(str(target))
        self.properties: Mapping[str, str] = dict(self._osr.properties)
        self.vendor = self.properties.get("openslide.vendor", "unknown")
        self.level_dimensions = tuple(tuple(int(v) for v in dims) for dims in self._osr.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in self._osr.level_downsamples)
        self.image_dpi = None
        self._jpeg_levels = None                      # JpegTiffLevels, False when the direct path does not apply

    def read_rgb(self, xy_level0: tuple[int, int], level: int, size_px: tuple[int, int]) -> np.ndarray:
        """[H, W, 3] over white. Opaque regions are converted by PIL before the one copy into numpy."""
        import openslide

        try:
            region = self._osr.read_region((int(xy_level0[0]), int(xy_level0[1])), int(level),
                                           (int(size_px[0]), int(size_px[1])))
        except openslide.OpenSlideError:
            # An OpenSlide handle is unusable after any error; reopen so other regions stay readable.
            self._osr.close()
            self._osr = openslide.OpenSlide(str(self._target))
            raise
        if region.getextrema()[3][0] == 255:                                 # one pass, no copy
            return np.asarray(region.convert("RGB"))
        return rgba_to_rgb(np.asarray(region))

    def read_level_bands(self, level: int, reduction: int, max_px: int):
        """The level at 1/`reduction` straight from its JPEG tiles, as `JpegTiffLevels.bands` yields it,
        or None where that path does not apply (then read regions)."""
        if self._jpeg_levels is None:
            from modeling.slide.tiff_jpeg import JpegTiffLevels

            direct = self.vendor in DIRECT_JPEG_VENDORS and self._target.is_file()
            self._jpeg_levels = (JpegTiffLevels.open(self._target) if direct else None) or False
        if not self._jpeg_levels:
            return None
        page = self._jpeg_levels.page_for(*self.level_dimensions[level])
        return None if page is None else self._jpeg_levels.bands(page, reduction, max_px)

    def close(self) -> None:
        self._osr.close()
        if self._jpeg_levels:
            self._jpeg_levels.close()


class _ImageBackend:
    """A plain PNG/JPEG/TIFF held in memory as one level."""

    def __init__(self, target: Path):
        try:
            with Image.open(target) as image:
                if image.width * image.height > MAX_PLAIN_IMAGE_PIXELS:
                    raise SlideFormatError(
                        f"{target}: a plain {image.format} image of {image.width}x{image.height} px is too large to "
                        "load whole; convert it to a tiled pyramidal TIFF (e.g. `vips tiffsave in out.tif --tile "
                        "--pyramid --compression jpeg`).")
                image.load()
                self.image_dpi = image.info.get("dpi")
                fmt = image.format or "image"
                rgba = image.convert("RGBA")
        except SlideError:
            raise
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise SlideFormatError(f"{target}: cannot decode the image ({exc}).") from exc
        self._rgba = np.asarray(rgba)                                       # [H, W, 4]
        self.properties = {"image.format": fmt}
        self.vendor = "image"
        self.level_dimensions = ((rgba.width, rgba.height),)
        self.level_downsamples = (1.0,)

    def read_rgb(self, xy_level0: tuple[int, int], level: int, size_px: tuple[int, int]) -> np.ndarray:
        if level != 0:
            raise ValueError(f"level {level} does not exist (plain images have one level)")
        (x, y), (w, h) = xy_level0, size_px
        out = np.zeros((h, w, 4), np.uint8)                                 # transparent outside the image
        height, width = self._rgba.shape[:2]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x1 > x0 and y1 > y0:
            out[y0 - y:y1 - y, x0 - x:x1 - x] = self._rgba[y0:y1, x0:x1]
        return rgba_to_rgb(out)

    def read_level_bands(self, level: int, reduction: int, max_px: int) -> None:
        return None                                                         # held in memory: regions are cheap

    def close(self) -> None:
        self._rgba = None


def rgba_to_rgb(rgba: np.ndarray) -> np.ndarray:
    """[H, W, 4] -> [H, W, 3] composited over white (OpenSlide marks unscanned areas transparent)."""
    rgb, alpha = rgba[..., :3], rgba[..., 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha[..., None].astype(np.uint16)
    return ((rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


@dataclass(frozen=True)
class SlideSpec:
    """Everything needed to reopen a slide in another process (DataLoader workers)."""

    path: str
    mpp_override: float | None = None
    mpp_from_objective: bool = False

    def open(self) -> Slide:
        return open_slide(self.path, mpp_override=self.mpp_override, mpp_from_objective=self.mpp_from_objective)


class Slide:
    """An open slide. Use `open_slide` to get one; close it (or use `with`) when done."""

    def __init__(self, path: Path, backend, *, mpp_override: tuple[float, str] | None, mpp_from_objective: bool):
        self.path = path
        self.slide_id = slide_id_for(path)
        self._backend = backend
        self._mpp_override = mpp_override
        self._mpp_from_objective = mpp_from_objective
        self._mpp: MppResolution | MppError | None = None
        self._image_dpi = backend.image_dpi                                             # plain images only
        self.vendor: str = backend.vendor
        self.properties: Mapping[str, str] = backend.properties
        self.level_dimensions: tuple[tuple[int, int], ...] = backend.level_dimensions   # (width, height) per level
        self.level_downsamples: tuple[float, ...] = backend.level_downsamples
        self.level_count = len(self.level_dimensions)
        self.dimensions: tuple[int, int] = self.level_dimensions[0]                     # level-0 (width, height)
        self.objective_power: float | None = objective_power(self.properties)
        if self.level_count < 1 or min(self.dimensions) < 1:
            raise SlideFormatError(f"{path}: the slide has no pixels (dimensions {self.dimensions}).")

    # -- resolution ---------------------------------------------------------------------------------
    @property
    def mpp_resolution(self) -> MppResolution:
        """Level-0 MPP and where it came from; raises `MppError` when there is no usable value."""
        if self._mpp is None:
            try:
                self._mpp = resolve_mpp(str(self.path), self.properties, override=self._mpp_override,
                                        from_objective=self._mpp_from_objective,
                                        image_dpi=self._image_dpi)
            except MppError as exc:
                self._mpp = exc
        if isinstance(self._mpp, MppError):
            raise MppError(str(self._mpp))
        return self._mpp

    @property
    def mpp(self) -> float:
        """Microns per pixel at level 0 (resolved: override, metadata, objective power when asked)."""
        return self.mpp_resolution.mpp

    @property
    def mpp_source(self) -> str:
        return self.mpp_resolution.source

    @property
    def metadata_mpp(self) -> float | None:
        """The MPP the file itself states (None when it states none), whatever the override."""
        found = metadata_mpp(self.properties, self._image_dpi)
        return found.mpp if found else None

    def level_mpp(self, level: int) -> float:
        return self.mpp * self.level_downsamples[level]

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample is <= `downsample` (within 1%): read there, then shrink."""
        best = 0
        for level, level_downsample in enumerate(self.level_downsamples):
            if level_downsample <= downsample * (1 + LEVEL_MATCH_TOLERANCE):
                best = level
        return best

    # -- pixels -------------------------------------------------------------------------------------
    def read_region(self, xy_level0: tuple[int, int], level: int, size_px: tuple[int, int]) -> Image.Image:
        """RGB region: top-left `xy_level0` in level-0 px, `size_px` (width, height) in px of `level`."""
        return Image.fromarray(self.read_region_array(xy_level0, level, size_px))

    def read_region_array(self, xy_level0: tuple[int, int], level: int, size_px: tuple[int, int]) -> np.ndarray:
        """Like `read_region` but a uint8 array [height, width, 3]."""
        if not 0 <= level < self.level_count:
            raise SlideReadError(f"{self.path}: level {level} does not exist (levels 0..{self.level_count - 1}).")
        if size_px[0] < 1 or size_px[1] < 1:
            raise SlideReadError(f"{self.path}: region size {tuple(size_px)} must be positive.")
        if self._backend is None:
            raise SlideReadError(f"{self.path}: the slide is closed.")
        try:
            return self._backend.read_rgb(xy_level0, level, size_px)
        except SlideError:
            raise
        except Exception as exc:  # OpenSlideError, ctypes.ArgumentError, OSError, MemoryError from the C library
            kind = "OpenSlide error" if type(exc).__module__.startswith("openslide") else type(exc).__name__
            if isinstance(exc, ctypes.ArgumentError):
                kind = "invalid argument"
            raise SlideReadError(
                f"{self.path}: cannot read the region at level-0 x={int(xy_level0[0])}, y={int(xy_level0[1])}, "
                f"level {level}, size {int(size_px[0])}x{int(size_px[1])} px ({kind}: {exc}). The file may have "
                "a corrupt or missing tile.") from exc

    def read_downsampled(self, downsample: float, max_chunk_px: int = 4096, direct_jpeg: bool = True) -> np.ndarray:
        """The whole slide at level-0 size / `downsample` as RGB [H, W, 3], from the coarsest level at least
        that fine. Aperio and generic JPEG TIFFs are decoded straight from the level's tiles, shrunk by
        libjpeg while decoding (`tiff_jpeg`; `direct_jpeg=False` skips that); everything else, and any
        level that path cannot read, is read chunk by chunk through the backend, so memory stays bounded."""
        from modeling.slide.views import ViewPlan, read_view_chunks, read_view_direct

        plan = ViewPlan.for_slide(self, downsample)
        view = read_view_direct(self._backend, plan) if direct_jpeg and self._backend is not None else None
        return view if view is not None else read_view_chunks(self.read_region_array, plan, max_chunk_px)

    def thumbnail(self, max_size_px: int = 1024) -> Image.Image:
        """An RGB overview whose longer side is at most `max_size_px`."""
        downsample = max(self.dimensions) / max(1, max_size_px)
        return Image.fromarray(self.read_downsampled(max(downsample, 1.0)))

    def info(self) -> dict:
        """A JSON-ready description (the app shows it; batch summaries store it)."""
        try:
            resolution = self.mpp_resolution
            mpp, mpp_source = resolution.mpp, resolution.source
        except MppError:
            mpp, mpp_source = None, None
        return {"slide_id": self.slide_id, "path": str(self.path), "vendor": self.vendor,
                "dimensions": list(self.dimensions), "level_count": self.level_count,
                "level_dimensions": [list(d) for d in self.level_dimensions],
                "level_downsamples": list(self.level_downsamples), "mpp": mpp, "mpp_source": mpp_source,
                "objective_power": self.objective_power}

    def spec(self) -> SlideSpec:
        override = self._mpp_override[0] if self._mpp_override else None
        return SlideSpec(str(self.path), override, self._mpp_from_objective)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Slide({str(self.path)!r}, vendor={self.vendor!r}, dimensions={self.dimensions})"


def _open_backend(path: Path, target: Path):
    import openslide

    try:
        return _OpenSlideBackend(target)
    except openslide.OpenSlideUnsupportedFormatError as exc:
        kind = sniff(target)
        if kind in {"png", "jpeg"} or (kind == "tiff" and diagnose_tiff(target) is None):
            return _ImageBackend(target)
        raise SlideFormatError(f"{path}: cannot open it as a slide: {diagnose_unopenable(target, str(exc))}.") \
            from exc
    except openslide.OpenSlideError as exc:
        broken = diagnose_tiff(target) if sniff(target) == "tiff" else None
        raise SlideFormatError(f"{path}: OpenSlide cannot read it ({exc})" + (f": {broken}." if broken else ".")) \
            from exc
    except OSError as exc:
        raise SlideFormatError(f"{path}: cannot read the file ({exc.strerror or exc}).") from exc


def open_slide(path: str | Path, *, mpp_override: float | None = None, mpp_from_objective: bool = False,
               overrides: MppOverrides | None = None) -> Slide:
    """Open a slide file or DICOM folder. MPP: `mpp_override` (or the per-slide value in `overrides`),
    else metadata, else objective power when `mpp_from_objective`; see `modeling.slide.mpp`."""
    path = check_exists(path)
    if path.is_dir():
        target = dicom_folder_entry(path)
    else:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise SlideFormatError(f"{path}: cannot read the file ({exc.strerror or exc}).") from exc
        if size == 0:
            raise SlideFormatError(f"{path}: empty file (0 bytes).")
        target = path
    backend = _open_backend(path, target)
    override = None
    if mpp_override is not None:
        override = (float(mpp_override), "override")
    elif overrides is not None:
        override = overrides.override_for(slide_id_for(path), path)
    from_objective = mpp_from_objective or bool(overrides and overrides.from_objective)
    try:
        return Slide(path, backend, mpp_override=override, mpp_from_objective=from_objective)
    except Exception:
        backend.close()
        raise

