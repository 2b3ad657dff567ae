"""Loading a WSI-LLaVA model by name, Hub id or local folder, with what it is stated plainly.

What can be loaded is explicit:
- `KNOWN_CHECKPOINTS`: named checkpoints (the built-in tiny random demo; the released WSI-LLaVA
  checkpoints, which are in LLaVA-1.5 layout and need `wsi-llava convert-llava` once).
- `CHECKPOINT_FORMATS`: a folder or Hub repo is recognised by its config.json `model_type`; "wsi_llava"
  loads, LLaVA-layout types ("llava_llama", "llava") get the conversion command, anything else an error.

The model runs in float16 on CUDA by default, as the official inference (`model_vqa.py`), and in float32
on the CPU (`dtype="bfloat16"` etc. to choose). `load_model(..., load_4bit=True)` quantises the language
model only (bitsandbytes nf4, double quantisation, bf16 compute where supported); the slide encoder,
projector and lm_head stay 16/32-bit.
Every `LoadedModel` carries its display name and whether its weights are trained (`banner()`).

    loaded = load_model("path/to/checkpoint", load_4bit=True)
    print(loaded.banner())
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import modeling.auto_registration  # noqa: F401  (registers the Auto classes: loading needs no trust_remote_code)
from modeling.demo_model import DEMO_MODEL_NAME
from modeling.errors import ModelError
from common.hub import hub_download
from common.shards import default_device  # noqa: F401  (re-exported: cuda:LOCAL_RANK, else cpu)

# Modules never quantised: they are small and their precision matters (and lm_head as in HF's default).
KEEP_UNQUANTIZED = ["slide_encoder", "projector", "lm_head"]


@dataclass(frozen=True)
class KnownCheckpoint:
    name: str
    kind: str             # "demo" (built in memory) | "llava_layout" (convert first) | "wsi_llava"
    trained: bool
    description: str
    lora_base: str | None = None      # the base a LoRA release merges onto when converted (its adapter names a
                                      # training-machine folder: finetune_lora.sh's ./LLaVA-main/llava-v1.5-7b/)


KNOWN_CHECKPOINTS: dict[str, KnownCheckpoint] = {
    DEMO_MODEL_NAME: KnownCheckpoint(DEMO_MODEL_NAME, "demo", False,
                                     "tiny random model built offline, for tests and demos (answers are noise)"),
    "Lucas-yuc/wsi-llava-v1.5-7b-e1": KnownCheckpoint("Lucas-yuc/wsi-llava-v1.5-7b-e1", "llava_layout", True,
                                                      "WSI-LLaVA 7B as in the paper (LLaVA-1.5 layout)",
                                                      lora_base="liuhaotian/llava-v1.5-7b"),
    "Lucas-yuc/WSI-LLaVA-7b": KnownCheckpoint("Lucas-yuc/WSI-LLaVA-7b", "llava_layout", True,
                                              "WSI-LLaVA 7B, the improved later upload (LLaVA-1.5 layout)",
                                              lora_base="liuhaotian/llava-v1.5-7b"),
}

# config.json model_type -> how to load it
CHECKPOINT_FORMATS: dict[str, str] = {"wsi_llava": "wsi_llava", "llava_llama": "llava_layout", "llava": "llava_layout"}


@dataclass
class LoadedModel:
    model: object          # WsiLlavaForConditionalGeneration
    processor: object      # WsiLlavaProcessor
    name: str
    is_trained: bool
    quantization: str | None = None    # None | "4bit-nf4"

    def banner(self) -> str:
        state = "trained weights" if self.is_trained else "UNTRAINED: random weights, answers are meaningless"
        quant = f", language model {self.quantization}" if self.quantization else ""
        return f"Model: {self.name} ({state}{quant})"


def bnb_4bit_config(device: str):
    """nf4 + double quantisation; bf16 compute where the device supports it, else fp16 (CUDA) / fp32."""
    import torch
    from transformers import BitsAndBytesConfig

    if device.startswith("cuda"):
        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        compute = torch.bfloat16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute, llm_int8_skip_modules=KEEP_UNQUANTIZED)


def torch_dtype(dtype, device: str):
    """None / a name of `INFERENCE_DTYPES` / a torch dtype -> the torch dtype; None and "auto" are the
    official float16 on CUDA, float32 on CPU."""
    import torch

    from modeling.generation_settings import resolve_dtype_name

    if dtype is None or isinstance(dtype, str):
        return getattr(torch, resolve_dtype_name(dtype or "auto", device))
    return dtype


def read_checkpoint_config(source: str, revision: str | None = None) -> tuple[dict, str]:
    """config.json of a local folder or Hub repo -> (dict, where it was read); ModelError with the fix."""
    path = Path(source)
    if path.exists():
        config_file = path / "config.json"
        if not config_file.is_file() and (path / "training_manifest.json").is_file():
            raise ModelError(f"{path} is a training checkpoint (only the trained weights + how to rebuild the "
                             f"rest). Merge it into a standalone model first: `wsi-llava train --merge {path} "
                             "MERGED_DIR`, then load MERGED_DIR.")
        if not config_file.is_file():
            raise ModelError(f"{path}: no config.json; expected a checkpoint folder (save_pretrained output).")
        return json.loads(config_file.read_text()), str(path)
    if source.count("/") != 1:
        raise ModelError(f"{source!r} is neither an existing folder nor a Hub id (owner/name); known names: "
                         f"{sorted(KNOWN_CHECKPOINTS)}.")
    config_file = hub_download(source, "config.json", revision=revision, error=ModelError)
    return json.loads(Path(config_file).read_text()), source


def load_model(source: str, *, load_4bit: bool = False, device: str | None = None, dtype=None,
               revision: str | None = None) -> LoadedModel:
    """Load a known name, a local checkpoint folder or a Hub id; see the module docstring. `dtype`: None or
    "auto" (float16 on CUDA as the official inference, float32 on CPU), a name ("bfloat16") or a torch dtype."""
    device = device or default_device()
    known = KNOWN_CHECKPOINTS.get(source)
    if known is not None and known.kind == "demo":
        return _load_demo(load_4bit, device, dtype)
    if known is not None and known.kind == "llava_layout":
        raise ModelError(_convert_hint(source, known.description))
    config, where = read_checkpoint_config(source, revision)
    model_type = config.get("model_type")
    kind = CHECKPOINT_FORMATS.get(model_type)
    if kind == "llava_layout":
        raise ModelError(_convert_hint(where, f"an original LLaVA-1.5-layout checkpoint (model_type {model_type!r})"))
    if kind != "wsi_llava":
        raise ModelError(f"{where}: config.json has model_type {model_type!r}; loadable types: "
                         f"{sorted(CHECKPOINT_FORMATS)} (a WSI-LLaVA checkpoint, or a LLaVA-layout one to convert).")
    return _load_wsi_llava(source, load_4bit, device, dtype, revision, name=config.get("display_name") or source)


def _convert_hint(source: str, what: str) -> str:
    return (f"{source} is {what}. Convert it once into this project's format, then load the result:\n"
            f"  wsi-llava convert-llava {source} ./wsi-llava-converted\n"
            f"  wsi-llava ask SLIDE --question ... --model ./wsi-llava-converted")


def _load_wsi_llava(source: str, load_4bit: bool, device: str, dtype, revision: str | None, name: str) -> LoadedModel:

    from modeling.modeling_wsi_llava import WsiLlavaForConditionalGeneration
    from modeling.processing_wsi_llava import WsiLlavaProcessor

    dtype = torch_dtype(dtype, device)
    kwargs: dict = {"dtype": dtype, "revision": revision, "device_map": {"": device}}
    if load_4bit:
        kwargs["quantization_config"] = bnb_4bit_config(device)
    try:
        model = WsiLlavaForConditionalGeneration.from_pretrained(source, **kwargs).eval()
        processor = WsiLlavaProcessor.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot load the WSI-LLaVA checkpoint {source}: {exc}") from exc
    if processor.image_token_id != model.config.image_token_index or \
            processor.num_slide_tokens != model.config.num_slide_tokens:
        raise ModelError(f"{source}: processor and model disagree (`<image>` id {processor.image_token_id} vs "
                         f"{model.config.image_token_index}, slide tokens {processor.num_slide_tokens} vs "
                         f"{model.config.num_slide_tokens}); re-save both with save_pretrained.")
    return LoadedModel(model, processor, name, bool(model.config.is_trained), "4bit-nf4" if load_4bit else None)


def _load_demo(load_4bit: bool, device: str, dtype) -> LoadedModel:
    import tempfile

    from modeling.demo_model import build_demo, build_demo_checkpoint

    name = f"{DEMO_MODEL_NAME} (built in)"
    import torch

    if not load_4bit and device == "cpu" and torch_dtype(dtype, device) == torch.float32:
        model, processor = build_demo()
        return LoadedModel(model, processor, name, False)
    with tempfile.TemporaryDirectory() as tmp:   # quantisation and dtype go through from_pretrained
        build_demo_checkpoint(tmp)
        loaded = _load_wsi_llava(tmp, load_4bit, device, dtype, None, name)
    return loaded
