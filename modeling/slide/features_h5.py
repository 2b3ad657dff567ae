"""Tile-feature h5 files: `SlideFeatures` in memory, written atomically, read back (ours and TRIDENT's).

Layout (`<out>/<slide_id>.h5`):
- `features`: [N, D] float32 (or float16 with `features_dtype="float16"`), row i encodes tile i;
- `coords`: [N, 2] int64, x/y of each tile's top-left corner in level-0 pixels;
- attributes on the file root (all provenance: encoder name/revision/trained, transform, MPPs, tile
  sizes, tissue method, read level, software version, ...) and the TRIDENT subset on `coords`
  (`patch_size`, `patch_size_level0`, `level0_magnification`, `target_magnification`, `overlap`, `name`).

To turn level-0 coordinates into the tiling-level frame (what Prov-GigaPath's slide encoder wants),
divide by `patch_size_level0 / patch_size`; `SlideFeatures.coords_at_target()` does it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modeling.slide.coords_h5 import read_attrs, set_attrs
from modeling.slide.errors import CoordsFileError
from common.atomic import atomic_path

TRIDENT_COORDS_ATTRS = ("patch_size", "patch_size_level0", "level0_magnification", "target_magnification",
                        "overlap", "name")
FEATURES_DTYPES = ("float32", "float16")


@dataclass
class SlideFeatures:
    features: object             # torch.Tensor [N, D]
    coords_level0: np.ndarray      # [N, 2] int64
    attrs: dict                    # patch_size, patch_size_level0, target_mpp, level0_mpp, encoder, ...

    def __len__(self) -> int:
        return len(self.coords_level0)

    @property
    def patch_size(self) -> int:
        return int(self.attrs["patch_size"])

    @property
    def patch_size_level0(self) -> int:
        return int(self.attrs["patch_size_level0"])

    def coords_at_target(self) -> np.ndarray:
        """[N, 2] float64 coordinates in pixels of the tiling resolution (level-0 / (psl0 / patch_size))."""
        return self.coords_level0.astype(np.float64) / (self.patch_size_level0 / self.patch_size)


def write_features_h5(path: str | Path, result: SlideFeatures, features_dtype: str = "float32") -> Path:
    """Write atomically (temporary name, then rename)."""
    import h5py

    if features_dtype not in FEATURES_DTYPES:
        raise ValueError(f"features_dtype must be one of {FEATURES_DTYPES}, got {features_dtype!r}")
    path = Path(path)
    features = result.features.detach().cpu().float().numpy().astype(features_dtype)   # [N, D]
    attrs = {key: (json.dumps(value) if isinstance(value, dict) else value) for key, value in result.attrs.items()}
    attrs["features_dtype"] = features_dtype
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset("features", data=features)
            coords = handle.create_dataset("coords", data=np.asarray(result.coords_level0, np.int64).reshape(-1, 2))
            set_attrs(handle, attrs)
            set_attrs(coords, {key: attrs.get(key) for key in TRIDENT_COORDS_ATTRS})
    return path


def read_features_h5(path: str | Path) -> SlideFeatures:
    """Read a features h5 written here or by TRIDENT (attributes merged from the root and `coords`)."""
    import h5py
    import torch

    path = Path(path)
    if not path.is_file():
        raise CoordsFileError(f"{path}: features file not found.")
    try:
        with h5py.File(path, "r") as handle:
            missing = {"features", "coords"} - set(handle)
            if missing:
                raise CoordsFileError(f"{path}: missing dataset(s) {sorted(missing)}; not a tile-features h5.")
            features = np.asarray(handle["features"][()])
            coords = np.asarray(handle["coords"][()])
            attrs = {**read_attrs(handle["coords"]), **read_attrs(handle)}
    except CoordsFileError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise CoordsFileError(f"{path}: cannot read it as HDF5 ({exc}).") from exc
    if features.ndim == 3 and features.shape[0] == 1:      # some tools store [1, N, D]
        features, coords = features[0], coords.reshape(-1, 2)
    if features.ndim != 2 or coords.reshape(-1, 2).shape[0] != features.shape[0]:
        raise CoordsFileError(f"{path}: features {features.shape} and coords {coords.shape} do not match.")
    if "transform" in attrs and isinstance(attrs["transform"], str):
        try:
            attrs["transform"] = json.loads(attrs["transform"])
        except json.JSONDecodeError:
            pass
    return SlideFeatures(torch.from_numpy(features.astype(np.float32)), coords.reshape(-1, 2).astype(np.int64), attrs)
