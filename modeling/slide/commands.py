"""The `wsi-llava tile` and `wsi-llava features` commands (registered in wsi_llava_cli.py).

    wsi-llava tile SLIDE_OR_DIR... --out DIR [--target-mpp 0.5] [--tile-size 256] [--mpp-csv F] [--skip-errors]
    wsi-llava features SLIDE_OR_DIR... --out DIR --encoder NAME [--coords DIR] [--batch-size N] [--workers N]

`tile` writes per slide (TRIDENT layout): DIR/patches/<id>_patches.h5 (written last: it marks the slide
done), DIR/contours_geojson/<id>.geojson, DIR/masks/<id>.png (1-bit), DIR/thumbnails/<id>.jpg.
`features` writes DIR/<id>.h5. Both write DIR/summary.json, skip slides whose outputs exist (resume),
and split the slides across processes with --shard i/n, torchrun/accelerate's RANK/WORLD_SIZE or a SLURM
job array (`sbatch --array=0-7 ...`, see common/shards.py).
Run `wsi-llava tile --help` / `wsi-llava features --help` for every option; exit codes are in batch.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path

from common.atomic import remove_stale_temps
from modeling.slide.batch import (
    EXIT_FAILED,
    EXIT_USAGE,
    Done,
    Skipped,
    SummaryWriter,
    UsageError,
    resolve_shard,
    run_batch,
)
from modeling.slide.config import TISSUE_METHODS, TilingConfig, TissueConfig
from modeling.slide.errors import CoordsFileError, NoTissueError, SlideError
from modeling.slide.files import SlideInput, discover_slides
from modeling.slide.mpp import MppOverrides


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="SLIDE_OR_DIR",
                        help="slide files, DICOM folders, or folders of slides")
    parser.add_argument("--out", required=True, type=Path, help="output folder (summary.json goes here)")
    parser.add_argument("--recursive", action="store_true", help="search input folders recursively")
    parser.add_argument("--target-mpp", type=float, default=0.5, help="tile resolution in um/px (default 0.5 = 20x)")
    parser.add_argument("--tile-size", type=int, default=256, help="tile side in px at --target-mpp (default 256)")
    parser.add_argument("--overlap", type=int, default=0, help="tile overlap in px at --target-mpp (default 0)")
    parser.add_argument("--min-tissue-fraction", type=float, default=0.1,
                        help="keep tiles with at least this fraction on tissue (default 0.1)")
    parser.add_argument("--tissue-method", choices=TISSUE_METHODS, default="saturation",
                        help="Otsu on HSV saturation (default, stained slides) or on darkness")
    parser.add_argument("--mask-mpp", type=float, default=TissueConfig.mask_mpp,
                        help=f"resolution of the tissue mask (default {TissueConfig.mask_mpp:g} um/px; slides "
                        f"under {TissueConfig.min_mask_px} px at it get {TissueConfig.small_slide_mask_mpp:g} um/px; "
                        "--mask-mpp 4 is the former default: 4x the pixels for nearly the same tiles)")
    parser.add_argument("--openslide-view", action="store_true",
                        help="decode the tissue view through OpenSlide only, not straight from the slide's JPEG "
                        "tiles (slower; with --mask-mpp 4 the former default exactly)")
    parser.add_argument("--min-tissue-area", type=float, default=0.02, metavar="MM2",
                        help="drop tissue pieces smaller than this, in mm^2 (default 0.02)")
    parser.add_argument("--mpp", type=float, help="level-0 um/px for every slide (overrides metadata)")
    parser.add_argument("--mpp-csv", type=Path, help="CSV `slide,mpp` of per-slide level-0 um/px overrides")
    parser.add_argument("--mpp-from-objective", action="store_true",
                        help="when a slide has no MPP, use 10 / objective power (40x -> 0.25)")
    parser.add_argument("--skip-errors", action="store_true",
                        help="continue past failed slides (they are reported in summary.json; exit code 3)")
    parser.add_argument("--overwrite", action="store_true", help="redo slides whose outputs already exist")
    parser.add_argument("--shard", metavar="I/N", help="process slides I, I+N, ... (0-based); default: "
                        "RANK/WORLD_SIZE from torchrun/accelerate and/or a SLURM job array (--array=0-N-1, "
                        "optionally :step; SLURM_ARRAY_TASK_ID/_COUNT/_MIN/_STEP), else all")


def _tiling_config(args) -> TilingConfig:
    tissue = TissueConfig(method=args.tissue_method, mask_mpp=args.mask_mpp,
                          max_mask_mpp=max(args.mask_mpp, TissueConfig.max_mask_mpp),
                          direct_jpeg=not args.openslide_view,
                          min_tissue_area_mm2=args.min_tissue_area)
    return TilingConfig(target_mpp=args.target_mpp, tile_size_px=args.tile_size, overlap_px=args.overlap,
                        min_tissue_fraction=args.min_tissue_fraction, tissue=tissue)


def _tiling_settings(args, config: TilingConfig) -> dict:
    return {"target_mpp": config.target_mpp, "tile_size_px": config.tile_size_px, "overlap_px": config.overlap_px,
            "min_tissue_fraction": config.min_tissue_fraction, "tissue": asdict(config.tissue),
            "mpp": args.mpp, "mpp_csv": str(args.mpp_csv) if args.mpp_csv else None,
            "mpp_from_objective": args.mpp_from_objective, "inputs": [str(p) for p in args.inputs]}


def _prepare(args, command: str, settings: dict) -> tuple[list[SlideInput], SummaryWriter, MppOverrides]:
    """Shard, overrides, slide list and summary writer; raises UsageError / SlideError for bad input."""
    shard = resolve_shard(args.shard)
    overrides = MppOverrides.from_flags(args.mpp, args.mpp_csv, args.mpp_from_objective)
    discovery = discover_slides(args.inputs, recursive=args.recursive, exclude=[args.out])
    if not discovery.slides:
        raise UsageError(f"no slides found in {', '.join(map(str, args.inputs))} (looked for slide files and DICOM "
                         "folders; use --recursive for nested folders).")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = SummaryWriter(args.out, command, {**settings, "shard_source": shard.source}, shard)
    summary.ignored = discovery.ignored
    return shard.select(discovery.slides), summary, overrides


def _run(command: str, parser: argparse.ArgumentParser, argv, body) -> int:
    args = parser.parse_args(argv)
    try:
        return body(args)
    except UsageError as exc:
        print(f"wsi-llava {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SlideError, ValueError) as exc:          # bad flags (--mpp-csv, config values) before any slide ran
        print(f"wsi-llava {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


# --- tile ---------------------------------------------------------------------------------------------

def tile_outputs(out_dir: Path, slide_id: str) -> dict[str, Path]:
    return {"coords": out_dir / "patches" / f"{slide_id}_patches.h5",
            "geojson": out_dir / "contours_geojson" / f"{slide_id}.geojson",
            "mask": out_dir / "masks" / f"{slide_id}.png",
            "thumbnail": out_dir / "thumbnails" / f"{slide_id}.jpg"}


def _relative(paths: dict[str, Path], out_dir: Path) -> dict[str, str]:
    return {name: str(path.relative_to(out_dir)) for name, path in paths.items() if path.exists()}


def _check_same(path: Path, existing: dict, wanted: dict) -> None:
    different = {k: (existing.get(k), v) for k, v in wanted.items()
                 if existing.get(k) is not None and existing.get(k) != v}
    if different:
        detail = ", ".join(f"{k} {old!r} vs {new!r}" for k, (old, new) in different.items())
        raise CoordsFileError(f"{path} exists but was made with other settings ({detail}); use --overwrite or "
                              "another --out.")


def _tile_one(item: SlideInput, args, config: TilingConfig, overrides: MppOverrides) -> Done:
    from modeling.slide.coords_h5 import read_coords_h5, write_tiling_h5
    from modeling.slide.thumbnail import write_overview
    from modeling.slide.tiling import tile_slide
    from modeling.slide.tissue import write_geojson, write_mask_png

    paths = tile_outputs(args.out, item.slide_id)
    if paths["coords"].exists() and not args.overwrite:
        existing = read_coords_h5(paths["coords"])
        _check_same(paths["coords"], existing.attrs, {
            "target_mpp": config.target_mpp, "patch_size": config.tile_size_px, "overlap": config.overlap_px,
            "min_tissue_fraction": config.min_tissue_fraction, "tissue_method": config.tissue.method_name})
        raise Skipped("outputs already exist", len(existing), _relative(paths, args.out))
    for path in paths.values():
        remove_stale_temps(path)
    result = tile_slide(item.path, config=config, overrides=overrides)
    write_geojson(result.tissue, paths["geojson"], item.slide_id)
    write_mask_png(result.tissue, paths["mask"])
    write_overview(result, paths["thumbnail"])
    if len(result) == 0:
        raise NoTissueError(f"{item.path}: no tile has >= {config.min_tissue_fraction:g} tissue (tissue area "
                            f"{result.tissue.tissue_area_mm2:.3f} mm^2); see {paths['thumbnail']}. Lower "
                            "--min-tissue-fraction / --min-tissue-area or try --tissue-method luminance.")
    write_tiling_h5(paths["coords"], result)                     # last: its presence marks the slide done
    warnings = []
    if result.upsample_factor > 1.0:
        warnings.append(f"tiles are upsampled {result.upsample_factor:.2f}x (level 0 is {result.level0_mpp:g} um/px)")
    return Done(len(result), _relative(paths, args.out), warnings)


def _without_blas_threads() -> None:
    """`wsi-llava tile` does no linear algebra, but OpenBLAS (loaded with numpy) starts a thread per core that
    spins for ~0.1 s: a third of the command's CPU time on 2 cores. One thread, unless the user chose (only
    before numpy is imported: afterwards the threads exist; the features command keeps its BLAS threads)."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def tile_main(argv: list[str] | None = None) -> int:
    _without_blas_threads()
    parser = argparse.ArgumentParser(prog="wsi-llava tile", description=(
        "Find tissue and tile slides at a target resolution. Writes per slide a TRIDENT-compatible coords h5 "
        "(patches/), tissue contours as QuPath GeoJSON (contours_geojson/), the tissue mask (masks/) and a "
        "thumbnail with contours and tiles (thumbnails/), plus summary.json."))
    _common_arguments(parser)

    def body(args) -> int:
        config = _tiling_config(args)
        slides, summary, overrides = _prepare(args, "tile", _tiling_settings(args, config))
        return run_batch(slides, lambda item: _tile_one(item, args, config, overrides), summary,
                         skip_errors=args.skip_errors, command="tile")
    return _run("tile", parser, argv, body)


