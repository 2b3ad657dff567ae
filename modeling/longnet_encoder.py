"""The LongNet encoder stack of Prov-GigaPath's slide encoder (torchscale `Encoder` with sub-LN).

Pre-norm layers: x + attn(LN(x)) then x + ffn(LN(x)), where attention ends in `inner_attn_ln` before
`out_proj` and the feed-forward net is fc1 -> GELU -> `ffn_layernorm` -> fc2; the stack ends with
`layer_norm`. Module names mirror torchscale so Prov-GigaPath's `slide_encoder.pth` keys
(`encoder.layers.{i}.self_attn.q_proj.weight`, ...) load unchanged. Dropout follows the same places
(after the embedding, after attention, after fc2) and drop-path grows linearly from 0 over the layers.
Used by `modeling.slide_encoder.LongNetSlideEncoder`; nothing here is meant to be run directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from modeling.dilated_attention import DilatedSelfAttention


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at eval or with p = 0)."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class FeedForwardNetwork(nn.Module):
    """fc1 -> GELU (computed in float32) -> ffn_layernorm -> fc2 -> dropout."""

    def __init__(self, embed_dim: int, ffn_dim: int, dropout: float, layernorm_eps: float):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)
        self.ffn_layernorm = nn.LayerNorm(ffn_dim, eps=layernorm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, L, D]
        hidden = self.fc1(x)
        hidden = F.gelu(hidden.float()).type_as(hidden)  # [B, L, ffn_dim]
        return self.dropout(self.fc2(self.ffn_layernorm(hidden)))


class LongNetEncoderLayer(nn.Module):
    """One pre-norm LongNet layer with dilated self-attention."""

    def __init__(self, embed_dim: int, num_heads: int, ffn_dim: int, segment_lengths, dilated_ratios,
                 dropout: float, drop_path: float, layernorm_eps: float, attention_backend: str):
        super().__init__()
        self.self_attn = DilatedSelfAttention(embed_dim, num_heads, segment_lengths, dilated_ratios,
                                              layernorm_eps=layernorm_eps, backend=attention_backend)
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim, eps=layernorm_eps)
        self.dropout = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)
        self.ffn = FeedForwardNetwork(embed_dim, ffn_dim, dropout, layernorm_eps)
        self.final_layer_norm = nn.LayerNorm(embed_dim, eps=layernorm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, L, D]
        x = x + self.drop_path(self.dropout(self.self_attn(self.self_attn_layer_norm(x))))
        return x + self.drop_path(self.ffn(self.final_layer_norm(x)))


class LongNetEncoder(nn.Module):
    """`layers` (a ModuleList of LongNetEncoderLayer) followed by the output `layer_norm`."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, ffn_dim: int, segment_lengths,
                 dilated_ratios, dropout: float, drop_path_rate: float, layernorm_eps: float,
                 attention_backend: str):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        rates = [drop_path_rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]  # linspace
        self.layers = nn.ModuleList(
            LongNetEncoderLayer(embed_dim, num_heads, ffn_dim, segment_lengths, dilated_ratios,
                                dropout, rate, layernorm_eps, attention_backend)
            for rate in rates
        )
        self.layer_norm = nn.LayerNorm(embed_dim, eps=layernorm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, L, D]
        x = self.dropout(x)
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x)
