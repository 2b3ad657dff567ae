"""Feature extraction: workers give the same features as the main process, provenance is recorded."""

import json

import numpy as np
import pytest
import torch

from modeling.slide.coords_h5 import read_coords_h5, write_coords_h5, write_tiling_h5
from modeling.slide.errors import CoordsFileError, NoTissueError, SlideReadError
from modeling.slide.features import extract_slide_features
from modeling.slide.reader import open_slide
from modeling.slide.tiling import read_tile, tile_slide
from tests.helpers import synthetic_slides as synth


@pytest.fixture(scope="module")
def slide_2k(tmp_path_factory):
    return synth.write_aperio_slide(tmp_path_factory.mktemp("feat") / "s.svs", width=2048, height=2048, mpp=0.5)


def test_workers_and_main_process_give_identical_features_in_coordinate_order(slide_2k, tiny_encoder):
    fractions = []
    in_process = extract_slide_features(slide_2k.path, tiny_encoder, num_workers=0, batch_size=5,
                                        progress=lambda f, m: fractions.append(f))
    with_workers = extract_slide_features(slide_2k.path, tiny_encoder, num_workers=2, batch_size=7)
    assert in_process.features.shape == (len(in_process.coords_level0), 192)
    assert in_process.features.dtype == torch.float32 and in_process.coords_level0.dtype == np.int64
    np.testing.assert_array_equal(in_process.coords_level0, with_workers.coords_level0)
    torch.testing.assert_close(in_process.features, with_workers.features)
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    # row i is the encoding of tile i
    with open_slide(slide_2k.path) as slide:
        tiling = tile_slide(slide)
        tile = read_tile(slide, in_process.coords_level0[3], tiling.read_plan, 256)
    with torch.inference_mode():
        expected = tiny_encoder.model(tiny_encoder.transform(tile)[None])[0]
    torch.testing.assert_close(in_process.features[3], expected, atol=1e-5, rtol=1e-4)


def test_attrs_say_how_the_features_were_made(slide_2k, tiny_encoder):
    attrs = extract_slide_features(slide_2k.path, tiny_encoder, num_workers=0).attrs
    assert (attrs["patch_size"], attrs["patch_size_level0"]) == (256, 256)
    assert attrs["target_mpp"] == 0.5 and attrs["level0_mpp"] == pytest.approx(0.5)
    assert attrs["encoder"] == "random-tiny" and attrs["encoder_trained"] is False
    assert "UNTRAINED" in attrs["encoder_weights"] and attrs["encoder_revision"] == "random-init-seed0"
    assert json.loads(attrs["transform"]) == {"resize_px": 256, "crop_px": 224, "interpolation": "bicubic",
                                              "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert attrs["tissue_method"] == "otsu-saturation" and "software_version" in attrs
    assert attrs["device"] == "cpu" and attrs["amp_dtype"] == "none" and attrs["num_tiles"] > 0


def test_coords_from_a_file_are_encoded_as_given(slide_2k, tiny_encoder, tmp_path):
    tiling = tile_slide(slide_2k.path)
    path = write_tiling_h5(tmp_path / "s_patches.h5", tiling)
    from_path = extract_slide_features(slide_2k.path, tiny_encoder, coords=path, num_workers=0)
    from_file = extract_slide_features(slide_2k.path, tiny_encoder, coords=read_coords_h5(path), num_workers=0)
    np.testing.assert_array_equal(from_path.coords_level0, tiling.coords_level0)
    torch.testing.assert_close(from_path.features, from_file.features)
    assert str(path) in from_path.attrs["coords_source"]


def test_trident_coords_at_another_resolution(slide_2k, tiny_encoder, tmp_path):
    path = tmp_path / "trident.h5"
    write_coords_h5(path, np.array([[512, 512], [1024, 1024]]),
                    {"patch_size": 256, "patch_size_level0": 512, "name": "s"})
    result = extract_slide_features(slide_2k.path, tiny_encoder, coords=path, num_workers=0)
    assert result.features.shape == (2, 192)
    assert result.attrs["read_level"] == 0 and result.attrs["read_size_px"] == 512
    assert result.attrs["tile_mpp"] == pytest.approx(1.0)


def test_coords_made_for_another_slide_are_rejected(slide_2k, tiny_encoder, tmp_path):
    path = write_coords_h5(tmp_path / "other.h5", np.array([[0, 0]]),
                           {"patch_size": 256, "patch_size_level0": 256, "level0_width": 9999,
                            "level0_height": 9999})
    with pytest.raises(CoordsFileError, match="made for a slide of 9999x9999"):
        extract_slide_features(slide_2k.path, tiny_encoder, coords=path, num_workers=0)


def test_empty_coords_are_a_no_tissue_error(slide_2k, tiny_encoder, tmp_path):
    path = write_coords_h5(tmp_path / "empty.h5", np.zeros((0, 2)), {"patch_size": 256, "patch_size_level0": 256})
    with pytest.raises(NoTissueError, match="no tiles to encode"):
        extract_slide_features(slide_2k.path, tiny_encoder, coords=path, num_workers=0)


@pytest.mark.parametrize("workers", [0, 1])
def test_an_unreadable_tile_stops_the_slide_with_its_coordinates(tmp_path, tiny_encoder, workers):
    synthetic, (x, y) = synth.write_slide_with_corrupt_tile(tmp_path / "bad.svs", width=2048, height=2048)
    with pytest.raises(SlideReadError) as caught:
        extract_slide_features(synthetic.path, tiny_encoder, num_workers=workers, batch_size=64)
    message = str(caught.value)
    assert f"x={x}, y={y}" in message and str(synthetic.path) in message and "not encoded" in message
    assert "1 of" in message                                   # only the broken tile, not every later one


def test_an_open_slide_object_can_be_passed(slide_2k, tiny_encoder):
    with open_slide(slide_2k.path) as slide:
        result = extract_slide_features(slide, tiny_encoder, num_workers=1)
        assert slide.read_region((0, 0), 0, (4, 4)).size == (4, 4)           # still open and usable
    assert len(result) > 0
