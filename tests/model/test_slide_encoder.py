"""Prov-GigaPath LongNet slide encoder + WSI-LLaVA pooling: attention maths, keys, loading, positions.

Run: `python -m pytest tests/model/test_slide_encoder.py -q` (CPU, offline, tiny configs; the Hub
tests use the loopback stand-in from tests/conftest.py).
"""

from __future__ import annotations

import argparse
import io
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeling.dilated_attention import DilatedSelfAttention, dilated_attention
from modeling.errors import ModelError
from modeling.slide_encoder import (
    LongNetSlideEncoder,
    SlideEncoderConfig,
    coords_level0_to_tiling,
    grid_cells,
    pool_slide_tokens,
    position_index,
    prov_gigapath_segment_lengths,
    sincos_position_embedding,
)
from modeling.slide_encoder_weights import (
    PROV_GIGAPATH_REPO_ID,
    PROV_GIGAPATH_SLIDE_ENCODER_FILE,
    load_prov_gigapath_slide_encoder,
)
from tests.model.prov_gigapath_slide_encoder_keys import (
    PROV_GIGAPATH_SLIDE_ENCODER_KEYS,
    PROV_GIGAPATH_SLIDE_ENCODER_PARAMETER_COUNT,
)

CPU_BACKENDS = ("math", "naive", "sdpa")


def tiny_config(**overrides) -> SlideEncoderConfig:
    fields = {"in_dim": 12, "embed_dim": 16, "depth": 2, "num_heads": 4, "segment_lengths": (8, 16, 32),
              "dilated_ratios": (1, 2, 4), "num_slide_tokens": 6}
    return SlideEncoderConfig(**{**fields, **overrides})


def random_slide(n_tiles: int, in_dim: int = 12, batch: int = 1, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, n_tiles, in_dim, generator=gen)  # [B, N, in_dim]
    coords = torch.randint(0, 40, (batch, n_tiles, 2), generator=gen) * 256  # tiling-level px
    return features, coords


def qkv(length: int, heads: int, head_dim: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(1, length, heads, head_dim, generator=gen) for _ in range(3)]  # [B, L, H, Dh]


# --- dilated attention ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("segment_length", [50, 4096])
def test_one_segment_without_dilation_is_dense_attention(backend, segment_length):
    q, k, v = qkv(50, 4)
    dense = F.scaled_dot_product_attention(*(x.transpose(1, 2) for x in (q, k, v))).transpose(1, 2)
    out = dilated_attention(q, k, v, (segment_length,), (1,), backend=backend)
    torch.testing.assert_close(out, dense, atol=1e-5, rtol=1e-5)


def test_attention_module_with_one_segment_equals_dense_multihead_attention():
    torch.manual_seed(0)
    attn = DilatedSelfAttention(16, 4, (1024,), (1,), backend="sdpa").eval()
    x = torch.randn(2, 30, 16)
    q, k, v = (proj(x).view(2, 30, 4, 4).transpose(1, 2) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
    dense = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 30, 16)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), attn.out_proj(attn.inner_attn_ln(dense)), atol=1e-5, rtol=1e-5)


def loop_reference(q, k, v, segment_lengths, dilated_ratios):
    """Dilated attention by explicit index sets: per branch, head and segment, list the key slots
    (zero vectors where Prov-GigaPath zero-pads), softmax, then merge branches by softmax(lse)."""
    _, length, heads, head_dim = q.shape
    parts = [[[] for _ in range(heads)] for _ in range(length)]  # [p][h] -> [(out, lse)]
    for segment_length, ratio in zip(segment_lengths, dilated_ratios):
        seg = min(segment_length, length)
        slots = math.ceil(seg / ratio)
        for h in range(heads):
            offset = h // math.ceil(heads / ratio)
            for start in range(0, length, seg):
                positions = [start + offset + j * ratio for j in range(slots)]
                real = [p < length and p - start < seg for p in positions]
                keys = torch.stack([k[0, p, h] if ok else torch.zeros(head_dim) for p, ok in zip(positions, real)])
                values = torch.stack([v[0, p, h] if ok else torch.zeros(head_dim) for p, ok in zip(positions, real)])
                for p, ok in zip(positions, real):
                    if ok:
                        scores = keys.double() @ q[0, p, h].double() / math.sqrt(head_dim)
                        lse = torch.logsumexp(scores, 0)
                        parts[p][h].append((torch.softmax(scores, 0) @ values.double(), lse))
    out = torch.zeros(1, length, heads, head_dim, dtype=torch.float64)
    for p in range(length):
        for h in range(heads):
            weights = torch.softmax(torch.stack([lse for _, lse in parts[p][h]]), 0)
            out[0, p, h] = sum(w * o for w, (o, _) in zip(weights, parts[p][h]))
    return out.float()


