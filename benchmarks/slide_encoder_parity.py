"""Parity of our LongNet slide encoder with Prov-GigaPath's own `slide_encoder` code, on CPU, float32.

Takes YOUR checkout of github.com/prov-gigapath/prov-gigapath (nothing of it is copied here), builds its
model (`gigapath_slide_enc12l768d` by default) with random weights (no download), loads ITS state dict into
our `LongNetSlideEncoder` with `strict=True` (`modeling.slide_encoder_weights.load_slide_encoder_weights`),
runs both on the same random tile features and coordinates (default 1,500 and 6,000 tiles: more than the
first segment length 1,024 and the second 5,792, so dilation and segment padding matter) and prints one
JSON verdict: the max abs difference per output and per slide token source (`modeling.slide_token_sources`),
pass when every OUTPUT (slide_tokens, cls_embedding) is <= --atol (1e-5). The hidden states are reported
too, with their max abs value and relative difference: before encoder.layer_norm (trident, pipeline) their
values reach ~30, where float32 rounding alone (ulp ~2e-6) accumulated over 11-12 layers exceeds 1e-5
absolute, so they are a diagnostic, not part of the verdict.

Their side (one forward of THEIR `LongNetViT.forward(x, coords, all_layer_embed=True)`, global_pool False;
a forward hook on their `encoder` keeps the torchscale output dict it returns):
- hidden_states: wsi-llava-readme = `encoder_out` (after encoder.layer_norm), trident = `encoder_states[11]`,
  prov-gigapath-pipeline = `encoder_states[-1]` ([N + 1, D], CLS first);
- slide_tokens: the README's patch applied to that state with THEIR final `norm`:
  norm(adaptive_avg_pool1d(state[:, 1:], 576)) ([576, D]);
- cls_embedding: what their forward returns, norm(state)[:, 0] (trident: outcomes[11], pipeline:
  outcomes[-1]; readme: norm(encoder_out)[:, 0], their all_layer_embed=False output).
Our side: `encode_tokens(..., token_source=s)`, `forward(..., token_source=s)` and norm(encode_tokens)[:, 0].

The one stub: their attention calls `flash_attn_func(q, k, v, dropout, bias, softmax_scale, is_causal)`
(`gigapath/torchscale/component/flash_attention.py`), which is None without CUDA + flash-attn/xformers.
It is replaced by `reference_flash_attn_func`, which computes exactly what flash-attn computes (flash
attention is exact attention, not an approximation): out = softmax(q k^T * scale) v with scale =
1/sqrt(head_dim) (flash-attn's default for softmax_scale=None), and lse = logsumexp(q k^T * scale) over the
keys, [B, H, L] float32, the `softmax_lse` that `return_attn_probs=True` returns. It runs in float64 and
rounds to the input dtype, so it differs from the CUDA kernel only by floating-point rounding; it refuses
dropout > 0, a bias or causal masking (LongNet's encoder passes none of them). Their code is otherwise run
as it is. numpy >= 2 prints `np.int64(1024)` in `str(list(...))`, which their `EncoderConfig` eval()s;
numpy's own compatibility switch `np.set_printoptions(legacy="1.25")` is set while their model is built.

Needs timm, fairscale and einops importable next to torch (their imports). Run:
`python benchmarks/slide_encoder_parity.py --prov-gigapath-dir ~/src/prov-gigapath [--tiles 1500 6000]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("wsi-llava-readme", "trident", "prov-gigapath-pipeline")


def reference_flash_attn_func(q, k, v, dropout=0.0, bias=None, softmax_scale=None, is_causal=False):
    """flash-attn's `flash_attn_func(..., return_attn_probs=True)` as LongNet uses it: q, k, v [B, L, H, Dh]
    -> (out [B, L, H, Dh], lse [B, H, L] float32). Exact attention in float64, head by head (memory)."""
    import torch

    if dropout or bias is not None or is_causal:
        raise ValueError(f"reference_flash_attn_func: dropout={dropout}, bias={bias is not None}, causal="
                         f"{is_causal} are not used by LongNet's encoder and are not implemented")
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    outs, lses = [], []
    for h in range(q.shape[2]):
        qh, kh, vh = (x[:, :, h].double() for x in (q, k, v))  # [B, L, Dh]
        scores = torch.matmul(qh, kh.transpose(1, 2)) * scale  # [B, Lq, Lk]
        lse = torch.logsumexp(scores, dim=-1)  # [B, Lq]
        outs.append(torch.matmul(torch.exp(scores - lse.unsqueeze(-1)), vh).to(q.dtype))
        lses.append(lse.float())
    return torch.stack(outs, dim=2), torch.stack(lses, dim=1)


def import_their_slide_encoder(checkout: Path):
    """Import `gigapath.slide_encoder` from the checkout and stub the flash-attention call; (module, stubbed)."""
    if not (checkout / "gigapath" / "slide_encoder.py").is_file():
        raise SystemExit(f"--prov-gigapath-dir {checkout}: no gigapath/slide_encoder.py there; pass a checkout "
                         "of github.com/prov-gigapath/prov-gigapath")
    sys.path.insert(0, str(checkout))
    try:
        import gigapath.slide_encoder as slide_encoder
    except ImportError as exc:
        raise SystemExit(f"cannot import {checkout}/gigapath/slide_encoder.py ({exc}); it needs timm, fairscale "
                         "and einops installed next to torch") from exc
    stubbed = {}   # their import prints (to stdout) are sent to stderr by the caller
    for name, module in list(sys.modules.items()):
        if name.endswith("component.multihead_attention") and hasattr(module, "flash_attn_func"):
            stubbed[name] = repr(module.flash_attn_func)
            module.flash_attn_func = reference_flash_attn_func
    if not stubbed:
        raise SystemExit("found no torchscale multihead_attention module with flash_attn_func to stub")
    return slide_encoder, stubbed


def build_their_model(slide_encoder, arch: str):
    import numpy as np
    import timm
    import torch

    options = np.get_printoptions()
    if int(np.__version__.split(".")[0]) >= 2:
        np.set_printoptions(legacy="1.25")
    try:
        torch.manual_seed(0)
        model = timm.create_model(arch, pretrained=False, in_chans=1536, global_pool=False)
    finally:
        np.set_printoptions(**options)
    return model.eval()


def our_model_for(theirs, backend: str):
    """Our encoder with THEIR model's shape, their state dict loaded strictly."""
    sys.path.insert(0, str(ROOT))
    from modeling.slide_encoder import LongNetSlideEncoder, SlideEncoderConfig
    from modeling.slide_encoder_weights import load_slide_encoder_weights

    args, layer = theirs.encoder.args, theirs.encoder.layers[0]
    config = SlideEncoderConfig(
        in_dim=theirs.patch_embed.proj.in_features, embed_dim=theirs.patch_embed.proj.out_features,
        depth=len(theirs.encoder.layers), num_heads=layer.self_attn.num_heads,
        mlp_ratio=layer.ffn.fc1.out_features / theirs.patch_embed.proj.out_features,
        dilated_ratios=tuple(args.dilated_ratio), segment_lengths=tuple(args.segment_length),
        slide_ngrids=theirs.slide_ngrids, tile_size_px=theirs.tile_size, layernorm_eps=args.layernorm_eps,
        final_norm_eps=theirs.norm.eps, attention_backend=backend)
    ours = LongNetSlideEncoder(config)
    state_dict = {k: v.clone() for k, v in theirs.state_dict().items()}
    return load_slide_encoder_weights(ours, state_dict, "their random-init state dict").eval(), len(state_dict)


