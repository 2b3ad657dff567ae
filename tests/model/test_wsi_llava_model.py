"""The WSI-LLaVA model: config validation, forward/loss, placeholder checks, save/load, Auto classes, LoRA."""

import pytest
import torch

from modeling.configuration_wsi_llava import WsiLlavaConfig
from modeling.errors import ModelError
from tests.helpers.tiny_models import (random_slide_inputs, save_tiny_checkpoint, tiny_config, tiny_model,
                                       tiny_model_and_processor)

CONVERSATION = [{"from": "human", "value": "<image>\nWhat is the histological type?"},
                {"from": "gpt", "value": "Invasive ductal carcinoma."},
                {"from": "human", "value": "Grade?"}, {"from": "gpt", "value": "Grade 2."}]


@pytest.fixture(scope="module")
def model_and_processor():
    return tiny_model_and_processor()


def test_default_config_is_wsi_llava():
    config = WsiLlavaConfig()
    assert (config.tile_feature_dim, config.num_slide_tokens, config.slide_token_dim) == (1536, 576, 768)
    assert config.projector_type == "mlp2x_gelu" and config.text_config.model_type == "llama"
    encoder = config.slide_encoder()
    assert (encoder.in_dim, encoder.embed_dim, encoder.depth, encoder.slide_ngrids) == (1536, 768, 12, 1000)
    assert config.image_token_index < config.text_config.vocab_size and not config.is_trained


@pytest.mark.parametrize("overrides, field", [
    ({"projector_type": "mlp9x_relu"}, "projector_type"),
    ({"image_token_index": 10_000}, "image_token_index"),
    ({"encoder_overrides": {"in_dim": 24}}, "slide_encoder_config"),
    ({"slide_token_dim": 16}, "slide_token_dim"),
    ({"num_slide_tokens": 0}, "num_slide_tokens"),
])
def test_invalid_config_names_the_field(overrides, field):
    with pytest.raises(ModelError, match=field):
        tiny_config(**overrides)


def test_forward_gives_finite_loss_from_tokens_and_from_tile_features(model_and_processor):
    model, processor = model_and_processor
    batch = processor([CONVERSATION, CONVERSATION[:2]])
    for kind in ("slide_tokens", "tile_features"):
        inputs = random_slide_inputs(model.config, kind)
        kwargs = {k: torch.cat([v, v]) for k, v in inputs.model_kwargs().items()}      # batch of 2 slides
        out = model(**batch, **kwargs)
        assert torch.isfinite(out.loss) and out.logits.shape[:2] == batch["input_ids"].shape
        assert out.slide_embeds.shape == (2, model.config.num_slide_tokens, model.config.text_config.hidden_size)


def test_loss_reaches_projector_and_longnet_weights():
    model, processor = tiny_model_and_processor()
    model.train()
    inputs = random_slide_inputs(model.config, "tile_features")
    model(**processor([CONVERSATION]), **inputs.model_kwargs()).loss.backward()
    assert model.projector[0].weight.grad.abs().sum() > 0
    assert model.slide_encoder.patch_embed.proj.weight.grad.abs().sum() > 0


def test_slide_token_count_mismatch_raises_value_error_naming_both(model_and_processor):
    model, processor = model_and_processor
    batch = processor([CONVERSATION])
    ids = batch["input_ids"]
    placeholder = model.config.image_token_index
    fewer = ids[ids != placeholder].unsqueeze(0)
    fewer = torch.cat([fewer[:, :2], torch.full((1, 5), placeholder), fewer[:, 2:]], dim=1)
    with pytest.raises(ValueError, match=r"\[5\].*1 slide\(s\) x 8"):
        model(input_ids=fewer, **random_slide_inputs(model.config).model_kwargs())
    two_slides = torch.randn(2, model.config.num_slide_tokens, model.config.slide_token_dim)
    with pytest.raises(ValueError, match=r"\[8\].*2 slide\(s\) x 8"):
        model(input_ids=ids, slide_tokens=two_slides)
    with pytest.raises(ValueError, match="no slide inputs"):
        model(input_ids=ids)


def test_slide_token_widths_are_padded_or_rejected():
    model = tiny_model(slide_token_dim=48)             # projector wider than the encoder's 32-d tokens
    ids = torch.tensor([[1] + [model.config.image_token_index] * 8 + [5, 6]])
    assert torch.isfinite(model(input_ids=ids, slide_tokens=torch.randn(1, 8, 32)).logits).all()
    padded = torch.nn.functional.pad(torch.randn(1, 8, 32), (0, 16))
    same = model(input_ids=ids, slide_tokens=padded[..., :32]).logits
    assert torch.allclose(model(input_ids=ids, slide_tokens=padded).logits, same)
    with pytest.raises(ValueError, match="not zero padding"):
        model(input_ids=ids, slide_tokens=torch.randn(1, 8, 64))


