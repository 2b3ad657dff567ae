"""Deep Zoom tiles (DZI descriptor + JPEG tiles) of one slide, read by OpenSlide's `DeepZoomGenerator`.

    source = TileSource("slide.svs", ViewerSettings(), TileCache(64 << 20))
    source.dzi_xml()                           # the descriptor OpenSeadragon opens
    tile = source.tile(level, col, row)        # Tile(data=JPEG bytes, status="ok" | "unreadable")
    source.status()                            # what could not be read, as a message for the viewer

The slide is opened with `modeling.slide.reader.open_slide` first (every format it reads, with its
clear errors: `SlideError`), then handed to `DeepZoomGenerator`: OpenSlide formats and DICOM folders as an
`openslide.OpenSlide`, plain PNG/JPEG/TIFF images (the reader's "image" vendor) as an
`openslide.ImageSlide`. Level-0 pixels are Deep Zoom's full-resolution frame (`limit_bounds=False`), so
overlays in level-0 pixels need no offset. Two speed-ups over the stock generator (`FastDeepZoom`): a
pyramid level within 1% of a Deep Zoom downsample serves it, and tiles are shrunk by area averaging.

Bounds: a level or (column, row) outside the generator's grid raises `TileOutOfRange` (the route answers
404). A tile that cannot be read (a corrupt or missing tile in the file) comes back as a grey "unreadable"
tile with status "unreadable" and is remembered, so the viewer shows every readable tile and a message for
the rest. JPEG-tiled TIFFs are read straight from their JPEG tiles where they can be (`direct_tiles`,
`ViewerSettings.direct_jpeg`), OpenSlide otherwise. OpenSlide handles are unusable after any error, so the shared handle is reopened (a new
"generation"), and a read that failed is tried once more on a handle of its own: a tile counts as
unreadable only when it fails there too, never because another thread's read broke the handle they shared.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from modeling.slide.errors import MppError, SlideError, SlideReadError
from modeling.slide.files import dicom_folder_entry
from modeling.slide.reader import DIRECT_JPEG_VENDORS, LEVEL_MATCH_TOLERANCE, open_slide
from ui.viewer.cache import TileCache
from ui.viewer.shared import shared_cache, shared_plain_image
from ui.viewer.settings import ViewerSettings

log = logging.getLogger("wsi_llava.viewer")

UNREADABLE_RGB = (190, 190, 190)
MAX_BAD_TILES_KEPT = 100_000      # remembered unreadable tiles per slide (then: all further failures count only)


TOO_LARGE = object()              # `_read`'s answer for a tile that would read more than max_tile_read_px


class TileOutOfRange(ValueError):
    """A Deep Zoom level or tile address outside the slide's grid."""


class SourceClosed(RuntimeError):
    """The slide was released (its session ended) while a request was under way."""


@dataclass(frozen=True)
class Tile:
    data: bytes                   # JPEG
    status: str                   # "ok" | "unreadable"


class _TolerantLevels:
    """An OpenSlide object whose best level for a downsample allows 1% slack (as the reader's
    `best_level_for_downsample`): a level at 64.02 serves Deep Zoom's 64, instead of reading 4x the pixels
    from the level below. Everything else is the wrapped object's."""

    def __init__(self, osr):
        self._osr = osr

    def __getattr__(self, name):
        return getattr(self._osr, name)

    def get_best_level_for_downsample(self, downsample: float) -> int:
        best = 0
        for level, level_downsample in enumerate(self._osr.level_downsamples):
            if level_downsample <= downsample * (1 + LEVEL_MATCH_TOLERANCE):
                best = level
        return best