@pytest.mark.parametrize("backend", (*CPU_BACKENDS, "math_chunked"))
def test_multi_branch_lse_merge_matches_loop_reference(backend, monkeypatch):
    if backend == "math_chunked":  # a tiny score budget makes the math kernel work in query chunks
        monkeypatch.setattr("modeling.dilated_attention.MATH_SCORE_BUDGET_BYTES", 600)
        backend = "math"
    q, k, v = qkv(37, 5, seed=1)  # odd length and 5 heads: segment, dilation and head padding all happen
    segments, ratios = (8, 12, 20, 64), (1, 2, 4, 8)
    expected = loop_reference(q, k, v, segments, ratios)
    torch.testing.assert_close(dilated_attention(q, k, v, segments, ratios, backend=backend), expected,
                               atol=1e-5, rtol=1e-4)


def test_batched_dilated_attention_equals_per_sample():
    q, k, v = (torch.cat([a, b]) for a, b in zip(qkv(40, 4, seed=2), qkv(40, 4, seed=3)))
    out = dilated_attention(q, k, v, (16, 32), (1, 2))
    for b in range(2):
        alone = dilated_attention(q[b:b + 1], k[b:b + 1], v[b:b + 1], (16, 32), (1, 2))
        torch.testing.assert_close(out[b:b + 1], alone)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_fused_attention_matches_cpu_math(dtype):
    q, k, v = qkv(300, 8, head_dim=32, seed=4)
    expected = dilated_attention(q, k, v, (64, 128, 512), (1, 2, 4), backend="math")
    out = dilated_attention(*(x.cuda().to(dtype) for x in (q, k, v)), (64, 128, 512), (1, 2, 4), backend="auto")
    torch.testing.assert_close(out.float().cpu(), expected, atol=5e-3 if dtype == torch.float16 else 1e-4, rtol=1e-2)


# --- keys, config, loading -----------------------------------------------------------------------
def test_state_dict_keys_and_shapes_equal_prov_gigapath():
    with torch.device("meta"):
        model = LongNetSlideEncoder(SlideEncoderConfig())
    ours = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert ours == dict(PROV_GIGAPATH_SLIDE_ENCODER_KEYS)
    assert sum(t.numel() for t in model.parameters()) == PROV_GIGAPATH_SLIDE_ENCODER_PARAMETER_COUNT
    assert model.config.segment_lengths == prov_gigapath_segment_lengths(262144, 256)


def test_config_round_trips_and_rejects_bad_values():
    config = tiny_config(attention_backend="math")
    assert SlideEncoderConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ModelError, match="num_heads"):
        SlideEncoderConfig(embed_dim=768, num_heads=7)
    with pytest.raises(ModelError, match="dilated_ratios"):
        SlideEncoderConfig(segment_lengths=(1024,), dilated_ratios=(1, 2))
    with pytest.raises(ModelError, match="attention_backend"):
        SlideEncoderConfig(attention_backend="xformers")
    with pytest.raises(ModelError, match="flash-attn"):
        dilated_attention(*qkv(8, 2), (8,), (1,), backend="flash_attn")
    with pytest.raises(ModelError, match="unknown fields"):
        SlideEncoderConfig.from_dict({"in_dims": 3})


def save_pth(model, path):
    torch.save({"model": model.state_dict()}, path)  # Prov-GigaPath's layout
    return path


def test_strict_load_round_trip_from_pth_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    config = tiny_config()
    model = LongNetSlideEncoder(config).eval()
    features, coords = random_slide(20)
    with torch.no_grad():
        expected = model(features, coords)
    save_file(model.state_dict(), tmp_path / "enc.safetensors")
    for path in (save_pth(model, tmp_path / "slide_encoder.pth"), tmp_path / "enc.safetensors"):
        loaded = load_prov_gigapath_slide_encoder(path, config=config)
        assert loaded.weights_source == str(path) and not loaded.training
        with torch.no_grad():
            torch.testing.assert_close(loaded(features, coords), expected, atol=0, rtol=0)


