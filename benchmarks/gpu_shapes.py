"""Random-weight models of the real shapes (nothing downloaded) and GPU peak figures, for the benchmarks.

- `gigapath_tile_model(tiny)`: timm `vit_giant_patch14_dinov2` with Prov-GigaPath's hub config (img 224,
  patch 16, 1536-d, 40 blocks, 24 heads, SwiGLU mlp_ratio 5.33334, layer scale 1e-5: 1.13 B parameters),
  or the same architecture at toy width (`tiny`), wrapped as a `modeling.tile_encoders.TileEncoder`
  with Prov-GigaPath's transform (resize 256 bicubic, crop 224) and an UNTRAINED `random-*` name.
- `wsi_llava_model(text_config)`: `WsiLlavaForConditionalGeneration` with a slide-token-only path (576
  released-style tokens, 1024-d, mlp2x_gelu projector) and the language model of `text_config`:
  `VICUNA_7B` (LLaMA-2 7B / Vicuna-7B v1.5: 4096 hidden, 32 layers, 32 heads, FFN 11008, 32,001 tokens with
  `<image>`) or `TINY_LLM`; the tokenizer is the offline demo tokenizer, and ids it cannot decode are
  never generated (suppressed).
- `quantize_nf4(model)`: the language model's Linear layers (not lm_head) -> bitsandbytes nf4 with double
  quantisation, in place, as `wsi-llava --load-4bit` loads them (modeling.checkpoints).
- `PEAK_DENSE_BF16_TFLOPS`: dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets (the
  datasheets print the 2:4-sparsity figure; dense is half of it), by exact `torch.cuda.get_device_name()`.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402  (after the sys.path line, so the repository is importable)

# NVIDIA datasheets: H200 SXM and H100 SXM "BF16 Tensor Core 1,979 TFLOPS" (with sparsity), H100 NVL 1,671,
# H100 PCIe 1,513, A100 312 (dense), L40S 733 (sparsity), L4 242 (sparsity).
PEAK_DENSE_BF16_TFLOPS = {
    "NVIDIA H200": 989.5, "NVIDIA H200 NVL": 835.5, "NVIDIA H100 80GB HBM3": 989.5, "NVIDIA H100 NVL": 835.5,
    "NVIDIA H100 PCIe": 756.5, "NVIDIA A100-SXM4-80GB": 312.0, "NVIDIA A100-SXM4-40GB": 312.0,
    "NVIDIA A100 80GB PCIe": 312.0, "NVIDIA A100-PCIE-40GB": 312.0, "NVIDIA L40S": 366.5, "NVIDIA L4": 121.0,
}

GIGAPATH_TILE_ARGS = {"img_size": 224, "patch_size": 16, "embed_dim": 1536, "depth": 40, "num_heads": 24,
                      "init_values": 1e-5, "mlp_ratio": 5.33334, "num_classes": 0}
TINY_TILE_ARGS = GIGAPATH_TILE_ARGS | {"embed_dim": 48, "depth": 2, "num_heads": 2}

VICUNA_7B = {"model_type": "llama", "vocab_size": 32001, "hidden_size": 4096, "intermediate_size": 11008,
             "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
             "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2,
             "pad_token_id": 0, "tie_word_embeddings": False}
TINY_LLM = VICUNA_7B | {"vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "num_key_value_heads": 4}


def peak_tflops(device: torch.device) -> tuple[float | None, str]:
    """(dense bf16 peak TFLOP/s, where it came from) for a CUDA device; None for others or unknown GPUs."""
    if device.type != "cuda":
        return None, "not a CUDA device"
    name = torch.cuda.get_device_name(device)
    if name not in PEAK_DENSE_BF16_TFLOPS:
        return None, f"{name!r} is not in PEAK_DENSE_BF16_TFLOPS (pass --peak-tflops)"
    return PEAK_DENSE_BF16_TFLOPS[name], f"NVIDIA datasheet, dense bf16 ({name})"


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def gigapath_tile_model(tiny: bool, device: torch.device, dtype: torch.dtype):
    """A TileEncoder of Prov-GigaPath's architecture with random weights, built on `device` in `dtype`."""
    import timm

    from modeling.tile_encoders import TILE_ENCODERS, TileEncoder, TileEncoderSpec

    args = TINY_TILE_ARGS if tiny else GIGAPATH_TILE_ARGS
    torch.manual_seed(0)
    with torch.device(device), default_dtype(dtype):
        model = timm.create_model("vit_giant_patch14_dinov2", pretrained=False, **args).eval()
    base = TILE_ENCODERS["prov-gigapath"]
    spec = TileEncoderSpec(name="random-gigapath-shape" + ("-tiny" if tiny else ""), feature_dim=args["embed_dim"],
                           transform=base.transform, builder=lambda spec, revision: (model, "random-init-seed0"),
                           trained=False, source="random init",
                           description="UNTRAINED: Prov-GigaPath's tile-encoder architecture, random weights")
    return TileEncoder(spec.name, model, spec.transform.build(), spec.feature_dim, "random-init-seed0", False, spec)


def wsi_llava_model(text_config: dict, device: torch.device, dtype: torch.dtype, fixed_length: bool = True):
    """(model, processor): random weights of `text_config`'s shape on `device` in `dtype`. `fixed_length`
    suppresses EOS too, so every answer runs to max_new_tokens (equal work in every measurement)."""
    from modeling.configuration_wsi_llava import WsiLlavaConfig
    from modeling.demo_model import train_tokenizer
    from modeling.modeling_wsi_llava import WsiLlavaForConditionalGeneration
    from modeling.processing_wsi_llava import WsiLlavaProcessor

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(tmp)
    image_token_index = WsiLlavaProcessor.add_image_token(tokenizer)
    config = WsiLlavaConfig(text_config=dict(text_config), slide_encoder_config=None, slide_token_dim=1024,
                            image_token_index=image_token_index, language_model_source=None,
                            slide_encoder_source=None, is_trained=False,
                            display_name=f"random weights, {text_config['num_hidden_layers']}-layer "
                                         f"{text_config['hidden_size']}-d LLaMA (benchmark only)")
    torch.manual_seed(0)
    with torch.device(device), default_dtype(dtype):
        model = WsiLlavaForConditionalGeneration(config).eval()
    suppressed = set(model.generation_config.suppress_tokens or []) | set(range(len(tokenizer), config.text_config.vocab_size))
    if fixed_length:
        suppressed.add(tokenizer.eos_token_id)
    model.generation_config.suppress_tokens = sorted(suppressed)
    return model, WsiLlavaProcessor(tokenizer=tokenizer, num_slide_tokens=config.num_slide_tokens)


def quantize_nf4(model) -> int:
    """Replace the language model's Linear layers (lm_head kept) by nf4 Linear4bit in place; returns how many."""
    import bitsandbytes as bnb

    device = model.get_input_embeddings().weight.device
    compute = model.get_input_embeddings().weight.dtype
    targets = [(parent, name, child) for parent in model.language_model.modules()
               for name, child in parent.named_children()
               if isinstance(child, torch.nn.Linear) and child is not model.language_model.get_output_embeddings()]
    for parent, name, child in targets:
        layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=compute, quant_type="nf4", compress_statistics=True, device="meta")
        layer.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, quant_type="nf4",
                                         compress_statistics=True)
        if child.bias is not None:
            layer.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
        setattr(parent, name, layer.to(device))          # quantises the weight on the device
        del child
    return len(targets)


def tensor_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers (nf4: the packed weights; their absmax statistics are small)."""
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))
