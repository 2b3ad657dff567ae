"""Writers of synthetic slides for tests and benchmarks: known tissue, known MPP, known defects.

Tissue is a set of wobbly elliptic blobs (optionally with a lumen-like hole) plus small debris specks on
a near-white background, rendered identically at every pyramid level from level-0 geometry, so a test
can ask "is this level-0 point tissue?" (`SyntheticSlide.tissue_fraction`).

    slide = write_aperio_slide(tmp_path / "a.svs", mpp=0.5)            # opens as OpenSlide "aperio"
    slide = write_generic_tiff(tmp_path / "g.tif", mpp=None)           # "generic-tiff", no MPP
    slide = write_plain_image(tmp_path / "p.png", mpp=0.5)             # PNG with pHYs (DPI)
    write_truncated_tiff(p); write_corrupt_tiff(p); write_non_slide(p); write_empty(p)
    slide, (x, y) = write_slide_with_corrupt_tile(p)                  # opens; one level-0 tile is garbage
    slide = write_large_sparse_aperio(p, 60_000, 60_000, mpp=0.25)     # benchmark size, tiles pre-encoded

Aperio files follow ../shared/notes/environment.md: every level its own page in the main IFD chain,
tiled 256 px, RGB JPEG, first ImageDescription starting with "Aperio Image Library" and carrying
"AppMag" and "MPP".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BACKGROUND_RGB = (242, 241, 239)
TISSUE_RGB = (222, 148, 188)      # eosin pink
DEBRIS_RGB = (80, 40, 110)        # dark, saturated specks
TILE_PX = 256


@dataclass(frozen=True)
class Blob:
    cx: float                      # level-0 px
    cy: float
    rx: float
    ry: float
    angle: float = 0.0             # radians
    phase: float = 0.0             # wobble phase
    hole_scale: float = 0.0        # > 0: an elliptic hole of (rx, ry) * hole_scale at the centre

    def label(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True where level-0 points (x, y) are inside the blob (and not in its hole)."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        u = ((x - self.cx) * cos + (y - self.cy) * sin) / self.rx
        v = (-(x - self.cx) * sin + (y - self.cy) * cos) / self.ry
        r = np.sqrt(u * u + v * v)
        theta = np.arctan2(v, u)
        edge = 1.0 + 0.10 * np.sin(3 * theta + self.phase) + 0.05 * np.sin(5 * theta + 2 * self.phase)
        inside = r < edge
        if self.hole_scale > 0:
            inside &= r >= self.hole_scale
        return inside


@dataclass
class SyntheticSlide:
    path: Path
    width: int
    height: int
    mpp: float | None
    downsamples: tuple[int, ...]
    blobs: list[Blob]
    debris: list[tuple[float, float, float]] = field(default_factory=list)   # (x, y, radius) level-0 px

    def labels(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """0 background, 1 tissue, 2 debris at level-0 points."""
        out = np.zeros(np.broadcast(x, y).shape, np.uint8)
        for blob in self.blobs:
            out[blob.label(x, y)] = 1
        for dx, dy, radius in self.debris:
            out[(x - dx) ** 2 + (y - dy) ** 2 < radius * radius] = 2
        return out

    def tissue_fraction(self, x0: float, y0: float, size: float, samples: int = 16) -> float:
        """True tissue fraction (blobs only, debris excluded) of a level-0 square."""
        offsets = (np.arange(samples) + 0.5) * size / samples
        gx, gy = np.meshgrid(x0 + offsets, y0 + offsets)
        return float((self.labels(gx, gy) == 1).mean())

    def render(self, x0: float, y0: float, width: int, height: int, downsample: float) -> np.ndarray:
        """RGB [height, width, 3] of the region whose top-left is level-0 (x0, y0), at `downsample`.
        Labels are evaluated every ~8 level-0 px (blocky edges at that scale keep writing fast)."""
        step = max(1, int(8 // downsample))
        xs = x0 + (np.arange(0, width, step) + step / 2) * downsample
        ys = y0 + (np.arange(0, height, step) + step / 2) * downsample
        labels = self._labels_grid(xs, ys)
        if step > 1:
            labels = np.repeat(np.repeat(labels, step, axis=0), step, axis=1)[:height, :width]
        full_x = x0 + (np.arange(width) + 0.5) * downsample
        full_y = y0 + (np.arange(height) + 0.5) * downsample
        return _colorize(labels, full_x, full_y)

    def _labels_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """labels() on the grid xs x ys, evaluating each blob only inside its bounding box."""
        out = np.zeros((len(ys), len(xs)), np.uint8)
        shapes = [(blob.cx, blob.cy, 1.2 * max(blob.rx, blob.ry), blob.label) for blob in self.blobs]
        shapes += [(dx, dy, radius, _disc(dx, dy, radius)) for dx, dy, radius in self.debris]
        for value, (cx, cy, reach, inside) in zip([1] * len(self.blobs) + [2] * len(self.debris), shapes):
            cols = np.nonzero(np.abs(xs - cx) < reach)[0]
            rows = np.nonzero(np.abs(ys - cy) < reach)[0]
            if len(cols) and len(rows):
                gx, gy = np.meshgrid(xs[cols], ys[rows])
                block = out[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
                block[inside(gx, gy)] = value
        return out


def _disc(cx: float, cy: float, radius: float):
    return lambda x, y: (x - cx) ** 2 + (y - cy) ** 2 < radius * radius


def _colorize(labels: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Colour a label grid; `xs`/`ys` are the level-0 coordinates of its columns/rows (texture frame)."""
    shade = np.outer(np.cos(ys / 57.0), 12 * np.sin(xs / 41.0)).astype(np.float32)
    rgb = np.empty(labels.shape + (3,), np.uint8)
    rgb[:] = BACKGROUND_RGB
    tissue = labels == 1
    if tissue.any():
        rgb[tissue] = np.clip(np.asarray(TISSUE_RGB, np.float32) + shade[tissue][:, None], 0, 255).astype(np.uint8)
    rgb[labels == 2] = DEBRIS_RGB
    return rgb


