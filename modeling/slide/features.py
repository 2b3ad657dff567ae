"""Tile-feature extraction: read tiles in DataLoader workers while the encoder computes.

    from modeling.tile_encoders import load_tile_encoder
    encoder = load_tile_encoder("prov-gigapath")
    result = extract_slide_features("slide.svs", encoder, batch_size=128, num_workers=8)
    result.features        # torch.Tensor [N, D] float32
    result.coords_level0   # np.int64 [N, 2]
    result.attrs           # patch_size, patch_size_level0, target_mpp, level0_mpp, encoder, revision, ...
    write_features_h5("out/slide.h5", result)

`coords` may be None (tissue + tiling with the encoder's tile setting, default 256 px at 0.5 um/px), a
`TilingResult`, a `CoordsFile`, or the path of a coords h5 (ours, TRIDENT's or CLAM's).

Each worker opens its own slide handle (OpenSlide handles are not shared across processes), reads the
tile at the best pyramid level, resizes it to the tile size and applies the encoder's transform, so
the main process only moves batches to the device and runs the model (autocast on CUDA). Workers use
PIL and NumPy only: OpenCV's thread pool deadlocks in forked children once the parent has used it. A tile that
cannot be read stops the slide with a `SlideReadError` naming the tile; nothing is silently dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.shards import default_device
from modeling.slide.coords_h5 import CoordsFile, read_coords_h5
from modeling.slide.errors import CoordsFileError, MppError, NoTissueError, SlideError, SlideReadError
from modeling.slide.features_h5 import SlideFeatures, write_features_h5  # noqa: F401  (re-exported)
from modeling.slide.mpp import MppOverrides
from modeling.slide.provenance import software_version, utc_now
from modeling.slide.reader import Slide, SlideSpec, open_slide
from modeling.slide.tiling import ReadPlan, TilingConfig, TilingResult, plan_tile_reads, read_tile, tile_slide

Progress = Callable[[float, str], None]
AMP_DTYPES = ("float16", "bfloat16", "none")


def default_num_workers() -> int:
    """One core stays with the main process (batching, the model on CPU, CUDA launches); at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores - 1))


@dataclass(frozen=True)
class TileSet:
    """What to encode: level-0 corners, tile size at the target and at level 0, and their provenance."""

    coords_level0: np.ndarray        # [N, 2] int64
    patch_size: int                  # px at the target resolution
    patch_size_level0: int
    attrs: dict


class TileDataset:
    """Map-style dataset of transformed tiles: item -> (tensor [3, H, W], index, error message or "")."""

    def __init__(self, spec: SlideSpec, coords_level0: np.ndarray, plan: ReadPlan, tile_size_px: int, transform,
                 input_px: int, slide: Slide | None = None):
        self.spec, self.coords, self.plan, self.tile_size_px = spec, coords_level0, plan, tile_size_px
        self.transform, self.input_px = transform, input_px
        self._slide, self._pid = slide, os.getpid()

    def __len__(self) -> int:
        return len(self.coords)

    def _open(self) -> Slide:
        if self._slide is None or self._pid != os.getpid():   # forked worker: never reuse the parent's handle
            self._slide, self._pid = self.spec.open(), os.getpid()
        return self._slide

    def __getitem__(self, index: int):
        import torch

        try:
            tile = read_tile(self._open(), self.coords[index], self.plan, self.tile_size_px)
        except SlideError as exc:
            return torch.zeros(3, self.input_px, self.input_px), index, str(exc)
        return self.transform(tile), index, ""

    def __getstate__(self):                                     # spawn start method: reopen in the worker
        state = dict(self.__dict__)
        state["_slide"] = None
        return state


def _tile_set(slide: Slide, coords, encoder, tiling: TilingConfig | None, progress: Progress) -> TileSet:
    if coords is None:
        config = tiling or TilingConfig(target_mpp=encoder.spec.target_mpp, tile_size_px=encoder.spec.tile_size_px)
        coords = tile_slide(slide, config=config,
                            progress=lambda f, m: progress(0.05 * f, m))
    if isinstance(coords, (str, Path)):
        coords = read_coords_h5(coords, slide.level_downsamples)
    if isinstance(coords, TilingResult):
        if (coords.level0_width, coords.level0_height) != tuple(slide.dimensions):
            raise CoordsFileError(f"tiling of {coords.slide_path} ({coords.level0_width}x{coords.level0_height} px) "
                                  f"does not fit {slide.path} ({slide.dimensions[0]}x{slide.dimensions[1]} px).")
        attrs = coords.attrs()
        attrs["coords_source"] = "tiled in this run (tissue detection + grid)"
        return TileSet(coords.coords_level0, coords.tile_size_px, coords.patch_size_level0, attrs)
    if isinstance(coords, CoordsFile):
        attrs = {key: value for key, value in coords.attrs.items() if key not in {"format", "format_version"}}
        for key in ("level0_width", "level0_height"):
            if key in attrs and int(attrs[key]) != slide.dimensions[0 if key.endswith("width") else 1]:
                raise CoordsFileError(f"{coords.path}: made for a slide of {attrs.get('level0_width')}x"
                                      f"{attrs.get('level0_height')} px, but {slide.path} is {slide.dimensions[0]}x"
                                      f"{slide.dimensions[1]}; wrong coordinates file for this slide?")
        attrs.update(patch_size=coords.patch_size, patch_size_level0=coords.patch_size_level0,
                     coords_source=f"{coords.path} ({coords.layout})")
        return TileSet(coords.coords_level0, coords.patch_size, coords.patch_size_level0, attrs)
    raise TypeError(f"coords must be None, a TilingResult, a CoordsFile or a path, not {type(coords).__name__}")


