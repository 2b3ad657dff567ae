"""Deep Zoom tiles decoded straight from a TIFF's JPEG tiles (libjpeg DCT scaling): the viewer's fast path.

Two things make OpenSlide's Deep Zoom tiles slow on pyramidal TIFFs (Aperio SVS, generic tiled TIFF):
- a level whose downsample is not a whole number (real Aperio levels: 4.0003, 16.001, 64.02) is painted
  from level-0 coordinates with a sub-pixel offset, which cairo resamples pixel by pixel: a 512-px region of
  such a level took 33 ms here against 1.2-7 ms on levels with whole downsamples;
- a Deep Zoom level between two pyramid levels reads 4x its pixels from the finer level and shrinks them.
`DirectTiles` reads the tile's region in the level's own pixel grid from the page's JPEG tiles
(`modeling.slide.tiff_jpeg.JpegTiffLevels`, as the tissue view does) and decodes each at 1/2, 1/4 or 1/8
where the Deep Zoom level is that much coarser, so the work follows the size of the tile sent.

    direct = DirectTiles.open(path, osr.level_dimensions, osr.level_downsamples)   # None: not read here
    image = direct.tile(dz, level, (col, row))              # RGB PIL image, or None: use OpenSlide's path

The geometry is OpenSlide's own (`DeepZoomGenerator._get_tile_info`: the same region of the same level, the
same tile size), with the region's start rounded to the level's pixel grid (OpenSlide's sub-pixel offset:
under one level pixel). What it reads is what `JpegTiffLevels` reads (tiled JPEG pages, RGB or YCbCr, no
missing tiles, every OpenSlide level a page of the same size); for anything else `open` returns None. A
tile it cannot decode returns None and the caller reads through OpenSlide, which reports a real error as
an unreadable tile. As for the tissue view, a tile whose JPEG header is intact but whose data is damaged
shows what libjpeg makes of it (as a browser shows a damaged JPEG), where OpenSlide refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modeling.slide.tiff_jpeg import REDUCTIONS, JpegPage, JpegTiffLevels
from ui.viewer.cache import TileCache


@dataclass(frozen=True)
class _Plan:
    slide_level: int
    page: JpegPage
    x: int                         # region in the page's own pixels
    y: int
    width: int
    height: int
    reduction: int                 # DCT scaling 1, 2, 4 or 8
    z_size: tuple[int, int]        # the Deep Zoom tile's size

    @property
    def decoded_px(self) -> int:
        return -(-self.width // self.reduction) * -(-self.height // self.reduction)


class DirectTiles:
    def __init__(self, levels: JpegTiffLevels, pages: list[JpegPage], downsamples: tuple[float, ...],
                 decoded: TileCache | None = None, key: Hashable = None):
        self.levels, self.pages = levels, pages               # pages[i]: OpenSlide level i
        self.downsamples = downsamples                        # read once: a failed OpenSlide handle answers nothing
        self.decoded, self.key = decoded, key                 # decoded slide tiles, shared by neighbouring tiles

    @classmethod
    def open(cls, path: str | Path, level_dimensions, level_downsamples, decoded: TileCache | None = None,
             key: Hashable = None) -> DirectTiles | None:
        levels = JpegTiffLevels.open(path)
        if levels is None:
            return None
        pages = [levels.page_for(width, height) for width, height in level_dimensions]
        if any(page is None for page in pages):
            levels.close()
            return None
        return cls(levels, pages, tuple(level_downsamples), decoded, key)

    def plan(self, dz, level: int, address: tuple[int, int]) -> _Plan:
        """Where the Deep Zoom tile `address` of `level` of generator `dz` lies in its page, and at which DCT
        reduction it is decoded."""
        (l0_xy, slide_level, (width, height)), z_size = dz._get_tile_info(level, address)
        page = self.pages[slide_level]
        downsample = self.downsamples[slide_level]
        x, y = (min(round(v / downsample), limit - 1) for v, limit in zip(l0_xy, (page.width, page.height)))
        width, height = min(width, page.width - x), min(height, page.height - y)
        shrink = min(width / z_size[0], height / z_size[1])
        reduction = max([1] + [r for r in REDUCTIONS if r <= shrink * 1.01 and page.tile_w % r == 0
                               and page.tile_h % r == 0])
        return _Plan(slide_level, page, x, y, width, height, reduction, tuple(z_size))

    def tile(self, dz, level: int, address: tuple[int, int], plan: _Plan | None = None) -> Image.Image | None:
        """The Deep Zoom tile `address` of `level` of generator `dz` (over the same slide), or None; `plan`:
        `self.plan(dz, level, address)` when the caller has it already."""
        plan = plan or self.plan(dz, level, address)
        page, x, y, r = plan.page, plan.x, plan.y, plan.reduction
        cols = (x // page.tile_w, -(-(x + plan.width) // page.tile_w))
        rows = (y // page.tile_h, -(-(y + plan.height) // page.tile_h))
        pixels = self._region(plan.slide_level, page, r, rows, cols)                  # [H, W, 3] at 1/r
        if pixels is None:
            return None
        left = (x - cols[0] * page.tile_w) // r
        top = (y - rows[0] * page.tile_h) // r
        # the page's last pixel at 1/r averages real pixels with the tile's padding: leave it out
        right = min(pixels.shape[1], left + math.ceil(plan.width / r),
                    max(left + 1, (page.width - cols[0] * page.tile_w) // r))
        bottom = min(pixels.shape[0], top + math.ceil(plan.height / r),
                     max(top + 1, (page.height - rows[0] * page.tile_h) // r))
        image = Image.fromarray(pixels[top:bottom, left:right])
        if image.size != plan.z_size:
            image = image.resize(plan.z_size, Image.Resampling.BOX)
        return image

    def _region(self, slide_level: int, page: JpegPage, reduction: int, rows: tuple[int, int],
                cols: tuple[int, int]) -> np.ndarray | None:
        """Slide tiles rows x cols of `page` at 1/`reduction`, each decoded once while the cache keeps it (a
        Deep Zoom tile of 254 + 2 px spans up to 2 x 2 slide tiles, each shared with its neighbours)."""
        if self.decoded is None:
            return self.levels.decode(page, reduction, tile_rows=rows, tile_cols=cols)
        tw, th = page.tile_w // reduction, page.tile_h // reduction
        width = -(-(min(cols[1] * page.tile_w, page.width) - cols[0] * page.tile_w) // reduction)
        height = -(-(min(rows[1] * page.tile_h, page.height) - rows[0] * page.tile_h) // reduction)
        canvas = np.empty((height, width, 3), np.uint8)
        for row in range(*rows):
            for col in range(*cols):
                key = (self.key, slide_level, reduction, row, col)
                pixels = self.decoded.get(key)
                if pixels is None:
                    pixels = self.levels.decode(page, reduction, tile_rows=(row, row + 1), tile_cols=(col, col + 1))
                    if pixels is None:
                        return None
                    self.decoded.put(key, pixels)
                y, x = (row - rows[0]) * th, (col - cols[0]) * tw
                canvas[y:y + pixels.shape[0], x:x + pixels.shape[1]] = pixels
        return canvas

    def close(self) -> None:
        self.levels.close()
