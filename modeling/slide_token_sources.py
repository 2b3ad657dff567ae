"""Which hidden state of the slide encoder becomes WSI-LLaVA's 576 slide tokens: the named sources.

Prov-GigaPath's `LongNetViT.forward(x, coords, all_layer_embed)` (github.com/prov-gigapath/prov-gigapath,
`gigapath/slide_encoder.py`, commit 09d8e87) runs 12 LongNet layers; torchscale's `Encoder.forward` then
returns `encoder_out` (after the last layer AND the encoder's `layer_norm`) and, with
`return_all_hiddens`, `encoder_states` = [embedding, output of layer 1, ..., output of layer 12], none of
them passed through `layer_norm`. `all_layer_embed=False` uses `encoder_out`; `all_layer_embed=True` uses
every entry of `encoder_states`. WSI-LLaVA's README (github.com/XinhengLyu/WSI-LLaVA, "Slide Feature
Extraction Modification") replaces the `global_pool` branch that follows by: drop CLS,
`adaptive_avg_pool1d` of the tile-token sequence to 576, the encoder's final `norm` (LayerNorm eps 1e-6),
zero-pad 768 -> 1024 (the snippet pads before `norm`, which cannot run as written: `norm` is
LayerNorm(768); we pad after it, the only order that runs, and `slide_inputs.check_compatible` refuses
wider `.pt` tokens whose extra channels are not zero). That
adapter applies to whichever hidden state a pipeline selects, so every source below is: hidden state ->
drop CLS -> pool to 576 -> final `norm` (-> zero-pad, in the model). The sources differ ONLY in the state:

- "wsi-llava-readme" (default): `encoder_out`, i.e. after all layers and `encoder.layer_norm`
  (`forward(..., all_layer_embed=False)` with the README's patch). WSI-LLaVA's projector was trained on
  tokens of this definition, so it is the faithful choice for WSI-LLaVA checkpoints.
- "trident": the output of layer 11 of 12 WITHOUT `encoder.layer_norm`: TRIDENT (github.com/mahmoodlab/
  TRIDENT, `trident/slide_encoder_models/load.py`, `GigaPathSlideEncoder.forward`, commit 04e4c2b) calls
  `model(features, coords, all_layer_embed=True)[11]` on a `global_pool=True` model (index 0 is the
  embedding, so [11] is layer 11's output). TRIDENT also sets `model.tile_size = patch_size_level0` and
  passes level-0 coords: the same grid cells as tiling-level coords / 256 when tiles are 256 px there.
- "prov-gigapath-pipeline": the output of the last layer WITHOUT `encoder.layer_norm`: Prov-GigaPath's
  `gigapath/pipeline.py::run_inference_with_slide_encoder` calls `all_layer_embed=True` and keeps
  `last_layer_embed = slide_embeds[-1]` (= `encoder_states[-1]`).

Only the default matches what the released checkpoints were trained on; the others are for users whose
tokens (or whose comparison) come from those pipelines. Tokens read from a `.pt` file were computed
elsewhere (WSIBench-pt releases them): their source is `RELEASED_SLIDE_TOKENS` ("released").

    source = resolve_slide_token_source("trident")     # SlideTokenSource(name="trident", layer=11, ...)
"""

from __future__ import annotations

from dataclasses import dataclass

from modeling.errors import ModelError


@dataclass(frozen=True)
class SlideTokenSource:
    name: str
    layer: int | None            # hidden state after this many layers (1-based); None = all layers
    encoder_layer_norm: bool     # whether the encoder's output `layer_norm` is applied
    reference: str               # where the definition comes from

    def layers_run(self, depth: int) -> int:
        """How many of the encoder's `depth` layers run; ModelError when the source needs more."""
        if self.layer is None:
            return depth
        if self.layer > depth:
            raise ModelError(f"slide token source {self.name!r} takes the output of layer {self.layer}, but the "
                             f"slide encoder has only {depth} layers; use {DEFAULT_SLIDE_TOKEN_SOURCE!r}.")
        return self.layer


DEFAULT_SLIDE_TOKEN_SOURCE = "wsi-llava-readme"
RELEASED_SLIDE_TOKENS = "released"   # precomputed tokens read from a .pt file (WSIBench-pt)

SLIDE_TOKEN_SOURCES: dict[str, SlideTokenSource] = {
    "wsi-llava-readme": SlideTokenSource(
        "wsi-llava-readme", None, True,
        "XinhengLyu/WSI-LLaVA README: LongNetViT.forward(all_layer_embed=False) = encoder_out, pooled to 576"),
    "trident": SlideTokenSource(
        "trident", 11, False,
        "mahmoodlab/TRIDENT trident/slide_encoder_models/load.py GigaPathSlideEncoder.forward: "
        "all_layer_embed=True, [11]"),
    "prov-gigapath-pipeline": SlideTokenSource(
        "prov-gigapath-pipeline", None, False,
        "prov-gigapath/prov-gigapath gigapath/pipeline.py run_inference_with_slide_encoder: last_layer_embed"),
}


def resolve_slide_token_source(name: str) -> SlideTokenSource:
    try:
        return SLIDE_TOKEN_SOURCES[name]
    except (KeyError, TypeError):
        raise ModelError(f"unknown slide token source {name!r}; use one of {sorted(SLIDE_TOKEN_SOURCES)} "
                         f"(default {DEFAULT_SLIDE_TOKEN_SOURCE!r}, see modeling.slide_token_sources)") from None