def _resolution_attrs(slide: Slide, tiles: TileSet) -> dict:
    """target/level-0 MPP when the slide has one (CLAM/TRIDENT coords can be encoded without)."""
    try:
        level0_mpp = slide.mpp
    except MppError:
        return {}
    tile_mpp = tiles.patch_size_level0 * level0_mpp / tiles.patch_size
    return {"level0_mpp": level0_mpp, "mpp_source": slide.mpp_source,
            "target_mpp": float(tiles.attrs.get("target_mpp", tile_mpp)), "tile_mpp": tile_mpp,
            "target_magnification": tiles.attrs.get("target_magnification", round(10.0 / tile_mpp, 4))}


def extract_slide_features(slide_path_or_slide: str | Path | Slide, encoder, coords=None, *, batch_size: int = 64,
                           num_workers: int | None = None, progress: Progress | None = None,
                           device: str | None = None, amp_dtype: str = "float16",
                           tiling: TilingConfig | None = None, mpp_override: float | None = None,
                           mpp_from_objective: bool = False, overrides: MppOverrides | None = None
                           ) -> SlideFeatures:
    """Encode every tile of one slide with `encoder` (a `modeling.tile_encoders.TileEncoder`)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if amp_dtype not in AMP_DTYPES:
        raise ValueError(f"amp_dtype must be one of {AMP_DTYPES}, got {amp_dtype!r}")
    report = progress or (lambda fraction, message: None)
    if isinstance(slide_path_or_slide, Slide):
        if mpp_override is not None or mpp_from_objective or overrides is not None:
            raise ValueError("MPP options apply when opening a slide: pass them to open_slide, not with an open Slide")
        return _extract(slide_path_or_slide, encoder, coords, batch_size, num_workers, report, device, amp_dtype,
                        tiling)
    with open_slide(slide_path_or_slide, mpp_override=mpp_override, mpp_from_objective=mpp_from_objective,
                    overrides=overrides) as slide:
        return _extract(slide, encoder, coords, batch_size, num_workers, report, device, amp_dtype, tiling)


def _extract(slide: Slide, encoder, coords, batch_size: int, num_workers: int | None, report: Progress,
             device: str | None, amp_dtype: str, tiling: TilingConfig | None) -> SlideFeatures:
    import contextlib

    import torch
    from torch.utils.data import DataLoader

    tiles = _tile_set(slide, coords, encoder, tiling, report)
    count = len(tiles.coords_level0)
    if count == 0:
        raise NoTissueError(f"{slide.path}: no tiles to encode (no tissue found, or an empty coordinates file).")
    plan = plan_tile_reads(slide, tiles.patch_size_level0, tiles.patch_size)
    workers = default_num_workers() if num_workers is None else num_workers
    device_obj = torch.device(device or default_device())
    encoder.model.to(device_obj)
    input_px = encoder.spec.transform.input_px
    dataset = TileDataset(slide.spec(), tiles.coords_level0, plan, tiles.patch_size, encoder.transform, input_px,
                          slide=slide)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device_obj.type == "cuda", prefetch_factor=2 if workers else None)
    use_amp = device_obj.type == "cuda" and amp_dtype != "none"
    autocast = (torch.autocast("cuda", dtype=getattr(torch, amp_dtype)) if use_amp else contextlib.nullcontext())
    # kept on the device until the end: no host sync per batch, so the GPU never waits for a copy
    features = torch.empty((count, encoder.feature_dim), dtype=torch.float32, device=device_obj)   # [N, D]
    done = 0
    report(0.05, f"encoding {count} tiles")
    with torch.inference_mode(), autocast:
        for batch, indices, errors in loader:                                   # batch: [B, 3, H, W]
            failed = [message for message in errors if message]
            if failed:
                raise SlideReadError(f"{failed[0]} ({len(failed)} of {len(errors)} tiles in this batch are "
                                     "unreadable; the slide was not encoded).")
            output = encoder.model(batch.to(device_obj, non_blocking=True))    # [B, D]
            if output.ndim != 2 or output.shape[1] != encoder.feature_dim:
                raise SlideError(f"encoder {encoder.name!r} returned shape {tuple(output.shape)}, expected "
                                 f"[B, {encoder.feature_dim}]")
            features[indices.to(device_obj)] = output.float()
            done += len(indices)
            report(0.05 + 0.95 * done / count, f"{done}/{count} tiles")
    attrs = {**tiles.attrs, **_resolution_attrs(slide, tiles), **encoder.metadata(),
             "transform": json.dumps(encoder.spec.transform.to_dict()),
             "patch_size": int(tiles.patch_size), "patch_size_level0": int(tiles.patch_size_level0),
             "read_level": plan.level, "read_size_px": plan.size_px, "read_resample": "bicubic",
             "num_tiles": count, "name": slide.slide_id, "slide_path": str(slide.path), "vendor": slide.vendor,
             "level0_width": slide.dimensions[0], "level0_height": slide.dimensions[1],
             "device": device_obj.type, "amp_dtype": amp_dtype if use_amp else "none", "batch_size": batch_size,
             "software_version": software_version(), "created_at": utc_now()}
    if slide.objective_power:
        attrs["level0_magnification"] = float(slide.objective_power)
    return SlideFeatures(features.cpu(), tiles.coords_level0.astype(np.int64), attrs)
