"""`WsiLlavaForConditionalGeneration`: slide encoder + projector + causal LM, the whole forward pass here.

    slide inputs                                   text
    tile_features [B, N, 1536] + coords_tiling_px  input_ids [B, L] with num_slide_tokens `<image>` ids per row
      -> slide_encoder (LongNet, pooled)              -> language_model input embeddings [B, L, H]
      -> slide tokens [B, 576, 768]                       |
    or slide_tokens [B, 576, 768|1024] (precomputed)      |
      -> zero-pad to slide_token_dim, projector -> [B, 576, H] --scattered into the `<image>` rows--> LLM

The language model is any `AutoModelForCausalLM` (it owns the embeddings, lm_head and the loss), so
LoRA, gradient checkpointing, 4-bit quantisation and generation with a KV cache work as for the plain
LLM. Exactly one of `slide_tokens` / `tile_features` may be given; without either, `input_ids` must
hold no `<image>` ids (text-only, or a continuation whose slide prefix is already in `cache`).

    model = WsiLlavaForConditionalGeneration(WsiLlavaConfig(...))
    out = model(input_ids=ids, attention_mask=mask, slide_tokens=tokens, labels=labels)  # out.loss
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils.deprecation import deprecate_kwarg

from modeling.configuration_wsi_llava import WsiLlavaConfig
from modeling.errors import ModelError
from modeling.projector import build_projector, fit_slide_token_width

# Inputs that belong to the prefill only: generation drops them once the slide is in the KV cache.
SLIDE_INPUT_NAMES = ("slide_tokens", "tile_features", "coords_tiling_px", "tile_padding_mask")


@dataclass
class WsiLlavaCausalLMOutputWithPast(CausalLMOutputWithPast):
    """`CausalLMOutputWithPast` plus the projected slide embeddings of this forward pass (or None)."""

    slide_embeds: torch.FloatTensor | None = None  # [B, num_slide_tokens, H]


class WsiLlavaPreTrainedModel(PreTrainedModel):
    config: WsiLlavaConfig
    config_class = WsiLlavaConfig
    base_model_prefix = ""
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["LongNetEncoderLayer"]   # + the language model's own, collected by transformers
    _skip_keys_device_placement = ["cache", "past_key_values"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)                 # Linear ~ N(0, initializer_range), norms = 1/0
        cls_token = getattr(module, "cls_token", None)
        if isinstance(cls_token, nn.Parameter):       # the slide encoder's CLS token (Prov-GigaPath: N(0, 0.02))
            init.normal_(cls_token, std=0.02)


class WsiLlavaForConditionalGeneration(WsiLlavaPreTrainedModel, GenerationMixin):
    def __init__(self, config: WsiLlavaConfig):
        super().__init__(config)
        encoder_config = config.slide_encoder()
        if encoder_config is not None:
            from modeling.slide_encoder import LongNetSlideEncoder

            self.slide_encoder = LongNetSlideEncoder(encoder_config)
        else:
            self.slide_encoder = None
        self.projector = build_projector(config.projector_type, config.slide_token_dim,
                                         config.text_config.hidden_size)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()
        # `<image>` is in the vocabulary only as a placeholder: never generate it.
        suppressed = list(self.generation_config.suppress_tokens or [])
        if config.image_token_index not in suppressed:
            self.generation_config.suppress_tokens = suppressed + [config.image_token_index]

    # -- embeddings and decoder, so resize_token_embeddings, peft and generation find them --------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    def set_decoder(self, decoder: nn.Module) -> None:
        self.language_model.set_decoder(decoder)

    # -- slide path ---------------------------------------------------------------------------------
    def set_slide_token_source(self, name: str) -> None:
        """Pick the slide-encoder hidden state pooled into slide tokens (`modeling.slide_token_sources`);
        recorded in `config.slide_token_source` (saved with the model). ModelError for an unknown name or
        one the slide encoder's depth cannot give."""
        from modeling.slide_token_sources import resolve_slide_token_source

        source = resolve_slide_token_source(name)
        if self.slide_encoder is not None:
            source.layers_run(self.slide_encoder.config.depth)
        self.config.slide_token_source = source.name

    def get_slide_embeddings(
        self,
        slide_tokens: torch.Tensor | None = None,
        tile_features: torch.Tensor | None = None,
        coords_tiling_px: torch.Tensor | None = None,
        tile_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Slide inputs -> projected slide embeddings [B, num_slide_tokens, H], or None without inputs."""
        slide_tokens = self.encode_slide(slide_tokens, tile_features, coords_tiling_px, tile_padding_mask)
        if slide_tokens is None:
            return None
        first_linear = next(m for m in self.projector.modules() if isinstance(m, nn.Linear))
        return self.projector(slide_tokens.to(first_linear.weight.dtype))                 # [B, S, H]

    def encode_slide(
        self,
        slide_tokens: torch.Tensor | None = None,
        tile_features: torch.Tensor | None = None,
        coords_tiling_px: torch.Tensor | None = None,
        tile_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Slide inputs -> the slide tokens the projector takes [B, num_slide_tokens, slide_token_dim] (tile
        features through the slide encoder; released tokens as they are), or None without inputs."""
        if slide_tokens is not None and tile_features is not None:
            raise ValueError("Pass either slide_tokens or tile_features (+ coords_tiling_px), not both.")
        if tile_features is not None:
            if self.slide_encoder is None:
                raise ModelError(
                    f"{self.config.name_for_display} has no slide encoder (slide_encoder_config=None, e.g. a "
                    "converted LLaVA-layout checkpoint), so it cannot take tile features: give it precomputed "
                    "slide tokens (a released .pt file), or convert with `wsi-llava convert-llava SRC DST "
                    "--slide-encoder prov-gigapath` to attach Prov-GigaPath's slide encoder.")
            if coords_tiling_px is None:
                raise ValueError("tile_features need coords_tiling_px [B, N, 2] (tile origins at the tiling level).")
            encoder_dtype = self.slide_encoder.patch_embed.proj.weight.dtype
            slide_tokens = self.slide_encoder(tile_features.to(encoder_dtype), coords_tiling_px,
                                              padding_mask=tile_padding_mask,
                                              token_source=self.config.slide_token_source)  # [B, S, E]
        if slide_tokens is None:
            return None
        if slide_tokens.dim() != 3 or slide_tokens.shape[1] != self.config.num_slide_tokens:
            raise ValueError(f"slide_tokens must be [B, {self.config.num_slide_tokens}, D], got "
                             f"{tuple(slide_tokens.shape)}.")
        return fit_slide_token_width(slide_tokens, self.config.slide_token_dim)           # [B, S, slide_token_dim]

    def slide_placeholder_mask(self, input_ids: torch.LongTensor, num_slides: int) -> torch.Tensor:
        """[B, L] bool mask of `<image>` ids; ValueError unless every row holds num_slide_tokens of them."""
        mask = input_ids == self.config.image_token_index
        per_row = mask.sum(dim=1)
        expected = self.config.num_slide_tokens
        if num_slides != input_ids.shape[0] or bool((per_row != expected).any()):
            raise ValueError(
                f"Slide token count mismatch: input_ids hold {per_row.tolist()} `<image>` placeholder tokens "
                f"per row, but {num_slides} slide(s) x {expected} slide tokens were given (one slide per row, "
                f"{expected} placeholders each; WsiLlavaProcessor expands `<image>` to exactly that).")
        return mask

    # -- forward ------------------------------------------------------------------------------------------
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        slide_tokens: torch.FloatTensor | None = None,
        tile_features: torch.FloatTensor | None = None,
        coords_tiling_px: torch.Tensor | None = None,
        tile_padding_mask: torch.BoolTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> WsiLlavaCausalLMOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        slide_embeds = self.get_slide_embeddings(slide_tokens, tile_features, coords_tiling_px, tile_padding_mask)

        if input_ids is not None:
            inputs_embeds = self.get_input_embeddings()(input_ids)                         # [B, L, H]
            if slide_embeds is not None:
                mask = self.slide_placeholder_mask(input_ids, slide_embeds.shape[0])       # [B, L]
                inputs_embeds = inputs_embeds.masked_scatter(
                    mask.unsqueeze(-1).to(inputs_embeds.device),
                    slide_embeds.to(inputs_embeds.device, inputs_embeds.dtype))
            elif bool((input_ids == self.config.image_token_index).any()):
                raise ValueError(
                    f"input_ids hold {int((input_ids == self.config.image_token_index).sum())} `<image>` "
                    "placeholder tokens but no slide inputs were given (slide_tokens or tile_features).")
        elif slide_embeds is not None:
            raise ValueError("Slide inputs need input_ids (to find the `<image>` placeholders), not inputs_embeds.")
        kwargs.pop("return_dict", None)

        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            return_dict=True,
            **kwargs,
        )
        return WsiLlavaCausalLMOutputWithPast(
            loss=outputs.loss,
            logits=outputs.logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            slide_embeds=slide_embeds,
        )

    def prepare_inputs_for_generation(self, input_ids, *args, is_first_iteration: bool | None = False, **kwargs):
        """Slide inputs go into the prefill only; later steps read the slide from the KV cache."""
        slide_inputs = {name: kwargs.pop(name, None) for name in SLIDE_INPUT_NAMES}
        model_inputs = super().prepare_inputs_for_generation(
            input_ids, *args, is_first_iteration=is_first_iteration, **kwargs)
        if is_first_iteration or not kwargs.get("use_cache", True):
            model_inputs.update({k: v for k, v in slide_inputs.items() if v is not None})
        return model_inputs


__all__ = ["WsiLlavaForConditionalGeneration", "WsiLlavaPreTrainedModel", "WsiLlavaCausalLMOutputWithPast"]
