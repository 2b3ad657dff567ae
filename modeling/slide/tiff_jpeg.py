"""Whole pyramid levels straight from a TIFF's JPEG tiles, shrunk while decoding (libjpeg DCT scaling).

The tissue view of a slide is a few megapixels taken from a level that can hold far more (a two-level
40x scan's only reduced level is 10,000 px wide). Decoding that level through OpenSlide and shrinking it
afterwards costs a full-size decode plus copies; libjpeg can instead decode each tile at 1/2, 1/4 or 1/8
of its size directly from the DCT coefficients, so the work shrinks with the output.

    levels = JpegTiffLevels.open(path)            # None: not a TIFF, or no page this module can read
    page = levels.page_for(width, height)         # the tiled JPEG page of an OpenSlide level, or None
    view = levels.decode(page, reduction=4)       # [ceil(h/4), ceil(w/4), 3] uint8, None on any problem
    for y0, y1, band in levels.bands(page, 4, max_px=2**24): ...   # the same, in bounded memory

It reads only what OpenSlide's own direct JPEG path reads (`openslide-decode-tiff.c`): tiled pages with
JPEG compression, 8-bit, 3 samples, contiguous planes, photometric RGB or YCbCr, optional JPEGTables.
Like OpenSlide, the JPEG colour space is taken from the TIFF photometric tag (Aperio writes RGB-coded
JPEG without an Adobe marker) and tiles are clipped at the right and bottom edges. Everything else
returns None and the caller reads through OpenSlide, which then also reports real errors properly:
other compressions, a tile that does not start a JPEG stream or whose frame is not the TIFF's tile size,
a tile that fails to decode, and any file with a zero-length tile (OpenSlide's Aperio reader paints such
tiles, and the coarser tiles over them, from finer levels; its generic-TIFF reader fails on them).
One difference remains: a tile whose header is intact but whose compressed data is damaged decodes to
whatever libjpeg makes of it, where OpenSlide refuses the read (it treats libjpeg warnings as errors).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REDUCTIONS = (8, 4, 2, 1)            # what libjpeg's DCT scaling offers (1/8 .. 1/1)
MAX_IFDS = 4096                      # a longer main IFD chain is treated as corrupt
MAX_TILE_BYTES = 64 << 20            # one compressed tile larger than this is not read here

_TAG_NAMES = {256: "width", 257: "height", 258: "bits", 259: "compression", 262: "photometric",
              277: "samples", 284: "planar", 322: "tile_w", 323: "tile_h", 324: "offsets", 325: "counts",
              347: "tables"}
# TIFF field type -> (struct code, size in bytes)
_TYPES = {1: ("B", 1), 2: ("B", 1), 3: ("H", 2), 4: ("I", 4), 7: ("B", 1), 13: ("I", 4), 16: ("Q", 8), 18: ("Q", 8)}
COMPRESSION_JPEG, PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR = 7, 2, 6


@dataclass(frozen=True)
class JpegPage:
    """One tiled JPEG page of the main IFD chain."""

    width: int
    height: int
    tile_w: int
    tile_h: int
    offsets: np.ndarray              # [tiles] byte offset of each tile, row-major
    counts: np.ndarray               # [tiles] byte count (0 = missing tile)
    tables: bytes | None             # JPEGTables: SOI, DQT/DHT, EOI
    jpeg_color_space: str            # "RGB" or "YCbCr", from the photometric tag (as OpenSlide does)

    @property
    def tiles_across(self) -> int:
        return -(-self.width // self.tile_w)

    @property
    def tiles_down(self) -> int:
        return -(-self.height // self.tile_h)


class _Ifd:
    """Reads the few tags a JPEG page needs from one image file directory."""

    def __init__(self, data, order: str, big: bool):
        self.data, self.order, self.big = data, order, big

    def entries(self, offset: int) -> tuple[dict, int]:
        count_fmt, entry_size, value_size = ("Q", 20, 8) if self.big else ("H", 12, 4)
        (count,) = struct.unpack_from(self.order + count_fmt, self.data, offset)
        offset += struct.calcsize(count_fmt)
        if count > 10_000:
            raise ValueError(f"IFD with {count} entries")
        tags = {}
        for index in range(count):
            start = offset + index * entry_size
            tag, kind = struct.unpack_from(self.order + "HH", self.data, start)
            if tag in _TAG_NAMES and kind in _TYPES:
                n = struct.unpack_from(self.order + ("Q" if self.big else "I"), self.data, start + 4)[0]
                tags[_TAG_NAMES[tag]] = self._values(kind, n, start + (12 if self.big else 8), value_size)
        next_fmt = "Q" if self.big else "I"
        (next_offset,) = struct.unpack_from(self.order + next_fmt, self.data, offset + count * entry_size)
        return tags, next_offset

    def _values(self, kind: int, n: int, field: int, value_size: int):
        code, size = _TYPES[kind]
        if n * size > value_size:                                     # stored elsewhere; the field is an offset
            field = struct.unpack_from(self.order + ("Q" if self.big else "I"), self.data, field)[0]
        if field + n * size > len(self.data):
            raise ValueError("tag data beyond the end of the file")
        if kind == 7:
            return bytes(self.data[field:field + n])
        return np.frombuffer(self.data, dtype=np.dtype(self.order + code), count=n, offset=field)


def _page_from_tags(tags: dict) -> JpegPage | None:
    def scalar(name):
        value = tags.get(name)
        return int(value[0]) if value is not None and not isinstance(value, bytes) and len(value) else None

    bits = tags.get("bits")
    direct = (scalar("compression") == COMPRESSION_JPEG and scalar("planar") in (None, 1)
              and scalar("photometric") in (PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR) and scalar("samples") == 3
              and bits is not None and not isinstance(bits, bytes) and set(bits.tolist()) == {8}
              and scalar("tile_w") and scalar("tile_h") and scalar("width") and scalar("height"))
    if not direct or "offsets" not in tags or "counts" not in tags:
        return None
    page = JpegPage(scalar("width"), scalar("height"), scalar("tile_w"), scalar("tile_h"),
                    np.array(tags["offsets"], np.int64), np.array(tags["counts"], np.int64),      # copies
                    tags.get("tables") if isinstance(tags.get("tables"), bytes) else None,
                    "YCbCr" if scalar("photometric") == PHOTOMETRIC_YCBCR else "RGB")
    if len(page.offsets) != page.tiles_across * page.tiles_down or len(page.counts) != len(page.offsets):
        return None
    return page


class JpegTiffLevels:
    """The JPEG-tiled pages of a TIFF's main IFD chain; tiles are read with `os.pread` when decoded (never
    through a memory map, which would kill the process with SIGBUS if the file were truncated meanwhile)."""

    def __init__(self, path: Path, fd: int, pages: list[JpegPage]):
        self.path, self._fd, self.pages = path, fd, pages

    @classmethod
    def open(cls, path: str | Path) -> JpegTiffLevels | None:
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as data:       # the IFDs only, closed right after
                pages = _read_pages(data)
        except (OSError, ValueError, BufferError, struct.error, IndexError):
            pages = None
        if not pages or any((page.counts == 0).any() for page in pages):      # sparse: OpenSlide's business
            os.close(fd)
            return None
        return cls(path, fd, pages)

    def page_for(self, width: int, height: int) -> JpegPage | None:
        """The one JPEG page of exactly this size (an OpenSlide level of an Aperio or generic TIFF)."""
        matches = [page for page in self.pages if (page.width, page.height) == (width, height)]
        return matches[0] if len(matches) == 1 else None

    def decode(self, page: JpegPage, reduction: int, tile_rows: tuple[int, int] | None = None,
               tile_cols: tuple[int, int] | None = None) -> np.ndarray | None:
        """Tile rows [r0, r1) and columns [c0, c1) of the page (default: all) at 1/`reduction` (1, 2, 4 or 8)
        as RGB [ceil(rows_px / r), ceil(cols_px / r), 3] (rows_px, cols_px clipped at the page's edges); None
        when any tile cannot be decoded this way (the caller then reads through OpenSlide)."""
        from PIL import Image

        if reduction not in REDUCTIONS or page.tile_w % reduction or page.tile_h % reduction:
            return None
        prefix = None
        if page.tables is not None:
            if not (page.tables.startswith(b"\xff\xd8") and page.tables.endswith(b"\xff\xd9")):
                return None
            prefix = page.tables[:-2]                                        # SOI + tables, without EOI
        first, last = tile_rows or (0, page.tiles_down)
        left, right = tile_cols or (0, page.tiles_across)
        tw, th = page.tile_w // reduction, page.tile_h // reduction
        out_w = -(-(min(right * page.tile_w, page.width) - left * page.tile_w) // reduction)
        out_h = -(-(min(last * page.tile_h, page.height) - first * page.tile_h) // reduction)
        # Tiles are decoded straight into numpy memory: an RGBX image mapped onto [H, W, 4] arrays.
        pixels = np.empty((out_h, out_w, 4), np.uint8)                      # every pixel is some tile's
        canvas = Image.frombuffer("RGBX", (out_w, out_h), pixels, "raw", "RGBX", 0, 1)
        edge_pixels = np.empty((th, tw, 4), np.uint8)                       # right/bottom tiles, then clipped
        edge = Image.frombuffer("RGBX", (tw, th), edge_pixels, "raw", "RGBX", 0, 1)
        args = ("RGB", page.jpeg_color_space, reduction, 0)                  # rawmode, JPEG colour space, scale
        try:
            for row, col in ((r, c) for r in range(first, last) for c in range(left, right)):
                index = row * page.tiles_across + col
                data = self._tile_stream(int(page.offsets[index]), int(page.counts[index]), prefix)
                if data is None or _frame_size(data) != (page.tile_w, page.tile_h):
                    return None                                              # the decoder writes what the frame says
                x, y = (col - left) * tw, (row - first) * th
                inside = x + tw <= out_w and y + th <= out_h
                decoder = Image._getdecoder("RGB", "jpeg", args)
                try:
                    decoder.setimage((canvas if inside else edge).im, (x, y, x + tw, y + th) if inside
                                     else (0, 0, tw, th))
                    consumed, error = decoder.decode(data)
                finally:
                    decoder.cleanup()
                if consumed >= 0 or error < 0:                               # wanted more data, or failed
                    return None
                if not inside:
                    pixels[y:y + th, x:x + tw] = edge_pixels[:out_h - y, :out_w - x]
        except (OSError, ValueError, AttributeError, TypeError):             # AttributeError: another Pillow
            return None
        return _rgbx_to_rgb(pixels)

    def bands(self, page: JpegPage, reduction: int, max_px: int):
        """The page decoded band by band, each at most about `max_px` decoded pixels (whole tile rows):
        yields (y0, y1, pixels) with level rows [y0, y1) and `decode`'s pixels, or None (then stop: the
        direct path failed)."""
        rows = max(1, max_px // max(1, -(-page.width // reduction) * (page.tile_h // reduction)))
        for first in range(0, page.tiles_down, rows):
            last = min(first + rows, page.tiles_down)
            pixels = self.decode(page, reduction, (first, last))
            yield first * page.tile_h, min(last * page.tile_h, page.height), pixels
            if pixels is None:
                return

    def _tile_stream(self, offset: int, count: int, prefix: bytes | None) -> bytes | None:
        """One tile's JPEG stream, with the page's tables in front when it has them; None if implausible (also
        when the file is shorter now than it was: a truncated or replaced file reads through OpenSlide)."""
        if count < 4 or count > MAX_TILE_BYTES:
            return None
        try:
            data = os.pread(self._fd, count, offset)
        except OSError:
            return None
        if len(data) != count:
            return None
        if prefix is None:
            return data
        return prefix + data[2:] if data.startswith(b"\xff\xd8") else None       # tables, then the tile's markers

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _rgbx_to_rgb(pixels: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB)                          # [H, W, 4] -> contiguous [H, W, 3]


def _frame_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the JPEG frame header of an 8-bit, 3-component Huffman JPEG, else None."""
    position, end = 2, len(data)
    if not data.startswith(b"\xff\xd8"):
        return None
    while position + 4 <= end:
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:                                                   # fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:                         # no length field
            position += 2
            continue
        if marker in (0xDA, 0xD9):                                           # scan or end before any frame
            return None
        (length,) = struct.unpack_from(">H", data, position + 2)
        if marker in (0xC0, 0xC1, 0xC2):                                     # baseline, extended, progressive
            if length < 8 or position + 10 > end:
                return None
            precision, height, width, components = struct.unpack_from(">BHHB", data, position + 4)
            return (width, height) if precision == 8 and components == 3 and width and height else None
        if 0xC3 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):      # lossless, arithmetic: not read here
            return None
        position += 2 + length
    return None


def _read_pages(data) -> list[JpegPage | None]:
    """The JPEG-tiled pages of the main IFD chain (other pages are left out)."""
    head = bytes(data[:16])
    if head[:2] not in (b"II", b"MM"):
        return []
    order = "<" if head[:2] == b"II" else ">"
    (magic,) = struct.unpack_from(order + "H", head, 2)
    if magic == 42:
        big, (offset,) = False, struct.unpack_from(order + "I", head, 4)
    elif magic == 43:
        big, (offset,) = True, struct.unpack_from(order + "Q", head, 8)
    else:
        return []
    reader, pages, seen, entries = _Ifd(data, order, big), [], set(), 0
    while offset and len(pages) < MAX_IFDS:
        if offset in seen or offset >= len(data):
            raise ValueError(f"IFD chain loops or leaves the file at {offset}")
        seen.add(offset)
        tags, offset = reader.entries(offset)
        pages.append(page := _page_from_tags(tags))
        entries += 0 if page is None else len(page.offsets)
        if entries > len(data) // 8:        # every tile takes 8+ bytes of the file: tables shared between pages
            raise ValueError(f"{entries:,} tile entries in a file of {len(data):,} bytes")
    return [page for page in pages if page is not None]
