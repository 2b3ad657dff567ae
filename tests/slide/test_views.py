"""The tissue view: decoded straight from JPEG tiles where that is safe, through OpenSlide otherwise, with
the same pixels (within stated bounds) and the same kept tiles as the former OpenSlide-only 4 um/px view."""

import numpy as np
import pytest

from modeling.slide import views
from modeling.slide.errors import SlideReadError
from modeling.slide.reader import open_slide
from modeling.slide.tiff_jpeg import JpegTiffLevels, _frame_size
from modeling.slide.tiling import TilingConfig, tile_slide
from modeling.slide.tissue import TissueConfig
from modeling.slide.views import ViewPlan
from tests.helpers import synthetic_slides as synth
from tests.slide import tiff_variants


def direct_view(slide, downsample, **options):
    """The direct path alone (None where it declines)."""
    return views.read_view_direct(slide._backend, ViewPlan.for_slide(slide, downsample), **options)


REFERENCE = TilingConfig(tissue=TissueConfig(mask_mpp=4.0, direct_jpeg=False))     # the former default
EIGHT_UM = TilingConfig(tissue=TissueConfig(min_mask_px=0))      # the default's 8 um/px, whatever the slide size


@pytest.fixture(scope="session")
def jpeg_slides(slide_dir, aperio_025):
    """Every JPEG TIFF layout the direct path reads: tifffile Aperio (YCbCr), generic TIFF, Aperio-style
    shared JPEGTables with RGB-coded tiles (no Adobe marker) and with YCbCr tiles."""
    return {"aperio-ycbcr": aperio_025.path,
            "generic-tiff": synth.write_generic_tiff(slide_dir / "generic_views.tif", mpp=0.5).path,
            "aperio-tables-rgb": tiff_variants.write_tables_aperio(slide_dir / "tables_rgb.svs", color="rgb").path,
            "aperio-tables-ycbcr": tiff_variants.write_tables_aperio(slide_dir / "tables_ycc.svs",
                                                                     color="ycbcr").path}


@pytest.mark.parametrize("kind", ["aperio-ycbcr", "generic-tiff", "aperio-tables-rgb", "aperio-tables-ycbcr"])
@pytest.mark.parametrize("downsample", [4, 8, 12, 16, 32, 64])
def test_the_direct_view_matches_openslide(jpeg_slides, kind, downsample, monkeypatch):
    with open_slide(jpeg_slides[kind]) as slide:
        reference = slide.read_downsampled(downsample, direct_jpeg=False)
        plan = ViewPlan.for_slide(slide, downsample)

        def no_chunks(*args, **kwargs):
            raise AssertionError("the direct path fell back to OpenSlide")

        monkeypatch.setattr(views, "read_view_chunks", no_chunks)
        direct = slide.read_downsampled(downsample)
    assert direct.shape == reference.shape and direct.dtype == np.uint8
    difference = np.abs(direct.astype(np.int16) - reference)
    if plan.reduction == 1:                     # full-size decode: libjpeg through Pillow = through OpenSlide
        assert difference.max() == 0
    else:                                       # DCT scaling vs an area resize of the full decode
        assert difference.mean() < 0.5 and np.percentile(difference, 99.9) <= 12 and difference.max() <= 32