def _deep_zoom_class():
    from openslide.deepzoom import DeepZoomGenerator

    class FastDeepZoom(DeepZoomGenerator):
        """OpenSlide's Deep Zoom tiles, shrunk by area averaging (`Image.reduce` / BOX) instead of
        LANCZOS (8x faster on a 512 -> 256 px tile) and composited on the background only where the
        region has transparent pixels. Geometry (`_get_tile_info`) is the parent's."""

        def get_tile(self, level: int, address: tuple[int, int]) -> Image.Image:
            args, z_size = self._get_tile_info(level, address)
            region = self._osr.read_region(*args)                         # RGBA
            if region.getchannel("A").getextrema()[0] < 255:
                tile = Image.new("RGB", region.size, self._bg_color)
                tile.paste(region, mask=region)
            else:
                tile = region.convert("RGB")
            if tile.size != z_size:
                factor = tile.width // z_size[0]
                if factor > 1 and tile.size == (factor * z_size[0], factor * z_size[1]):
                    tile = tile.reduce(factor)
                else:
                    tile = tile.resize(z_size, Image.Resampling.BOX)
            return tile

    return FastDeepZoom


class _Generation:
    """One OpenSlide (or ImageSlide) handle and the Deep Zoom generator over it."""

    def __init__(self, osr, dz):
        self.osr, self.dz = osr, dz


