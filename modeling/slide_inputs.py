"""Slide inputs for the model, from the files people have.

- A released WSIBench-pt `.pt` file: slide tokens (576, 1024) or (1, 576, 1024), used as they are.
- Our features h5 (`wsi-llava features`, read by `modeling.slide.features_h5`): datasets `features`
  [N, D] and `coords` [N, 2] (tile origins in level-0 pixels) with attrs `patch_size` (tile size at the
  tiling level), `patch_size_level0` and `encoder`; the coordinates are converted to the tiling
  level's pixel frame the slide encoder indexes its position table by (`coords_level0_to_tiling`).
- The slide pipeline's in-memory result (`from_extracted`).

`SlideInputs.token_source` says where slide tokens come from: "released" for a `.pt` file (precomputed
elsewhere, as WSIBench-pt releases them), None for tile features, whose tokens the model computes with its
`config.slide_token_source`; `slide_token_source(config)` gives the name in both cases (recorded on
every prediction, so released tokens and our own can be told apart).

Tile features from an h5 or the slide pipeline also carry their level-0 geometry (`layout`, a
`modeling.slide.tile_layout.TileLayout`: tile origins, tile size and, when recorded, the slide's size
at level 0), which evidence heatmaps draw on; released slide tokens have none.

Every problem (missing file, wrong shape, NaN, missing dataset or attribute) is a `ModelError`
naming the file. `load_slide_inputs(path)` dispatches on the suffix through `LOADERS`.

    inputs = load_slide_inputs("TCGA-XX.pt")
    model.generate(**prompt, **inputs.model_kwargs(), ...)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from modeling.errors import ModelError
from modeling.slide_token_sources import RELEASED_SLIDE_TOKENS
from modeling.slide.tile_layout import TileLayout

SLIDE_TOKENS = "slide_tokens"
TILE_FEATURES = "tile_features"


@dataclass
class SlideInputs:
    kind: str                                      # SLIDE_TOKENS | TILE_FEATURES
    source: str                                    # file (or slide) they came from
    slide_tokens: torch.Tensor | None = None       # [1, S, D]
    tile_features: torch.Tensor | None = None      # [1, N, D]
    coords_tiling_px: torch.Tensor | None = None   # [1, N, 2] (x, y) px at the tiling level
    tile_encoder: str | None = None                # the encoder the features came from, when recorded
    token_source: str | None = None                # slide tokens: RELEASED_SLIDE_TOKENS; tile features: None
    layout: TileLayout | None = None               # level-0 tile geometry (evidence heatmaps), when known

    def __post_init__(self) -> None:
        if self.kind == SLIDE_TOKENS and self.token_source is None:
            self.token_source = RELEASED_SLIDE_TOKENS
        if self.kind == TILE_FEATURES and self.token_source is not None:
            raise ModelError(f"{self.source}: tile features have no slide token source of their own (the model's "
                             f"config.slide_token_source decides); got token_source={self.token_source!r}.")

    def slide_token_source(self, config) -> str:
        """Where the slide tokens come from with model `config` (a WsiLlavaConfig): this input's own source
        (precomputed tokens), else the source the model's slide encoder uses (`config.slide_token_source`)."""
        return self.token_source if self.token_source is not None else config.slide_token_source

    def model_kwargs(self, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """The forward/generate keyword arguments for these inputs (a batch of one slide)."""
        if self.kind == SLIDE_TOKENS:
            return {"slide_tokens": self.slide_tokens.to(device) if device else self.slide_tokens}
        tensors = {"tile_features": self.tile_features, "coords_tiling_px": self.coords_tiling_px}
        return {k: (v.to(device) if device else v) for k, v in tensors.items()}

    def describe(self) -> str:
        if self.kind == SLIDE_TOKENS:
            return f"{self.source}: slide tokens {tuple(self.slide_tokens.shape[1:])}"
        return f"{self.source}: {self.tile_features.shape[1]} tiles x {self.tile_features.shape[2]}-d features"


def _check_finite(tensor: torch.Tensor, source: str, what: str) -> None:
    if not torch.isfinite(tensor).all():
        raise ModelError(f"{source}: {what} contain NaN or infinite values; re-extract them.")


def load_slide_tokens_pt(path: str | Path) -> SlideInputs:
    """A released `.pt` slide-token file -> SlideInputs (float32 [1, S, D])."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: slide-token file not found.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling failures come in many types; all mean "not a tensor file"
        raise ModelError(f"{path}: cannot read as a PyTorch tensor file ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(payload, torch.Tensor):
        raise ModelError(f"{path}: holds a {type(payload).__name__}, expected one tensor of slide tokens "
                         "(576, 1024) or (1, 576, 1024) as in WSIBench-pt.")
    tokens = payload.float()
    if tokens.dim() == 2:
        tokens = tokens.unsqueeze(0)
    if tokens.dim() != 3 or tokens.shape[0] != 1:
        raise ModelError(f"{path}: slide tokens have shape {tuple(payload.shape)}; expected (S, D) or (1, S, D), "
                         "e.g. (576, 1024).")
    _check_finite(tokens, str(path), "slide tokens")
    return SlideInputs(SLIDE_TOKENS, str(path), slide_tokens=tokens, token_source=RELEASED_SLIDE_TOKENS)


def load_features_h5(path: str | Path) -> SlideInputs:
    """Our (or TRIDENT's) features h5 -> SlideInputs with coordinates in the tiling-level frame."""
    from modeling.slide.errors import SlideError
    from modeling.slide.features_h5 import read_features_h5

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: features file not found.")
    try:
        extracted = read_features_h5(path)
    except SlideError as exc:
        raise ModelError(str(exc)) from exc
    return from_extracted(extracted, str(path))


def from_extracted(extracted, source: str) -> SlideInputs:
    """Tile features with level-0 coords (`.features` [N, D], `.coords_level0` [N, 2], `.attrs` with
    `patch_size` and `patch_size_level0`, as the slide pipeline returns them) -> SlideInputs."""
    from modeling.slide_encoder import coords_level0_to_tiling

    attrs = extracted.attrs
    for key in ("patch_size", "patch_size_level0"):
        if attrs.get(key) is None:
            raise ModelError(f"{source}: attribute {key!r} missing; the tile size at the tiling level and at "
                             "level 0 are needed to put coordinates in the slide encoder's frame.")
    features = torch.as_tensor(extracted.features).float()
    coords = torch.as_tensor(extracted.coords_level0).reshape(-1, 2)
    if features.dim() != 2 or features.shape[0] == 0:
        raise ModelError(f"{source}: features have shape {tuple(features.shape)}; expected [N, D] with N >= 1 tiles.")
    if coords.shape[0] != features.shape[0]:
        raise ModelError(f"{source}: {coords.shape[0]} coordinates for {features.shape[0]} feature rows.")
    _check_finite(features, source, "features")
    try:
        coords_tiling = coords_level0_to_tiling(coords, int(attrs["patch_size_level0"]), int(attrs["patch_size"]))
        layout = TileLayout.from_features(extracted, source)
    except ValueError as exc:
        raise ModelError(f"{source}: {exc}") from exc
    return SlideInputs(TILE_FEATURES, source, tile_features=features.unsqueeze(0),
                       coords_tiling_px=coords_tiling.float().unsqueeze(0), tile_encoder=attrs.get("encoder"),
                       layout=layout)


INPUT_KINDS = (SLIDE_TOKENS, TILE_FEATURES)
SUFFIX_KIND = {".pt": SLIDE_TOKENS, ".h5": TILE_FEATURES}


def slide_input_candidates(features_root: str | Path, image: str,
                           kinds: tuple[str, ...] = INPUT_KINDS) -> list[Path]:
    """Where a WSI-Bench item's slide inputs may live under a features root, in the order tried.

    `image` is as released ("TCGA-BRCA/<slide>.pt"). Tried: the released slide-token file itself, our
    features h5 beside it ("TCGA-BRCA/<slide>.h5"), then the flat layouts ("<slide>.pt", "<slide>.h5";
    `wsi-llava features --out ROOT` writes the latter). `kinds` keeps .pt (slide tokens) and/or .h5.
    """
    root, relative = Path(features_root), Path(image)
    slide = relative.name.removesuffix(relative.suffix) if relative.suffix in SUFFIX_KIND else relative.name
    paths = [root / relative.with_suffix(".pt"), root / relative.with_suffix(".h5"), root / f"{slide}.pt",
             root / f"{slide}.h5"]
    return [path for path in paths if SUFFIX_KIND[path.suffix] in kinds]


def find_slide_input(features_root: str | Path, image: str, kinds: tuple[str, ...] = INPUT_KINDS) -> Path | None:
    """The first existing candidate (see `slide_input_candidates`), or None."""
    return next((path for path in slide_input_candidates(features_root, image, kinds) if path.is_file()), None)


LOADERS: dict[str, Callable[[Path], SlideInputs]] = {
    ".pt": load_slide_tokens_pt,
    ".h5": load_features_h5,
}


def load_slide_inputs(path: str | Path) -> SlideInputs:
    path = Path(path)
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise ModelError(f"{path}: unknown slide-input file type {path.suffix!r}; expected one of {sorted(LOADERS)}.")
    return loader(path)


def check_compatible(inputs: SlideInputs, config) -> None:
    """ModelError unless `config` (a WsiLlavaConfig) can take these inputs; the message names both sides."""
    name = config.name_for_display
    if inputs.kind == TILE_FEATURES:
        if not config.has_slide_encoder:
            raise ModelError(f"{inputs.source}: tile features need a slide encoder, but {name} has none "
                             "(slide-token-only checkpoint); give it a slide-token .pt file instead.")
        if inputs.tile_encoder is not None and inputs.tile_encoder != config.tile_encoder:
            raise ModelError(f"{inputs.source}: features come from the {inputs.tile_encoder!r} tile encoder but "
                             f"{name} expects {config.tile_encoder!r} features; re-extract with that encoder.")
        width = inputs.tile_features.shape[-1]
        if width != config.tile_feature_dim:
            raise ModelError(f"{inputs.source}: features are {width}-d but {name} expects {config.tile_feature_dim}-d "
                             f"features from the {config.tile_encoder!r} tile encoder; re-extract with that encoder.")
        return
    count, width = inputs.slide_tokens.shape[1:]
    if count != config.num_slide_tokens:
        raise ModelError(f"{inputs.source}: {count} slide tokens but {name} takes {config.num_slide_tokens}.")
    encoder = config.slide_encoder()
    if encoder is None:
        from modeling.slide_encoder import SlideEncoderConfig

        encoder = SlideEncoderConfig()          # tokens pooled elsewhere: Prov-GigaPath's width
    if width < config.slide_token_dim and width != encoder.embed_dim:
        padded = (f" (or {encoder.embed_dim}-d pooled slide-encoder tokens, which are zero-padded)"
                  if encoder.embed_dim < config.slide_token_dim else "")
        raise ModelError(f"{inputs.source}: slide tokens are {width}-d but {name} takes {config.slide_token_dim}-d "
                         f"tokens{padded}.")
    if width > config.slide_token_dim and torch.count_nonzero(inputs.slide_tokens[..., config.slide_token_dim:]):
        raise ModelError(f"{inputs.source}: slide tokens are {width}-d but {name} takes {config.slide_token_dim}-d "
                         "tokens and the extra channels are not zero padding.")


def use_slide_token_source(model, inputs: SlideInputs, name: str | None) -> str:
    """Set `model`'s slide token source to `name` for tile-feature inputs (None keeps the model's) and return
    the source these inputs' slide tokens come from. ModelError when `name` is given for precomputed slide
    tokens: they are used as they are, so the option cannot apply (never silently ignored)."""
    if name is not None:
        if inputs.kind == SLIDE_TOKENS:
            raise ModelError(f"{inputs.source}: holds precomputed slide tokens ({inputs.token_source}), so a slide "
                             f"token source ({name!r}) cannot apply; give tile features (.h5) or a slide instead, "
                             "or drop the option.")
        model.set_slide_token_source(name)
    return inputs.slide_token_source(model.config)