def test_missing_and_mismatched_checkpoints_raise_model_error(tmp_path):
    config = tiny_config()
    state = LongNetSlideEncoder(config).state_dict()
    with pytest.raises(ModelError, match="does not exist"):
        load_prov_gigapath_slide_encoder(tmp_path / "nope.pth", config=config)
    torch.save({"model": {k: v for k, v in state.items() if k != "norm.bias"}}, tmp_path / "missing.pth")
    with pytest.raises(ModelError, match=r"1 missing keys.*norm\.bias"):
        load_prov_gigapath_slide_encoder(tmp_path / "missing.pth", config=config)
    torch.save({"model": {**state, "decoder.weight": torch.zeros(1)}}, tmp_path / "extra.pth")
    with pytest.raises(ModelError, match="unexpected keys.*decoder.weight"):
        load_prov_gigapath_slide_encoder(tmp_path / "extra.pth", config=config)
    with pytest.raises(ModelError, match=r"patch_embed.proj.weight: checkpoint \(16, 12\) vs model \(16, 10\)"):
        load_prov_gigapath_slide_encoder(save_pth(LongNetSlideEncoder(config), tmp_path / "a.pth"),
                                         config=tiny_config(in_dim=10))
    torch.save({"epoch": 3}, tmp_path / "not_weights.pth")
    with pytest.raises(ModelError, match="holds no state dict"):
        load_prov_gigapath_slide_encoder(tmp_path / "not_weights.pth", config=config)
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read"):
        load_prov_gigapath_slide_encoder(tmp_path / "garbage.pth", config=config)


class Opaque:
    """Stands for an arbitrary pickled object inside a training checkpoint."""


def test_checkpoints_with_training_args_load_but_arbitrary_objects_do_not(tmp_path):
    config = tiny_config()
    state = LongNetSlideEncoder(config).state_dict()
    torch.save({"model": state, "args": argparse.Namespace(lr=1e-3), "epoch": 4}, tmp_path / "train.pth")
    assert load_prov_gigapath_slide_encoder(tmp_path / "train.pth", config=config).weights_source
    torch.save({"model": state, "extra": Opaque()}, tmp_path / "opaque.pth")
    with pytest.raises(ModelError, match="pickled Python objects.*safetensors"):
        load_prov_gigapath_slide_encoder(tmp_path / "opaque.pth", config=config)


def test_gated_hub_download_needs_token_and_access(hub, monkeypatch):
    config = tiny_config()
    model = LongNetSlideEncoder(config)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict()}, buffer)
    hub.state.upload(PROV_GIGAPATH_REPO_ID, {PROV_GIGAPATH_SLIDE_ENCODER_FILE: buffer.getvalue()}, gated=True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ModelError, match="gated Hub repo and no Hugging Face token.*HF_TOKEN"):
        load_prov_gigapath_slide_encoder(config=config)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    with pytest.raises(ModelError, match="has no access"):
        load_prov_gigapath_slide_encoder(config=config)
    hub.state.grant(PROV_GIGAPATH_REPO_ID, "tester")
    loaded = load_prov_gigapath_slide_encoder(config=config)
    assert loaded.weights_source.endswith(PROV_GIGAPATH_SLIDE_ENCODER_FILE)
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())
    with pytest.raises(ModelError, match="only applies to Hub downloads"):
        load_prov_gigapath_slide_encoder("x.pth", revision="main")


