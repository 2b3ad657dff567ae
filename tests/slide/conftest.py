"""Fixtures for the slide-pipeline tests: synthetic slides written once per session (they are read-only
in tests), and the untrained `random-tiny` encoder."""

from __future__ import annotations

import pytest

from tests.helpers import synthetic_slides as synth


@pytest.fixture(scope="session")
def slide_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("slides")


@pytest.fixture(scope="session")
def aperio_05(slide_dir):
    """4096 px square Aperio slide, 0.5 um/px (20x), levels 1 and 4."""
    return synth.write_aperio_slide(slide_dir / "aperio_05.svs", mpp=0.5)


@pytest.fixture(scope="session")
def aperio_025(slide_dir):
    """40x slide whose level 1 (downsample 2) is exactly 0.5 um/px."""
    return synth.write_aperio_slide(slide_dir / "aperio_025.svs", width=6144, height=6144, mpp=0.25,
                                    downsamples=(1, 2, 8))


@pytest.fixture(scope="session")
def aperio_10(slide_dir):
    """10x slide (1.0 um/px): 0.5 um/px tiles need 2x upsampling."""
    return synth.write_aperio_slide(slide_dir / "aperio_10.svs", width=2048, height=2048, mpp=1.0,
                                    downsamples=(1, 4))


@pytest.fixture(scope="session")
def small_slides(tmp_path_factory):
    """A folder of small good slides for the batch commands (cheap to tile and encode)."""
    folder = tmp_path_factory.mktemp("batch-good")
    synth.write_aperio_slide(folder / "alpha.svs", width=2048, height=2048, mpp=0.5)
    synth.write_aperio_slide(folder / "beta.svs", width=2048, height=2048, mpp=0.5, seed=1)
    synth.write_generic_tiff(folder / "gamma.tif", width=2048, height=2048, mpp=0.5, seed=2)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder():
    from modeling.tile_encoders import load_tile_encoder

    return load_tile_encoder("random-tiny")
