"""Tiny, randomly initialised WSI-LLaVA models and offline tokenizers for tests (shared by every package).

Everything here is built in-process, offline, in well under a second:

    tokenizer = tiny_tokenizer()                       # LlamaTokenizer (sentencepiece BPE, 512 + <image>)
    model, processor = tiny_model_and_processor()      # 2-layer LLaMA, 1-layer LongNet, 8 slide tokens
    batch = processor([conversation])                  # input_ids / attention_mask / labels
    out = model(**batch, **random_slide_inputs(model.config).model_kwargs())
    path = save_tiny_checkpoint(tmp_path / "ckpt")     # save_pretrained of model + processor
    write_features_h5(tmp_path / "s.h5", n_tiles=50)   # the slide pipeline's features h5 layout
    write_slide_tokens_pt(tmp_path / "s.pt")           # a released WSIBench-pt file (576 x 1024)
    write_llava_tokenizer(tmp_path / "llava")          # tokenizer files as LLaVA-1.5 releases ship them

Sizes are small where the architecture allows (`num_slide_tokens=8`, widths 16-64); the real
576-token path is `modeling.demo_model` (the built-in `wsi-llava-tiny-random`), also offline.
All weights are random (`is_trained=False`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from modeling.configuration_wsi_llava import WsiLlavaConfig
from modeling.demo_model import tiny_slide_encoder_config, tiny_text_config, train_tokenizer
from modeling.modeling_wsi_llava import WsiLlavaForConditionalGeneration
from modeling.processing_wsi_llava import WsiLlavaProcessor
from modeling.slide_inputs import SLIDE_TOKENS, TILE_FEATURES, SlideInputs

TINY_NUM_SLIDE_TOKENS = 8
TINY_TILE_FEATURE_DIM = 16
TINY_SLIDE_TOKEN_DIM = 32       # = the tiny slide encoder's embed_dim

_TOKENIZER_DIR: Path | None = None


def tiny_tokenizer():
    """A fresh LlamaTokenizer (BPE, byte fallback, BOS added) with `<image>` added; trained once per process."""
    global _TOKENIZER_DIR
    from transformers import LlamaTokenizer

    if _TOKENIZER_DIR is None:
        _TOKENIZER_DIR = Path(tempfile.mkdtemp(prefix="tiny-tokenizer-"))
        tokenizer = train_tokenizer(_TOKENIZER_DIR / "spm")
        WsiLlavaProcessor.add_image_token(tokenizer)
        tokenizer.save_pretrained(_TOKENIZER_DIR / "hf")
    return LlamaTokenizer.from_pretrained(str(_TOKENIZER_DIR / "hf"))


def tiny_processor(num_slide_tokens: int = TINY_NUM_SLIDE_TOKENS, conversation_template: str = "vicuna_v1"):
    return WsiLlavaProcessor(tokenizer=tiny_tokenizer(), num_slide_tokens=num_slide_tokens,
                             conversation_template=conversation_template)


def tiny_config(num_slide_tokens: int = TINY_NUM_SLIDE_TOKENS, with_slide_encoder: bool = True,
                slide_token_dim: int = TINY_SLIDE_TOKEN_DIM, tile_feature_dim: int = TINY_TILE_FEATURE_DIM,
                text_overrides: dict | None = None, encoder_overrides: dict | None = None,
                **overrides) -> WsiLlavaConfig:
    """A valid tiny WsiLlavaConfig matching `tiny_tokenizer()` (vocab incl. `<image>`).

    `with_slide_encoder=False` gives a slide-token-only model; `slide_token_dim` > 32 exercises the
    zero-padding of slide tokens; `overrides` go to WsiLlavaConfig (e.g. projector_type="linear").
    """
    tokenizer = tiny_tokenizer()
    encoder_settings = {"in_dim": tile_feature_dim, "num_slide_tokens": num_slide_tokens,
                        "segment_lengths": [16, 64]} | (encoder_overrides or {})
    encoder = tiny_slide_encoder_config(**encoder_settings)
    kwargs = dict(
        text_config=tiny_text_config(len(tokenizer), **(text_overrides or {})),
        slide_encoder_config=encoder if with_slide_encoder else None,
        tile_feature_dim=tile_feature_dim, num_slide_tokens=num_slide_tokens, slide_token_dim=slide_token_dim,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), tile_encoder="random-tiny",
        language_model_source=None, slide_encoder_source=None, display_name="tiny-test-model",
    )
    return WsiLlavaConfig(**(kwargs | overrides))


def tiny_model(config: WsiLlavaConfig | None = None, seed: int = 0, **config_overrides):
    """A WsiLlavaForConditionalGeneration in eval mode with seeded random weights."""
    torch.manual_seed(seed)
    return WsiLlavaForConditionalGeneration(config or tiny_config(**config_overrides)).eval()


def tiny_model_and_processor(seed: int = 0, **config_overrides):
    model = tiny_model(seed=seed, **config_overrides)
    return model, tiny_processor(model.config.num_slide_tokens)


def save_tiny_checkpoint(path: str | Path, seed: int = 0, **config_overrides) -> Path:
    """Write a tiny model + processor with save_pretrained (safetensors); returns the folder."""
    model, processor = tiny_model_and_processor(seed=seed, **config_overrides)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return Path(path)


def random_slide_inputs(config: WsiLlavaConfig, kind: str = SLIDE_TOKENS, n_tiles: int = 40, seed: int = 0,
                        token_dim: int | None = None) -> SlideInputs:
    """Random slide tokens [1, S, token_dim or slide_token_dim] or tile features + in-grid coords."""
    generator = torch.Generator().manual_seed(seed)
    if kind == SLIDE_TOKENS:
        tokens = torch.randn(1, config.num_slide_tokens, token_dim or config.slide_token_dim, generator=generator)
        return SlideInputs(SLIDE_TOKENS, "random", slide_tokens=tokens)
    features = torch.randn(1, n_tiles, config.tile_feature_dim, generator=generator)
    cells = torch.randperm(40 * 40, generator=generator)[:n_tiles]
    coords = torch.stack([cells // 40, cells % 40], dim=-1).float() * 256            # [N, 2] tiling-level px
    return SlideInputs(TILE_FEATURES, "random", tile_features=features, coords_tiling_px=coords.unsqueeze(0),
                       tile_encoder=config.tile_encoder)


def write_features_h5(path: str | Path, n_tiles: int = 50, dim: int = 192, patch_size: int = 256,
                      patch_size_level0: int = 512, encoder: str = "random-tiny", seed: int = 0) -> Path:
    """A features h5 in the slide pipeline's layout (level-0 coords of a 2x-downsampled tiling)."""
    import numpy as np

    from modeling.slide.features_h5 import SlideFeatures, write_features_h5 as write

    generator = torch.Generator().manual_seed(seed)
    cells = torch.randperm(30 * 30, generator=generator)[:n_tiles].numpy()
    coords_level0 = np.stack([cells // 30, cells % 30], axis=-1).astype(np.int64) * patch_size_level0
    attrs = {"patch_size": patch_size, "patch_size_level0": patch_size_level0, "encoder": encoder,
             "encoder_trained": False}
    return write(path, SlideFeatures(torch.randn(n_tiles, dim, generator=generator), coords_level0, attrs))


def write_slide_tokens_pt(path: str | Path, num_tokens: int = 576, dim: int = 1024, padded_from: int | None = 768,
                          batched: bool = False, seed: int = 0) -> Path:
    """A WSIBench-pt-style file: (576, 1024) or (1, 576, 1024), zero beyond `padded_from` channels."""
    tokens = torch.randn(num_tokens, dim, generator=torch.Generator().manual_seed(seed))
    if padded_from is not None:
        tokens[:, padded_from:] = 0
    torch.save(tokens.unsqueeze(0) if batched else tokens, path)
    return Path(path)


_SPM_MODELS: dict[bool, bytes] = {}


def _token(content: str) -> dict:
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False}


def write_llava_tokenizer(folder: str | Path, legacy: bool | None = True, add_bos_token: bool | None = True,
                          remove_extra_whitespaces: bool = False) -> Path:
    """tokenizer.model (the tiny LLaMA-like sentencepiece BPE) + tokenizer_config.json + special_tokens_map.json
    as llava-v1.5-7b ships them for the slow LlamaTokenizer; `legacy` / `add_bos_token` None leave the key
    out. No tokenizer.json, like the releases."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if remove_extra_whitespaces not in _SPM_MODELS:
        with tempfile.TemporaryDirectory() as tmp:
            train_tokenizer(tmp, remove_extra_whitespaces=remove_extra_whitespaces)
            _SPM_MODELS[remove_extra_whitespaces] = (Path(tmp) / "tokenizer.model").read_bytes()
    (folder / "tokenizer.model").write_bytes(_SPM_MODELS[remove_extra_whitespaces])
    config = {"add_eos_token": False, "bos_token": _token("<s>"), "clean_up_tokenization_spaces": False,
              "eos_token": _token("</s>"), "model_max_length": 2048, "pad_token": None, "padding_side": "right",
              "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer", "unk_token": _token("<unk>")}
    if legacy is not None:
        config["legacy"] = legacy
    if add_bos_token is not None:
        config["add_bos_token"] = add_bos_token
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>", "unk_token": "<unk>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    return folder
