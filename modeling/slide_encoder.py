"""Prov-GigaPath's LongNet slide encoder (`gigapath_slide_enc12l768d`) with WSI-LLaVA's token pooling.

Tile features [B, N, 1536] -> Linear patch embedding -> + fixed 2-D sin-cos position embedding of the
tile's grid cell (x_cell = floor(x / 256), y_cell = floor(y / 256), coordinates in pixels AT THE
TILING LEVEL; Prov-GigaPath's table index is x_cell * 1000 + y_cell + 1) -> prepend CLS -> 12 LongNet
layers (dilated attention) -> encoder layer_norm. WSI-LLaVA then drops CLS, adaptive-average-pools the
tile token sequence to 576 tokens and applies the final `norm`. The position table (1000 x 1000 + 1
rows) is never materialised: rows are computed on the fly, identical to Prov-GigaPath's float64 table.
`token_source` (a name of `modeling.slide_token_sources.SLIDE_TOKEN_SOURCES`) picks the hidden state that
is pooled: the README's default (after encoder.layer_norm), TRIDENT's (layer 11, no layer_norm) or
Prov-GigaPath's pipeline's (last layer, no layer_norm).

Parameter names equal Prov-GigaPath's `slide_encoder.pth` (key "model"), so its weights load with
`strict=True` (see `modeling.slide_encoder_weights`). Note Prov-GigaPath's LongNet config uses 16
attention heads (head dim 48) for this model, which is this config's default.

Try it: `python -c "import torch; from modeling.slide_encoder import *; m = LongNetSlideEncoder(
SlideEncoderConfig(in_dim=8, embed_dim=16, depth=1, num_heads=4)); print(m(torch.randn(1, 900, 8),
torch.randint(0, 9000, (1, 900, 2))).shape)"`
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modeling.dilated_attention import ATTENTION_BACKENDS
from modeling.errors import ModelError
from modeling.longnet_encoder import LongNetEncoder
from modeling.slide_token_sources import DEFAULT_SLIDE_TOKEN_SOURCE, resolve_slide_token_source


def prov_gigapath_segment_lengths(max_wsi_size_px: int = 262144, tile_size_px: int = 256) -> tuple[int, ...]:
    """Prov-GigaPath's 5 segment lengths: 2**linspace(10, log2(max_tiles), 5), truncated to int."""
    max_tiles = (max_wsi_size_px // tile_size_px) ** 2
    exponents = np.linspace(np.log2(1024), int(np.log2(max_tiles)), 5)
    return tuple(int(x) for x in np.power(2, exponents).astype(int))


@dataclass
class SlideEncoderConfig:
    in_dim: int = 1536
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 16  # Prov-GigaPath's LongNet_12_layers_768_dim: encoder_attention_heads = 16
    mlp_ratio: float = 4.0
    dilated_ratios: tuple[int, ...] = (1, 2, 4, 8, 16)
    segment_lengths: tuple[int, ...] = (1024, 5792, 32768, 185363, 1048576)
    slide_ngrids: int = 1000
    tile_size_px: int = 256
    num_slide_tokens: int = 576
    dropout: float = 0.0
    drop_path_rate: float = 0.0
    layernorm_eps: float = 1e-5  # torchscale layers and encoder.layer_norm
    final_norm_eps: float = 1e-6  # the slide encoder's `norm`
    attention_backend: str = "auto"  # one of modeling.dilated_attention.ATTENTION_BACKENDS

    def __post_init__(self) -> None:
        self.dilated_ratios = tuple(int(x) for x in self.dilated_ratios)
        self.segment_lengths = tuple(int(x) for x in self.segment_lengths)
        for name in ("in_dim", "embed_dim", "depth", "num_heads", "slide_ngrids", "tile_size_px",
                     "num_slide_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ModelError(f"SlideEncoderConfig.{name} must be a positive integer, got {value!r}")
        if self.embed_dim % self.num_heads:
            raise ModelError(f"SlideEncoderConfig.embed_dim {self.embed_dim} must be divisible by "
                             f"num_heads {self.num_heads}")
        if self.embed_dim % 4:
            raise ModelError(f"SlideEncoderConfig.embed_dim {self.embed_dim} must be divisible by 4 "
                             "(the 2-D sin-cos position embedding)")
        if not self.segment_lengths or len(self.segment_lengths) != len(self.dilated_ratios):
            raise ModelError(f"SlideEncoderConfig.segment_lengths {self.segment_lengths} and dilated_ratios "
                             f"{self.dilated_ratios} must be non-empty and of equal length")
        if min(self.segment_lengths) <= 0 or min(self.dilated_ratios) <= 0:
            raise ModelError("SlideEncoderConfig.segment_lengths and dilated_ratios must be positive")
        if self.mlp_ratio <= 0 or int(self.embed_dim * self.mlp_ratio) <= 0:
            raise ModelError(f"SlideEncoderConfig.mlp_ratio must be positive, got {self.mlp_ratio}")
        for name in ("dropout", "drop_path_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ModelError(f"SlideEncoderConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if min(self.layernorm_eps, self.final_norm_eps) <= 0:
            raise ModelError("SlideEncoderConfig.layernorm_eps and final_norm_eps must be positive")
        if self.attention_backend not in ATTENTION_BACKENDS:
            raise ModelError(f"SlideEncoderConfig.attention_backend {self.attention_backend!r} is unknown; "
                             f"use one of {ATTENTION_BACKENDS}")

    @property
    def ffn_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["dilated_ratios"] = list(self.dilated_ratios)
        data["segment_lengths"] = list(self.segment_lengths)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlideEncoderConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"SlideEncoderConfig got unknown fields {unknown}; known fields: {sorted(known)}")
        return cls(**data)


def coords_level0_to_tiling(coords_level0, patch_size_level0: int, patch_size: int) -> torch.Tensor:
    """Level-0 pixel coords [..., 2] -> the tiling level's pixel frame (float64), as the slide encoder needs.

    A features h5 stores tile origins at level 0 with attrs `patch_size` (tile size at the tiling level)
    and `patch_size_level0` (the same tile measured at level 0); the tiling-level frame is level 0 scaled
    by patch_size / patch_size_level0 (prov-gigapath issue #116).
    """
    for name, value in (("patch_size_level0", patch_size_level0), ("patch_size", patch_size)):
        if int(value) != value or value <= 0:
            raise ValueError(f"{name} must be a positive integer number of pixels, got {value!r}")
    coords = torch.as_tensor(coords_level0).to(torch.float64)
    if coords.shape[-1:] != (2,):
        raise ValueError(f"coords_level0 must have shape [..., 2], got {tuple(coords.shape)}")
    return coords * int(patch_size) / int(patch_size_level0)


def grid_cells(coords_tiling_px: torch.Tensor, tile_size_px: int, slide_ngrids: int) -> torch.Tensor:
    """Tile coords [..., 2] (x, y, tiling-level px) -> integer grid cells [..., 2]; raises outside the grid."""
    coords = coords_tiling_px.to(torch.float64)
    if not torch.isfinite(coords).all():
        raise ValueError("coords_tiling_px contains NaN or infinite values")
    cells = torch.floor(coords / tile_size_px).long()
    if cells.numel() and (cells.min() < 0 or cells.max() >= slide_ngrids):
        raise ValueError(
            f"tile coordinates must lie in [0, {slide_ngrids * tile_size_px}) px at the tiling level "
            f"(slide_ngrids={slide_ngrids} x tile_size_px={tile_size_px}); got x in "
            f"[{coords[..., 0].min().item()}, {coords[..., 0].max().item()}], y in "
            f"[{coords[..., 1].min().item()}, {coords[..., 1].max().item()}]. Level-0 coordinates from a "
            "downsampled tiling must be converted with coords_level0_to_tiling first.")
    return cells


def position_index(coords_tiling_px: torch.Tensor, tile_size_px: int = 256, slide_ngrids: int = 1000) -> torch.Tensor:
    """Prov-GigaPath's position-table row: floor(x / tile) * ngrids + floor(y / tile) + 1 (row 0 is CLS)."""
    cells = grid_cells(coords_tiling_px, tile_size_px, slide_ngrids)
    return cells[..., 0] * slide_ngrids + cells[..., 1] + 1


def sincos_position_embedding(cells: torch.Tensor, embed_dim: int) -> torch.Tensor:
    """Rows of Prov-GigaPath's 2-D sin-cos table for grid cells [..., 2] -> [..., embed_dim] float64.

    The table's first half encodes the y cell and the second half the x cell (MAE's meshgrid order with
    the row index x_cell * ngrids + y_cell); each half is [sin(p * w), cos(p * w)], w_i = 10000^(-i / (D/4)).
    """
    quarter = embed_dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64, device=cells.device) / quarter)

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.to(torch.float64).unsqueeze(-1) * omega  # [..., D/4]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)

    return torch.cat([encode(cells[..., 1]), encode(cells[..., 0])], dim=-1)


