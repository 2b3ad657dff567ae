"""Tissue + tiling speed on three synthetic 40x slide shapes, in-process and as the whole `wsi-llava tile`
command, optionally side by side with CLAM's `create_patches_fp.py`. JSON on stdout.

Shapes (0.25 um/px Aperio JPEG TIFFs with five tissue pieces, written once into --workdir, default
$TMPDIR/wsi-llava-bench, by tests/helpers/synthetic_slides.py `write_large_sparse_aperio`):
  24k        24,576 x 20,480, levels 1/4/16/64
  65k        65,536 x 65,536, levels 1/4/16/64
  two-level  40,000 x 30,000, levels 1/4 only (the 1 um/px level is the coarsest)

Measured per shape:
- in-process, warm (imports done): `open_slide` + `tile_slide` with the defaults, and with the former
  defaults (4 um/px mask, OpenSlide-only view) for comparison; medians of --repeats; which level the
  tissue view came from and how (JPEG tiles decoded at 1/r, or OpenSlide regions); the tiles both kept.
- whole command: `python wsi_llava_cli.py tile SLIDE --out TMP --overwrite` in a fresh process each run
  (start-up, imports and every output file included), wall and CPU seconds, median of --runs after one
  warm-up run. With `--peer-clam DIR` (a CLAM checkout you provide, https://github.com/mahmoodlab/CLAM;
  nothing of it is part of this project) its `create_patches_fp.py --seg --patch --stitch` runs on the same
  slide, interleaved with ours run by run (ours, CLAM, ours, CLAM, ...), and the ratio ours/CLAM is taken
  pair by pair; the JSON says what each side computes and writes. CLAM needs openslide, opencv, h5py,
  pandas, matplotlib: give its interpreter with --peer-clam-python if this one lacks them.

Run: `python benchmarks/slide_tiling.py [--shapes 24k 65k two-level] [--runs 5] [--repeats 5]
      [--peer-clam ~/src/CLAM --peer-clam-python ~/venvs/clam/bin/python] [--workdir DIR]`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPES = {"24k": ((24_576, 20_480), (1, 4, 16, 64)), "65k": ((65_536, 65_536), (1, 4, 16, 64)),
          "two-level": ((40_000, 30_000), (1, 4))}
MPP = 0.25
SLIDE_VERSION = "v2"               # bump when the synthetic slide writer changes


def make_slide(workdir: Path, shape: str) -> tuple[Path, float | None]:
    from tests.helpers.synthetic_slides import write_large_sparse_aperio

    (width, height), downsamples = SHAPES[shape]
    folder = workdir / f"{shape}-{SLIDE_VERSION}"                 # one slide per folder: CLAM takes folders
    path = folder / f"{shape}.svs"
    if path.is_file():
        return path, None
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    write_large_sparse_aperio(path, width, height, mpp=MPP, downsamples=downsamples)
    return path, round(time.perf_counter() - started, 2)


def in_process(path: Path, repeats: int) -> dict:
    from modeling.slide import views
    from modeling.slide.reader import open_slide
    from modeling.slide.tiling import TilingConfig, tile_slide
    from modeling.slide.tissue import TissueConfig

    configs = {"default": TilingConfig(),
               "former_default": TilingConfig(tissue=TissueConfig(mask_mpp=4.0, direct_jpeg=False))}
    out: dict = {}
    for name, config in configs.items():
        calls: list[str] = []
        direct, chunks = views.read_view_direct, views.read_view_chunks

        def spy_direct(backend, plan, _direct=direct, calls=calls):
            view = _direct(backend, plan)
            calls.append(f"level {plan.level} from its JPEG tiles at 1/{plan.reduction}" if view is not None
                         else f"level {plan.level}: direct path declined")
            return view

        def spy_chunks(read, plan, *args, _chunks=chunks, calls=calls):
            calls.append(f"level {plan.level} through OpenSlide regions")
            return _chunks(read, plan, *args)

        views.read_view_direct, views.read_view_chunks = spy_direct, spy_chunks
        try:
            seconds = []
            for _ in range(repeats + 1):                           # the first run warms caches and imports
                started = time.perf_counter()
                with open_slide(path) as slide:
                    result = tile_slide(slide, config=config)
                seconds.append(time.perf_counter() - started)
        finally:
            views.read_view_direct, views.read_view_chunks = direct, chunks
        out[name] = {"seconds_median": round(statistics.median(seconds[1:]), 4),
                     "seconds_min": round(min(seconds[1:]), 4), "tiles_kept": len(result),
                     "mask_px": list(result.tissue.mask.shape[::-1]), "mask_mpp": round(result.tissue.mask_mpp, 3),
                     "view_read": calls[-1] if calls else None,
                     "coords": {tuple(xy) for xy in result.coords_level0.tolist()}}
    kept, before = out["default"].pop("coords"), out["former_default"].pop("coords")
    out["tiles_vs_former_default"] = {"same": len(kept & before), "lost": len(before - kept),
                                      "gained": len(kept - before)}
    return out


def _timed(command: list[str], cwd: Path | None = None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def whole_commands(path: Path, runs: int, clam: dict | None) -> dict:
    out_root = Path(tempfile.mkdtemp(prefix="wsi-llava-bench-out-"))
    ours = [sys.executable, str(REPO / "wsi_llava_cli.py"), "tile", str(path), "--out", str(out_root / "ours"),
            "--overwrite"]
    theirs = None
    if clam:
        theirs = [clam["python"], "create_patches_fp.py", "--source", str(path.parent), "--save_dir",
                  str(out_root / "clam"), "--patch_size", str(clam["patch_size"]), "--step_size",
                  str(clam["patch_size"]), "--seg", "--patch", "--stitch", "--no_auto_skip"]
    samples: dict[str, list[dict]] = {"ours": [], "clam": []}
    try:
        for index in range(runs + 1):                                   # run 0 is the warm-up, not counted
            a = _timed(ours)
            b = _timed(theirs, cwd=clam["dir"]) if theirs else None
            if index:
                samples["ours"].append(a)
                if b:
                    samples["clam"].append(b)
    finally:
        shutil.rmtree(out_root, ignore_errors=True)
    report = {"runs": runs, "ours": {key: _median([s[key] for s in samples["ours"]]) for key in ("wall_s", "cpu_s")}}
    if theirs:
        report["clam"] = {key: _median([s[key] for s in samples["clam"]]) for key in ("wall_s", "cpu_s")}
        report["ratio_ours_over_clam"] = {
            key: _median([a[key] / b[key] for a, b in zip(samples["ours"], samples["clam"])])
            for key in ("wall_s", "cpu_s")}
    return report


WHAT_OURS_DOES = ("open the slide; tissue mask (Otsu on HSV saturation, median blur, closing/opening, contour "
                  "tree with area filters) on an 8 um/px view decoded from the JPEG tiles; tile grid of 256 px at "
                  "0.5 um/px (512 level-0 px here) kept at >= 10% tissue; writes the coords h5, QuPath GeoJSON "
                  "contours, a 1-bit mask PNG, a JPEG overview with contours and tiles, summary.json")


def what_clam_does(patch_size: int) -> str:
    return (f"create_patches_fp.py --seg --patch --stitch with its built-in defaults (no preset): segmentTissue "
            "at the level nearest a 64x downsample (median blur 7, fixed saturation threshold 8, closing 4, area "
            f"filters), coordinates of {patch_size} px level-0 patches on a {patch_size} px grid inside the "
            "contours (four-point test, multiprocessing pool); writes the coords h5, a mask JPEG and a stitch "
            "JPEG at ~64x, process_list_autogen.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    parser.add_argument("--runs", type=int, default=5, help="whole-command runs per side (after one warm-up)")
    parser.add_argument("--repeats", type=int, default=5, help="in-process repeats (after one warm-up)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "wsi-llava-bench")
    parser.add_argument("--peer-clam", type=Path, metavar="DIR", help="a CLAM checkout to time side by side")
    parser.add_argument("--peer-clam-python", default=sys.executable, help="the interpreter CLAM runs with")
    parser.add_argument("--peer-clam-patch-size", type=int, default=256,
                        help="CLAM --patch_size/--step_size in level-0 px (default 256, its own default)")
    parser.add_argument("--skip-commands", action="store_true", help="in-process figures only")
    args = parser.parse_args()
    clam = None
    if args.peer_clam:
        if not (args.peer_clam / "create_patches_fp.py").is_file():
            raise SystemExit(f"--peer-clam {args.peer_clam}: no create_patches_fp.py there (give a CLAM checkout).")
        clam = {"dir": args.peer_clam.resolve(), "python": args.peer_clam_python,
                "patch_size": args.peer_clam_patch_size}

    results = {}
    for shape in args.shapes:
        path, generation_s = make_slide(args.workdir, shape)
        (width, height), downsamples = SHAPES[shape]
        entry = {"slide": {"path": str(path), "size_px": [width, height], "level_downsamples": list(downsamples),
                           "mpp": MPP, "file_mb": round(path.stat().st_size / 1e6, 1),
                           "generation_s": generation_s if generation_s is not None else "cached"},
                 "in_process": in_process(path, args.repeats)}
        if not args.skip_commands:
            entry["whole_command"] = whole_commands(path, args.runs, clam)
        results[shape] = entry
        print(f"{shape}: done", file=sys.stderr, flush=True)

    print(json.dumps({
        "benchmark": "slide_tiling",
        "ours": {"command": "wsi-llava tile SLIDE --out DIR --overwrite (defaults: 256 px at 0.5 um/px)",
                 "does": WHAT_OURS_DOES},
        "clam": None if clam is None else {
            "checkout": str(clam["dir"]), "python": clam["python"], "does": what_clam_does(clam["patch_size"]),
            "command": f"create_patches_fp.py --source DIR --save_dir OUT --patch_size {clam['patch_size']} "
                       f"--step_size {clam['patch_size']} --seg --patch --stitch --no_auto_skip"},
        "timing": "whole commands: fresh process per run, wall = perf_counter around the child, cpu = the child's "
                  "user + system (getrusage); medians; runs interleaved ours/CLAM, ratios per pair",
        "shapes": results,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
    }, indent=2))


if __name__ == "__main__":
    main()
