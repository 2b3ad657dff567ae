"""From a slide file to what the model reads, in the steps a person watches: open -> tissue and tiles
(with an overview image) -> tile features -> slide inputs. Thin over `modeling.slide` and
`modeling.tile_encoders`; the app's Slide Q&A tab and tests call it.

    tiled = tile_for_model("slide.svs", model_config=loaded.model.config, progress=report)
    tiled.overview                     # PIL RGB: tissue contours (green), holes (orange), tiles (blue)
    inputs = extract_inputs(tiled, loaded, PipelineSettings(tile_workers=0), progress=report)

`progress(fraction, message)` gets fractions in 0..1 of each step. Tiles follow the model's tile
encoder (size and microns per pixel); without a model yet, the Prov-GigaPath setting (256 px at
0.5 um/px). Tile encoders are loaded once per (name, revision, device) and kept. Every failure is a
`SlideError` (the slide) or a `ModelError` (encoder, model), with the reason and the fix.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from modeling.errors import ModelError

Progress = Callable[[float, str], None]
DEFAULT_TILE_ENCODER = "prov-gigapath"


@dataclass(frozen=True)
class PipelineSettings:
    tile_batch_size: int = 64
    tile_workers: int | None = None          # None: the slide pipeline's default
    thumbnail_px: int = 1024
    mpp_override: float | None = None        # for slides without resolution metadata

    def __post_init__(self) -> None:
        if self.tile_batch_size < 1 or self.thumbnail_px < 64:
            raise ModelError("tile_batch_size must be >= 1 and thumbnail_px >= 64.")
        if self.tile_workers is not None and self.tile_workers < 0:
            raise ModelError(f"tile_workers must be >= 0, got {self.tile_workers}.")
        if self.mpp_override is not None and not 0.01 <= self.mpp_override <= 100:
            raise ModelError(f"MPP override {self.mpp_override} um/px is implausible; expected about 0.1-2.")


@dataclass
class Step:
    name: str
    seconds: float
    detail: str


@dataclass
class TiledSlide:
    path: str
    info: dict                   # Slide.info(): vendor, dimensions, levels, mpp and its source ...
    tiling: object               # modeling.slide.tiling.TilingResult
    overview: object             # PIL.Image
    tile_encoder: str            # the encoder the tiling was laid out for
    mpp_override: float | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def n_tiles(self) -> int:
        return len(self.tiling)


def tile_encoder_for(model_config) -> str:
    if model_config is None or not model_config.tile_encoder:
        return DEFAULT_TILE_ENCODER
    return model_config.tile_encoder


def tile_for_model(path, model_config=None, settings: PipelineSettings = PipelineSettings(),
                   progress: Progress = lambda f, m: None) -> TiledSlide:
    """Open the slide, find tissue, lay out tiles for the model's tile encoder and draw the overview."""
    from modeling.slide.reader import open_slide
    from modeling.slide.thumbnail import render_overview
    from modeling.slide.tiling import TilingConfig, tile_slide
    from modeling.tile_encoders import TILE_ENCODERS, TileEncoderError

    encoder_name = tile_encoder_for(model_config)
    if encoder_name not in TILE_ENCODERS:
        raise TileEncoderError(f"The model expects tile encoder {encoder_name!r}, which is not registered; known: "
                               f"{', '.join(sorted(TILE_ENCODERS))}.")
    spec = TILE_ENCODERS[encoder_name]
    started = time.monotonic()
    progress(0.0, "opening the slide")
    with open_slide(path, mpp_override=settings.mpp_override) as slide:
        info = slide.info()
        config = TilingConfig(target_mpp=spec.target_mpp, tile_size_px=spec.tile_size_px)
        tiling = tile_slide(slide, config=config, progress=lambda f, m: progress(0.05 + 0.85 * f, m))
    progress(0.9, "drawing the overview")
    overview = render_overview(tiling, max_size_px=settings.thumbnail_px)
    progress(1.0, f"{len(tiling)} tiles on tissue")
    detail = (f"{len(tiling)} tiles of {spec.tile_size_px} px at {spec.target_mpp:g} um/px on "
              f"{tiling.tissue.tissue_area_mm2:.1f} mm2 of tissue")
    return TiledSlide(str(path), info, tiling, overview, encoder_name, settings.mpp_override,
                      [Step("tissue and tiles", time.monotonic() - started, detail)])


_ENCODERS: dict[tuple, object] = {}
_ENCODERS_LOCK = threading.Lock()


def cached_tile_encoder(name: str, revision: str | None, device: str):
    """`load_tile_encoder` once per (name, revision, device)."""
    from modeling.tile_encoders import load_tile_encoder

    key = (name, revision, device)
    with _ENCODERS_LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = load_tile_encoder(name, revision=revision, device=device)
        return _ENCODERS[key]


def model_device(loaded) -> str:
    return str(loaded.model.get_input_embeddings().weight.device)


def extract_inputs(tiled: TiledSlide, loaded, settings: PipelineSettings = PipelineSettings(),
                   progress: Progress = lambda f, m: None):
    """Tile features of `tiled` with `loaded`'s tile encoder -> SlideInputs (`modeling.model_inputs`, the one
    slide -> inputs function; the chat checks them against the model)."""
    from modeling.model_inputs import slide_model_inputs

    config = loaded.model.config
    if tiled.tile_encoder != config.tile_encoder:
        raise ModelError(f"{tiled.path} was tiled for the {tiled.tile_encoder!r} tile encoder but {loaded.name} "
                         f"uses {config.tile_encoder!r}; load the slide again.")
    progress(0.0, f"loading the {config.tile_encoder} tile encoder")
    return slide_model_inputs(tiled.path, loaded, device=model_device(loaded), batch_size=settings.tile_batch_size,
                              num_workers=settings.tile_workers, coords=tiled.tiling, mpp_override=tiled.mpp_override,
                              progress=progress, load_encoder=cached_tile_encoder)