# --- positions -------------------------------------------------------------------------------------
def mae_sincos_table(embed_dim: int, grid: int) -> np.ndarray:
    """MAE/Prov-GigaPath's table built the way they build it: meshgrid (w first), CLS row of zeros."""
    def one_d(dim, pos):
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=float) / (dim / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    mesh = np.stack(np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32)))
    table = np.concatenate([one_d(embed_dim // 2, mesh[0]), one_d(embed_dim // 2, mesh[1])], axis=1)
    return np.concatenate([np.zeros([1, embed_dim]), table], axis=0)


def test_position_embedding_equals_prov_gigapath_table_rows():
    grid, dim = 7, 16
    coords = torch.tensor([[0, 0], [256, 0], [0, 256], [300, 700], [6 * 256 + 255, 5 * 256]], dtype=torch.float32)
    index = position_index(coords, tile_size_px=256, slide_ngrids=grid)
    assert index.tolist() == [1, 1 * grid + 1, 2, 1 * grid + 2 + 1, 6 * grid + 5 + 1]
    rows = sincos_position_embedding(grid_cells(coords, 256, grid), dim)
    np.testing.assert_allclose(rows.numpy(), mae_sincos_table(dim, grid)[index.numpy()], atol=1e-12)


def test_position_index_uses_tiling_level_coordinates():
    # tiles of 256 px cut at level 1 (downsample 2): the h5 stores level-0 origins, patch_size_level0=512
    level0 = torch.tensor([[[1024, 512], [1536, 512]]])
    tiling = coords_level0_to_tiling(level0, patch_size_level0=512, patch_size=256)
    assert tiling.tolist() == [[[512.0, 256.0], [768.0, 256.0]]]
    assert position_index(tiling).tolist() == [[2 * 1000 + 1 + 1, 3 * 1000 + 1 + 1]]
    assert position_index(level0).tolist() == [[4 * 1000 + 2 + 1, 6 * 1000 + 2 + 1]]  # the issue #116 mistake
    with pytest.raises(ValueError, match="coords_level0_to_tiling"):
        position_index(torch.tensor([[256000.0, 0.0]]))
    with pytest.raises(ValueError, match="patch_size_level0"):
        coords_level0_to_tiling(level0, patch_size_level0=0, patch_size=256)


# --- the encoder and WSI-LLaVA pooling -----------------------------------------------------------
def test_pooling_gives_576_tokens_for_long_and_short_sequences():
    tokens = torch.randn(1, 1000, 4)
    pooled = pool_slide_tokens(tokens, 576)
    assert pooled.shape == (1, 576, 4)
    torch.testing.assert_close(pooled[0, 1], tokens[0, 1:4].mean(0))  # bin [floor(1000/576), ceil(2000/576))
    short = torch.randn(1, 10, 4)
    pooled = pool_slide_tokens(short, 576)
    assert pooled.shape == (1, 576, 4)
    for i in (0, 57, 300, 575):  # each output averages the one or two input tokens its bin covers
        lo, hi = (i * 10) // 576, -((-(i + 1) * 10) // 576)
        torch.testing.assert_close(pooled[0, i], short[0, lo:hi].mean(0))


def test_forward_is_finite_with_prov_gigapath_segments_and_576_tokens():
    config = tiny_config(segment_lengths=SlideEncoderConfig().segment_lengths,
                         dilated_ratios=SlideEncoderConfig().dilated_ratios, num_slide_tokens=576,
                         dropout=0.1, drop_path_rate=0.1)
    model = LongNetSlideEncoder(config).eval()
    features, coords = random_slide(1500)  # 1501 tokens: two 1024-segments in the first branch
    with torch.no_grad():
        tokens = model.encode_tokens(features, coords)
        out = model(features, coords)
    assert tokens.shape == (1, 1501, 16) and out.shape == (1, 576, 16)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, model.norm(pool_slide_tokens(tokens[:, 1:], 576)))
    model.train()  # dropout, drop-path and the fused kernel's backward
    model(features[:, :300], coords[:, :300]).square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_padded_batch_equals_each_slide_alone():
    model = LongNetSlideEncoder(tiny_config(num_slide_tokens=10)).eval()
    features, coords = random_slide(50, batch=2, seed=5)
    padding = torch.zeros(2, 50, dtype=torch.bool)
    padding[0, 30:] = True
    coords[0, 30:] = -1  # padded rows may hold anything
    with torch.no_grad():
        batch_out = model(features, coords, padding)
        tokens = model.encode_tokens(features, coords, padding)
        alone = [model(features[:1, :30], coords[:1, :30]), model(features[1:], coords[1:])]
    torch.testing.assert_close(batch_out[0:1], alone[0])
    torch.testing.assert_close(batch_out[1:2], alone[1])
    assert tokens[0, 31:].abs().sum() == 0
    middle = padding.clone()
    middle[1, 10] = True
    with pytest.raises(ValueError, match="pad at the end"):
        model(features, coords, middle)


def test_shape_mismatches_raise_value_errors_naming_both_numbers():
    model = LongNetSlideEncoder(tiny_config())
    features, coords = random_slide(20)
    with pytest.raises(ValueError, match=r"in_dim=12.*width 1536"):
        model(torch.randn(1, 20, 1536), coords)
    with pytest.raises(ValueError, match=r"\[B, N, 2\]"):
        model(features, coords[..., :1])
    with pytest.raises(ValueError, match=r"N=20 .*N=19"):
        model(features, coords[:, :19])


# --- slide token sources ----------------------------------------------------------------------------
def _hidden_states(model, features, coords):
    """[embedding, output of layer 1, ..., layer depth] and the encoder's output, read with forward hooks."""
    states = []
    hooks = [layer.register_forward_hook(lambda _m, _i, out: states.append(out)) for layer in model.encoder.layers]
    try:
        final = model.encode_tokens(features, coords)  # the default source: after encoder.layer_norm
    finally:
        for hook in hooks:
            hook.remove()
    return states, final


def test_each_slide_token_source_pools_its_hidden_state():
    from modeling.slide_token_sources import DEFAULT_SLIDE_TOKEN_SOURCE, SLIDE_TOKEN_SOURCES

    assert DEFAULT_SLIDE_TOKEN_SOURCE == "wsi-llava-readme"
    model = LongNetSlideEncoder(tiny_config(depth=12)).eval()
    features, coords = random_slide(40, seed=3)
    with torch.no_grad():
        states, final = _hidden_states(model, features, coords)
        expected = {"wsi-llava-readme": final,
                    "prov-gigapath-pipeline": states[11],     # layer 12's output, no encoder.layer_norm
                    "trident": states[10]}                    # layer 11's output, no encoder.layer_norm
        torch.testing.assert_close(final, model.encoder.layer_norm(states[11]))
        assert set(expected) == set(SLIDE_TOKEN_SOURCES)
        outs = {}
        for name, hidden in expected.items():
            torch.testing.assert_close(model.encode_tokens(features, coords, token_source=name), hidden)
            outs[name] = model(features, coords, token_source=name)
            torch.testing.assert_close(outs[name], model.norm(pool_slide_tokens(hidden[:, 1:], 6)))
    torch.testing.assert_close(outs["wsi-llava-readme"], model(features, coords))
    for a, b in [("wsi-llava-readme", "trident"), ("wsi-llava-readme", "prov-gigapath-pipeline"),
                 ("trident", "prov-gigapath-pipeline")]:
        assert (outs[a] - outs[b]).abs().max() > 1e-3, (a, b)


def test_a_padded_batch_uses_the_token_source_too():
    model = LongNetSlideEncoder(tiny_config(depth=12)).eval()
    features, coords = random_slide(30, batch=2, seed=4)
    padding = torch.zeros(2, 30, dtype=torch.bool)
    padding[0, 20:] = True
    with torch.no_grad():
        batch = model(features, coords, padding, token_source="trident")
        alone = model(features[:1, :20], coords[:1, :20], token_source="trident")
    torch.testing.assert_close(batch[:1], alone)


def test_unknown_or_too_deep_token_sources_are_model_errors():
    model = LongNetSlideEncoder(tiny_config(depth=2))
    features, coords = random_slide(10)
    with pytest.raises(ModelError, match="unknown slide token source 'layer-3'.*prov-gigapath-pipeline"):
        model(features, coords, token_source="layer-3")
    with pytest.raises(ModelError, match="'trident' takes the output of layer 11, but the slide encoder has only 2"):
        model(features, coords, token_source="trident")


def test_the_parity_benchmarks_flash_attention_stub_is_exact_attention():
    """benchmarks/slide_encoder_parity.py replaces flash-attn by `reference_flash_attn_func`: softmax(q k^T /
    sqrt(d)) v and the keys' log-sum-exp [B, H, L], as flash_attn_func(return_attn_probs=True) returns them."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "slide_encoder_parity.py"
    spec = importlib.util.spec_from_file_location("slide_encoder_parity", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    q, k, v = qkv(37, 4)                                               # [B, L, H, Dh]
    out, lse = bench.reference_flash_attn_func(q, k, v)
    dense = F.scaled_dot_product_attention(*(x.transpose(1, 2) for x in (q, k, v))).transpose(1, 2)
    scores = torch.einsum("blhd,bshd->bhls", q, k) / math.sqrt(q.shape[-1])
    torch.testing.assert_close(out, dense, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(lse, torch.logsumexp(scores, dim=-1), atol=1e-6, rtol=1e-6)
    assert out.dtype == q.dtype and lse.dtype == torch.float32 and lse.shape == (1, 4, 37)
    with pytest.raises(ValueError, match="not used by LongNet"):
        bench.reference_flash_attn_func(q, k, v, 0.1)
