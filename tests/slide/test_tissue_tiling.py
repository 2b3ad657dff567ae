"""Tissue detection and tiling: tiles on tissue only, level-0 coordinates at the right spacing."""

import json

import numpy as np
import pytest
from PIL import Image

from modeling.slide.errors import SlideError
from modeling.slide.reader import open_slide
from modeling.slide.thumbnail import write_overview
from modeling.slide.tiling import grid_level0, read_tile, tile_slide
from modeling.slide.tissue import TissueConfig, write_geojson, write_mask_png
from tests.helpers import synthetic_slides as synth


def test_tiles_fall_on_tissue_only_and_cover_it(aperio_05):
    result = tile_slide(aperio_05.path)
    size = result.patch_size_level0
    kept = {tuple(xy) for xy in result.coords_level0.tolist()}
    true_fraction = {tuple(xy): aperio_05.tissue_fraction(*xy, size) for xy in grid_level0(4096, 4096, size, size)}
    assert kept and all(true_fraction[xy] >= 0.03 for xy in kept)                  # never on bare glass
    assert all(xy in kept for xy, fraction in true_fraction.items() if fraction >= 0.4)   # tissue not missed
    for x, y, radius in aperio_05.debris:                                            # specks are not tissue
        assert not any(kx <= x < kx + size and ky <= y < ky + size for kx, ky in kept)
    assert np.all(result.tissue_fraction >= 0.1)


@pytest.mark.parametrize("fixture, target_mpp, spacing, level, read_px", [
    ("aperio_025", 0.5, 512, 1, 256),     # level 1 is exactly 0.5 um/px: read 256 px there, no resize
    ("aperio_025", 1.0, 1024, 1, 512),    # no 1.0 um/px level: read 512 px at level 1, shrink to 256
    ("aperio_05", 0.5, 256, 0, 256),
    ("aperio_05", 2.0, 1024, 1, 256),
    ("aperio_10", 0.5, 128, 0, 128),      # 10x scan: 2x upsampling, recorded
])
def test_coordinates_are_level0_at_the_spacing_of_the_target_mpp(request, fixture, target_mpp, spacing, level,
                                                                   read_px):
    synthetic = request.getfixturevalue(fixture)
    result = tile_slide(synthetic.path, target_mpp=target_mpp)
    coords = result.coords_level0
    assert coords.dtype == np.int64 and coords.shape[1] == 2 and len(coords) > 0
    assert result.patch_size_level0 == spacing and result.tile_size_px == 256
    assert np.all(coords % spacing == 0)
    assert np.all(coords + spacing <= [synthetic.width, synthetic.height])
    assert (result.read_plan.level, result.read_plan.size_px) == (level, read_px)
    assert result.tile_mpp == pytest.approx(target_mpp)
    assert result.upsample_factor == pytest.approx(max(1.0, synthetic.mpp / target_mpp))
    # the physical area is the same whatever the scan resolution: tissue area in mm^2 agrees
    tissue_mm2 = sum(synthetic.tissue_fraction(x, y, spacing) for x, y in coords) * (spacing * synthetic.mpp / 1000) ** 2
    assert tissue_mm2 == pytest.approx(result.tissue.tissue_area_mm2, rel=0.15)


def test_read_tile_returns_tissue_at_the_target_resolution(aperio_025):
    result = tile_slide(aperio_025.path, target_mpp=1.0)
    inside = max(range(len(result)), key=lambda i: result.tissue_fraction[i])
    with open_slide(aperio_025.path) as slide:
        tile = np.asarray(read_tile(slide, result.coords_level0[inside], result.read_plan, 256))
    assert tile.shape == (256, 256, 3)
    assert tile[..., 1].mean() < 190 and tile[..., 0].mean() > 180                   # pink H&E-like tissue


def test_upsampling_beyond_the_limit_is_refused(aperio_10):
    with pytest.raises(SlideError, match="upsampled 4.00x.*--target-mpp >= 0.5"):
        tile_slide(aperio_10.path, target_mpp=0.25)


