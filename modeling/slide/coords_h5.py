"""Tile-coordinate h5 files: write ours (TRIDENT-compatible) and read ours, TRIDENT's and CLAM's.

Layout written by `write_coords_h5` (`<out>/patches/<slide_id>_patches.h5`, as TRIDENT names them):
- dataset `coords`: int64 [N, 2], x/y of each tile's top-left corner in level-0 pixels;
- dataset `tissue_fraction`: float32 [N];
- attributes on `coords` (where TRIDENT and its readers look) and, identically, on the file root:
  `patch_size` (px at the target resolution), `patch_size_level0`, `target_mpp`, `level0_mpp`,
  `level0_magnification` (when the slide states it), `target_magnification`, `level0_width`,
  `level0_height`, `overlap`, `name`, `tissue_method`, `tissue_params` (JSON) and more provenance.

`read_coords_h5` also accepts TRIDENT files (same names, magnification instead of MPP) and CLAM files
(`patch_level`, `patch_size` at that level, `downsample`), converting everything to level-0 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modeling.slide.errors import CoordsFileError
from common.atomic import atomic_path

FORMAT_NAME = "wsi-llava-coords"
FORMAT_VERSION = 1


def h5_attr_value(value):
    """A value h5py can store as an attribute (None is left out by the callers)."""
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    return value


def set_attrs(target, attrs: dict) -> None:
    for key, value in attrs.items():
        if value is not None:
            target.attrs[key] = h5_attr_value(value)


def read_attrs(target) -> dict:
    out = {}
    for key, value in target.attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def write_coords_h5(path: str | Path, coords_level0: np.ndarray, attrs: dict,
                    tissue_fraction: np.ndarray | None = None) -> Path:
    """Write atomically (temporary name, then rename). Returns the final path."""
    import h5py

    path = Path(path)
    coords_level0 = np.asarray(coords_level0, dtype=np.int64).reshape(-1, 2)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            coords = handle.create_dataset("coords", data=coords_level0)
            all_attrs = {**attrs, "format": FORMAT_NAME, "format_version": FORMAT_VERSION}
            set_attrs(coords, all_attrs)
            set_attrs(handle, all_attrs)
            if tissue_fraction is not None:
                handle.create_dataset("tissue_fraction", data=np.asarray(tissue_fraction, np.float32))
    return path


def write_tiling_h5(path: str | Path, result) -> Path:
    """Write a `modeling.slide.tiling.TilingResult`."""
    return write_coords_h5(path, result.coords_level0, result.attrs(), result.tissue_fraction)


@dataclass
class CoordsFile:
    path: Path
    coords_level0: np.ndarray        # [N, 2] int64
    patch_size: int                  # tile side in px at the resolution tiles are made at
    patch_size_level0: int
    attrs: dict
    layout: str                      # "wsi-llava", "trident" or "clam"
    tissue_fraction: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.coords_level0)

    @property
    def name(self) -> str:
        return str(self.attrs.get("name") or self.path.stem.removesuffix("_patches"))

    @property
    def target_mpp(self) -> float | None:
        value = self.attrs.get("target_mpp")
        return float(value) if value is not None else None


def read_coords_h5(path: str | Path, level_downsamples: tuple[float, ...] | None = None) -> CoordsFile:
    """Read a coords h5 written here, by TRIDENT or by CLAM (CLAM files without a `downsample`
    attribute need the slide's `level_downsamples` to convert `patch_level` sizes to level 0)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise CoordsFileError(f"{path}: coordinates file not found.")
    try:
        with h5py.File(path, "r") as handle:
            if "coords" not in handle:
                raise CoordsFileError(f"{path}: no `coords` dataset (datasets: {sorted(handle)}); not a "
                                      "coordinates file from `wsi-llava tile`, TRIDENT or CLAM.")
            coords = np.asarray(handle["coords"][()])
            attrs = {**read_attrs(handle), **read_attrs(handle["coords"])}
            fractions = np.asarray(handle["tissue_fraction"][()]) if "tissue_fraction" in handle else None
    except CoordsFileError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise CoordsFileError(f"{path}: cannot read it as HDF5 ({exc}).") from exc
    if coords.size == 0:
        coords = coords.reshape(0, 2)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise CoordsFileError(f"{path}: `coords` has shape {coords.shape}; expected [N, 2] x/y.")
    coords = coords.astype(np.int64)
    if "patch_size" not in attrs:
        raise CoordsFileError(f"{path}: `coords` has no `patch_size` attribute; cannot tell the tile size.")
    patch_size = int(attrs["patch_size"])
    if attrs.get("format") == FORMAT_NAME:
        layout = "wsi-llava"
    elif "patch_size_level0" in attrs:
        layout = "trident"
    elif "patch_level" in attrs:
        layout = "clam"
    else:
        raise CoordsFileError(f"{path}: has `patch_size` but neither `patch_size_level0` (TRIDENT) nor "
                              "`patch_level` (CLAM); cannot convert tile sizes to level 0.")
    if layout == "clam":
        patch_size_level0 = _clam_patch_size_level0(path, attrs, patch_size, level_downsamples)
    else:
        patch_size_level0 = int(attrs["patch_size_level0"])
    if patch_size < 1 or patch_size_level0 < 1:
        raise CoordsFileError(f"{path}: invalid tile size (patch_size {patch_size}, level 0 {patch_size_level0}).")
    return CoordsFile(path, coords, patch_size, patch_size_level0, attrs, layout, fractions)


def _clam_patch_size_level0(path: Path, attrs: dict, patch_size: int,
                            level_downsamples: tuple[float, ...] | None) -> int:
    level = int(attrs["patch_level"])
    downsample = attrs.get("downsample")
    if downsample is not None:
        factor = float(np.ravel(downsample)[0])
    elif level_downsamples is not None and level < len(level_downsamples):
        factor = float(level_downsamples[level])
    else:
        raise CoordsFileError(f"{path}: CLAM coordinates at patch_level {level} without a `downsample` "
                              "attribute; open the slide to convert them (read_coords_h5(path, "
                              "slide.level_downsamples)).")
    return round(patch_size * factor)
