"""The viewer's fast path (ui/viewer/direct_tiles.py): Deep Zoom tiles decoded from a TIFF's own JPEG tiles
are OpenSlide's tiles (same size, same pixels to within resampling), on every level, also where a level's
downsample is not a whole number; everything it cannot read goes through OpenSlide as before."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.synthetic_slides import (
    write_aperio_slide,
    write_generic_tiff,
    write_plain_image,
    write_slide_with_corrupt_tile,
)
from tests.helpers.synthetic_dicom import write_dicom_folder
from ui.viewer.cache import TileCache
from ui.viewer.settings import ViewerSettings
from ui.viewer.tiles import TileSource


def pair(path) -> tuple[TileSource, TileSource]:
    return (TileSource(path, ViewerSettings(), TileCache(1)),
            TileSource(path, ViewerSettings(direct_jpeg=False), TileCache(1)))


def image(source: TileSource, level: int, col: int, row: int) -> np.ndarray:
    return np.asarray(source._read(source._current(), level, col, row).convert("RGB"), np.int16)


@pytest.mark.parametrize("writer,name,size", [
    (write_aperio_slide, "whole.svs", 4096),             # level downsamples 1, 4, 16: whole numbers
    (write_aperio_slide, "odd.svs", 4099),               # 1, 4.0010, 16.016: OpenSlide resamples sub-pixel
    (write_generic_tiff, "generic.tif", 2048),
])
def test_direct_tiles_are_openslides_tiles_on_every_level(tmp_path, writer, name, size):
    fast, slow = pair(writer(tmp_path / name, width=size, height=size, downsamples=(1, 4, 16)).path)
    assert fast._direct is not None and slow._direct is None
    odd = size % 4 != 0
    for level in range(fast.level_count):
        cols, rows = fast.level_tiles[level]
        for col, row in {(0, 0), (cols // 2, rows // 2), (cols - 1, rows - 1)}:
            ours, openslide = image(fast, level, col, row), image(slow, level, col, row)
            assert ours.shape == openslide.shape, (level, col, row)
            difference = np.abs(ours - openslide).mean()
            # sub-pixel shifts and resampling on odd levels; the same JPEG decode elsewhere
            assert difference <= (2.5 if odd else 1.0), (level, col, row, difference)
            if min(ours.shape[:2]) >= 16 and openslide.std() > 5:             # in place, not a tile beside it
                inner = np.abs(ours - openslide)[2:-2, 2:-2].mean()
                shifted = min(np.abs(ours[2:-2, 4:] - openslide[2:-2, :-4]).mean(),
                              np.abs(ours[4:, 2:-2] - openslide[:-4, 2:-2]).mean())
                assert inner < 0.5 * shifted, (level, col, row, inner, shifted)


def test_the_fast_path_is_faster_where_openslide_shrinks_or_resamples(tmp_path):
    import time

    fast, slow = pair(write_aperio_slide(tmp_path / "odd.svs", width=8195, height=8195, downsamples=(1, 4)).path)
    level = fast.level_count - 2                           # half of level 0: OpenSlide reads 4x and shrinks
    cols, rows = fast.level_tiles[level]
    addresses = [(col, row) for col in range(cols) for row in range(rows)][:24]
    seconds = {}
    for label, source in (("direct", fast), ("openslide", slow)):
        image(source, level, *addresses[0])                  # warm: imports, handles
        started = time.perf_counter()
        for address in addresses[1:]:
            image(source, level, *address)
        seconds[label] = time.perf_counter() - started
    assert seconds["direct"] < seconds["openslide"], seconds   # measured ~5x; only the direction is asserted


@pytest.mark.parametrize("make", [
    lambda tmp_path: write_plain_image(tmp_path / "p.png").path,
    lambda tmp_path: write_generic_tiff(tmp_path / "strips.tif", tiled=False).path,
    lambda tmp_path: write_dicom_folder(tmp_path / "dicom").path,
])
def test_what_it_cannot_read_is_served_by_openslide(tmp_path, make):
    source = TileSource(make(tmp_path), ViewerSettings(), TileCache(1 << 20))
    assert source._direct is None
    level = source.level_count - 1
    assert source.tile(level, 0, 0).status == "ok"


def test_a_corrupt_tile_still_reads_as_unreadable(tmp_path):
    slide, (x, y) = write_slide_with_corrupt_tile(tmp_path / "bad.svs")
    source = TileSource(slide.path, ViewerSettings(), TileCache(1 << 20))
    assert source._direct is not None
    top = source.level_count - 1
    assert source.tile(top, x // 254, y // 254).status == "unreadable"
    assert source.tile(top, 0, 0).status == "ok"


def test_slide_tiles_decoded_once_give_the_same_pixels_as_decoding_each_region(tmp_path):
    from ui.viewer.direct_tiles import DirectTiles

    path = write_aperio_slide(tmp_path / "s.svs", width=4099, height=4099, downsamples=(1, 4)).path
    source = TileSource(path, ViewerSettings(), TileCache(1))
    dz, osr = source._current().dz, source._current().osr
    cache = TileCache(64 << 20)
    cached = DirectTiles.open(path, osr.level_dimensions, osr.level_downsamples, cache, key="s")
    plain = DirectTiles.open(path, osr.level_dimensions, osr.level_downsamples)
    for level in (source.level_count - 1, source.level_count - 2, source.level_count - 4):
        cols, rows = source.level_tiles[level]
        for address in [(col, row) for col in range(min(cols, 3)) for row in range(min(rows, 3))]:
            assert np.array_equal(np.asarray(cached.tile(dz, level, address)),
                                  np.asarray(plain.tile(dz, level, address))), (level, address)
    stats = cache.stats()
    assert stats["hits"] > 0 and 0 < stats["bytes"] <= 64 << 20     # neighbours shared slide tiles
    assert stats["bytes"] == sum(array.nbytes for array in cache._entries.values())


def test_a_tile_that_would_read_the_whole_slide_is_not_drawn_and_says_zoom_in(tmp_path):
    """A slide without reduced levels: coarse Deep Zoom tiles map onto all of level 0. Through OpenSlide
    they would read it whole (4 bytes a pixel, per request): above `max_tile_read_px` they are not drawn;
    the direct path reads them at 1/8, within the bound."""
    path = write_generic_tiff(tmp_path / "flat.tif", width=4096, height=4096, downsamples=(1,)).path
    fast = TileSource(path, ViewerSettings(max_tile_read_px=1 << 20), TileCache(1 << 20))
    slow = TileSource(path, ViewerSettings(max_tile_read_px=1 << 20, direct_jpeg=False), TileCache(1 << 20))
    coarse, fine = 2, fast.level_count - 1
    assert fast.tile(coarse, 0, 0).status == "ok"                         # decoded at 1/8: 512 x 512 px
    assert slow.tile(coarse, 0, 0).status == "unreadable" and slow.tile(fine, 3, 3).status == "ok"
    status = slow.status()
    assert status["not_drawn_levels"] == [coarse] and status["unreadable_tiles"] == 0
    assert "Zoom in" in status["message"] and "corrupt" not in status["message"]


def test_only_vendors_whose_levels_are_the_tiffs_pages_take_the_direct_path(tmp_path, monkeypatch):
    import ui.viewer.tiles as tiles

    path = write_aperio_slide(tmp_path / "a.svs", width=2048, height=2048).path
    assert TileSource(path, ViewerSettings(), TileCache(1))._direct is not None
    monkeypatch.setattr(tiles, "DIRECT_JPEG_VENDORS", ("generic-tiff",))   # as a Ventana or Philips file is
    assert TileSource(path, ViewerSettings(), TileCache(1))._direct is None


def test_handles_of_one_plain_image_share_its_decoded_pixels(tmp_path):
    path = write_plain_image(tmp_path / "p.png", width=1024, height=1024).path
    first, second = (TileSource(path, ViewerSettings(), TileCache(1)) for _ in range(2))
    assert first._current().osr._image is second._current().osr._image      # one decoded copy, not one per session
    assert first.tile(first.level_count - 1, 0, 0).status == second.tile(second.level_count - 1, 0, 0).status == "ok"