def file_identity(path: Path) -> tuple:
    """(path, size, mtime) of a file, or of a DICOM folder's files: a changed file gets new cache keys."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files[:256]]
    return (str(path.resolve()), tuple(stats))


class TileSource:
    def __init__(self, path: str | Path, settings: ViewerSettings, cache: TileCache,
                 mpp_override: float | None = None):
        self.path = Path(path)
        self.settings, self.cache = settings, cache
        self.mpp_override = mpp_override
        with open_slide(self.path, mpp_override=mpp_override) as slide:       # SlideError: unreadable file
            self.slide_info = slide.info()
            self._plain_image = slide.vendor == "image"
            self._direct_vendor = slide.vendor in DIRECT_JPEG_VENDORS      # levels = the TIFF's pages, as stored
            try:
                self.mpp: float | None = slide.mpp
            except MppError:
                self.mpp = None
            self.objective_power: float | None = slide.objective_power
        self._target = dicom_folder_entry(self.path) if self.path.is_dir() else self.path
        self._identity = (file_identity(self.path), settings.tile_size_px, settings.overlap_px,
                          settings.jpeg_quality)
        self._lock = threading.Lock()
        self._generation = self._open_generation()
        dz = self._generation.dz
        self._direct = None                         # the fast path for JPEG-tiled TIFFs (ui.viewer.direct_tiles)
        if settings.direct_jpeg and self._direct_vendor and not self.path.is_dir():
            from ui.viewer.direct_tiles import DirectTiles

            osr = self._generation.osr
            self._direct = DirectTiles.open(self._target, osr.level_dimensions, osr.level_downsamples,
                                            shared_cache("direct", settings.direct_cache_bytes), self._identity)
        self.level_count: int = dz.level_count
        self.level_tiles: tuple[tuple[int, int], ...] = tuple(tuple(t) for t in dz.level_tiles)
        self.level_dimensions: tuple[tuple[int, int], ...] = tuple(tuple(d) for d in dz.level_dimensions)
        self.dimensions: tuple[int, int] = self.level_dimensions[-1]          # level-0 (width, height)
        self._bad: set[tuple[int, int, int]] = set()
        self._failures: Counter[int] = Counter()                               # Deep Zoom level -> tiles
        self._too_large: Counter[int] = Counter()                              # ... not drawn: too costly
        self._last_error: str | None = None
        self.broken: str | None = None                                          # the handle cannot be reopened
        self._grey: dict[tuple[int, int], bytes] = {}

    # -- opening ------------------------------------------------------------------------------------
    def _open_generation(self) -> _Generation:
        import openslide

        try:
            if self._plain_image:
                osr = openslide.ImageSlide(shared_plain_image(self._target, self._identity[0]))
            else:
                osr = openslide.OpenSlide(str(self._target))
                osr.set_cache(shared_cache("openslide", self.settings.decoded_cache_bytes))
            dz = _deep_zoom_class()(_TolerantLevels(osr), tile_size=self.settings.tile_size_px,
                                    overlap=self.settings.overlap_px, limit_bounds=False)
        except Exception as exc:  # OpenSlideError, OSError, PIL errors: re-raised as SlideReadError
            raise SlideReadError(f"{self.path}: cannot open it for the viewer ({type(exc).__name__}: {exc}).") \
                from exc
        return _Generation(osr, dz)

    def _retire(self, generation: _Generation) -> _Generation | None:
        """Replace a broken generation (once, whoever sees it first); None when the file cannot be reopened."""
        with self._lock:
            if self._generation is None:
                return None
            if self._generation is generation and self.broken is None:
                try:
                    self._generation = self._open_generation()
                except SlideError as exc:
                    self.broken = str(exc)
                    log.warning("viewer: %s", exc)
                    return None
            return None if self.broken else self._generation

    # -- descriptor and tiles -----------------------------------------------------------------------
    def dzi_xml(self) -> str:
        return self._current().dz.get_dzi("jpeg")

    def slide_level_for(self, level: int) -> int:
        """The pyramid level Deep Zoom `level`'s tiles are read from."""
        return self._current().dz._slide_from_dz_level[level]

    def check(self, level: int, col: int, row: int) -> None:
        if not 0 <= level < self.level_count:
            raise TileOutOfRange(f"level {level} is not in 0..{self.level_count - 1}")
        cols, rows = self.level_tiles[level]
        if not (0 <= col < cols and 0 <= row < rows):
            raise TileOutOfRange(f"tile {col}_{row} is outside level {level}'s {cols}x{rows} tiles")

    def tile(self, level: int, col: int, row: int) -> Tile:
        self.check(level, col, row)
        generation = self._current()
        address = (level, col, row)
        if self.broken is not None or address in self._bad:
            return self._unreadable_tile(generation, address)
        key = (self._identity, level, col, row)
        data = self.cache.get(key)
        if data is not None:
            return Tile(data, "ok")
        image = self._read(generation, level, col, row)
        if image is TOO_LARGE:
            with self._lock:
                self._too_large[level] += 1
            return self._unreadable_tile(generation, address)
        if image is None:
            self._note_failure(address)
            return self._unreadable_tile(generation, address)
        data = _encode_jpeg(image, self.settings.jpeg_quality)
        self.cache.put(key, data)
        return Tile(data, "ok")

    def _current(self) -> _Generation:
        generation = self._generation
        if generation is None:
            raise SourceClosed(f"{self.path.name}: released")
        return generation

    def _read(self, generation: _Generation, level: int, col: int, row: int) -> Image.Image | None:
        (_, _, (width, height)), _ = generation.dz._get_tile_info(level, (col, row))
        cap = self.settings.max_tile_read_px
        plan = self._direct.plan(generation.dz, level, (col, row)) if self._direct is not None else None
        direct_ok = plan is not None and plan.decoded_px <= cap
        if not direct_ok and width * height > cap:
            return TOO_LARGE                       # the slide has no level small enough: one tile would read it all
        if direct_ok:
            try:
                image = self._direct.tile(generation.dz, level, (col, row), plan)
            except Exception as exc:  # noqa: BLE001 - a bug of the fast path must not cost the tile: OpenSlide reads it
                log.warning("viewer: %s: direct JPEG read of tile %s failed (%s)", self.path.name,
                            (level, col, row), exc)
                image = None
            if image is not None:
                return image
            if width * height > cap:
                return TOO_LARGE
        try:
            return generation.dz.get_tile(level, (col, row))
        except Exception as exc:  # noqa: BLE001 - OpenSlideError, ctypes, PIL decode errors: the tile is unreadable
            self._last_error = f"{type(exc).__name__}: {exc}"
        if self._retire(generation) is None:           # the file cannot be reopened, or it was released
            return None
        return self._read_alone(level, col, row)

    def _read_alone(self, level: int, col: int, row: int) -> Image.Image | None:
        """The tile read on a handle of its own: a failure there is the tile's, not another read's."""
        try:
            private = self._open_generation()
        except SlideError as exc:
            self._last_error = str(exc)
            return None
        try:
            return private.dz.get_tile(level, (col, row))
        except Exception as exc:  # noqa: BLE001 - as in _read
            self._last_error = f"{type(exc).__name__}: {exc}"
            return None
        finally:
            private.osr.close()

    def _note_failure(self, address: tuple[int, int, int]) -> None:
        with self._lock:
            if address not in self._bad:
                self._failures[address[0]] += 1
                if len(self._bad) < MAX_BAD_TILES_KEPT:
                    self._bad.add(address)
        log.info("viewer: %s: Deep Zoom tile %s unreadable (%s)", self.path.name, address, self._last_error)

    def _unreadable_tile(self, generation: _Generation, address: tuple[int, int, int]) -> Tile:
        level, col, row = address
        size = tuple(generation.dz.get_tile_dimensions(level, (col, row)))
        data = self._grey.get(size)
        if data is None:
            data = self._grey[size] = _encode_jpeg(unreadable_image(size), self.settings.jpeg_quality)
        return Tile(data, "unreadable")

    # -- status and overview ------------------------------------------------------------------------
    def status(self) -> dict:
        """What the viewer should say about this slide's tiles (JSON-ready)."""
        with self._lock:
            failures = dict(sorted(self._failures.items()))
            too_large = sorted(self._too_large)
        message = ""
        if self.broken:
            message = "The slide file can no longer be read; the tiles already shown are all there is."
        elif failures:
            levels = ", ".join(f"level {level}: {count}" for level, count in failures.items())
            message = (f"{sum(failures.values())} tile(s) could not be read from the file and are shown grey "
                       f"(Deep Zoom {levels}); the file may have corrupt or missing tiles.")
        if too_large and not self.broken:
            message = (message + " " if message else "") + (
                f"The coarsest views (Deep Zoom level {', '.join(map(str, too_large))}) are not drawn: the file has "
                "no reduced level small enough, and one tile there would read the whole slide. Zoom in.")
        return {"unreadable_tiles": sum(failures.values()), "unreadable_by_level": failures,
                "not_drawn_levels": too_large, "broken": bool(self.broken), "message": message}

    def overview_png(self, max_size_px: int) -> bytes:
        """A PNG overview (the viewer's fallback); a grey image with no slide pixels when it cannot be read."""
        try:
            osr = self._current().osr
            level = osr.get_best_level_for_downsample(max(self.dimensions) / max_size_px)
            if osr.level_dimensions[level][0] * osr.level_dimensions[level][1] > 4 * self.settings.max_tile_read_px:
                raise SlideReadError(f"no reduced level small enough for an overview (level {level}: "
                                     f"{osr.level_dimensions[level]} px)")
            image = osr.get_thumbnail((max_size_px, max_size_px)).convert("RGB")
        except SourceClosed:
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt tile in the coarsest level: a grey overview
            log.info("viewer: %s: no overview (%s)", self.path.name, exc)
            width, height = self.dimensions
            scale = max_size_px / max(width, height)
            image = unreadable_image((max(1, round(width * scale)), max(1, round(height * scale))))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    def close(self) -> None:
        """Let go of the handle. It closes when the last request still reading drops it (the OpenSlide
        object closes itself when no reference is left), so a release never closes it under a read."""
        with self._lock:
            self._generation = None


def unreadable_image(size: tuple[int, int]) -> Image.Image:
    """A grey, hatched image marking pixels that could not be read."""
    image = Image.new("RGB", size, UNREADABLE_RGB)
    draw = ImageDraw.Draw(image)
    step = 24
    for offset in range(-size[1], size[0], step):
        draw.line([(offset, 0), (offset + size[1], size[1])], fill=(170, 170, 170), width=2)
    if size[0] >= 96 and size[1] >= 24:
        draw.text((8, 8), "unreadable", fill=(90, 90, 90))
    return image


def _encode_jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


