"""The projector: slide tokens -> the language model's embedding space (LLaVA's `mm_projector`).

Projector types are an explicit registry (`PROJECTORS`), named as in LLaVA-1.5 (`mm_projector_type`).
Each builds exactly LLaVA's module layout, so a converted checkpoint's `model.mm_projector.*` keys map
onto `projector.*` unchanged: `mlp2x_gelu` is `Sequential(Linear, GELU, Linear)` (keys `0.*`, `2.*`),
`linear` is a bare `Linear` (keys `weight`, `bias`).

`fit_slide_token_width` makes slide tokens as wide as the projector input: WSI-LLaVA zero-pads the
768-d pooled slide tokens to 1024 so LLaVA-1.5's projector fits; released `.pt` features are already
padded. Padding with zeros (and dropping channels that are exactly zero) is lossless; anything else
is an error.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def _linear(in_dim: int, out_dim: int) -> nn.Module:
    return nn.Linear(in_dim, out_dim)


def _mlp2x_gelu(in_dim: int, out_dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))


# name -> builder(slide_token_dim, llm_hidden_size)
PROJECTORS: dict[str, Callable[[int, int], nn.Module]] = {
    "linear": _linear,
    "mlp2x_gelu": _mlp2x_gelu,
}


def build_projector(projector_type: str, slide_token_dim: int, hidden_size: int) -> nn.Module:
    if projector_type not in PROJECTORS:
        raise ValueError(f"Unknown projector_type {projector_type!r}; known: {sorted(PROJECTORS)}.")
    return PROJECTORS[projector_type](slide_token_dim, hidden_size)


def fit_slide_token_width(slide_tokens: torch.Tensor, width: int) -> torch.Tensor:
    """[B, S, D] -> [B, S, width]: zero-pad D < width (768 -> 1024), or drop trailing all-zero channels.

    Raises ValueError when D > width and the extra channels carry data (tokens from another encoder).
    """
    dim = slide_tokens.shape[-1]
    if dim == width:
        return slide_tokens
    if dim < width:
        return nn.functional.pad(slide_tokens, (0, width - dim))
    if torch.count_nonzero(slide_tokens[..., width:]) == 0:
        return slide_tokens[..., :width]
    raise ValueError(
        f"Slide tokens are {dim} wide but the projector takes {width}, and channels {width}..{dim - 1} are "
        f"not zero padding: these tokens come from a different slide encoder than this model's "
        f"(config.slide_token_dim={width})."
    )