def default_blobs(width: int, height: int, seed: int = 0, count: int = 3, hole: bool = True) -> list[Blob]:
    """`count` blobs well inside the image; the first gets a hole when `hole`."""
    rng = np.random.default_rng(seed)
    side = min(width, height)
    blobs = []
    anchors = [(0.3, 0.3), (0.7, 0.35), (0.45, 0.72), (0.75, 0.75), (0.2, 0.7), (0.55, 0.15)]
    for index in range(count):
        ax, ay = anchors[index % len(anchors)]
        rx, ry = side * rng.uniform(0.11, 0.15), side * rng.uniform(0.09, 0.13)
        blobs.append(Blob(cx=ax * width, cy=ay * height, rx=rx, ry=ry, angle=float(rng.uniform(0, math.pi)),
                          phase=float(rng.uniform(0, 2 * math.pi)),
                          hole_scale=0.35 if (hole and index == 0) else 0.0))
    return blobs


def default_debris(width: int, height: int, mpp: float | None, seed: int = 0, count: int = 4):
    """Specks of ~8 um radius in empty corners (smaller than any tissue area threshold)."""
    rng = np.random.default_rng(seed + 1)
    radius = 8.0 / (mpp or 0.5)
    corners = [(0.06, 0.06), (0.94, 0.06), (0.06, 0.94), (0.94, 0.94)]
    return [(cx * width + rng.uniform(-2, 2) * radius, cy * height + rng.uniform(-2, 2) * radius, radius)
            for cx, cy in corners[:count]]


def aperio_description(width: int, height: int, mpp: float | None, app_mag: float | None) -> str:
    header = f"Aperio Image Library v12.0.0 \n{width}x{height} [0,0 {width}x{height}] ({TILE_PX}x{TILE_PX}) JPEG/RGB Q=80"
    fields = [header]
    if app_mag:
        fields.append(f"AppMag = {app_mag:g}")
    if mpp:
        fields.append(f"MPP = {mpp:g}")
    return "|".join(fields)


