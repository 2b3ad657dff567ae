"""LongNet dilated self-attention (Prov-GigaPath flavour), written for CPU and CUDA.

Each branch i has a segment length w_i and a dilation ratio r_i. The sequence (length L) is cut into
segments of length min(w_i, L) (the tail is zero-padded to a whole segment); inside a segment the heads
are split into r_i contiguous groups and group g keeps the positions g, g + r_i, g + 2 r_i, ... (each
segment is zero-padded to a multiple of r_i first). Attention runs inside each sparse segment and the
branch outputs are merged per query and head with weights softmax(lse_i) over the branches that cover
the query, where lse_i is the branch's softmax log-sum-exp.

Two details follow Prov-GigaPath's torchscale code exactly, because its published weights were trained
with them: the zero padding is applied to the projected keys/values, so padded slots are real keys with
logit 0 and value 0 inside the softmax; and the merge weights are computed without gradient.

Per-segment attention goes through an explicit kernel registry (`ATTENTION_KERNELS`): "math" (exact,
query-chunked so memory stays linear), "naive" (materialises the full score matrix: a reference and the
dense baseline of `benchmarks/slide_encoder_memory.py`), "sdpa" (PyTorch's fused attention ops that
also return the log-sum-exp, CPU and CUDA) and "flash_attn" (the flash-attn package, CUDA, fp16/bf16).
"auto" picks flash_attn > sdpa on CUDA and sdpa > math on CPU.

Try it: `python -c "import torch; from modeling.dilated_attention import dilated_attention as f;
q = torch.randn(1, 300, 4, 8); print(f(q, q, q, (64, 128), (1, 2)).shape)"`
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from modeling.errors import ModelError

# A kernel maps q, k, v [G, H, M, Dh] and a softmax scale to (out [G, H, M, Dh], lse [G, H, M] float32).
AttentionKernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]

MATH_SCORE_BUDGET_BYTES = 64 * 2**20  # the "math" kernel's score block per query chunk


def _scores_softmax(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float):
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale  # [G, H, Mq, Mk]
    lse = torch.logsumexp(scores, dim=-1)  # [G, H, Mq]
    probs = torch.exp(scores - lse.unsqueeze(-1))
    return torch.matmul(probs, v.float()).to(q.dtype), lse


def _naive_kernel(q, k, v, scale):
    return _scores_softmax(q, k, v, scale)


def _math_kernel(q, k, v, scale):
    groups, heads, m_q, _ = q.shape
    bytes_per_row = max(1, groups * heads * k.shape[2] * 4)
    chunk = max(1, min(m_q, MATH_SCORE_BUDGET_BYTES // bytes_per_row))
    if chunk >= m_q:
        return _scores_softmax(q, k, v, scale)
    outs, lses = [], []
    for start in range(0, m_q, chunk):
        out, lse = _scores_softmax(q[:, :, start:start + chunk], k, v, scale)
        outs.append(out)
        lses.append(lse)
    return torch.cat(outs, dim=2), torch.cat(lses, dim=2)


def _sdpa_kernel(q, k, v, scale):
    if q.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, scale=scale)
        return out, lse.float()
    if q.device.type == "cuda" and q.shape[-1] % 8 == 0:  # fused CUDA kernels need head_dim % 8 == 0
        if q.dtype in (torch.float16, torch.bfloat16) and q.shape[-1] <= 256:
            result = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, scale=scale)
            return result[0], result[1][..., : q.shape[2]].float()
        result = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True, scale=scale)
        return result[0], result[1][..., : q.shape[2]].float()  # lse is padded to a multiple of 32
    return _math_kernel(q, k, v, scale)  # other devices, or CUDA with head_dim % 8 != 0


def _flash_attn_kernel(q, k, v, scale):
    from flash_attn import flash_attn_func  # optional dependency, CUDA only

    q_, k_, v_ = (x.transpose(1, 2) for x in (q, k, v))  # [G, M, H, Dh]
    out, lse, _ = flash_attn_func(q_, k_, v_, dropout_p=0.0, softmax_scale=scale, return_attn_probs=True)
    return out.transpose(1, 2), lse[..., : q.shape[2]].float()


ATTENTION_KERNELS: dict[str, AttentionKernel] = {
    "math": _math_kernel,
    "naive": _naive_kernel,
    "sdpa": _sdpa_kernel,
    "flash_attn": _flash_attn_kernel,
}
ATTENTION_BACKENDS = ("auto", *ATTENTION_KERNELS)


def _has_cpu_sdpa_with_lse() -> bool:
    return hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu")


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """The kernel name `backend` means on `device`/`dtype` ("auto" picks the fastest available)."""
    if backend not in ATTENTION_BACKENDS:
        raise ModelError(f"attention backend {backend!r} is unknown; use one of {ATTENTION_BACKENDS}")
    if backend == "flash_attn" and (device.type != "cuda" or not importlib.util.find_spec("flash_attn")):
        raise ModelError("attention backend 'flash_attn' needs CUDA and the flash-attn package; install it "
                         "on a CUDA machine or use attention_backend='auto'")
    if backend == "sdpa" and device.type == "cpu" and not _has_cpu_sdpa_with_lse():
        raise ModelError(f"this torch {torch.__version__} lacks the fused CPU attention op that returns the "
                         "log-sum-exp; use attention_backend='auto' or 'math'")
    if backend != "auto":
        return backend
    if device.type == "cuda":
        half = dtype in (torch.float16, torch.bfloat16)
        return "flash_attn" if half and importlib.util.find_spec("flash_attn") else "sdpa"
    if device.type == "cpu" and _has_cpu_sdpa_with_lse():
        return "sdpa"
    return "math"


def _sparse_heads(heads: int, ratio: int, device: torch.device):
    """Per-head offset inside each dilation window: head h belongs to group h // ceil(H / r)."""
    heads_per_group = math.ceil(heads / ratio)
    offsets = torch.arange(heads, device=device) // heads_per_group  # [H]
    return offsets, torch.arange(heads, device=device)


