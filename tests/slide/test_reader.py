"""open_slide: formats, the level-0 frame of read_region, and a clear SlideError for every bad input."""

import numpy as np
import pytest

from modeling.slide import reader as reader_module
from modeling.slide.errors import SlideError, SlideFormatError, SlideNotFoundError, SlideReadError
from modeling.slide.reader import open_slide
from tests.helpers import synthetic_slides as synth


def test_aperio_slide_exposes_levels_mpp_and_objective(aperio_05):
    with open_slide(aperio_05.path) as slide:
        assert slide.vendor == "aperio"
        assert slide.dimensions == (4096, 4096)
        assert slide.level_count == 2
        assert slide.level_dimensions == ((4096, 4096), (1024, 1024))
        assert slide.level_downsamples == pytest.approx((1.0, 4.0))
        assert slide.mpp == pytest.approx(0.5) and slide.mpp_source == "openslide.mpp"
        assert slide.objective_power == pytest.approx(20.0)
        assert slide.info()["mpp"] == pytest.approx(0.5)


def test_read_region_takes_level0_coordinates_at_any_level(aperio_05):
    blob = aperio_05.blobs[1]
    x, y = int(blob.cx) - 64, int(blob.cy) - 64                      # a level-0 point inside tissue
    with open_slide(aperio_05.path) as slide:
        level0 = slide.read_region_array((x, y), 0, (128, 128))
        level1 = slide.read_region_array((x, y), 1, (32, 32))     # the same area, 4x smaller
    assert level0.shape == (128, 128, 3) and level1.shape == (32, 32, 3)
    assert abs(level0.mean(axis=(0, 1)) - level1.mean(axis=(0, 1))).max() < 6
    assert level0[..., 1].mean() < 200                                # pink tissue, not white glass


def test_regions_outside_the_slide_are_white(aperio_05):
    with open_slide(aperio_05.path) as slide:
        region = slide.read_region_array((4096 - 16, 4096 - 16), 0, (64, 64))
    assert (region[32:, 32:] == 255).all()


def test_thumbnail_and_downsampled_view_keep_the_aspect(aperio_05):
    with open_slide(aperio_05.path) as slide:
        assert slide.thumbnail(256).size == (256, 256)
        assert slide.read_downsampled(16).shape == (256, 256, 3)


def test_generic_tiff_gets_mpp_from_the_resolution_tag(tmp_path):
    generic = synth.write_generic_tiff(tmp_path / "g.tif", width=1024, height=1024, mpp=0.25)
    with open_slide(generic.path) as slide:
        assert slide.vendor == "generic-tiff"
        assert slide.level_count == 2
        assert slide.mpp == pytest.approx(0.25)


@pytest.mark.parametrize("name", ["plain.png", "plain.jpg"])
def test_plain_images_fall_back_to_one_level_with_dpi_mpp(tmp_path, name):
    image = synth.write_plain_image(tmp_path / name, width=512, height=384, mpp=0.5)
    with open_slide(image.path) as slide:
        assert slide.vendor == "image"
        assert slide.dimensions == (512, 384) and slide.level_count == 1
        assert slide.mpp == pytest.approx(0.5, rel=0.01) and slide.mpp_source == "image-dpi"
        assert slide.read_region((500, 370), 0, (32, 32)).size == (32, 32)


def test_stripped_tiff_is_read_as_a_plain_image(tmp_path):
    plain = synth.write_generic_tiff(tmp_path / "stripped.tif", width=512, height=512, mpp=0.5, tiled=False)
    with open_slide(plain.path) as slide:
        assert slide.dimensions == (512, 512)
        assert slide.mpp == pytest.approx(0.5, rel=0.01)


def test_oversized_plain_image_asks_for_a_pyramidal_tiff(tmp_path, monkeypatch):
    monkeypatch.setattr(reader_module, "MAX_PLAIN_IMAGE_PIXELS", 100 * 100)
    image = synth.write_plain_image(tmp_path / "big.png", width=256, height=256)
    with pytest.raises(SlideFormatError, match="too large to load whole.*pyramidal TIFF"):
        open_slide(image.path)


@pytest.mark.parametrize("make, error, message", [
    (lambda d: d / "missing.svs", SlideNotFoundError, "no such file or directory"),
    (lambda d: synth.write_empty(d / "empty.svs"), SlideFormatError, r"empty file \(0 bytes\)"),
    (lambda d: synth.write_non_slide(d / "notes.svs"), SlideFormatError, "not a whole-slide image"),
    (lambda d: synth.write_non_slide(d / "labels.csv"), SlideFormatError, "not a whole-slide image"),
    (lambda d: synth.write_corrupt_tiff(d / "corrupt.tif"), SlideFormatError, "corrupt TIFF"),
    (lambda d: synth.write_truncated_tiff(d / "cut.svs", width=1024, height=1024), SlideFormatError,
     "truncated TIFF"),
    (lambda d: (d / "folder").mkdir() or d / "folder", SlideFormatError, "not a DICOM WSI folder"),
])
def test_bad_inputs_raise_slide_errors_naming_path_and_reason(tmp_path, make, error, message):
    path = make(tmp_path)
    with pytest.raises(error, match=message) as caught:
        open_slide(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, SlideError)


def test_an_unreadable_tile_is_a_slide_read_error_and_the_slide_stays_usable(tmp_path):
    slide_file, (x, y) = synth.write_slide_with_corrupt_tile(tmp_path / "bad.svs", width=2048, height=2048)
    with open_slide(slide_file.path) as slide:
        with pytest.raises(SlideReadError) as caught:
            slide.read_region((x, y), 0, (256, 256))
        message = str(caught.value)
        assert str(slide_file.path) in message and f"x={x}, y={y}" in message and "corrupt" in message
        assert slide.read_region_array((0, 0), 0, (64, 64)).shape == (64, 64, 3)   # reopened after the error


def test_invalid_region_requests_are_slide_errors(aperio_05):
    with open_slide(aperio_05.path) as slide:
        with pytest.raises(SlideReadError, match="level 5 does not exist"):
            slide.read_region((0, 0), 5, (10, 10))
        with pytest.raises(SlideReadError, match="must be positive"):
            slide.read_region((0, 0), 0, (0, 10))
    with pytest.raises(SlideReadError, match="closed"):
        slide.read_region((0, 0), 0, (10, 10))


def test_numpy_integer_coordinates_are_accepted(aperio_05):
    with open_slide(aperio_05.path) as slide:
        region = slide.read_region_array(np.array([100, 200], dtype=np.int64), np.int64(1), (np.int64(8), 8))
    assert region.shape == (8, 8, 3)