def _level_shape(width: int, height: int, downsample: int) -> tuple[int, int]:
    return max(1, width // downsample), max(1, height // downsample)


def _make_slide(path, width, height, mpp, downsamples, blobs, seed, debris) -> SyntheticSlide:
    blobs = default_blobs(width, height, seed) if blobs is None else list(blobs)
    debris = default_debris(width, height, mpp, seed) if debris is None else list(debris)
    return SyntheticSlide(Path(path), width, height, mpp, tuple(downsamples), blobs, debris)


def write_aperio_slide(path, width: int = 4096, height: int = 4096, mpp: float | None = 0.5,
                       app_mag: float | None = None, downsamples=(1, 4), blobs=None, debris=None,
                       seed: int = 0, quality: int = 80) -> SyntheticSlide:
    """A multi-level JPEG TIFF that OpenSlide opens as "aperio". `mpp=None` writes no MPP field;
    `app_mag` defaults to 10 / mpp (40 for 0.25 um/px)."""
    import tifffile

    slide = _make_slide(path, width, height, mpp, downsamples, blobs, seed, debris)
    if app_mag is None and mpp:
        app_mag = round(10.0 / mpp, 3)
    with tifffile.TiffWriter(slide.path, bigtiff=False) as tif:
        for index, downsample in enumerate(slide.downsamples):
            level_w, level_h = _level_shape(width, height, downsample)
            pixels = slide.render(0, 0, level_w, level_h, downsample)
            tif.write(pixels, tile=(TILE_PX, TILE_PX), compression="jpeg", compressionargs={"level": quality},
                      photometric="rgb", metadata=None,
                      description=aperio_description(width, height, mpp, app_mag) if index == 0 else "")
    return slide


def write_generic_tiff(path, width: int = 2048, height: int = 2048, mpp: float | None = 0.5,
                       downsamples=(1, 4), blobs=None, debris=None, seed: int = 0, tiled: bool = True
                       ) -> SyntheticSlide:
    """A tiled pyramidal TIFF without vendor metadata ("generic-tiff"); MPP only via the resolution tag
    (pixels per centimetre) when `mpp` is given. `tiled=False` writes one stripped page (plain TIFF)."""
    import tifffile

    slide = _make_slide(path, width, height, mpp, downsamples if tiled else (1,), blobs, seed, debris)
    resolution = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"} if mpp else {}
    with tifffile.TiffWriter(slide.path) as tif:
        for index, downsample in enumerate(slide.downsamples):
            level_w, level_h = _level_shape(width, height, downsample)
            pixels = slide.render(0, 0, level_w, level_h, downsample)
            options = {"tile": (TILE_PX, TILE_PX), "compression": "jpeg"} if tiled else {"compression": "zlib"}
            # OpenSlide's generic-tiff reader takes further pages as levels only when marked reduced-resolution
            tif.write(pixels, photometric="rgb", metadata=None, subfiletype=1 if index else 0, **options,
                      **resolution)
    return slide


def write_plain_image(path, width: int = 2048, height: int = 2048, mpp: float | None = 0.5, blobs=None,
                      debris=None, seed: int = 0) -> SyntheticSlide:
    """PNG or JPEG by suffix; `mpp` becomes the image DPI (25400 / mpp) when given."""
    from PIL import Image

    slide = _make_slide(path, width, height, mpp, (1,), blobs, seed, debris)
    image = Image.fromarray(slide.render(0, 0, width, height, 1.0))
    options = {"dpi": (25_400.0 / mpp, 25_400.0 / mpp)} if mpp else {}
    if slide.path.suffix.lower() in {".jpg", ".jpeg"}:
        options["quality"] = 90
    image.save(slide.path, **options)
    return slide


def write_truncated_tiff(path, keep_fraction: float = 0.5, **slide_options) -> Path:
    """An Aperio slide cut after `keep_fraction` of its bytes (an interrupted copy)."""
    path = Path(path)
    write_aperio_slide(path, **slide_options)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def write_corrupt_tiff(path, size: int = 8192, seed: int = 0) -> Path:
    """A valid little-endian TIFF signature followed by random bytes."""
    path = Path(path)
    path.write_bytes(b"II*\x00" + np.random.default_rng(seed).bytes(size))
    return path


def write_slide_with_corrupt_tile(path, tile_index: tuple[int, int] | None = None, **slide_options
                                  ) -> tuple[SyntheticSlide, tuple[int, int]]:
    """An Aperio slide that opens fine but whose level-0 tile `tile_index` (column, row) is garbage.
    Defaults to a tile inside the first blob. Returns the slide and that tile's level-0 (x, y)."""
    import tifffile

    slide = write_aperio_slide(path, **slide_options)
    if tile_index is None:
        blob = slide.blobs[0]
        tile_index = (int((blob.cx + 0.6 * blob.rx) // TILE_PX), int(blob.cy // TILE_PX))
    with tifffile.TiffFile(slide.path) as tif:
        page = tif.pages[0]
        columns = math.ceil(page.imagewidth / TILE_PX)
        index = tile_index[1] * columns + tile_index[0]
        offset, count = page.dataoffsets[index], page.databytecounts[index]
    with open(slide.path, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\x00" * 4 + np.random.default_rng(1).bytes(count - 4))
    return slide, (tile_index[0] * TILE_PX, tile_index[1] * TILE_PX)


def write_non_slide(path, text: str = "sample_id,diagnosis\nTCGA-00,carcinoma\n") -> Path:
    path = Path(path)
    path.write_text(text, encoding="utf-8")
    return path


def write_empty(path) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def _encode(tile: np.ndarray, quality: int) -> bytes:
    import imagecodecs

    # what tifffile itself does for JPEG + photometric RGB: YCbCr, 2x2 subsampling
    return imagecodecs.jpeg_encode(tile, level=quality, colorspace="RGB", outcolorspace="YCBCR",
                                   subsampling=(2, 2))


def write_large_sparse_aperio(path, width: int = 60_000, height: int = 60_000, mpp: float = 0.25,
                              downsamples=(1, 4, 16, 64), seed: int = 0, quality: int = 80, blob_count: int = 5
                              ) -> SyntheticSlide:
    """A benchmark-size Aperio slide written fast: every tile is classified on a 16x16 sample grid;
    all-background and all-tissue tiles reuse pre-encoded JPEG bytes, only boundary tiles are rendered.
    A 60,000 px square slide takes well under a minute and ~100 MB."""
    import tifffile

    slide = _make_slide(path, width, height, mpp, downsamples, None if blob_count == 3 else
                        default_blobs(width, height, seed, blob_count), seed, None)
    white = _encode(np.full((TILE_PX, TILE_PX, 3), BACKGROUND_RGB, np.uint8), quality)
    samples = (np.arange(16) + 0.5) * TILE_PX / 16

    def level_tiles(downsample: int, level_w: int, level_h: int):
        tissue_bytes: dict[tuple[int, int], bytes] = {}
        for ty in range(math.ceil(level_h / TILE_PX)):
            y0 = ty * TILE_PX
            columns = math.ceil(level_w / TILE_PX)
            sx = (np.arange(columns)[:, None] * TILE_PX + samples[None, :]).ravel() * downsample
            sy = (y0 + samples) * downsample
            gx, gy = np.meshgrid(sx, sy)                                      # [16, columns * 16]
            labels = slide.labels(gx, gy).reshape(16, columns, 16).transpose(1, 0, 2).reshape(columns, -1)
            for tx in range(columns):
                row = labels[tx]
                if not row.any():
                    yield white
                elif (row == 1).all():
                    key = (tx % 4, ty % 4)             # a few texture variants, reused
                    if key not in tissue_bytes:
                        x0, yy0 = tx * TILE_PX * downsample, y0 * downsample
                        tissue_bytes[key] = _encode(_colorize(np.ones((TILE_PX, TILE_PX), np.uint8),
                                                              x0 + np.arange(TILE_PX) * downsample,
                                                              yy0 + np.arange(TILE_PX) * downsample), quality)
                    yield tissue_bytes[key]
                else:
                    yield _encode(slide.render(tx * TILE_PX * downsample, y0 * downsample, TILE_PX, TILE_PX,
                                               downsample), quality)

    slide.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = slide.path.with_name(f".{slide.path.name}.tmp-{os.getpid()}")
    try:
        with tifffile.TiffWriter(tmp, bigtiff=False) as tif:
            for index, downsample in enumerate(slide.downsamples):
                level_w, level_h = _level_shape(width, height, downsample)
                tif.write(level_tiles(downsample, level_w, level_h), shape=(level_h, level_w, 3), dtype=np.uint8,
                          tile=(TILE_PX, TILE_PX), compression="jpeg", photometric="rgb", metadata=None,
                          description=aperio_description(width, height, mpp, round(10.0 / mpp, 3))
                          if index == 0 else "")
        os.replace(tmp, slide.path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return slide
