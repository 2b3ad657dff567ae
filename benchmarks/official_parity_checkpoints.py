"""Tiny random checkpoints in the WSI-LLaVA / LLaVA-1.5 release layout, for `benchmarks/official_parity.py`.

Written with torch.save by hand (no llava code): config.json with llava-v1.5-7b's key set (model_type
llava_llama, mm_* fields, mm_use_im_patch_token false as released), generation_config.json, sharded
pytorch_model-0000{1,2}-of-00002.bin + index, and the tokenizer as the releases ship it for the slow
LlamaTokenizer (tokenizer.model, a LLaMA-like sentencepiece BPE: no extra-whitespace removal, dummy
prefix; tokenizer_config.json; special_tokens_map.json). Weights are seeded and stored as float16
("torch_dtype": "float16", like the releases), large enough that logits are far from ties.

Layouts (folder names matter: the official builder picks its branch by 'llava' / 'lora' in the name):
  llava-tiny/                  full checkpoint, tokenizer_config "legacy": true
  llava-tiny-legacy-unset/     the same without a "legacy" key (transformers 4.37.2 reads it as true)
  llava-tiny-legacy-false/     the same with "legacy": false
  llava-tiny-base/             a full checkpoint with its own projector, the base of ...
  wsi-llava-tiny-lora/         a LoRA release: config.json (vision tower at WSI-LLaVA's relative training
                               path), adapter_config.json, adapter_model.bin, non_lora_trainables.bin
  slide_576x1024.pt            float32 (576, 1024) slide tokens, channels 768.. zero (as released)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

HIDDEN, INTERMEDIATE, LAYERS, HEADS = 64, 128, 2, 4          # multi-head attention like llava-v1.5-7b
MM_HIDDEN, N_SLIDE_TOKENS, SLIDE_USED_DIM = 1024, 576, 768
LORA_R, LORA_ALPHA = 8, 16                                    # WSI-LLaVA: r 128, alpha 256 (the same ratio)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CLIP_HUB_NAME = "openai/clip-vit-large-patch14-336"           # llava-v1.5-7b's mm_vision_tower
CLIP_TRAINING_PATH = "./LLaVA-main/clip-vit-large-patch14-336"  # what WSI-LLaVA's finetune_lora.sh writes
FULL_LAYOUTS = {"llava-tiny": True, "llava-tiny-legacy-unset": None, "llava-tiny-legacy-false": False}
LORA_LAYOUT, LORA_BASE = "wsi-llava-tiny-lora", "llava-tiny-base"


def _randn(generator: torch.Generator, *shape: int, std: float, mean: float = 0.0) -> torch.Tensor:
    return (torch.randn(*shape, generator=generator) * std + mean).to(torch.float16)


def _shapes() -> dict[str, tuple[int, int]]:
    return {"self_attn.q_proj": (HIDDEN, HIDDEN), "self_attn.k_proj": (HIDDEN, HIDDEN),
            "self_attn.v_proj": (HIDDEN, HIDDEN), "self_attn.o_proj": (HIDDEN, HIDDEN),
            "mlp.gate_proj": (INTERMEDIATE, HIDDEN), "mlp.up_proj": (INTERMEDIATE, HIDDEN),
            "mlp.down_proj": (HIDDEN, INTERMEDIATE)}


def llama_weights(vocab_size: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {"model.embed_tokens.weight": _randn(g, vocab_size, HIDDEN, std=0.5)}
    for layer in range(LAYERS):
        for module, shape in _shapes().items():
            state[f"model.layers.{layer}.{module}.weight"] = _randn(g, *shape, std=0.1)
        for norm in ("input_layernorm", "post_attention_layernorm"):
            state[f"model.layers.{layer}.{norm}.weight"] = _randn(g, HIDDEN, std=0.1, mean=1.0)
    state["model.norm.weight"] = _randn(g, HIDDEN, std=0.1, mean=1.0)
    state["lm_head.weight"] = _randn(g, vocab_size, HIDDEN, std=0.3)
    return state


def projector_weights(seed: int) -> dict[str, torch.Tensor]:
    """mlp2x_gelu: Linear(1024, H), GELU, Linear(H, H) -> keys 0.* and 2.*."""
    g = torch.Generator().manual_seed(seed)
    return {"0.weight": _randn(g, HIDDEN, MM_HIDDEN, std=0.03), "0.bias": _randn(g, HIDDEN, std=0.1),
            "2.weight": _randn(g, HIDDEN, HIDDEN, std=0.15), "2.bias": _randn(g, HIDDEN, std=0.1)}


def llava_config(vocab_size: int, vision_tower: str) -> dict:
    return {
        "_name_or_path": "./LLaVA-main/llava-v1.5-7b/", "architectures": ["LlavaLlamaForCausalLM"],
        "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
        "freeze_mm_mlp_adapter": False, "hidden_act": "silu", "hidden_size": HIDDEN, "image_aspect_ratio": "pad",
        "image_grid_pinpoints": None, "initializer_range": 0.02, "intermediate_size": INTERMEDIATE,
        "max_length": 4096, "max_position_embeddings": 4096, "mm_hidden_size": MM_HIDDEN,
        "mm_patch_merge_type": "flat", "mm_projector_lr": None, "mm_projector_type": "mlp2x_gelu",
        "mm_use_im_patch_token": False, "mm_use_im_start_end": False, "mm_vision_select_feature": "patch",
        "mm_vision_select_layer": -2, "mm_vision_tower": vision_tower, "model_type": "llava_llama",
        "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "num_key_value_heads": HEADS, "pad_token_id": 0,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 10000.0,
        "tie_word_embeddings": False, "tokenizer_model_max_length": 2048, "tokenizer_padding_side": "right",
        "torch_dtype": "float16", "transformers_version": "4.37.2", "tune_mm_mlp_adapter": False,
        "tune_mm_vision_resampler": False, "unfreeze_mm_vision_tower": False, "use_cache": True,
        "use_mm_proj": True, "vocab_size": vocab_size}


def _save_sharded(folder: Path, state: dict[str, torch.Tensor]) -> None:
    names = list(state)
    shards = {"pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
              "pytorch_model-00002-of-00002.bin": names[len(names) // 2:]}
    weight_map = {}
    for filename, keys in shards.items():
        torch.save({k: state[k].contiguous() for k in keys}, folder / filename)
        weight_map |= {k: filename for k in keys}
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))


def _write_full(folder: Path, vocab: int, llama: dict, projector: dict, legacy: bool | None) -> None:
    from tests.helpers.tiny_models import write_llava_tokenizer

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(llava_config(vocab, CLIP_HUB_NAME), indent=2))
    (folder / "generation_config.json").write_text(json.dumps(
        {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "max_length": 4096,
         "transformers_version": "4.37.2"}, indent=2))
    _save_sharded(folder, llama | {f"model.mm_projector.{k}": v for k, v in projector.items()})
    write_llava_tokenizer(folder, legacy=legacy)


def _write_lora(folder: Path, base: Path, vocab: int, seed: int) -> None:
    folder.mkdir(parents=True)
    config = llava_config(vocab, CLIP_TRAINING_PATH) | {"mm_projector_lr": 2e-5}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "adapter_config.json").write_text(json.dumps({     # LoraConfig fields of the LLaVA-1.5 era
        "auto_mapping": None, "base_model_name_or_path": str(base), "bias": "none", "fan_in_fan_out": False,
        "inference_mode": True, "init_lora_weights": True, "layers_pattern": None, "layers_to_transform": None,
        "lora_alpha": LORA_ALPHA, "lora_dropout": 0.05, "modules_to_save": None, "peft_type": "LORA", "r": LORA_R,
        "revision": None, "target_modules": list(LORA_TARGETS), "task_type": "CAUSAL_LM"}, indent=2))
    g = torch.Generator().manual_seed(seed)
    adapter = {}
    for layer in range(LAYERS):
        for module, (out_features, in_features) in _shapes().items():
            prefix = f"base_model.model.model.layers.{layer}.{module}."
            adapter[prefix + "lora_A.weight"] = _randn(g, LORA_R, in_features, std=0.2)
            adapter[prefix + "lora_B.weight"] = _randn(g, out_features, LORA_R, std=0.05)   # non-zero: it matters
    torch.save(adapter, folder / "adapter_model.bin")
    torch.save({f"base_model.model.model.mm_projector.{k}": v for k, v in projector_weights(seed + 1).items()},
               folder / "non_lora_trainables.bin")


def write_all(out: Path) -> dict[str, dict]:
    """Every layout under `out`; returns {layout: {"path", "base"}} plus the slide-token file."""
    from tests.helpers.tiny_models import write_llava_tokenizer
    from transformers import LlamaTokenizer

    vocab = len(LlamaTokenizer.from_pretrained(str(write_llava_tokenizer(out / "_tokenizer"))))
    llama = llama_weights(vocab, seed=0)
    layouts = {}
    for name, legacy in FULL_LAYOUTS.items():
        _write_full(out / name, vocab, llama, projector_weights(seed=1), legacy)
        layouts[name] = {"path": out / name, "base": None}
    _write_full(out / LORA_BASE, vocab, llama, projector_weights(seed=2), legacy=False)
    _write_lora(out / LORA_LAYOUT, out / LORA_BASE, vocab, seed=3)
    layouts[LORA_LAYOUT] = {"path": out / LORA_LAYOUT, "base": out / LORA_BASE}
    tokens = torch.randn(N_SLIDE_TOKENS, MM_HIDDEN, generator=torch.Generator().manual_seed(123))
    tokens[:, SLIDE_USED_DIM:] = 0
    torch.save(tokens, out / "slide_576x1024.pt")
    return layouts
