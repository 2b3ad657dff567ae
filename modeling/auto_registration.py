"""Registers WSI-LLaVA with transformers' Auto classes when imported (`modeling.checkpoints` imports it).

After this import, a saved checkpoint loads with no `trust_remote_code`:

    import modeling.auto_registration  # noqa: F401
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
    model = AutoModelForImageTextToText.from_pretrained("path/or/hub-id")   # also AutoModelForCausalLM
    processor = AutoProcessor.from_pretrained("path/or/hub-id")
"""

from __future__ import annotations


def register_auto_classes() -> None:
    """Idempotent: model_type "wsi_llava" -> config, model (image-text-to-text and causal LM), processor."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

    from modeling.configuration_wsi_llava import WsiLlavaConfig
    from modeling.modeling_wsi_llava import WsiLlavaForConditionalGeneration
    from modeling.processing_wsi_llava import WsiLlavaProcessor

    AutoConfig.register(WsiLlavaConfig.model_type, WsiLlavaConfig, exist_ok=True)
    AutoModelForImageTextToText.register(WsiLlavaConfig, WsiLlavaForConditionalGeneration, exist_ok=True)
    AutoModelForCausalLM.register(WsiLlavaConfig, WsiLlavaForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(WsiLlavaConfig, WsiLlavaProcessor, exist_ok=True)


register_auto_classes()