@pytest.mark.parametrize("downsample", [4, 6])            # level 1 at 1/2 by DCT alone; 1/2 then an area resize
def test_bands_bound_the_memory_and_join_without_a_seam(jpeg_slides, downsample, monkeypatch):
    with open_slide(jpeg_slides["aperio-ycbcr"]) as slide:           # level 1: 3072 px, 12 tile rows
        whole = direct_view(slide, downsample)
        bands, original = [], slide._backend.read_level_bands

        def counted(*args):
            for band in original(*args):
                bands.append(band[:2])
                yield band

        monkeypatch.setattr(slide._backend, "read_level_bands", counted)
        banded = direct_view(slide, downsample, max_band_px=(3072 // 2) * (256 // 2) * 5)   # 5 tile rows a band
        reference = slide.read_downsampled(downsample, direct_jpeg=False)
    assert bands == [(0, 1280), (1280, 2560), (2560, 3072)]
    assert banded.shape == whole.shape == reference.shape
    if downsample == 4:
        assert np.array_equal(banded, whole)
    else:                                                            # bands resized apart: like OpenSlide chunks
        assert np.abs(banded.astype(np.int16) - whole).mean() < 0.5
    assert np.abs(banded.astype(np.int16) - reference).mean() < 0.5


def test_the_colour_space_comes_from_the_tiff_tag(jpeg_slides):
    """The RGB-coded tiles carry no Adobe marker: decoded as JPEG files guess (YCbCr) they are far off."""
    import io

    from PIL import Image

    with open_slide(jpeg_slides["aperio-tables-rgb"]) as slide:
        reference = slide.read_region_array((0, 0), 1, (256, 256))
    levels = JpegTiffLevels.open(jpeg_slides["aperio-tables-rgb"])
    try:
        page = levels.page_for(768, 640)
        assert page.jpeg_color_space == "RGB" and page.tables is not None
        data = jpeg_slides["aperio-tables-rgb"].read_bytes()[int(page.offsets[0]):int(page.offsets[0] + page.counts[0])]
        guessed = np.asarray(Image.open(io.BytesIO(page.tables[:-2] + data[2:])).convert("RGB"))
        assert np.abs(guessed.astype(np.int16) - reference).mean() > 10
        assert np.array_equal(levels.decode(page, 1)[:256, :256], reference)
    finally:
        levels.close()


def test_layouts_the_direct_path_cannot_read_go_through_openslide(slide_dir, tmp_path):
    zlib = tiff_variants.write_zlib_tiled_tiff(tmp_path / "zlib.tif")
    plain = synth.write_plain_image(tmp_path / "plain.png", width=1024, height=1024)
    assert JpegTiffLevels.open(zlib.path) is None
    for path in (zlib.path, plain.path):
        with open_slide(path) as slide:
            assert direct_view(slide, 8) is None
            width, height = slide.dimensions
            assert slide.read_downsampled(8).shape == (height // 8, width // 8, 3)


def test_a_damaged_tile_of_the_view_level_is_reported_by_openslide(tmp_path):
    import tifffile

    slide = synth.write_aperio_slide(tmp_path / "bad.svs", width=4096, height=4096, mpp=0.5)
    blob = slide.blobs[0]
    column, row = int((blob.cx + 0.6 * blob.rx) // 4 // 256), int(blob.cy // 4 // 256)
    with tifffile.TiffFile(slide.path) as tif:
        page = tif.pages[1]                                          # level 1: what the 8 um/px view reads
        index = row * -(-page.imagewidth // 256) + column
        offset, count = page.dataoffsets[index], page.databytecounts[index]
    with open(slide.path, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\x00" * count)
    with open_slide(slide.path) as opened:
        assert direct_view(opened, 16) is None                       # declined: not a JPEG stream
        with pytest.raises(SlideReadError, match="corrupt or missing tile"):
            tile_slide(opened)


def test_a_slide_with_a_zero_length_tile_is_read_by_openslide(tmp_path):
    """OpenSlide paints Aperio's missing tiles from the finer levels: the direct path leaves those to it."""
    import tifffile

    slide = synth.write_aperio_slide(tmp_path / "sparse.svs", width=4096, height=4096, mpp=0.5)
    with open_slide(slide.path) as opened:
        assert (opened.read_downsampled(4)[256:512, 256:512] < 250).any()     # tile 5 of level 1: tissue
    with tifffile.TiffFile(slide.path) as tif:
        tag = tif.pages[1].tags["TileByteCounts"]
        position, size = tag.valueoffset, {3: 2, 4: 4, 16: 8}[int(tag.dtype)]
    with open(slide.path, "r+b") as handle:                          # now it has no bytes
        handle.seek(position + 5 * size)
        handle.write(b"\x00" * size)
    with open_slide(slide.path) as opened:
        assert direct_view(opened, 4) is None
        view = opened.read_downsampled(4)
    assert (view[256:512, 256:512] < 250).any()                      # painted from level 0 by OpenSlide


def test_a_frame_of_another_size_than_the_tiff_tile_is_refused(tmp_path):
    """The decoder writes what the JPEG frame says: a 512 px frame in a 256 px tile must never reach it."""
    import io

    import tifffile
    from PIL import Image

    big = io.BytesIO()
    Image.new("RGB", (512, 512), (200, 120, 160)).save(big, "JPEG")
    small = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 120, 160)).save(small, "JPEG")
    path = tmp_path / "odd.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(iter([small.getvalue(), big.getvalue()]), shape=(256, 512, 3), dtype=np.uint8, tile=(256, 256),
                  compression="jpeg", photometric="rgb", metadata=None)
    assert _frame_size(big.getvalue()) == (512, 512) and _frame_size(b"\xff\xd8\xff\xd9") is None
    levels = JpegTiffLevels.open(path)
    try:
        assert levels.decode(levels.page_for(512, 256), 1) is None
    finally:
        levels.close()


# --- the tiles kept: the default's 8 um/px direct view against the former default (4 um/px, OpenSlide) ---

def test_slides_under_8_mm_keep_the_4_um_mask():
    config = TissueConfig()
    assert config.mask_mpp_for(8192.0) == 8.0 and config.mask_mpp_for(8191.0) == 4.0
    assert TissueConfig(mask_mpp=4.0).mask_mpp_for(100.0) == 4.0
    assert TissueConfig(mask_mpp=2.0).mask_mpp_for(100.0) == 2.0                # never coarser than asked
    assert TissueConfig(min_mask_px=0).mask_mpp_for(100.0) == 8.0

@pytest.fixture(scope="session")
def large_slides(slide_dir):
    """40x (0.25 um/px) slides with five tissue pieces: a full pyramid and one with a single reduced level.
    (3 mm: the default gives them the 4 um/px mask; the tests ask for 8 um/px as on slides over 8 mm.)"""
    return {"pyramid": synth.write_large_sparse_aperio(slide_dir / "pyramid.svs", 12288, 12288, mpp=0.25,
                                                       downsamples=(1, 4, 16)),
            "two-level": synth.write_large_sparse_aperio(slide_dir / "two_level.svs", 12288, 10240, mpp=0.25,
                                                         downsamples=(1, 4))}


@pytest.mark.parametrize("shape", ["pyramid", "two-level"])
def test_the_8_um_view_keeps_the_tiles_the_former_default_kept(large_slides, shape):
    synthetic = large_slides[shape]
    fast, reference = tile_slide(synthetic.path, config=EIGHT_UM), tile_slide(synthetic.path, config=REFERENCE)
    assert fast.tissue.mask_mpp == pytest.approx(8.0) and reference.tissue.mask_mpp == pytest.approx(4.0)
    kept, before = ({tuple(xy) for xy in r.coords_level0.tolist()} for r in (fast, reference))
    differing = kept ^ before
    assert len(before) > 100 and len(differing) <= max(2, len(before) // 100)
    for x, y in differing:                      # only tiles at the 0.1 tissue-fraction border may differ
        assert 0.03 <= synthetic.tissue_fraction(x, y, fast.patch_size_level0) <= 0.3


def test_the_former_default_is_one_setting_away(large_slides):
    """4 um/px read directly is the former view exactly where a level has that resolution."""
    path = large_slides["pyramid"].path
    direct = tile_slide(path, config=TilingConfig(tissue=TissueConfig(mask_mpp=4.0)))
    reference = tile_slide(path, config=REFERENCE)
    assert np.array_equal(direct.tissue.rgb, reference.tissue.rgb)
    assert np.array_equal(direct.coords_level0, reference.coords_level0)
