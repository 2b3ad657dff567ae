"""Tissue detection + tiling time for a large synthetic slide (default 60,000 x 60,000 px at 0.25 um/px).
JSON on stdout.

The slide is an Aperio-style JPEG TIFF with levels 1/4/16/64 and a few tissue blobs, generated once
with pre-encoded tiles (tests/helpers/synthetic_slides.py: `write_large_sparse_aperio`, well under a
minute) into --workdir (default: $TMPDIR/wsi-llava-bench, outside the repository) and reused.

Measured (best and median of --repeats): `open_slide` + `tile_slide` at 0.5 um/px / 256 px, split into
opening, tissue detection and grid + tissue-fraction filtering. Every `read_region` call is counted by
pyramid level to show that only the low-resolution level is read (no level-0 pixel is decoded); the
target is under 5 s on 2 cores.

Run: `python benchmarks/slide_tiling.py [--size 60000 --mpp 0.25 --repeats 3 --workdir DIR]`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=60_000, help="slide width = height in level-0 px")
    parser.add_argument("--mpp", type=float, default=0.25, help="level-0 um/px of the synthetic slide")
    parser.add_argument("--target-mpp", type=float, default=0.5)
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "wsi-llava-bench")
    args = parser.parse_args()

    from modeling.slide import reader
    from modeling.slide.tiling import TilingConfig, tile_slide
    from modeling.slide.tissue import detect_tissue
    from tests.helpers.synthetic_slides import write_large_sparse_aperio

    path = args.workdir / f"synthetic-{args.size}px-{args.mpp:g}mpp-v1.svs"
    generation_s = None
    if not path.is_file():
        args.workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_large_sparse_aperio(path, args.size, args.size, mpp=args.mpp)
        generation_s = round(time.perf_counter() - started, 2)

    reads: Counter = Counter()
    pixels: Counter = Counter()
    original = reader.Slide.read_region_array

    def counting(self, xy_level0, level, size_px):
        reads[int(level)] += 1
        pixels[int(level)] += int(size_px[0]) * int(size_px[1])
        return original(self, xy_level0, level, size_px)

    reader.Slide.read_region_array = counting
    config = TilingConfig(target_mpp=args.target_mpp, tile_size_px=args.tile_size)
    runs = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        slide = reader.open_slide(path)
        t1 = time.perf_counter()
        detect_tissue(slide, config.tissue)
        t2 = time.perf_counter()
        slide.close()
        reads.clear()
        pixels.clear()
        t3 = time.perf_counter()
        with reader.open_slide(path) as again:
            result = tile_slide(again, config=config)                 # the public path: tissue + grid
        t4 = time.perf_counter()
        runs.append({"open_s": t1 - t0, "tissue_s": t2 - t1, "open_tissue_grid_s": t4 - t3,
                     "reads_by_level": dict(reads), "megapixels_by_level": {k: v / 1e6 for k, v in pixels.items()}})
    reader.Slide.read_region_array = original

    totals = [run["open_tissue_grid_s"] for run in runs]
    with reader.open_slide(path) as slide:
        levels = [{"level": i, "dimensions": list(d), "downsample": round(ds, 3), "mpp": round(slide.mpp * ds, 4)}
                  for i, (d, ds) in enumerate(zip(slide.level_dimensions, slide.level_downsamples))]
    print(json.dumps({
        "benchmark": "slide_tiling",
        "slide": {"path": str(path), "size_px": [args.size, args.size], "mpp": args.mpp,
                  "file_mb": round(path.stat().st_size / 1e6, 1), "levels": levels,
                  "generation_s": generation_s if generation_s is not None else "cached"},
        "settings": {"target_mpp": args.target_mpp, "tile_size_px": args.tile_size,
                     "mask_mpp": config.tissue.mask_mpp, "min_tissue_fraction": config.min_tissue_fraction},
        "result": {"tiles_kept": len(result), "grid_size": result.grid_size,
                   "patch_size_level0": result.patch_size_level0, "tile_read_level": result.read_plan.level,
                   "tissue_area_mm2": round(result.tissue.tissue_area_mm2, 2),
                   "tissue_view_px": list(result.tissue.mask.shape[::-1]),
                   "tissue_view_downsample": round(result.tissue.downsample, 3)},
        "seconds": {"open_plus_tissue_plus_grid_best": round(min(totals), 3),
                    "open_plus_tissue_plus_grid_median": round(statistics.median(totals), 3),
                    "open_best": round(min(r["open_s"] for r in runs), 3),
                    "tissue_best": round(min(r["tissue_s"] for r in runs), 3)},
        "pixels_read_last_run": {"reads_by_level": runs[-1]["reads_by_level"],
                                 "megapixels_by_level": {k: round(v, 2)
                                                         for k, v in runs[-1]["megapixels_by_level"].items()},
                                 "level0_megapixels_in_slide": round(args.size * args.size / 1e6)},
        "target_s": 5.0,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }, indent=2))


if __name__ == "__main__":
    main()