def random_slide(n_tiles: int, in_dim: int, seed: int):
    """Random features [1, N, in_dim] and tiling-level px coords [1, N, 2] on distinct cells, sub-tile offsets."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    side = int(math.ceil(math.sqrt(n_tiles * 1.5)))
    cells = torch.randperm(side * side, generator=gen)[:n_tiles]
    cells = torch.stack([cells // side, cells % side], dim=-1).double()  # [N, 2] (x_cell, y_cell)
    coords = (cells * 256 + torch.rand(n_tiles, 2, generator=gen, dtype=torch.float64) * 255).float()
    return torch.randn(1, n_tiles, in_dim, generator=gen), coords.unsqueeze(0)


def their_outputs(theirs, features, coords) -> dict:
    import torch
    import torch.nn.functional as F

    captured = {}
    hook = theirs.encoder.register_forward_hook(lambda _m, _i, out: captured.update(out))
    try:
        with torch.no_grad():
            outcomes = theirs(features, coords, all_layer_embed=True)  # 13 CLS outputs: embedding, layers 1..12
    finally:
        hook.remove()
    states = captured["encoder_states"]
    hidden = {"wsi-llava-readme": captured["encoder_out"], "trident": states[11],
              "prov-gigapath-pipeline": states[-1]}
    with torch.no_grad():
        result = {}
        for name, state in hidden.items():
            pooled = F.adaptive_avg_pool1d(state[:, 1:, :].permute(0, 2, 1), 576).permute(0, 2, 1)
            result[name] = {"hidden_states": state, "slide_tokens": theirs.norm(pooled),
                            "cls_embedding": theirs.norm(state)[:, 0]}
        result["trident"]["cls_embedding"] = outcomes[11]
        result["prov-gigapath-pipeline"]["cls_embedding"] = outcomes[-1]
    return result


def our_outputs(ours, features, coords) -> dict:
    import torch

    result = {}
    with torch.no_grad():
        for name in SOURCES:
            hidden = ours.encode_tokens(features, coords, token_source=name)
            result[name] = {"hidden_states": hidden, "slide_tokens": ours(features, coords, token_source=name),
                            "cls_embedding": ours.norm(hidden)[:, 0]}
    return result


VERDICT_OUTPUTS = ("slide_tokens", "cls_embedding")


def compare(theirs: dict, ours: dict) -> dict:
    out = {}
    for name in SOURCES:
        out[name] = {}
        for key, ref in theirs[name].items():
            mine = ours[name][key]
            if tuple(mine.shape) != tuple(ref.shape):
                raise SystemExit(f"{name} {key}: our shape {tuple(mine.shape)} vs theirs {tuple(ref.shape)}")
            diff, scale = float((mine - ref).abs().max()), float(ref.abs().max())
            out[name][key] = {"max_abs_diff": diff, "max_abs_value": scale, "relative_diff": diff / scale,
                              "shape": list(ref.shape)}
    return out


def _commit(checkout: Path) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prov-gigapath-dir", type=Path, required=True, help="a checkout of prov-gigapath")
    parser.add_argument("--arch", default="gigapath_slide_enc12l768d", help="their timm model name")
    parser.add_argument("--tiles", type=int, nargs="+", default=[1500, 6000])
    parser.add_argument("--attention-backend", default="auto", help="our kernel (modeling.dilated_attention)")
    parser.add_argument("--atol", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    with contextlib.redirect_stdout(sys.stderr):   # their code prints progress: keep stdout for the JSON
        slide_encoder, stubbed = import_their_slide_encoder(args.prov_gigapath_dir.expanduser().resolve())
        theirs = build_their_model(slide_encoder, args.arch)
    ours, n_keys = our_model_for(theirs, args.attention_backend)
    results = []
    for n_tiles in args.tiles:
        features, coords = random_slide(n_tiles, theirs.patch_embed.proj.in_features, args.seed + n_tiles)
        started = time.monotonic()
        ref = their_outputs(theirs, features, coords)
        their_s = time.monotonic() - started
        mine = our_outputs(ours, features, coords)
        results.append({"tiles": n_tiles, "their_seconds": round(their_s, 1),
                        "our_seconds_3_sources": round(time.monotonic() - started - their_s, 1),
                        "sources": compare(ref, mine)})
    worst = max(s[key]["max_abs_diff"] for r in results for s in r["sources"].values() for key in VERDICT_OUTPUTS)
    hidden = max(s["hidden_states"]["relative_diff"] for r in results for s in r["sources"].values())
    print(json.dumps({
        "benchmark": "slide_encoder_parity", "prov_gigapath_dir": str(args.prov_gigapath_dir),
        "prov_gigapath_commit": _commit(args.prov_gigapath_dir), "arch": args.arch,
        "our_config": ours.config.to_dict(), "state_dict_keys_loaded_strict": n_keys,
        "flash_attn_stubbed_in": stubbed, "dtype": "float32", "device": "cpu", "torch": torch.__version__,
        "python": platform.python_version(), "atol": args.atol, "verdict_outputs": list(VERDICT_OUTPUTS),
        "results": results, "max_abs_diff": worst, "max_relative_diff_hidden_states": hidden,
        "pass": worst <= args.atol}, indent=1))
    return 0 if worst <= args.atol else 1


if __name__ == "__main__":
    sys.exit(main())
