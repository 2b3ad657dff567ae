"""MPP resolution order: --mpp-csv / --mpp overrides, metadata, objective power only when asked."""

import pytest

from modeling.slide.errors import MppError
from modeling.slide.mpp import MppOverrides, load_mpp_csv, resolve_mpp
from modeling.slide.reader import open_slide
from tests.helpers import synthetic_slides as synth

APERIO = {"openslide.mpp-x": "0.2527", "openslide.mpp-y": "0.2529", "openslide.objective-power": "40"}


def test_metadata_mpp_is_the_mean_of_x_and_y():
    resolution = resolve_mpp("s.svs", APERIO)
    assert resolution.mpp == pytest.approx(0.2528) and resolution.source == "openslide.mpp"
    assert (resolution.mpp_x, resolution.mpp_y) == (pytest.approx(0.2527), pytest.approx(0.2529))


def test_override_wins_over_metadata():
    assert resolve_mpp("s.svs", APERIO, override=(0.5, "override:--mpp")).mpp == 0.5


@pytest.mark.parametrize("properties, expected, source", [
    ({"tiff.XResolution": "40000", "tiff.YResolution": "40000", "tiff.ResolutionUnit": "centimeter"}, 0.25,
     "tiff-resolution"),
    ({"tiff.XResolution": "50800", "tiff.ResolutionUnit": "inch"}, 0.5, "tiff-resolution"),
])
def test_tiff_resolution_tags_give_mpp(properties, expected, source):
    resolution = resolve_mpp("s.tif", properties)
    assert resolution.mpp == pytest.approx(expected) and resolution.source == source


def test_screen_dpi_and_unitless_resolution_are_not_microscope_mpp():
    with pytest.raises(MppError):
        resolve_mpp("s.png", {}, image_dpi=(72.0, 72.0))            # 352 um/px: a screen resolution
    with pytest.raises(MppError):
        resolve_mpp("s.tif", {"tiff.XResolution": "1", "tiff.ResolutionUnit": "none"})


def test_objective_power_is_used_only_when_asked():
    properties = {"openslide.objective-power": "40"}
    with pytest.raises(MppError) as caught:
        resolve_mpp("/data/slide-7.svs", properties)
    message = str(caught.value)
    assert "/data/slide-7.svs" in message and "--mpp" in message and "--mpp-csv" in message
    assert "--mpp-from-objective" in message and "0.25" in message
    resolution = resolve_mpp("/data/slide-7.svs", properties, from_objective=True)
    assert resolution.mpp == pytest.approx(0.25) and resolution.source == "objective-power"


def test_mpp_csv_matches_slide_id_file_name_or_path(tmp_path):
    csv_path = tmp_path / "mpp.csv"
    csv_path.write_text("slide,mpp\nslide-a,0.25\nslide-b.svs,0.5\n# a comment\n\n", encoding="utf-8")
    overrides = MppOverrides.from_flags(mpp=1.0, mpp_csv=csv_path)
    assert overrides.override_for("slide-a", tmp_path / "slide-a.svs") == (0.25, "override:--mpp-csv")
    assert overrides.override_for("slide-b", tmp_path / "slide-b.svs") == (0.5, "override:--mpp-csv")
    assert overrides.override_for("slide-c", tmp_path / "slide-c.svs") == (1.0, "override:--mpp")


@pytest.mark.parametrize("text, message", [
    ("slide,mpp\nslide-a\n", "line 2 has 1 column"),
    ("slide-a,fast\n", "line 1: mpp 'fast' is not a number"),
    ("slide-a,-1\n", "outside"),
    ("slide,mpp\n", "no `slide,mpp` rows"),
    ("a,0.25\na,0.5\n", "listed twice"),
])
def test_bad_mpp_csv_files_name_the_line(tmp_path, text, message):
    csv_path = tmp_path / "mpp.csv"
    csv_path.write_text(text, encoding="utf-8")
    with pytest.raises(MppError, match=message):
        load_mpp_csv(csv_path)


def test_missing_mpp_csv_is_an_mpp_error(tmp_path):
    with pytest.raises(MppError, match="cannot read it"):
        load_mpp_csv(tmp_path / "nope.csv")


def test_a_slide_without_mpp_opens_but_refuses_to_guess(tmp_path):
    slide_file = synth.write_aperio_slide(tmp_path / "nompp.svs", width=1024, height=1024, mpp=None, app_mag=20)
    with open_slide(slide_file.path) as slide:
        assert slide.metadata_mpp is None and slide.info()["mpp"] is None      # thumbnails still work
        with pytest.raises(MppError, match="nompp.svs.*--mpp-from-objective to use 0.5 um/px"):
            _ = slide.mpp
    with open_slide(slide_file.path, mpp_from_objective=True) as slide:
        assert slide.mpp == pytest.approx(0.5)
    overrides = MppOverrides(table={"nompp": 0.3})
    with open_slide(slide_file.path, overrides=overrides) as slide:
        assert slide.mpp == pytest.approx(0.3) and slide.mpp_source == "override:--mpp-csv"
    with open_slide(slide_file.path, mpp_override=0.4) as slide:
        assert slide.mpp == pytest.approx(0.4) and slide.mpp_source == "override"


def test_invalid_global_override_is_rejected():
    with pytest.raises(MppError, match="--mpp: MPP 0"):
        MppOverrides(mpp=0.0)


def test_an_mpp_csv_that_is_not_utf8_names_the_file_line_and_byte_offset(tmp_path):
    csv_path = tmp_path / "mpp.csv"
    csv_path.write_bytes("slide,mpp\nlame-1,0.25\nlame-é,0.5\n".encode("latin-1"))
    with pytest.raises(MppError) as caught:
        load_mpp_csv(csv_path)
    message = str(caught.value)
    assert f"--mpp-csv {csv_path}" in message and "line 3" in message and "byte offset 27" in message
    assert "iconv -f latin1 -t utf-8" in message
