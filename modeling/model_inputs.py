"""One slide -> the inputs the model takes, for every caller: `wsi-llava ask`, `evaluate predict` and the app.

`slide_model_inputs(source, loaded)` reads a released slide-token `.pt` or a features `.h5` as it is
(`modeling.slide_inputs.load_slide_inputs`); any other path is a slide (a file OpenSlide reads, an image or
a DICOM folder), tiled and encoded with the model's own tile encoder, or with the tiling the caller already
made (`coords`, as the app does after showing the tiles). Whether the model can take the inputs is checked
once, where they meet the model: `modeling.inference.SlideChatSession`.

    inputs = slide_model_inputs("TCGA-XX.pt", loaded)
    inputs = slide_model_inputs("slide.svs", loaded, device="cuda", batch_size=128, progress=report)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from modeling.errors import ModelError

SLIDE_INPUT_SUFFIXES = (".pt", ".h5")     # anything else is treated as a slide for the slide pipeline
Progress = Callable[[float, str], None]


def is_slide_input_file(path: str | Path) -> bool:
    """A file the model reads directly (slide tokens or tile features), not a slide to encode."""
    return Path(path).suffix.lower() in SLIDE_INPUT_SUFFIXES


def slide_model_inputs(source: str | Path, loaded, *, device: str | None = None, batch_size: int = 64,
                       num_workers: int | None = None, coords=None, mpp_override: float | None = None,
                       progress: Progress | None = None, load_encoder: Callable | None = None,
                       announce: Callable[[str], None] = lambda message: None):
    """The SlideInputs for `source` (see the module docstring); ModelError / SlideError name the problem.

    Slides only: `device` for the tile encoder (default: the model's), `coords` a tiling to reuse,
    `load_encoder(name, revision, device)` a (cached) tile-encoder loader, `announce` a message sink."""
    from modeling.slide_inputs import from_extracted, load_slide_inputs

    path = Path(source)
    if is_slide_input_file(path):
        return load_slide_inputs(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or directory.")
    config = loaded.model.config
    if not config.has_slide_encoder:
        raise ModelError(f"{loaded.name} has no slide encoder, so it cannot read slides; give it a slide-token "
                         ".pt file (e.g. a WSI-Bench example), or convert the checkpoint with a slide encoder "
                         "(wsi-llava convert-llava ... --slide-encoder prov-gigapath).")
    from modeling.slide.features import extract_slide_features

    device = device or str(loaded.model.get_input_embeddings().weight.device)
    report = progress or (lambda fraction, message: None)
    encoder = (load_encoder or _load_encoder)(config.tile_encoder, config.tile_encoder_revision, device)
    state = "trained" if encoder.trained else "UNTRAINED: random weights"
    announce(f"Tile encoder: {encoder.name} ({state}); extracting features of {path} ...")
    extracted = extract_slide_features(path, encoder, coords=coords, batch_size=batch_size, num_workers=num_workers,
                                       device=device, mpp_override=mpp_override,
                                       progress=lambda f, m: report(0.05 + 0.95 * f, m))
    return from_extracted(extracted, str(path))


def _load_encoder(name: str, revision: str | None, device: str):
    from modeling.tile_encoders import load_tile_encoder

    return load_tile_encoder(name, revision=revision, device=device)