def test_tile_features_are_refused_by_a_token_only_model():
    model = tiny_model(with_slide_encoder=False)
    assert model.slide_encoder is None
    inputs = random_slide_inputs(tiny_config(), "tile_features")
    ids = torch.tensor([[1] + [model.config.image_token_index] * 8])
    with pytest.raises(ModelError, match="no slide encoder"):
        model(input_ids=ids, **inputs.model_kwargs())


def test_save_load_gives_identical_logits_through_auto_classes(tmp_path, model_and_processor):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

    path = save_tiny_checkpoint(tmp_path / "ckpt")
    assert (path / "model.safetensors").is_file() and not list(path.glob("*.bin"))
    model, processor = model_and_processor                   # same seed as the saved one
    assert AutoConfig.from_pretrained(path).model_type == "wsi_llava"
    loaded = AutoModelForImageTextToText.from_pretrained(path).eval()      # no trust_remote_code
    assert type(AutoModelForCausalLM.from_pretrained(path)) is type(loaded)
    loaded_processor = AutoProcessor.from_pretrained(path)
    batch = loaded_processor([CONVERSATION])
    assert torch.equal(batch["input_ids"], processor([CONVERSATION])["input_ids"])
    for kind in ("slide_tokens", "tile_features"):
        kwargs = random_slide_inputs(model.config, kind).model_kwargs()
        with torch.no_grad():
            assert torch.equal(model(**batch, **kwargs).logits, loaded(**batch, **kwargs).logits)


def test_generation_never_emits_the_placeholder_and_uses_the_cache(model_and_processor):
    model, processor = model_and_processor
    prompt = processor.encode_prompt("What is the grade?")
    calls = []
    hook = model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(kwargs["inputs_embeds"].shape[1]), with_kwargs=True)
    try:
        out = model.generate(**prompt, **random_slide_inputs(model.config).model_kwargs(), max_new_tokens=6,
                             do_sample=False, pad_token_id=processor.pad_token_id)
    finally:
        hook.remove()
    new = out[0, prompt["input_ids"].shape[1]:]
    assert len(new) >= 1 and model.config.image_token_index not in new.tolist()
    assert calls[0] == prompt["input_ids"].shape[1] and set(calls[1:]) <= {1}   # prefill, then 1 token/step


def test_peft_lora_wraps_the_language_model(model_and_processor):
    from peft import LoraConfig, get_peft_model

    model, processor = tiny_model_and_processor()
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)")
    peft_model = get_peft_model(model, lora)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    out = peft_model(**processor([CONVERSATION]), **random_slide_inputs(model.config).model_kwargs())
    out.loss.backward()
    assert torch.isfinite(out.loss)


def test_any_causal_lm_works_including_tied_embeddings(tmp_path):
    from modeling.modeling_wsi_llava import WsiLlavaForConditionalGeneration

    text = dict(model_type="qwen2", vocab_size=513, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model, processor = tiny_model_and_processor(text_config=text)
    assert type(model.language_model).__name__ == "Qwen2ForCausalLM"
    model.save_pretrained(tmp_path)
    loaded = WsiLlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight
    batch, kwargs = processor([CONVERSATION]), random_slide_inputs(model.config).model_kwargs()
    with torch.no_grad():
        assert torch.equal(model(**batch, **kwargs).logits, loaded(**batch, **kwargs).logits)


def test_padded_batches_equal_one_slide_at_a_time(model_and_processor):
    """Right padding (training) and left padding (batched generation) change nothing for the real tokens:
    each row's slide lands in its own placeholders, positions restart after left padding."""
    model, processor = model_and_processor
    slides = [random_slide_inputs(model.config, seed=seed).slide_tokens * 20 for seed in (1, 2)]   # [1, S, D] each
    conversations = [CONVERSATION, CONVERSATION[:2]]
    batch = processor(conversations)
    with torch.no_grad():
        batched = model(**batch, slide_tokens=torch.cat(slides)).logits
        for row, (conversation, slide) in enumerate(zip(conversations, slides, strict=True)):
            n = int(batch["attention_mask"][row].sum())
            alone = model(**processor([conversation]), slide_tokens=slide).logits[0]
            torch.testing.assert_close(batched[row, :n], alone, rtol=1e-4, atol=1e-5)

    questions = ["What is the histological type of this tumor?", "Grade?"]
    prompts = [{"input_ids": processor.tokenize(processor.build_prompt(q))[0]} for q in questions]
    left = processor.collate(prompts, padding_side="left")
    assert left["attention_mask"][1, 0] == 0 and left["attention_mask"][:, -1].all()
    settings = dict(max_new_tokens=5, do_sample=False, pad_token_id=processor.pad_token_id,
                    output_logits=True, return_dict_in_generate=True)
    with torch.no_grad():
        together = model.generate(**left, slide_tokens=torch.cat(slides), **settings)
        for row, (question, slide) in enumerate(zip(questions, slides, strict=True)):
            alone = model.generate(**processor.encode_prompt(question), slide_tokens=slide, **settings)
            torch.testing.assert_close(torch.stack(together.logits)[:, row], torch.stack(alone.logits)[:, 0],
                                       rtol=1e-4, atol=1e-5)
