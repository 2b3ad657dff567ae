"""Vicuna v1 template, `<image>` expansion, labels (-100 outside answers), prompts, save/load."""

import pytest
import torch

from modeling.conversation import LLAVA_V1, VICUNA_V1, normalize_image_placeholder
from modeling.errors import ModelError
from modeling.processing_wsi_llava import IGNORE_INDEX, WsiLlavaProcessor
from tests.helpers.tiny_models import tiny_processor

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
TURNS = [{"from": "human", "value": "What is the type?\n<image>"}, {"from": "gpt", "value": "Ductal carcinoma."},
         {"from": "human", "value": "Grade?"}, {"from": "gpt", "value": "Grade 2."}]


def test_template_renders_like_llava_conv_vicuna_v1():
    messages = ["<image>\nWhat is the type?", "Ductal carcinoma.", "Grade?", None]
    text, spans = VICUNA_V1.render(messages)
    assert text == (f"{SYSTEM} USER: <image>\nWhat is the type? ASSISTANT: Ductal carcinoma.</s>"
                    "USER: Grade? ASSISTANT:")
    assert [text[s:e] for s, e in spans] == [" Ductal carcinoma.</s>"]
    assert LLAVA_V1.system.startswith("A chat between a curious human")
    assert normalize_image_placeholder("Describe it. <image>") == "<image>\nDescribe it."


def test_labels_cover_exactly_the_answers_and_their_eos():
    processor = tiny_processor()
    encoded = processor.encode_conversation(TURNS)
    ids, labels = encoded["input_ids"], encoded["labels"]
    tok = processor.tokenizer
    assert ids[0] == tok.bos_token_id and labels[0] == IGNORE_INDEX
    assert ids.count(processor.image_token_id) == processor.num_slide_tokens == 8
    placeholder_labels = [label for token, label in zip(ids, labels, strict=True) if token == processor.image_token_id]
    assert set(placeholder_labels) == {IGNORE_INDEX}
    supervised = [token for token, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    assert tok.decode(supervised) == "Ductal carcinoma.</s> Grade 2.</s>"
    assert supervised.count(tok.eos_token_id) == 2
    # everything up to and including "ASSISTANT:" is context, never a target
    first_target = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    assert tok.decode(ids[:first_target]).rstrip().endswith("ASSISTANT:")


def test_tokenization_is_chunked_around_image_like_llava():
    processor = tiny_processor()
    text = f"{SYSTEM} USER: <image>\nGrade? ASSISTANT:"
    ids, _ = processor.tokenize(text)
    before, after = text.split("<image>")
    tok = processor.tokenizer
    expected = tok(before).input_ids + [processor.image_token_id] * 8 + tok(after).input_ids[1:]   # BOS only once
    assert ids == expected


def test_batch_is_right_padded_with_ignored_labels():
    processor = tiny_processor()
    batch = processor([TURNS, TURNS[:2]])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    short = batch["attention_mask"][1]
    n = int(short.sum())
    assert short[:n].all() and not short[n:].any()
    assert (batch["labels"][1, n:] == IGNORE_INDEX).all()
    assert (batch["input_ids"][1, n:] == processor.pad_token_id).all()


def test_prompt_for_generation_and_history():
    """Generation prompts use llava_v1 (wsi-vqa.sh --conv-mode llava_v1), training conversations vicuna_v1
    (finetune_lora.sh --version v1); either can be chosen per prompt."""
    processor = tiny_processor()
    assert (processor.conversation_template, processor.generation_template) == ("vicuna_v1", "llava_v1")
    history = [("What is the type?", "Ductal carcinoma.")]
    turns = " USER: <image>\nWhat is the type? ASSISTANT: Ductal carcinoma.</s>USER: Stage? ASSISTANT:"
    assert processor.build_prompt("Stage?", history=history) == LLAVA_V1.system + turns
    assert processor.build_prompt("Stage?", history=history, template="vicuna_v1") == SYSTEM + turns
    with pytest.raises(ModelError, match="Unknown conversation template"):
        processor.build_prompt("Stage?", template="vicuna_v0")
    encoded = processor.encode_prompt("Grade?")
    assert encoded["input_ids"].shape[0] == 1 and (encoded["input_ids"] == processor.image_token_id).sum() == 8
    assert processor.build_prompt("Hi", with_slide=False).endswith("USER: Hi ASSISTANT:")


@pytest.mark.parametrize("turns, message", [
    ([{"from": "gpt", "value": "x"}], "alternate"),
    ([{"from": "human", "value": "<image> a"}, {"from": "gpt", "value": "x"},
      {"from": "human", "value": "b <image>"}, {"from": "gpt", "value": "y"}], "2 '<image>'"),
    ([{"from": "human", "value": "<image>"}], "end with an assistant answer"),
    ([{"speaker": "human", "text": "x"}], "expected"),
])
def test_bad_conversations_raise_model_error(turns, message):
    with pytest.raises(ModelError, match=message):
        tiny_processor().encode_conversation(turns)


def test_truncation_never_cuts_the_slide():
    processor = tiny_processor()
    full = processor.encode_conversation(TURNS)
    cut = processor.encode_conversation(TURNS, max_length=len(full["input_ids"]) - 5)
    assert cut["input_ids"] == full["input_ids"][:-5]
    with pytest.raises(ModelError, match="slide placeholders"):
        processor.encode_conversation(TURNS, max_length=10)


def test_processor_saves_and_loads_beside_the_model(tmp_path):
    processor = WsiLlavaProcessor(tokenizer=tiny_processor().tokenizer, num_slide_tokens=5,
                                  conversation_template="llava_v1", generation_template="vicuna_v1")
    processor.save_pretrained(tmp_path)
    loaded = WsiLlavaProcessor.from_pretrained(tmp_path)
    assert (loaded.num_slide_tokens, loaded.conversation_template, loaded.generation_template,
            loaded.image_token_id) == (5, "llava_v1", "vicuna_v1", processor.image_token_id)
    assert torch.equal(loaded([TURNS])["labels"], processor([TURNS])["labels"])


def test_tokenizer_without_image_token_is_refused():
    from modeling.demo_model import train_tokenizer

    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(tmp)
    with pytest.raises(ModelError, match="add_image_token"):
        WsiLlavaProcessor(tokenizer=tokenizer)


@pytest.mark.parametrize("legacy", [True, False])
def test_saved_processor_keeps_the_tokenizers_legacy_spacing(tmp_path, legacy):
    """transformers 5 drops `legacy` when saving a LlamaTokenizer and reloads as legacy=False, which
    changes the ids of every turn after the first ("</s>USER" vs "</s> USER", as LLaVA-1.5 saw it)."""
    from transformers import LlamaTokenizer

    tiny_tokenizer_dir = tmp_path / "tok"
    tiny_processor().tokenizer.save_pretrained(tiny_tokenizer_dir)
    tokenizer = LlamaTokenizer.from_pretrained(str(tiny_tokenizer_dir), legacy=legacy, add_bos_token=True)
    processor = WsiLlavaProcessor(tokenizer=tokenizer, num_slide_tokens=3)
    processor.save_pretrained(tmp_path / "saved")
    loaded = WsiLlavaProcessor.from_pretrained(tmp_path / "saved")
    assert loaded.tokenizer.legacy is legacy
    history = [("What is the type?", "Ductal carcinoma.")]
    assert torch.equal(loaded.encode_prompt("Grade?", history)["input_ids"],
                       processor.encode_prompt("Grade?", history)["input_ids"])
