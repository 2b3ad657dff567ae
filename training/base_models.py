"""The frozen starting points of a run: the base WSI-LLaVA checkpoint, or only its slide encoder.

- `load_base_model(source, revision, ...)`: a full WSI-LLaVA checkpoint (folder, Hub id or a name in
  `modeling.checkpoints.KNOWN_CHECKPOINTS`) through `modeling.checkpoints.load_model`, optionally with
  the language model in 4-bit (QLoRA).
- `load_base_slide_encoder(source, revision)`: stage 1 needs only the slide encoder, so only its
  tensors are read from the checkpoint's safetensors (the 7B language model is never loaded).
- `resolve_commit(source, revision)`: the Hub commit a base id/revision points at, recorded in the
  checkpoint manifest so the base is rebuilt exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from modeling.errors import ModelError
from training.errors import TrainingError

SLIDE_ENCODER_PREFIX = "slide_encoder."


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def training_device(load_4bit: bool) -> str:
    """Where weights are loaded: 4-bit weights are quantised on their final GPU; others load on the CPU
    and the Trainer moves them."""
    import torch

    if load_4bit and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def load_base_model(source: str, revision: str | None, dtype: str, load_4bit: bool, device: str | None = None):
    """A `modeling.checkpoints.LoadedModel`; ModelErrors become TrainingErrors naming model.base_model."""
    from modeling.checkpoints import load_model

    try:
        return load_model(source, load_4bit=load_4bit, device=device or training_device(load_4bit),
                          dtype=torch_dtype(dtype), revision=revision)
    except ModelError as exc:
        raise TrainingError(f"model.base_model: {exc}") from exc


def load_base_config(source: str, revision: str | None):
    """The base checkpoint's WsiLlavaConfig from its config.json alone (no weights are loaded)."""
    from modeling.checkpoints import KNOWN_CHECKPOINTS, read_checkpoint_config
    from modeling.configuration_wsi_llava import WsiLlavaConfig

    known = KNOWN_CHECKPOINTS.get(source)
    if known is not None and known.kind == "demo":
        from modeling.demo_model import build_demo

        return build_demo()[0].config
    if known is not None:
        load_base_model(source, revision, "float32", False, "cpu")      # raises with the conversion hint
    try:
        config_dict, _ = read_checkpoint_config(source, revision)
        if config_dict.get("model_type") != "wsi_llava":
            load_base_model(source, revision, "float32", False, "cpu")   # raises with the conversion hint
        return WsiLlavaConfig.from_dict(config_dict)
    except ModelError as exc:
        raise TrainingError(f"model.base_model: {exc}") from exc


def _checkpoint_file(source: str, revision: str | None, filename: str) -> Path | None:
    folder = Path(source)
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    from common.hub import HubError, hub_download

    try:
        return Path(hub_download(source, filename, revision=revision))
    except HubError:
        return None


def load_base_slide_encoder(source: str, revision: str | None):
    """(LongNetSlideEncoder with the base checkpoint's weights, its SlideEncoderConfig)."""
    from modeling.checkpoints import KNOWN_CHECKPOINTS

    known = KNOWN_CHECKPOINTS.get(source)
    if known is not None and known.kind == "demo":
        model = load_base_model(source, None, "float32", False, "cpu").model
        return model.slide_encoder, model.slide_encoder.config
    encoder_config = load_base_config(source, revision).slide_encoder()
    where = source
    if encoder_config is None:
        raise TrainingError(f"model.base_model: {where} has no slide encoder (slide-token-only checkpoint), so stage 1 "
                            "has nothing to align; convert it with `wsi-llava convert-llava ... --slide-encoder "
                            "prov-gigapath` or use a checkpoint with one.")
    tensors = _read_prefixed_tensors(source, revision, SLIDE_ENCODER_PREFIX, where)
    import torch

    from modeling.slide_encoder import LongNetSlideEncoder
    from modeling.slide_encoder_weights import load_slide_encoder_weights

    with torch.device("meta"):
        encoder = LongNetSlideEncoder(encoder_config)
    try:
        load_slide_encoder_weights(encoder, tensors, f"{where} (slide_encoder.*)")
    except ModelError as exc:
        raise TrainingError(f"model.base_model: {exc}") from exc
    return encoder.float(), encoder_config


def _read_prefixed_tensors(source: str, revision: str | None, prefix: str, where: str) -> dict:
    from safetensors import safe_open

    index = _checkpoint_file(source, revision, "model.safetensors.index.json")
    if index is not None:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards = sorted({shard for key, shard in weight_map.items() if key.startswith(prefix)})
    else:
        shards = ["model.safetensors"]
    tensors = {}
    for shard in shards:
        path = _checkpoint_file(source, revision, shard)
        if path is None:
            raise TrainingError(f"model.base_model: {where} has no {shard} (safetensors weights expected).")
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():                 # noqa: SIM118 (a safetensors handle)
                if key.startswith(prefix):
                    tensors[key[len(prefix):]] = handle.get_tensor(key)
    if not tensors:
        raise TrainingError(f"model.base_model: {where} holds no {prefix}* weights.")
    return tensors


def resolve_commit(source: str, revision: str | None) -> str | None:
    """The Hub commit sha of a base model id (None for local folders and built-in names)."""
    from modeling.checkpoints import KNOWN_CHECKPOINTS

    from common.hub import looks_like_hub_id

    if source in KNOWN_CHECKPOINTS or not looks_like_hub_id(source):
        return None
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return HfApi().model_info(source, revision=revision).sha
    except (HfHubHTTPError, OSError):
        return None
