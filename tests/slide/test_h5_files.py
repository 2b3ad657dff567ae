"""Coordinates and features h5 files: attrs round-trip, TRIDENT and CLAM inputs, clear errors."""

import h5py
import numpy as np
import pytest
import torch

from modeling.slide.coords_h5 import read_coords_h5, write_tiling_h5
from modeling.slide.errors import CoordsFileError
from modeling.slide.features_h5 import SlideFeatures, read_features_h5, write_features_h5
from modeling.slide.tiling import tile_slide

REQUIRED_ATTRS = ("patch_size", "patch_size_level0", "target_mpp", "level0_mpp", "level0_magnification",
                  "target_magnification", "level0_width", "level0_height", "overlap", "name", "tissue_method",
                  "tissue_params")


def test_coords_h5_round_trips_coords_and_every_attribute(aperio_05, tmp_path):
    result = tile_slide(aperio_05.path)
    path = write_tiling_h5(tmp_path / "patches" / "aperio_05_patches.h5", result)
    with h5py.File(path, "r") as handle:
        assert handle["coords"].dtype == np.int64 and handle["coords"].shape == (len(result), 2)
        for key in REQUIRED_ATTRS:
            assert key in handle["coords"].attrs and key in handle.attrs, key     # TRIDENT looks at coords.attrs
    loaded = read_coords_h5(path)
    assert loaded.layout == "wsi-llava" and loaded.name == "aperio_05"
    np.testing.assert_array_equal(loaded.coords_level0, result.coords_level0)
    np.testing.assert_allclose(loaded.tissue_fraction, result.tissue_fraction)
    expected = result.attrs()
    for key in REQUIRED_ATTRS:
        assert loaded.attrs[key] == expected[key], key
    assert (loaded.patch_size, loaded.patch_size_level0, loaded.target_mpp) == (256, 256, 0.5)


def test_trident_coords_files_are_read(tmp_path):
    path = tmp_path / "slide_patches.h5"
    with h5py.File(path, "w") as handle:
        coords = handle.create_dataset("coords", data=np.array([[0, 0], [512, 0]]))
        coords.attrs.update({"patch_size": 256, "patch_size_level0": 512, "level0_magnification": 40,
                             "target_magnification": 20, "overlap": 0, "name": "slide", "savetodir": "x"})
    loaded = read_coords_h5(path)
    assert loaded.layout == "trident" and (loaded.patch_size, loaded.patch_size_level0) == (256, 512)
    assert loaded.coords_level0.dtype == np.int64 and loaded.target_mpp is None


def test_clam_coords_files_are_converted_to_level0_sizes(tmp_path):
    path = tmp_path / "clam.h5"
    with h5py.File(path, "w") as handle:
        coords = handle.create_dataset("coords", data=np.array([[0, 0], [1024, 0]], dtype=np.int32))
        coords.attrs.update({"patch_size": 256, "patch_level": 1, "downsample": np.array([4.0, 4.0]),
                             "level_dim": np.array([10000, 8000]), "name": "clam"})
    assert read_coords_h5(path).patch_size_level0 == 1024
    with h5py.File(path, "a") as handle:
        del handle["coords"].attrs["downsample"]
    with pytest.raises(CoordsFileError, match="patch_level 1 without a `downsample`"):
        read_coords_h5(path)
    assert read_coords_h5(path, level_downsamples=(1.0, 2.0)).patch_size_level0 == 512


@pytest.mark.parametrize("build, message", [
    (lambda h: h.create_dataset("features", data=np.zeros((2, 3))), "no `coords` dataset"),
    (lambda h: h.create_dataset("coords", data=np.zeros((2, 3))), r"shape \(2, 3\)"),
    (lambda h: h.create_dataset("coords", data=np.zeros((2, 2))), "no `patch_size`"),
])
def test_malformed_coords_files_are_coords_file_errors(tmp_path, build, message):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as handle:
        build(handle)
    with pytest.raises(CoordsFileError, match=message):
        read_coords_h5(path)


def test_non_hdf5_and_missing_coords_files(tmp_path):
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(CoordsFileError, match="cannot read it as HDF5"):
        read_coords_h5(tmp_path / "x.h5")
    with pytest.raises(CoordsFileError, match="not found"):
        read_coords_h5(tmp_path / "missing.h5")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_features_h5_round_trip(tmp_path, dtype):
    coords = np.array([[0, 0], [512, 0], [512, 1024]], dtype=np.int64)
    attrs = {"patch_size": 256, "patch_size_level0": 512, "target_mpp": 0.5, "level0_mpp": 0.25,
             "encoder": "random-tiny", "encoder_trained": False, "transform": {"resize_px": 256},
             "name": "s", "level0_magnification": 40.0, "target_magnification": 20.0, "overlap": 0}
    features = SlideFeatures(torch.randn(3, 8), coords, attrs)
    path = write_features_h5(tmp_path / "s.h5", features, features_dtype=dtype)
    with h5py.File(path, "r") as handle:
        assert handle["features"].dtype == np.dtype(dtype) and handle["coords"].dtype == np.int64
        assert handle["coords"].attrs["patch_size_level0"] == 512                     # the TRIDENT location
    loaded = read_features_h5(path)
    torch.testing.assert_close(loaded.features, features.features, atol=1e-2, rtol=1e-2)
    np.testing.assert_array_equal(loaded.coords_level0, coords)
    assert loaded.attrs["encoder_trained"] is False and loaded.attrs["transform"] == {"resize_px": 256}
    assert loaded.attrs["features_dtype"] == dtype
    np.testing.assert_array_equal(loaded.coords_at_target(), coords / 2)            # tiling-level frame


def test_features_h5_without_features_is_rejected(tmp_path):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("coords", data=np.zeros((2, 2)))
    with pytest.raises(CoordsFileError, match=r"missing dataset\(s\) \['features'\]"):
        read_features_h5(path)
