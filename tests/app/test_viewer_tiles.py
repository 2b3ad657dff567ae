"""The viewer's tile source (ui/viewer/tiles.py), overlays and cache: every format open_slide reads, bounds,
unreadable tiles and levels, and the encoded-tile LRU."""

from __future__ import annotations

import io
import math
import threading

import numpy as np
import pytest
from PIL import Image

from modeling.slide.errors import SlideError
from tests.helpers.synthetic_slides import (
    TILE_PX,
    write_aperio_slide,
    write_corrupt_tiff,
    write_generic_tiff,
    write_plain_image,
    write_slide_with_corrupt_tile,
    write_truncated_tiff,
)
from ui.viewer.cache import TileCache
from ui.viewer.overlays import OverlayError, grid_overlay, heatmap_overlay, overlays_from_tiling, tissue_overlay
from ui.viewer.settings import ViewerSettings
from ui.viewer.tiles import TileOutOfRange, TileSource


def source_for(path, **settings) -> TileSource:
    return TileSource(path, ViewerSettings(**settings), TileCache(16 << 20))


def decode(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return np.asarray(image.convert("RGB"))


def centre_tile(source: TileSource, level: int, x0: float, y0: float) -> tuple[int, int]:
    """The (col, row) of the Deep Zoom tile of `level` that holds level-0 point (x0, y0)."""
    scale = 2 ** (source.level_count - 1 - level)
    return int(x0 / scale // 254), int(y0 / scale // 254)


@pytest.mark.parametrize("writer,name,vendor", [
    (write_aperio_slide, "a.svs", "aperio"),
    (write_generic_tiff, "g.tif", "generic-tiff"),
    (write_plain_image, "p.png", "image"),
    (write_plain_image, "p.jpg", "image"),
    (lambda path: write_generic_tiff(path, tiled=False), "stripped.tif", "image"),
])
def test_every_reader_format_gives_deep_zoom_tiles_of_the_slide(tmp_path, writer, name, vendor):
    slide = writer(tmp_path / name)
    source = source_for(slide.path)
    assert source.slide_info["vendor"] == vendor
    assert source.dimensions == (slide.width, slide.height)
    assert source.mpp == pytest.approx(0.5)
    assert source.level_count == math.ceil(math.log2(max(slide.width, slide.height))) + 1
    blob = slide.blobs[1]
    col, row = centre_tile(source, source.level_count - 1, blob.cx, blob.cy)
    tile = source.tile(source.level_count - 1, col, row)
    assert tile.status == "ok"
    pixels = decode(tile.data)
    assert pixels.shape == (256, 256, 3)                              # 254 + 1 px overlap on both sides
    assert abs(pixels[..., 0].mean() - 222) < 25 and pixels[..., 1].mean() < 185   # the blob's pink
    assert "<Image" in source.dzi_xml() and f'Width="{slide.width}"' in source.dzi_xml()


def test_dicom_folder_gives_tiles(tmp_path):
    pytest.importorskip("pydicom", reason="pydicom writes the DICOM test slide (requirements-test.txt)")
    from tests.helpers.synthetic_dicom import write_dicom_folder

    slide = write_dicom_folder(tmp_path / "dicom-slide", width=2048, height=2048, mpp=0.5)
    source = source_for(slide.path)
    assert source.slide_info["vendor"] == "dicom" and source.mpp == pytest.approx(0.5)
    blob = slide.blobs[1]
    col, row = centre_tile(source, source.level_count - 1, blob.cx, blob.cy)
    pixels = decode(source.tile(source.level_count - 1, col, row).data)
    assert pixels[..., 1].mean() < 185                                  # tissue, not glass
    low = decode(source.tile(2, 0, 0).data)                            # a coarse level, read from level 1
    assert low.shape[0] == low.shape[1] == 2048 // 2 ** (source.level_count - 1 - 2)


def test_a_level_within_one_percent_of_a_deep_zoom_downsample_serves_it(tmp_path):
    slide = write_aperio_slide(tmp_path / "odd.svs", width=4099, height=4099, downsamples=(1, 4))
    source = source_for(slide.path)                        # level 1: 1024 px, downsample 4.003 (not 4)
    top = source.level_count - 1
    assert [source.slide_level_for(top - step) for step in range(4)] == [0, 0, 1, 1]
    assert decode(source.tile(top - 2, 0, 0).data).shape == (255, 255, 3)     # 254 + 1 px overlap (one side)


def test_levels_and_tile_addresses_are_bounded(tmp_path):
    source = source_for(write_aperio_slide(tmp_path / "a.svs", width=2048, height=2048).path)
    top = source.level_count - 1
    cols, rows = source.level_tiles[top]
    assert (cols, rows) == (math.ceil(2048 / 254), math.ceil(2048 / 254))
    assert source.tile(top, cols - 1, rows - 1).status == "ok"
    for level, col, row in [(source.level_count, 0, 0), (-1, 0, 0), (top, cols, 0), (top, 0, rows), (top, -1, 0),
                            (0, 1, 0)]:
        with pytest.raises(TileOutOfRange):
            source.tile(level, col, row)


def test_a_corrupt_tile_is_grey_and_reported_and_the_rest_still_load(tmp_path):
    slide, (x, y) = write_slide_with_corrupt_tile(tmp_path / "c.svs")
    source = source_for(slide.path)
    top = source.level_count - 1
    bad = (x // 254, y // 254)
    tile = source.tile(top, *bad)
    assert tile.status == "unreadable"
    grey = decode(tile.data)
    assert abs(grey.astype(int).mean() - 185) < 15 and grey.std() < 20     # grey hatching, not slide pixels
    assert source.tile(top, *bad).status == "unreadable"                  # remembered, not re-read
    assert source.tile(top, 0, 0).status == "ok"                          # the handle was reopened
    assert source.tile(top - 3, 0, 0).status == "ok"                      # coarser levels from level 1
    status = source.status()
    assert status["unreadable_tiles"] >= 1 and set(status["unreadable_by_level"]) == {top}
    assert "could not be read" in status["message"] and str(tmp_path) not in status["message"]


def test_a_whole_unreadable_level_leaves_the_other_levels_readable(tmp_path):
    import tifffile

    slide = write_aperio_slide(tmp_path / "l.svs", width=2048, height=2048, downsamples=(1, 4))
    with tifffile.TiffFile(slide.path) as tif:
        page = tif.pages[1]                                            # level 1 (downsample 4): every tile garbage
        spans = list(zip(page.dataoffsets, page.databytecounts))
    with open(slide.path, "r+b") as handle:
        for offset, count in spans:
            handle.seek(offset)
            handle.write(b"\x00" * count)
    source = source_for(slide.path)
    top = source.level_count - 1
    by_level = {level: {source.tile(level, c, r).status for c in range(source.level_tiles[level][0])
                        for r in range(source.level_tiles[level][1])} for level in range(top - 3, top + 1)}
    assert by_level[top] == {"ok"} and by_level[top - 1] == {"ok"}      # read from level 0
    assert by_level[top - 3] == {"unreadable"}                          # read from the broken level 1
    assert source.status()["message"]


def test_concurrent_reads_around_a_corrupt_tile_are_ok_elsewhere(tmp_path):
    slide, (x, y) = write_slide_with_corrupt_tile(tmp_path / "c.svs")
    source = source_for(slide.path)
    top = source.level_count - 1
    cols, rows = source.level_tiles[top]

    def touches(index: int, start: int) -> bool:           # Deep Zoom tile `index` (254 px + 1 px overlap)
        return index * 254 - 1 < start + TILE_PX and (index + 1) * 254 + 1 > start

    bad = {(c, r) for c in range(cols) for r in range(rows) if touches(c, x) and touches(r, y)}
    addresses = [(c, r) for c in range(cols) for r in range(rows)]
    results: dict[tuple[int, int], str] = {}

    def read(chunk):
        for address in chunk:
            results[address] = source.tile(top, *address).status

    threads = [threading.Thread(target=read, args=(addresses[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    unreadable = {address for address, status in results.items() if status == "unreadable"}
    assert unreadable <= bad and (x // 254, y // 254) in unreadable        # only tiles over the corrupt one
    # a tile shown grey only because another thread broke the shared handle is re-read on the next request
    assert all(source.tile(top, *a).status == "ok" for a in addresses if a not in bad)


@pytest.mark.parametrize("writer", [write_corrupt_tiff, write_truncated_tiff])
def test_unopenable_files_raise_slide_errors(tmp_path, writer):
    path = writer(tmp_path / "broken.svs")
    with pytest.raises(SlideError):
        source_for(path)


def test_overview_png_is_the_slide(tmp_path):
    source = source_for(write_aperio_slide(tmp_path / "a.svs", width=2048, height=2048).path)
    image = Image.open(io.BytesIO(source.overview_png(256)))
    assert image.format == "PNG" and max(image.size) == 256


def test_tile_cache_keeps_the_recent_tiles_within_its_byte_budget():
    cache = TileCache(max_bytes=1000)
    for key in "abcd":
        cache.put(key, b"x" * 200)
    assert cache.get("a") == b"x" * 200                                   # a is now the most recent
    cache.put("e", b"y" * 200)
    cache.put("f", b"y" * 200)                                            # 1200 bytes: the oldest goes
    assert cache.get("b") is None and cache.get("a") is not None and cache.bytes <= 1000
    cache.put("huge", b"z" * 600)                                         # > a quarter of the budget: not kept
    assert cache.get("huge") is None
    stats = cache.stats()
    assert stats["evictions"] == 1 and stats["hits"] == 2 and stats["misses"] == 2
    assert cache.discard(lambda key: key in {"a", "c"}) == 2 and len(cache) == 3


def test_tiles_are_cached_and_shared_by_file(tmp_path):
    path = write_aperio_slide(tmp_path / "a.svs", width=2048, height=2048).path
    cache = TileCache(16 << 20)
    first, second = TileSource(path, ViewerSettings(), cache), TileSource(path, ViewerSettings(), cache)
    data = first.tile(8, 1, 1).data
    assert second.tile(8, 1, 1).data is data and cache.hits == 1


def test_overlays_are_validated_and_built_from_a_tiling(tmp_path):
    from modeling.slide.tiling import tile_slide

    result = tile_slide(write_aperio_slide(tmp_path / "a.svs", width=2048, height=2048).path, target_mpp=0.5)
    overlays = overlays_from_tiling(result)
    assert len(overlays.grid["coords_level0"]) == 2 * len(result) and overlays.grid["patch_size_level0"] == 256
    assert overlays.tissue["type"] == "FeatureCollection" and len(overlays.tissue["features"]) == 3
    assert overlays.available()["heatmap"] == {"available": False, "note": "no answer with a heatmap yet"}
    heat = heatmap_overlay([{"x": 0, "y": 0, "w": 256, "h": 256, "value": 0.2},
                            {"x": 256, "y": 0, "w": 256, "h": 256, "value": 0.9}], label="relevance")
    assert (heat["min"], heat["max"], len(heat["cells"])) == (0.2, 0.9, 2)
    with pytest.raises(OverlayError, match="cell 0"):
        heatmap_overlay([{"x": 0, "y": 0, "w": 0, "h": 1, "value": 1}])
    with pytest.raises(OverlayError, match="cell 0"):
        heatmap_overlay([{"x": 0, "y": 0, "w": 1, "h": 1, "value": float("nan")}])
    with pytest.raises(OverlayError, match="FeatureCollection"):
        tissue_overlay({"type": "Feature"})
    with pytest.raises(OverlayError, match="more than"):
        grid_overlay(np.zeros((11, 2)), 256, max_tiles=10)