def test_a_blank_slide_has_no_tissue(tmp_path):
    blank = synth.write_aperio_slide(tmp_path / "blank.svs", width=1024, height=1024, blobs=[], debris=[])
    result = tile_slide(blank.path)
    assert len(result) == 0 and result.tissue.polygons == [] and not result.tissue.mask.any()


def test_luminance_method_and_overlap(aperio_05):
    result = tile_slide(aperio_05.path, overlap_px=64, tissue_config=TissueConfig(method="luminance"))
    assert result.tissue.config.method_name == "otsu-luminance"
    steps = np.diff(np.unique(result.coords_level0[:, 0]))
    assert steps.min() == 192                                                         # 256 - 64 px stride
    assert result.attrs()["overlap"] == 64


def test_geojson_is_a_qupath_feature_collection_in_level0_pixels(aperio_05, tmp_path):
    result = tile_slide(aperio_05.path)
    path = tmp_path / "tissue.geojson"
    write_geojson(result.tissue, path, "aperio_05")
    collection = json.loads(path.read_text())
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == len(aperio_05.blobs)
    holes = 0
    for feature in collection["features"]:
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
        assert feature["properties"]["objectType"] == "annotation"
        assert feature["properties"]["classification"]["name"] == "Tissue"
        for ring in feature["geometry"]["coordinates"]:
            assert ring[0] == ring[-1] and len(ring) >= 4
            points = np.asarray(ring)
            assert points.min() >= 0 and points.max() <= 4096
        holes += len(feature["geometry"]["coordinates"]) - 1
    assert holes == 1                                                                # the lumen of blob 0
    exterior = np.asarray(collection["features"][0]["geometry"]["coordinates"][0])
    centre = exterior.mean(axis=0)
    assert any(np.hypot(*(centre - [b.cx, b.cy])) < 0.3 * b.rx for b in aperio_05.blobs)


@pytest.mark.parametrize("overview_name, image_format", [("overview.jpg", "JPEG"), ("overview.png", "PNG")])
def test_mask_png_and_overview(aperio_05, tmp_path, overview_name, image_format):
    result = tile_slide(aperio_05.path)
    write_mask_png(result.tissue, tmp_path / "mask.png")
    write_overview(result, tmp_path / overview_name)
    with Image.open(tmp_path / "mask.png") as mask:
        assert mask.size == (512, 512) and mask.mode == "1"               # a 2 mm slide: 4 um/px, 1 bit
        assert float(mask.text["wsi_llava:downsample_from_level0"]) == pytest.approx(8.0)
        assert np.array_equal(np.asarray(mask), result.tissue.mask)
        assert set(np.unique(np.asarray(mask.convert("L")))) == {0, 255}
    with Image.open(tmp_path / overview_name) as overview:
        assert overview.format == image_format
        pixels = np.asarray(overview.convert("RGB")).reshape(-1, 3)
    assert overview.size == (512, 512)
    assert (np.abs(pixels - [20, 160, 60]).sum(axis=1) < 60).any()                   # contours drawn
    assert not list(tmp_path.glob(".*tmp*"))                                         # no temporary leftovers


def test_an_overview_in_another_format_is_refused(aperio_05, tmp_path):
    with pytest.raises(ValueError, match="overview is written as"):
        write_overview(tile_slide(aperio_05.path), tmp_path / "overview.tif")


def test_tiling_attrs_record_method_and_resolution(aperio_05):
    attrs = tile_slide(aperio_05.path).attrs()
    assert attrs["patch_size"] == 256 and attrs["patch_size_level0"] == 256
    assert attrs["target_mpp"] == 0.5 and attrs["level0_mpp"] == pytest.approx(0.5)
    assert attrs["level0_magnification"] == 20.0 and attrs["target_magnification"] == 20.0
    assert (attrs["level0_width"], attrs["level0_height"]) == (4096, 4096)
    assert attrs["tissue_method"] == "otsu-saturation"
    params = json.loads(attrs["tissue_params"])
    assert params["mask_mpp"] == 8.0 and params["direct_jpeg"] is True and params["threshold_used"] >= 20
    assert params["mask_mpp_actual"] == pytest.approx(4.0)                         # a 2 mm slide: the finer mask