def pool_slide_tokens(tokens: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Adaptive average pooling of a token SEQUENCE [B, N, D] -> [B, num_tokens, D].

    Output token i averages input tokens [floor(i N / T), ceil((i + 1) N / T)). With N < T the bins
    hold one or two neighbouring tokens, so tokens are repeated (and pairs averaged), never zero-filled.
    """
    return F.adaptive_avg_pool1d(tokens.transpose(1, 2), num_tokens).transpose(1, 2)


class PatchEmbed(nn.Module):
    """Prov-GigaPath's slide patch embedding: one Linear, in_dim -> embed_dim."""

    def __init__(self, in_dim: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class LongNetSlideEncoder(nn.Module):
    """Prov-GigaPath slide encoder; `forward` returns WSI-LLaVA's 576 pooled, normalised slide tokens."""

    def __init__(self, config: SlideEncoderConfig):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config.in_dim, config.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.encoder = LongNetEncoder(config.embed_dim, config.depth, config.num_heads, config.ffn_dim,
                                      config.segment_lengths, config.dilated_ratios, config.dropout,
                                      config.drop_path_rate, config.layernorm_eps, config.attention_backend)
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.final_norm_eps)
        self.weights_source: str | None = None  # the checkpoint loaded; None = randomly initialised
        self._init_weights()

    def _init_weights(self) -> None:
        """Prov-GigaPath's init: xavier-uniform Linear weights, zero biases, cls_token ~ N(0, 0.02)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.cls_token, std=0.02)

    def _tile_lengths(self, tile_features, coords_tiling_px, padding_mask) -> list[int] | None:
        """Validate inputs; the number of real tiles per slide, or None when nothing is padded."""
        if tile_features.dim() != 3 or tile_features.shape[-1] != self.config.in_dim:
            raise ValueError(f"tile_features must be [B, N, {self.config.in_dim}] (in_dim={self.config.in_dim}), "
                             f"got shape {tuple(tile_features.shape)} with width {tile_features.shape[-1]}")
        batch, n_tiles = tile_features.shape[:2]
        if coords_tiling_px.dim() != 3 or coords_tiling_px.shape[-1] != 2:
            raise ValueError(f"coords_tiling_px must be [B, N, 2], got shape {tuple(coords_tiling_px.shape)}")
        if tuple(coords_tiling_px.shape[:2]) != (batch, n_tiles):
            raise ValueError(f"tile_features have B={batch}, N={n_tiles} but coords_tiling_px has "
                             f"B={coords_tiling_px.shape[0]}, N={coords_tiling_px.shape[1]}")
        if n_tiles == 0:
            raise ValueError("tile_features hold no tiles (N = 0)")
        if padding_mask is None:
            return None
        if tuple(padding_mask.shape) != (batch, n_tiles) or padding_mask.dtype != torch.bool:
            raise ValueError(f"padding_mask must be a bool tensor [B, N] = [{batch}, {n_tiles}], got "
                             f"{padding_mask.dtype} {tuple(padding_mask.shape)}")
        lengths = (~padding_mask).sum(dim=1)
        expected = torch.arange(n_tiles, device=padding_mask.device).unsqueeze(0) >= lengths.unsqueeze(1)
        if not torch.equal(expected, padding_mask):
            raise ValueError("padding_mask must pad at the end of each row (True = padding after all real tiles)")
        if lengths.min() == 0:
            raise ValueError(f"slide {int(torch.argmin(lengths))} in the batch has no real tiles")
        return None if bool(lengths.eq(n_tiles).all()) else lengths.tolist()

    def _encode(self, tile_features: torch.Tensor, coords_tiling_px: torch.Tensor, source) -> torch.Tensor:
        x = self.patch_embed(tile_features)  # [B, N, D]
        cells = grid_cells(coords_tiling_px.to(x.device), self.config.tile_size_px, self.config.slide_ngrids)
        x = x + sincos_position_embedding(cells, self.config.embed_dim).to(torch.float32).to(x.dtype)
        cls = self.cls_token.to(x.dtype).expand(x.shape[0], -1, -1)  # its table row 0 is all zeros
        x = torch.cat([cls, x], dim=1)  # [B, N + 1, D]
        if source.layer is None and source.encoder_layer_norm:
            return self.encoder(x)      # all layers, then encoder.layer_norm
        x = self.encoder.dropout(x)     # LongNetEncoder.forward, stopped at the source's hidden state
        for layer in self.encoder.layers[:source.layers_run(self.config.depth)]:
            x = layer(x)
        return self.encoder.layer_norm(x) if source.encoder_layer_norm else x

    def encode_tokens(self, tile_features, coords_tiling_px, padding_mask=None,
                      token_source: str = DEFAULT_SLIDE_TOKEN_SOURCE) -> torch.Tensor:
        """[B, N, in_dim], [B, N, 2] (x, y px at the tiling level) -> [B, N + 1, D] (CLS first): the hidden
        state `token_source` names (`modeling.slide_token_sources`; default: after encoder.layer_norm).

        `padding_mask` [B, N] (True = padding, only at the end of a row): each slide is then encoded on
        its real tiles alone, exactly as if it were alone in the batch; padded rows of the output are 0.
        """
        source = resolve_slide_token_source(token_source)
        lengths = self._tile_lengths(tile_features, coords_tiling_px, padding_mask)
        if lengths is None:
            return self._encode(tile_features, coords_tiling_px, source)
        total = tile_features.shape[1] + 1
        return torch.stack([
            F.pad(self._encode(tile_features[b:b + 1, :n], coords_tiling_px[b:b + 1, :n], source)[0],
                  (0, 0, 0, total - n - 1))
            for b, n in enumerate(lengths)])  # [B, N + 1, D], zeros after each slide's tokens

    def forward(self, tile_features, coords_tiling_px, padding_mask=None,
                token_source: str = DEFAULT_SLIDE_TOKEN_SOURCE) -> torch.Tensor:
        """[B, N, in_dim], [B, N, 2] -> [B, num_slide_tokens, D]: the `token_source` hidden state, CLS
        dropped, the sequence pooled, final norm (the same adapter for every source).

        With fewer tiles than num_slide_tokens the pooling repeats tokens (see `pool_slide_tokens`).
        """
        tokens = self.encode_tokens(tile_features, coords_tiling_px, padding_mask, token_source)  # [B, N + 1, D]
        target = self.config.num_slide_tokens
        if padding_mask is None or not bool(padding_mask.any()):
            pooled = pool_slide_tokens(tokens[:, 1:], target)
        else:
            lengths = (~padding_mask).sum(dim=1).tolist()
            pooled = torch.cat([pool_slide_tokens(tokens[b:b + 1, 1:n + 1], target)
                                for b, n in enumerate(lengths)])
        return self.norm(pooled)  # [B, num_slide_tokens, D]
