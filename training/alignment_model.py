"""Stage 1: the slide encoder aligned with a Hugging Face text encoder (CLIP-style, symmetric InfoNCE).

    tile features [B, N, D] + coords -> LongNetSlideEncoder -> 576 pooled tokens [B, 576, E]
        -> mean over tokens [B, E] -> slide_head -> L2-normalised slide embedding [B, K]
    report tokens [B, T] -> text encoder (AutoModel) -> CLS or masked mean [B, H]
        -> text_head -> L2-normalised text embedding [B, K]
    logits = exp(logit_scale) * slide @ text.T;  loss = (CE(logits) + CE(logits.T)) / 2

The temperature is learnable (`logit_scale`, initialised to log(1 / init_temperature) and clamped at
log(max_logit_scale), as in CLIP). What trains is decided by `training.stages` (the text encoder is
frozen there; frozen, it also stays in eval mode so its dropout is off). Text encoders come from
`TEXT_ENCODERS` (built-in names) or any Hugging Face id/folder through AutoModel/AutoTokenizer.
`retrieval_recall` computes report-retrieval recall@k for validation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from training.errors import TrainingError

TINY_TEXT_ENCODER = "tiny-random-bert"


def _tiny_random_bert(revision: str | None):
    """A 2-layer, 32-wide BERT with the demo's sentencepiece tokenizer; random (seeded), offline."""
    import tempfile

    from transformers import BertConfig, BertModel

    from modeling.demo_model import train_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(tmp)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=0)
    return BertModel(config, add_pooling_layer=False), tokenizer


# Built-in text encoders (tests, demos, CPU smoke runs); any other name is a Hugging Face id or folder.
TEXT_ENCODERS: dict[str, Callable] = {TINY_TEXT_ENCODER: _tiny_random_bert}


def load_text_encoder(source: str, revision: str | None = None):
    """(encoder model, tokenizer) for a built-in name, a Hugging Face id or a local folder."""
    if source in TEXT_ENCODERS:
        return TEXT_ENCODERS[source](revision)
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
        model = AutoModel.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"alignment.text_encoder: cannot load {source!r} (revision {revision!r}) as a Hugging "
                            f"Face text encoder: {exc}. Use a model id/folder with a tokenizer, or one of "
                            f"{sorted(TEXT_ENCODERS)}.") from exc
    return model, tokenizer


def text_hidden_size(encoder: nn.Module) -> int:
    size = getattr(encoder.config, "hidden_size", None)
    if not isinstance(size, int):
        raise TrainingError(f"text encoder {type(encoder).__name__} has no config.hidden_size.")
    return size


class SlideTextAligner(nn.Module):
    """Slide encoder + text encoder + two projection heads + a learnable temperature."""

    def __init__(self, slide_encoder: nn.Module, text_encoder: nn.Module, embed_dim: int, text_pooling: str,
                 init_temperature: float, max_logit_scale: float):
        super().__init__()
        self.slide_encoder = slide_encoder
        self.text_encoder = text_encoder
        self.text_pooling = text_pooling
        self.slide_head = nn.Linear(slide_encoder.config.embed_dim, embed_dim)
        self.text_head = nn.Linear(text_hidden_size(text_encoder), embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self.max_log_scale = math.log(max_logit_scale)

    def train(self, mode: bool = True):
        super().train(mode)
        if not any(p.requires_grad for p in self.text_encoder.parameters()):
            self.text_encoder.eval()        # frozen by the stage table: no dropout noise
        return self

    def encode_slides(self, tile_features, coords_tiling_px, tile_padding_mask=None) -> torch.Tensor:
        tokens = self.slide_encoder(tile_features, coords_tiling_px, padding_mask=tile_padding_mask)  # [B, S, E]
        return F.normalize(self.slide_head(tokens.mean(dim=1)), dim=-1)                            # [B, K]

    def encode_texts(self, text_input_ids, text_attention_mask) -> torch.Tensor:
        hidden = self.text_encoder(input_ids=text_input_ids, attention_mask=text_attention_mask).last_hidden_state
        if self.text_pooling == "cls":
            pooled = hidden[:, 0]                                                                    # [B, H]
        else:
            mask = text_attention_mask.unsqueeze(-1).to(hidden.dtype)                                # [B, T, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return F.normalize(self.text_head(pooled), dim=-1)                                          # [B, K]

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def forward(self, tile_features, coords_tiling_px, text_input_ids, text_attention_mask,
                tile_padding_mask=None) -> dict:
        slide = self.encode_slides(tile_features, coords_tiling_px, tile_padding_mask)
        text = self.encode_texts(text_input_ids, text_attention_mask)
        return {"loss": contrastive_loss(slide, text, self.scale()), "slide_embeds": slide, "text_embeds": text}


def contrastive_loss(slide: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over matching rows of [B, K] slide and text embeddings (pair i <-> i)."""
    logits = scale * slide @ text.T                                                                  # [B, B]
    targets = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def retrieval_recall(slide: torch.Tensor, text: torch.Tensor, ks) -> dict[str, float]:
    """Recall@k of retrieving the matching report for each slide (and the slide for each report).

    `slide`, `text`: [N, K] normalised embeddings, row i of each belonging to the same pair; k above N
    is reported as N (every item found).
    """
    similarity = slide.float() @ text.float().T                                                      # [N, N]
    target = torch.arange(similarity.shape[0])
    metrics = {}
    for direction, sims in (("slide_to_report", similarity), ("report_to_slide", similarity.T)):
        # rank of the true match = how many candidates score strictly higher
        rank = (sims > sims[target, target].unsqueeze(1)).sum(dim=1)                                 # [N]
        for k in ks:
            metrics[f"{direction}_recall@{k}"] = float((rank < k).float().mean())
    return metrics
