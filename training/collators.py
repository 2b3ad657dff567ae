"""Batches: dataset rows -> model inputs, loading each slide's feature file as the batch is built.

- `InstructionCollator` (stages 2-3): conversations through `WsiLlavaProcessor` (labels -100 outside
  the answers, `data.max_length`) + slide inputs.
- `AlignmentCollator` (stage 1): tile features + report tokens for the text encoder.

Slide inputs are the released slide tokens (stacked, zero-padded to the model's slide_token_dim) or
tile features padded at the end of each row with `tile_padding_mask` (True = padding), which the slide
encoder honours exactly. Every file is checked against the model (`modeling.slide_inputs.
check_compatible`); a bad file stops training with a TrainingError naming it.
"""

from __future__ import annotations

import json

import torch

from modeling.errors import ModelError
from modeling.slide_inputs import (
    SLIDE_TOKENS,
    SlideInputs,
    check_compatible,
    load_slide_inputs,
)
from training.errors import TrainingError


def load_checked(path: str, model_config) -> SlideInputs:
    try:
        inputs = load_slide_inputs(path)
        check_compatible(inputs, model_config)
    except ModelError as exc:
        raise TrainingError(f"slide inputs: {exc}") from exc
    return inputs


def slide_batch(inputs: list[SlideInputs], slide_token_dim: int) -> dict[str, torch.Tensor]:
    """One slide per row: {"slide_tokens"} or {"tile_features", "coords_tiling_px"[, "tile_padding_mask"]}."""
    from modeling.projector import fit_slide_token_width

    if inputs[0].kind == SLIDE_TOKENS:
        tokens = [fit_slide_token_width(i.slide_tokens, slide_token_dim) for i in inputs]     # each [1, S, D]
        return {"slide_tokens": torch.cat(tokens)}                                               # [B, S, D]
    lengths = [i.tile_features.shape[1] for i in inputs]
    width, dim = max(lengths), inputs[0].tile_features.shape[-1]
    features = torch.zeros(len(inputs), width, dim)                                              # [B, N, D]
    coords = torch.zeros(len(inputs), width, 2)                                                  # [B, N, 2]
    for row, item in enumerate(inputs):
        features[row, :lengths[row]] = item.tile_features[0]
        coords[row, :lengths[row]] = item.coords_tiling_px[0].float()
    batch = {"tile_features": features, "coords_tiling_px": coords}
    if min(lengths) < width:
        batch["tile_padding_mask"] = torch.arange(width).unsqueeze(0) >= torch.tensor(lengths).unsqueeze(1)
    return batch


class InstructionCollator:
    """Stages 2-3: rows with `conversations` (JSON) and `input_path` -> LM inputs with labels + slides."""

    def __init__(self, processor, model_config, max_length: int):
        self.processor = processor
        self.model_config = model_config
        self.max_length = max_length

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        encodings = []
        for row in rows:
            try:
                encodings.append(self.processor.encode_conversation(json.loads(row["conversations"]),
                                                                    self.max_length))
            except ModelError as exc:
                raise TrainingError(f"example {row['example_id']} ({row['image']}): {exc}") from exc
        batch = dict(self.processor.collate(encodings))
        slides = [load_checked(row["input_path"], self.model_config) for row in rows]
        return batch | slide_batch(slides, self.model_config.slide_token_dim)


class AlignmentCollator:
    """Stage 1: rows with `text` and `input_path` -> tile features + the text encoder's inputs."""

    def __init__(self, tokenizer, model_config, text_max_length: int):
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        tokenizer.padding_side = "right"      # CLS pooling reads position 0: it must be the first real token
        self.tokenizer = tokenizer
        self.model_config = model_config
        self.text_max_length = text_max_length

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        slides = [load_checked(row["input_path"], self.model_config) for row in rows]
        text = self.tokenizer([row["text"] for row in rows], padding=True, truncation=True,
                              max_length=self.text_max_length, return_tensors="pt")
        return slide_batch(slides, self.model_config.slide_token_dim) | {
            "text_input_ids": text["input_ids"], "text_attention_mask": text["attention_mask"]}