def _to_sparse(x: torch.Tensor, seg_len: int, ratio: int, offsets, head_idx) -> torch.Tensor:
    """[B, L, H, Dh] -> [B * n_seg, H, m, Dh]: segment, zero-pad, keep each head's dilated positions."""
    batch, length, heads, head_dim = x.shape
    n_seg = math.ceil(length / seg_len)
    slots = math.ceil(seg_len / ratio)
    x = F.pad(x, (0, 0, 0, 0, 0, n_seg * seg_len - length))
    x = x.reshape(batch, n_seg, seg_len, heads, head_dim)
    x = F.pad(x, (0, 0, 0, 0, 0, slots * ratio - seg_len))
    x = x.reshape(batch, n_seg, slots, ratio, heads, head_dim)
    x = x[:, :, :, offsets, head_idx] if ratio > 1 else x[:, :, :, 0]  # [B, n_seg, m, H, Dh]
    return x.permute(0, 1, 3, 2, 4).reshape(batch * n_seg, heads, slots, head_dim)


def _to_dense(x: torch.Tensor, batch: int, length: int, seg_len: int, ratio: int, offsets, head_idx, fill):
    """Inverse of `_to_sparse` for [B * n_seg, H, m, *rest]; uncovered positions get `fill`."""
    n_seg, heads, slots = x.shape[0] // batch, x.shape[1], x.shape[2]
    rest = x.shape[3:]
    x = x.reshape(batch, n_seg, heads, slots, *rest).transpose(2, 3)  # [B, n_seg, m, H, *rest]
    if ratio > 1:
        dense = x.new_full((batch, n_seg, slots, ratio, heads, *rest), fill)
        dense[:, :, :, offsets, head_idx] = x
    else:
        dense = x.unsqueeze(3)
    dense = dense.reshape(batch, n_seg, slots * ratio, heads, *rest)[:, :, :seg_len]
    return dense.reshape(batch, n_seg * seg_len, heads, *rest)[:, :length]


def dilated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    segment_lengths: tuple[int, ...],
    dilated_ratios: tuple[int, ...],
    backend: str = "auto",
    scale: float | None = None,
) -> torch.Tensor:
    """Dilated attention of q, k, v [B, L, H, Dh] -> [B, L, H, Dh] (all rows are real tokens)."""
    batch, length, heads, head_dim = q.shape
    scale = head_dim**-0.5 if scale is None else scale
    kernel = ATTENTION_KERNELS[resolve_backend(backend, q.device, q.dtype)]
    out_acc = q.new_zeros((batch, length, heads, head_dim), dtype=torch.float32)
    lse_acc = q.new_full((batch, length, heads), float("-inf"), dtype=torch.float32)
    for segment_length, ratio in zip(segment_lengths, dilated_ratios):
        seg_len = min(segment_length, length)
        offsets, head_idx = _sparse_heads(heads, ratio, q.device)
        sparse = [_to_sparse(x, seg_len, ratio, offsets, head_idx) for x in (q, k, v)]
        out, lse = kernel(*sparse, scale)  # [G, H, m, Dh], [G, H, m]
        out = _to_dense(out, batch, length, seg_len, ratio, offsets, head_idx, 0.0)  # [B, L, H, Dh]
        lse = _to_dense(lse.detach(), batch, length, seg_len, ratio, offsets, head_idx, float("-inf"))
        merged = torch.logaddexp(lse_acc, lse)  # [B, L, H]
        safe = torch.where(torch.isinf(merged), torch.zeros_like(merged), merged)
        keep, take = torch.exp(lse_acc - safe).unsqueeze(-1), torch.exp(lse - safe).unsqueeze(-1)  # [B, L, H, 1]
        out_acc = out_acc * keep + out.float() * take
        lse_acc = merged
    return out_acc.to(q.dtype)


class DilatedSelfAttention(nn.Module):
    """torchscale's DilatedAttention with sub-LN: q/k/v/out projections and `inner_attn_ln`."""

    def __init__(self, embed_dim: int, num_heads: int, segment_lengths, dilated_ratios,
                 layernorm_eps: float = 1e-5, backend: str = "auto"):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.segment_lengths = tuple(segment_lengths)
        self.dilated_ratios = tuple(dilated_ratios)
        self.backend = backend
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.inner_attn_ln = nn.LayerNorm(embed_dim, eps=layernorm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, L, D]
        batch, length, dim = x.shape
        q, k, v = (proj(x).view(batch, length, self.num_heads, dim // self.num_heads)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        attn = dilated_attention(q, k, v, self.segment_lengths, self.dilated_ratios, self.backend)
        return self.out_proj(self.inner_attn_ln(attn.reshape(batch, length, dim)))
