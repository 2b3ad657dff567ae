"""JPEG TIFF layouts the direct tissue-view decoder must read like OpenSlide does, written for the tests.

    write_tables_aperio(path, color="rgb")     # Aperio-style: shared JPEGTables, abbreviated tiles, RGB-coded
                                               # JPEG without an Adobe marker (component ids 1, 2, 3), so
                                               # only the TIFF photometric tag says "RGB", as in real SVS files
    write_tables_aperio(path, color="ycbcr")   # shared JPEGTables, YCbCr 4:2:0 tiles, photometric YCbCr
    write_zlib_tiled_tiff(path)                # tiled but not JPEG: the direct path must decline it

Tiles are encoded with Pillow (streamtype 1 = tables only, 2 = abbreviated image) and written as they are.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np

from tests.helpers import synthetic_slides as synth

TILE = synth.TILE_PX


def _segments(data: bytes):
    """(marker, start, end) of each marker segment before the scan data."""
    position = 2
    while position < len(data):
        marker = data[position + 1]
        (length,) = struct.unpack_from(">H", data, position + 2)
        yield marker, position, position + 2 + length
        if marker == 0xDA:
            return
        position += 2 + length


def _as_aperio_rgb(data: bytes) -> bytes:
    """Drop the Adobe APP14 marker and renumber the components 1, 2, 3 (frame and scan headers): a decoder
    that guesses the colour space from the stream now takes it for YCbCr; only the TIFF tag says RGB."""
    out = bytearray(data[:2])
    for marker, start, end in _segments(data):
        segment = bytearray(data[start:end])
        if marker == 0xEE:
            continue
        if marker in (0xC0, 0xC1, 0xC2):                     # SOF: P, Y, X, Nf, then (id, sampling, table)*Nf
            for k in range(segment[9]):
                segment[10 + 3 * k] = k + 1
        if marker == 0xDA:                                   # SOS: Ns, then (selector, tables)*Ns
            for k in range(segment[4]):
                segment[5 + 2 * k] = k + 1
            out += segment + data[end:]
            return bytes(out)
        out += segment
    raise ValueError("no scan in the JPEG stream")


def _encode(tile: np.ndarray, color: str, quality: int, streamtype: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    options = {"keep_rgb": True, "subsampling": 0} if color == "rgb" else {"subsampling": 2}
    Image.fromarray(tile).save(buffer, "JPEG", quality=quality, streamtype=streamtype, **options)
    data = buffer.getvalue()
    return _as_aperio_rgb(data) if color == "rgb" and streamtype == 2 else data


def _tiles(pixels: np.ndarray):
    """256 px tiles, row-major; edge tiles padded with background like a scanner's."""
    height, width = pixels.shape[:2]
    for y in range(0, height, TILE):
        for x in range(0, width, TILE):
            tile = np.empty((TILE, TILE, 3), np.uint8)
            tile[:] = synth.BACKGROUND_RGB
            part = pixels[y:y + TILE, x:x + TILE]
            tile[:part.shape[0], :part.shape[1]] = part
            yield tile


def write_tables_aperio(path, width: int = 3072, height: int = 2560, mpp: float = 0.5, downsamples=(1, 4),
                        color: str = "rgb", quality: int = 85, seed: int = 0) -> synth.SyntheticSlide:
    import tifffile

    slide = synth.SyntheticSlide(Path(path), width, height, mpp, tuple(downsamples),
                                 synth.default_blobs(width, height, seed), synth.default_debris(width, height, mpp, seed))
    tables = _encode(np.zeros((TILE, TILE, 3), np.uint8), color, quality, streamtype=1)
    with tifffile.TiffWriter(slide.path) as tif:
        for index, downsample in enumerate(slide.downsamples):
            level_w, level_h = max(1, width // downsample), max(1, height // downsample)
            pixels = slide.render(0, 0, level_w, level_h, downsample)
            tiles = (_encode(tile, color, quality, streamtype=2) for tile in _tiles(pixels))
            tif.write(tiles, shape=(level_h, level_w, 3), dtype=np.uint8, tile=(TILE, TILE), compression="jpeg",
                      photometric="rgb", jpegtables=tables, metadata=None,
                      compressionargs={"outcolorspace": "rgb" if color == "rgb" else "ycbcr"},
                      description=synth.aperio_description(width, height, mpp, 10.0 / mpp) if index == 0 else "")
    return slide


def write_zlib_tiled_tiff(path, width: int = 2048, height: int = 2048, mpp: float = 0.5) -> synth.SyntheticSlide:
    import tifffile

    slide = synth.SyntheticSlide(Path(path), width, height, mpp, (1, 4), synth.default_blobs(width, height, 0),
                                 synth.default_debris(width, height, mpp, 0))
    with tifffile.TiffWriter(slide.path) as tif:
        for index, downsample in enumerate(slide.downsamples):
            pixels = slide.render(0, 0, width // downsample, height // downsample, downsample)
            tif.write(pixels, photometric="rgb", tile=(TILE, TILE), compression="zlib", metadata=None,
                      subfiletype=1 if index else 0,
                      resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit="CENTIMETER")
    return slide
