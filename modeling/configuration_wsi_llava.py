"""`WsiLlavaConfig`: the WSI-LLaVA model's configuration, validated on construction.

Slide path: tile features (1536-d, Prov-GigaPath tile encoder) -> LongNet slide encoder
(`slide_encoder_config`, Prov-GigaPath `gigapath_slide_enc12l768d` by default) -> 576 pooled slide
tokens (768-d) -> zero-padded to `slide_token_dim` when that is wider (1024 for WSI-LLaVA's released
features and converted LLaVA-1.5 projectors) -> projector (`projector_type`) -> LLM embeddings.
`text_config` is any Hugging Face causal-LM config (LLaMA/Vicuna-7B by default).

`slide_token_source` names the slide-encoder hidden state that becomes the slide tokens when the model
runs its slide encoder on tile features (`modeling.slide_token_sources`; default "wsi-llava-readme", the
README's: after encoder.layer_norm); precomputed slide tokens are used as they are.

`slide_encoder_config=None` makes a slide-token-only model (e.g. converted from a LLaVA-layout
checkpoint without slide-encoder weights): it takes precomputed slide tokens, and tile features
raise a `ModelError` that says so.

The `<image>` placeholder is a real vocabulary entry (`image_token_index < text_config.vocab_size`),
so every logits processor that indexes by token id is safe; generation suppresses it.
"""

from dataclasses import field

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from modeling.errors import ModelError
from modeling.projector import PROJECTORS
from modeling.slide_token_sources import DEFAULT_SLIDE_TOKEN_SOURCE, SLIDE_TOKEN_SOURCES

TILE_FEATURE_DIM = 1536          # Prov-GigaPath tile encoder output
NUM_SLIDE_TOKENS = 576           # WSI-LLaVA's adaptive-average-pooled slide sequence
VICUNA_VOCAB_WITH_IMAGE = 32001  # Vicuna/LLaMA 32000 + the `<image>` placeholder


def default_slide_encoder_config() -> dict:
    """Prov-GigaPath `gigapath_slide_enc12l768d` with WSI-LLaVA's 576-token pooling, as a dict."""
    from modeling.slide_encoder import SlideEncoderConfig

    return SlideEncoderConfig().to_dict()


class WsiLlavaConfig(PreTrainedConfig):
    """Configuration of `WsiLlavaForConditionalGeneration` (model_type "wsi_llava").

    Args (all keyword):
        text_config: the language model's config (dict with `model_type`, or a config object).
        slide_encoder_config: `SlideEncoderConfig.to_dict()`, or None for a slide-token-only model.
        slide_token_source: a key of `modeling.slide_token_sources.SLIDE_TOKEN_SOURCES` ("wsi-llava-readme").
        tile_feature_dim: width of the tile features the slide encoder takes (1536).
        num_slide_tokens: slide tokens per slide = `<image>` positions in the prompt (576).
        slide_token_dim: slide-token width the projector takes (768; 1024 for WSI-LLaVA checkpoints).
        projector_type: a key of `modeling.projector.PROJECTORS` (`mlp2x_gelu`, `linear`).
        image_token_index: the `<image>` placeholder's token id (in the LLM vocabulary).
        tile_encoder: name of the tile encoder the slide encoder expects features from.
        tile_encoder_revision / slide_encoder_source / slide_encoder_revision /
        language_model_source / language_model_revision: provenance of the base weights.
        is_trained: whether the weights were trained (False for random initialisation).
        display_name: the name shown to people (defaults to the checkpoint path or Hub id).
    """

    model_type = "wsi_llava"
    attribute_map = {"image_token_id": "image_token_index"}
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama",
                                     init_kwargs={"vocab_size": VICUNA_VOCAB_WITH_IMAGE}),
    }

    text_config: dict | PreTrainedConfig | None = None
    slide_encoder_config: dict | None = field(default_factory=default_slide_encoder_config)
    slide_token_source: str = DEFAULT_SLIDE_TOKEN_SOURCE
    tile_feature_dim: int = TILE_FEATURE_DIM
    num_slide_tokens: int = NUM_SLIDE_TOKENS
    slide_token_dim: int = 768
    projector_type: str = "mlp2x_gelu"
    image_token_index: int = 32000
    tile_encoder: str = "prov-gigapath"
    tile_encoder_revision: str | None = None
    slide_encoder_source: str | None = "prov-gigapath/prov-gigapath"
    slide_encoder_revision: str | None = None
    language_model_source: str | None = "lmsys/vicuna-7b-v1.5"
    language_model_revision: str | None = None
    is_trained: bool = False
    display_name: str | None = None
    tie_word_embeddings: bool = False  # the language model ties its own embeddings (text_config)

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self._validate()

    def _validate(self) -> None:
        def fail(field_name: str, problem: str) -> None:
            raise ModelError(f"WsiLlavaConfig.{field_name}: {problem}")

        for name in ("tile_feature_dim", "num_slide_tokens", "slide_token_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                fail(name, f"must be a positive integer, got {value!r}.")
        if self.slide_token_source not in SLIDE_TOKEN_SOURCES:
            fail("slide_token_source", f"{self.slide_token_source!r} is not one of {sorted(SLIDE_TOKEN_SOURCES)}.")
        if self.projector_type not in PROJECTORS:
            fail("projector_type", f"{self.projector_type!r} is not one of {sorted(PROJECTORS)}.")
        text_type = self.text_config.model_type
        if text_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not _is_registered_causal_lm(self.text_config):
            fail("text_config", f"model_type {text_type!r} is not a causal language model transformers knows.")
        vocab_size = self.text_config.vocab_size
        if not 0 <= self.image_token_index < vocab_size:
            fail("image_token_index", f"{self.image_token_index} is outside the language model's vocabulary "
                 f"(text_config.vocab_size={vocab_size}); add `<image>` to the tokenizer and resize the "
                 "embeddings (modeling.checkpoints does this when converting).")
        encoder = self.slide_encoder()
        if encoder is None:
            return
        if encoder.in_dim != self.tile_feature_dim:
            fail("slide_encoder_config", f"in_dim={encoder.in_dim} but tile_feature_dim={self.tile_feature_dim}.")
        if encoder.num_slide_tokens != self.num_slide_tokens:
            fail("slide_encoder_config", f"num_slide_tokens={encoder.num_slide_tokens} but the model's "
                 f"num_slide_tokens={self.num_slide_tokens}.")
        if encoder.embed_dim > self.slide_token_dim:
            fail("slide_token_dim", f"{self.slide_token_dim} is narrower than the slide encoder's "
                 f"embed_dim={encoder.embed_dim} (slide tokens can be zero-padded, never cut).")

    def slide_encoder(self):
        """The slide encoder settings as a `SlideEncoderConfig`, or None for a slide-token-only model."""
        if self.slide_encoder_config is None:
            return None
        from modeling.slide_encoder import SlideEncoderConfig

        try:
            return SlideEncoderConfig.from_dict(dict(self.slide_encoder_config))
        except ModelError as exc:
            raise ModelError(f"WsiLlavaConfig.slide_encoder_config: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ModelError(f"WsiLlavaConfig.slide_encoder_config is invalid: {exc}") from exc

    @property
    def has_slide_encoder(self) -> bool:
        return self.slide_encoder_config is not None

    @property
    def name_for_display(self) -> str:
        return self.display_name or self.name_or_path or "unnamed WSI-LLaVA model"


def _is_registered_causal_lm(text_config: PreTrainedConfig) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    return type(text_config) in MODEL_FOR_CAUSAL_LM_MAPPING._extra_content
