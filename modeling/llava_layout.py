"""Reading original LLaVA-1.5-layout WSI-LLaVA checkpoints (what `Lucas-yuc/*` publish).

Layout: `config.json` with `model_type` "llava_llama" (or "llava"), LLaMA fields at the top level plus
`mm_hidden_size`, `mm_projector_type`, `mm_vision_tower`, `mm_use_im_start_end`...; weights (safetensors
or .bin, maybe sharded) with the LLM under `model.*` / `lm_head.weight` and the projector under
`model.mm_projector.{0,2}.*`. A LoRA checkpoint instead holds `adapter_config.json` + `adapter_model.*`
(peft keys `base_model.model.<module>.lora_{A,B}.weight`) and `non_lora_trainables.bin` (the projector,
keys `base_model.model.model.mm_projector.*`), applied on a base checkpoint in the same layout, exactly
as LLaVA's `load_pretrained_model` + `merge_and_unload` do.

`read_llava_checkpoint(folder, base_folder)` returns the LLaVA config and the merged state dict in
LLaVA key space; `to_wsi_llava_keys` maps it onto `WsiLlavaForConditionalGeneration`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import torch

from modeling.errors import ModelError

LLAVA_MODEL_TYPES = ("llava_llama", "llava")
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json")
# LLaVA keys without a counterpart: the CLIP vision tower (WSI-LLaVA feeds slide tokens instead) and
# rotary caches that old checkpoints saved.
_DROPPED_KEY_PARTS = ("model.vision_tower.", "rotary_emb.inv_freq")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable JSON ({exc}).") from exc


def check_llava_config(config: dict, where: str) -> None:
    model_type = config.get("model_type")
    if model_type not in LLAVA_MODEL_TYPES:
        raise ModelError(f"{where}: config.json model_type is {model_type!r}, not a LLaVA-1.5 layout "
                         f"({' or '.join(LLAVA_MODEL_TYPES)}).")
    if "text_config" in config and "mm_hidden_size" not in config:
        raise ModelError(f"{where}: this is a transformers `llava` (llava-hf) checkpoint, not the original "
                         "LLaVA-1.5 layout WSI-LLaVA released; it is not supported by convert-llava.")
    for key in ("mm_hidden_size", "hidden_size", "vocab_size", "num_hidden_layers"):
        if key not in config:
            raise ModelError(f"{where}: config.json lacks {key!r}; is it a LLaVA-1.5 checkpoint config?")
    if config.get("mm_use_im_start_end"):
        raise ModelError(f"{where}: mm_use_im_start_end=true (image start/end tokens) is not supported; "
                         "WSI-LLaVA was trained with false.")
    if "unpad" in str(config.get("mm_patch_merge_type", "")):
        raise ModelError(f"{where}: mm_patch_merge_type {config['mm_patch_merge_type']!r} (LLaVA-NeXT) is not "
                         "supported.")


def llama_text_config(config: dict) -> dict:
    """The LLaMA part of a LLaVA config.json as a text_config dict (mm_* and training keys dropped)."""
    from transformers import LlamaConfig

    fields = {f.name for f in dataclasses.fields(LlamaConfig)} | {"rope_theta", "rope_scaling"}
    skip = {"architectures", "transformers_version", "dtype", "torch_dtype", "_name_or_path"}
    text = {k: v for k, v in config.items() if k in fields and k not in skip}
    text["model_type"] = "llama"
    return text


def weight_files(folder: Path) -> list[Path]:
    """The model weight files of a folder: *.safetensors if present, else pytorch_model*.bin (adapters
    excluded); ModelError naming what the folder holds instead."""
    safetensors = sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("adapter_"))
    bins = sorted(p for p in folder.glob("pytorch_model*.bin"))
    if not safetensors and not bins and (folder / "mm_projector.bin").is_file():
        raise ModelError(f"{folder} holds the projector only (mm_projector.bin, LLaVA's pretraining-stage "
                         "output), no language model: convert the instruction-tuned checkpoint (full, or LoRA "
                         "with non_lora_trainables.bin) instead.")
    if not safetensors and not bins:
        raise ModelError(f"{folder}: no model weights (*.safetensors or pytorch_model*.bin).")
    return safetensors or bins


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    """All model weights of a folder (see `weight_files`)."""
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(folder):
        state.update(_load_file(path))
    return state


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # files saved in the legacy (non-zip) format cannot be memory-mapped
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any reader failure means a broken or foreign file
        raise ModelError(f"{path}: cannot read weights ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(payload, dict):
        raise ModelError(f"{path}: expected a state dict, found {type(payload).__name__}.")
    return payload


def merge_lora(state: dict[str, torch.Tensor], adapter_folder: Path) -> int:
    """Merge a peft LoRA adapter into `state` (LLaVA key space) in place: W += scale * B @ A. Returns #merged.

    The delta is computed in float32 and the sum stored in W's dtype, which is what the release computes:
    builder.py loads the base in float16, peft keeps the adapter in float32 and `merge_and_unload` adds the
    float32 delta into the float16 weight, so the merged weights are fp16(W + scale * B @ A)."""
    config = read_json(adapter_folder / "adapter_config.json")
    where = adapter_folder / "adapter_config.json"
    unsupported = {key: config.get(key) for key in ("use_dora", "rank_pattern", "alpha_pattern", "modules_to_save")
                   if config.get(key)}
    if config.get("fan_in_fan_out"):
        unsupported["fan_in_fan_out"] = True
    if config.get("peft_type", "LORA") != "LORA":
        unsupported["peft_type"] = config.get("peft_type")
    if unsupported:
        raise ModelError(f"{where}: unsupported adapter settings {unsupported}; only plain LoRA (as WSI-LLaVA "
                         "trained) can be merged.")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    files = [adapter_folder / name for name in ("adapter_model.safetensors", "adapter_model.bin")]
    adapter_file = next((p for p in files if p.is_file()), None)
    if adapter_file is None:
        raise ModelError(f"{adapter_folder}: adapter_config.json but no adapter_model.safetensors/.bin.")
    adapter = _load_file(adapter_file)
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in adapter.items():
        module, _, part = key.removeprefix("base_model.model.").rpartition(".lora_")
        if not _ or part not in ("A.weight", "B.weight"):
            raise ModelError(f"{adapter_file}: unexpected adapter key {key!r} (expected ...lora_A/lora_B.weight).")
        pairs.setdefault(module, {})[part[0]] = tensor
    for module, ab in pairs.items():
        target = f"{module}.weight"
        if target not in state or set(ab) != {"A", "B"}:
            raise ModelError(f"{adapter_file}: LoRA for {module!r} has no matching base weight {target!r} "
                             "or lacks lora_A/lora_B; is --base the model this adapter was trained on?")
        weight = state[target]
        delta = (ab["B"].float() @ ab["A"].float()) * scale               # [out, in]
        if delta.shape != weight.shape:
            raise ModelError(f"{adapter_file}: LoRA delta for {module} is {tuple(delta.shape)}, base weight "
                             f"{tuple(weight.shape)}.")
        state[target] = (weight.float() + delta).to(weight.dtype)
    return len(pairs)


def apply_non_lora_trainables(state: dict[str, torch.Tensor], path: Path) -> list[str]:
    """LLaVA's non_lora_trainables.bin (projector etc.) over `state`, with LLaVA's key clean-up."""
    trainables = _load_file(path)
    trainables = {(k[len("base_model."):] if k.startswith("base_model.") else k): v for k, v in trainables.items()}
    if any(k.startswith("model.model.") for k in trainables):
        trainables = {(k[len("model."):] if k.startswith("model.") else k): v for k, v in trainables.items()}
    for key, tensor in trainables.items():
        if key in state and tuple(state[key].shape) != tuple(tensor.shape):
            raise ModelError(f"{path}: {key} is {tuple(tensor.shape)} but the base has {tuple(state[key].shape)}.")
        state[key] = tensor
    return sorted(trainables)


def read_llava_checkpoint(folder: Path, base_folder: Path | None) -> tuple[dict, dict[str, torch.Tensor], list[str]]:
    """(LLaVA config, merged LLaVA-key state dict, notes) of a full or LoRA LLaVA-layout checkpoint."""
    config = read_json(folder / "config.json")
    check_llava_config(config, str(folder))
    notes: list[str] = []
    if (folder / "adapter_config.json").is_file():
        if base_folder is None:
            raise ModelError(f"{folder} is a LoRA checkpoint; give the model it was trained on with --base "
                             "(its adapter_config.json base_model_name_or_path names it).")
        state = load_weights(base_folder)
        notes.append(f"merged {merge_lora(state, folder)} LoRA modules from {folder} into {base_folder}")
        trainables = folder / "non_lora_trainables.bin"
        if trainables.is_file():
            notes.append(f"applied {len(apply_non_lora_trainables(state, trainables))} tensors from {trainables.name}")
    else:
        state = load_weights(folder)
    dropped = [k for k in state if any(part in k for part in _DROPPED_KEY_PARTS)]
    for key in dropped:
        del state[key]
    if dropped:
        notes.append(f"dropped {len(dropped)} vision-tower/rotary tensors (not used by WSI-LLaVA)")
    return config, state, notes


def to_wsi_llava_keys(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """LLaVA keys -> WsiLlavaForConditionalGeneration keys; ModelError on anything unknown."""
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        if key.startswith("model.mm_projector."):
            out["projector." + key.removeprefix("model.mm_projector.")] = tensor
        elif key.startswith("model.") or key == "lm_head.weight":
            out["language_model." + key] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise ModelError(f"{where}: weights with unknown names {unknown[:8]}{' ...' if len(unknown) > 8 else ''}.")
    if not any(k.startswith("projector.") for k in out):
        raise ModelError(f"{where}: no projector weights (model.mm_projector.*) in the checkpoint or its "
                         "non_lora_trainables.bin.")
    return out
