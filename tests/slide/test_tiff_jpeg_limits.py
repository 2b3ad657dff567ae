"""The direct JPEG reader (modeling/slide/tiff_jpeg.py) against hostile or changing files: IFDs sharing one huge
tile table cannot make it allocate gigabytes, and a file truncated while open cannot crash the process."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
from pathlib import Path

from modeling.slide.tiff_jpeg import JpegTiffLevels
from tests.helpers.synthetic_slides import write_aperio_slide

ROOT = Path(__file__).resolve().parents[2]


def write_shared_table_tiff(path: Path, ifds: int, tiles_across: int = 300) -> Path:
    """`ifds` JPEG pages of tiles_across^2 16-px tiles, every page pointing at the SAME offsets/counts arrays
    (a few MB of file; copying the arrays per page would take ifds x 16 bytes x tiles)."""
    tiles = tiles_across * tiles_across
    offsets_at, counts_at = 8, 8 + 4 * tiles
    blob = counts_at + 4 * tiles
    first_ifd = blob + 16
    entries = [(256, 4, 1, 16 * tiles_across), (257, 4, 1, 16 * tiles_across), (258, 3, 3, blob + 8),
               (259, 3, 1, 7), (262, 3, 1, 2), (277, 3, 1, 3), (284, 3, 1, 1), (322, 3, 1, 16), (323, 3, 1, 16),
               (324, 4, tiles, offsets_at), (325, 4, tiles, counts_at)]
    ifd_size = 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", first_ifd))
    out += struct.pack("<I", blob) * tiles + struct.pack("<I", 8) * tiles
    out += b"\xff\xd8\xff\xd9" + b"\0" * 4 + struct.pack("<3H", 8, 8, 8) + b"\0\0"
    for index in range(ifds):
        start = first_ifd + index * ifd_size
        out += struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            packed = struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value)
            out += struct.pack("<HHI", tag, kind, count) + packed
        out += struct.pack("<I", start + ifd_size if index < ifds - 1 else 0)
    path.write_bytes(bytes(out))
    return path


def test_pages_sharing_one_tile_table_are_refused_not_copied(tmp_path):
    one = write_shared_table_tiff(tmp_path / "one.tif", ifds=1)
    many = write_shared_table_tiff(tmp_path / "many.tif", ifds=64)         # 64 x 90,000 entries in a 0.7 MB file
    levels = JpegTiffLevels.open(one)
    assert levels is not None and len(levels.pages) == 1                    # a plausible file still reads
    levels.close()
    assert JpegTiffLevels.open(many) is None                                 # OpenSlide's business (it refuses it)


def test_a_file_truncated_while_open_reads_as_not_decodable_and_the_process_lives(tmp_path):
    slide = write_aperio_slide(tmp_path / "s.svs", width=2048, height=2048, downsamples=(1, 4))
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from modeling.slide.tiff_jpeg import JpegTiffLevels
        levels = JpegTiffLevels.open({str(slide.path)!r})
        page = levels.page_for(2048, 2048)
        assert levels.decode(page, 1, tile_rows=(7, 8), tile_cols=(7, 8)) is not None
        os.truncate({str(slide.path)!r}, 4096)                              # a copy over the file being viewed
        print("after", levels.decode(page, 1, tile_rows=(7, 8), tile_cols=(7, 8)))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])     # -7: SIGBUS through a memory map
    assert "after None" in done.stdout