# --- features -----------------------------------------------------------------------------------------

def find_coords_file(coords_dir: Path, slide_id: str) -> Path:
    candidates = [coords_dir / "patches" / f"{slide_id}_patches.h5", coords_dir / f"{slide_id}_patches.h5",
                  coords_dir / f"{slide_id}.h5"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CoordsFileError(f"no coordinates file for slide {slide_id!r} in {coords_dir} (looked for "
                          f"{', '.join(str(c.relative_to(coords_dir)) for c in candidates)}); run `wsi-llava tile` "
                          "first or drop --coords to tile on the fly.")


def _existing_features(path: Path) -> tuple[dict, int]:
    """Root attributes and row count of an existing features h5 (without loading the features)."""
    import h5py

    from modeling.slide.coords_h5 import read_attrs

    try:
        with h5py.File(path, "r") as handle:
            return read_attrs(handle), int(handle["features"].shape[0])
    except (OSError, KeyError) as exc:
        raise CoordsFileError(f"{path} exists but cannot be read ({exc}); delete it or use --overwrite.") from exc


def _features_one(item: SlideInput, args, encoder, config: TilingConfig, overrides: MppOverrides, tile_bar) -> Done:
    from modeling.slide.features import extract_slide_features, write_features_h5

    out_path = args.out / f"{item.slide_id}.h5"
    if out_path.exists() and not args.overwrite:
        attrs, count = _existing_features(out_path)
        wanted = {"encoder": encoder.name}
        if not args.coords:
            wanted.update(target_mpp=config.target_mpp, patch_size=config.tile_size_px)
        _check_same(out_path, attrs, wanted)
        raise Skipped("outputs already exist", count, {"features": out_path.name})
    remove_stale_temps(out_path)
    coords = find_coords_file(args.coords, item.slide_id) if args.coords else None

    def progress(fraction: float, message: str) -> None:
        tile_bar.n = round(1000 * fraction)
        tile_bar.set_postfix_str(message, refresh=True)

    tile_bar.reset(total=1000)
    tile_bar.set_description(f"features: {item.slide_id[:30]}")
    result = extract_slide_features(item.path, encoder, coords, batch_size=args.batch_size,
                                    num_workers=args.workers, progress=progress, device=args.device,
                                    amp_dtype=args.amp_dtype, tiling=config, overrides=overrides)
    write_features_h5(out_path, result, features_dtype=args.dtype)
    return Done(len(result), {"features": out_path.name})


def features_main(argv: list[str] | None = None) -> int:
    from modeling.tile_encoders import TILE_ENCODERS

    parser = argparse.ArgumentParser(prog="wsi-llava features", description=(
        "Extract tile features with a registered tile encoder into DIR/<slide_id>.h5 (features [N, D], coords "
        "[N, 2] level-0, provenance attributes), plus summary.json. Tiles come from --coords (a `wsi-llava tile` "
        "output folder, or TRIDENT/CLAM coords h5 files) or are found on the fly with the tiling options."))
    _common_arguments(parser)
    parser.add_argument("--encoder", required=True, choices=sorted(TILE_ENCODERS), help="tile encoder")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of the encoder weights")
    parser.add_argument("--coords", type=Path, help="folder with coords h5 files (patches/<id>_patches.h5, "
                        "<id>_patches.h5 or <id>.h5); the tiling options are then not used")
    parser.add_argument("--batch-size", type=int, default=64, help="tiles per forward pass (default 64)")
    parser.add_argument("--workers", type=int, default=None, help="tile-reading worker processes "
                        "(default: CPU cores - 1, at most 8)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda:LOCAL_RANK when available, else cpu)")
    parser.add_argument("--amp-dtype", choices=("float16", "bfloat16", "none"), default="float16",
                        help="autocast dtype on CUDA (default float16)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="stored feature dtype (default float32)")

    def body(args) -> int:
        import torch
        from tqdm import tqdm

        from modeling.errors import ModelError
        from modeling.tile_encoders import load_tile_encoder

        if args.batch_size < 1 or (args.workers is not None and args.workers < 0):
            raise UsageError("--batch-size must be >= 1 and --workers >= 0.")
        if args.device and args.device.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError(f"--device {args.device}: no CUDA device is available here (use --device cpu).")
        config = _tiling_config(args)
        settings = {**_tiling_settings(args, config), "encoder": args.encoder, "revision": args.revision,
                    "coords": str(args.coords) if args.coords else None, "batch_size": args.batch_size,
                    "workers": args.workers, "device": args.device, "amp_dtype": args.amp_dtype, "dtype": args.dtype}
        slides, summary, overrides = _prepare(args, "features", settings)
        try:
            encoder = load_tile_encoder(args.encoder, revision=args.revision)
        except ModelError as exc:
            print(f"wsi-llava features: {exc}", file=sys.stderr)
            return EXIT_FAILED
        summary.settings["encoder_revision"] = encoder.revision
        summary.settings["encoder_trained"] = encoder.trained
        with tqdm(total=1000, position=1, leave=False, file=sys.stderr, disable=None, dynamic_ncols=True,
                  bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}") as tile_bar:
            return run_batch(slides, lambda item: _features_one(item, args, encoder, config, overrides, tile_bar),
                             summary, skip_errors=args.skip_errors, command="features")
    return _run("features", parser, argv, body)

