"""Parity with WSI-LLaVA's own (LLaVA-1.5) text handling, re-implemented here as the oracle.

The reference functions below restate, step for step, what LLaVA's code does (not this project's):
`Conversation.get_prompt` for SeparatorStyle.TWO (`llava/conversation.py`), `tokenizer_image_token`
(`llava/mm_utils.py`: every chunk around `<image>` tokenized on its own, BOS kept once, one -200 per
image) and `preprocess_v1`'s label arithmetic (`llava/train/train.py`, including its `- 2` for BOS and
the trailing "▁" of "ASSISTANT: ", and the `- 1` for later rounds of non-legacy tokenizers). Our ids
equal LLaVA's once the expanded slide placeholders are collapsed back into LLaVA's single -200.

The tiny tokenizer normalises like LLaMA's (no extra-whitespace removal, dummy prefix), so the image is
framed by "▁" pieces as with the real LLaMA tokenizer: ':', '▁', <image>, '▁', '\n'. Besides the fast
tokenizer the restated functions also run over `SlowLlamaReference` (the official slow LlamaTokenizer
restated over sentencepiece, which `convert-llava` checks against; benchmarks/official_parity.py checks it
against transformers 4.37.2 itself).
"""

import pytest
from transformers import LlamaTokenizer

from modeling.conversation import LLAVA_V1, VICUNA_V1, messages_from_turns
from modeling.processing_wsi_llava import IGNORE_INDEX, WsiLlavaProcessor
from modeling.tokenizer_parity import SlowLlamaReference
from tests.helpers.tiny_models import tiny_tokenizer, write_llava_tokenizer

LLAVA_IMAGE = -200   # LLaVA's IMAGE_TOKEN_INDEX

CONVERSATIONS = {
    "single": [{"from": "human", "value": "What is the histological type of this tumor?\n<image>"},
               {"from": "gpt", "value": "Invasive ductal carcinoma."}],
    "digits": [{"from": "human", "value": "<image>\nWhat is the stage?"}, {"from": "gpt", "value": "12 pT2 N1 M0."}],
    "choice": [{"from": "human", "value": "<image>\nAnswer with the option's letter from the given choices "
                                          "directly. A) Grade 1 B) Grade 2 C) Grade 3"},
               {"from": "gpt", "value": "B"}],
    "two_turns": [{"from": "human", "value": "<image>\nWhat is the type?"},
                  {"from": "gpt", "value": "Ductal carcinoma."},
                  {"from": "human", "value": "Stage?"}, {"from": "gpt", "value": "pT2"}],
    "three_turns": [{"from": "human", "value": "<image>\nWhat is the type?"}, {"from": "gpt", "value": "\nDuctal"},
                    {"from": "human", "value": "Is the tumor well differentiated?"},
                    {"from": "gpt", "value": "No. Lymphovascular invasion is present."},
                    {"from": "human", "value": "Grade?"}, {"from": "gpt", "value": " Grade 2"}],
}


# -- the LLaVA reference --------------------------------------------------------------------------------
def llava_get_prompt(system: str, messages: list[tuple[str, str | None]]) -> str:
    """conv_vicuna_v1 / conv_llava_v1 (SeparatorStyle.TWO, sep " ", sep2 "</s>") `get_prompt`."""
    seps = [" ", "</s>"]
    ret = system + seps[0]
    for i, (role, message) in enumerate(messages):
        ret += role + ": " + message + seps[i % 2] if message else role + ":"
    return ret


def llava_preprocess_multimodal(value: str) -> str:
    if "<image>" in value:
        value = ("<image>\n" + value.replace("<image>", "").strip()).strip()
    return value


def llava_tokenizer_image_token(prompt: str, tokenizer) -> list[int]:
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]
    ids, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        ids.append(chunks[0][0])
    separated = [piece for chunk in chunks for piece in (chunk, [LLAVA_IMAGE] * (offset + 1))][:-1]
    for piece in separated:
        ids.extend(piece[offset:])
    return ids


def llava_preprocess_v1(conversation: str, tokenizer) -> tuple[list[int], list[int], bool]:
    """(input_ids, labels, mismatch): LLaVA drops a conversation whose arithmetic does not add up."""
    input_ids = llava_tokenizer_image_token(conversation, tokenizer)
    target = list(input_ids)
    sep = " ASSISTANT: "
    cur_len = 1
    target[:cur_len] = [IGNORE_INDEX] * cur_len
    for i, rou in enumerate(conversation.split("</s>")):
        if rou == "":
            break
        parts = rou.split(sep)
        if len(parts) != 2:
            break
        parts[0] += sep
        round_len = len(llava_tokenizer_image_token(rou, tokenizer))
        instruction_len = len(llava_tokenizer_image_token(parts[0], tokenizer)) - 2
        if i != 0 and not tokenizer.legacy:       # IS_TOKENIZER_GREATER_THAN_0_14
            round_len -= 1
            instruction_len -= 1
        target[cur_len:cur_len + instruction_len] = [IGNORE_INDEX] * len(target[cur_len:cur_len + instruction_len])
        cur_len += round_len
    target[cur_len:] = [IGNORE_INDEX] * len(target[cur_len:])
    return input_ids, target, cur_len != len(input_ids)


def collapse_slide(ids: list[int], labels: list[int] | None, image_token_id: int):
    """Our expanded placeholders -> LLaVA's single -200 per image."""
    out_ids, out_labels = [], []
    for i, token in enumerate(ids):
        if token == image_token_id:
            if i and ids[i - 1] == image_token_id:
                continue
            token = LLAVA_IMAGE
        out_ids.append(token)
        if labels is not None:
            out_labels.append(labels[i])
    return out_ids, out_labels


@pytest.fixture(scope="module", params=[False, True], ids=["legacy_false", "legacy_true"])
def processor(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    tiny_tokenizer().save_pretrained(folder)
    tokenizer = LlamaTokenizer.from_pretrained(str(folder), legacy=request.param, add_bos_token=True)
    assert tokenizer.legacy is request.param
    return WsiLlavaProcessor(tokenizer=tokenizer, num_slide_tokens=5)


# -- tests -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("template", [VICUNA_V1, LLAVA_V1], ids=lambda t: t.name)
@pytest.mark.parametrize("question", ["Describe the stroma.", "What is the grade? \n", " A) G1\nB) G2"])
def test_generation_prompts_equal_llava_get_prompt(template, question):
    """model_vqa.py (and serve/cli.py) prepend "<image>\\n" to the question as it is, unstripped."""
    processor = WsiLlavaProcessor(tokenizer=tiny_tokenizer(), num_slide_tokens=5, generation_template=template.name)
    roles = ("USER", "ASSISTANT")
    history = [("What is the type?", "Ductal carcinoma."), ("Grade?", "Grade 2.")]
    for n in range(len(history) + 1):
        questions = [q for q, _ in history[:n]] + [question]
        messages = []
        for index, q in enumerate(questions):
            value = "<image>\n" + q if index == 0 else q
            messages.append((roles[0], value))
            messages.append((roles[1], history[index][1] if index < n else None))
        expected = llava_get_prompt(template.system, messages)
        assert processor.build_prompt(question, history[:n]) == expected


def test_prompt_ids_equal_llava_tokenizer_image_token(processor):
    history = [("What is the histological type?", "Invasive ductal carcinoma.")]
    for turns in ([], history):
        prompt = processor.build_prompt("What is the grade?", turns)
        ids = processor.encode_prompt("What is the grade?", turns)["input_ids"][0].tolist()
        assert ids.count(processor.image_token_id) == 5
        collapsed, _ = collapse_slide(ids, None, processor.image_token_id)
        assert collapsed == llava_tokenizer_image_token(prompt, processor.tokenizer)


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_labels_equal_llava_preprocess_v1(processor, name):
    turns = CONVERSATIONS[name]
    text, _ = processor.template.render(messages_from_turns(turns))
    expected_ids, expected_labels, mismatch = llava_preprocess_v1(text, processor.tokenizer)
    assert not mismatch, "LLaVA itself would drop this conversation; the comparison would be vacuous"
    encoded = processor.encode_conversation(turns)
    ids, labels = collapse_slide(encoded["input_ids"], encoded["labels"], processor.image_token_id)
    assert ids == expected_ids
    assert labels == expected_labels
    supervised = [token for token, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    assert supervised.count(processor.tokenizer.eos_token_id) == len(turns) // 2


@pytest.mark.parametrize("value", ["<image>\nGrade?", "Grade?\n<image>", "Describe <image> it. ", "<image>",
                                   " <image>\n", "No slide here."])
def test_image_placeholder_moves_like_llava_preprocess_multimodal(value):
    from modeling.conversation import normalize_image_placeholder

    assert normalize_image_placeholder(value) == llava_preprocess_multimodal(value)


@pytest.fixture(scope="module", params=[True, False, None], ids=["legacy_true", "legacy_false", "legacy_unset"])
def official_pair(request, tmp_path_factory):
    """(our processor from LLaMA-release tokenizer files, the official slow tokenizer over the same files)."""
    from modeling.convert_llava import load_llava_tokenizer

    folder = write_llava_tokenizer(tmp_path_factory.mktemp("llava-tok"), legacy=request.param)
    tokenizer = load_llava_tokenizer(folder, [])
    WsiLlavaProcessor.add_image_token(tokenizer)
    return WsiLlavaProcessor(tokenizer=tokenizer, num_slide_tokens=576), SlowLlamaReference.from_folder(folder)


def test_the_image_is_framed_by_spiece_underlines_as_with_llama():
    """"USER: " keeps its trailing space ("▁" before the image) and the text after the image gets the dummy
    prefix ("▁" after it), as LLaMA's tokenizer gives 29901, 29871, -200, 29871, 13."""
    processor = WsiLlavaProcessor(tokenizer=tiny_tokenizer(), num_slide_tokens=5)
    ids = processor.encode_prompt("What is the grade?")["input_ids"][0].tolist()
    first, last = ids.index(processor.image_token_id), len(ids) - ids[::-1].index(processor.image_token_id)
    pieces = processor.tokenizer.convert_ids_to_tokens(ids[first - 2:first] + ids[last:last + 2])
    assert pieces[:2] == [":", "\u2581"] and pieces[2] == "\u2581"
    assert processor.tokenizer.decode(ids[last + 1:last + 2]) == "\n"


@pytest.mark.parametrize("template", [LLAVA_V1, VICUNA_V1], ids=lambda t: t.name)
def test_prompt_ids_equal_the_official_slow_tokenizer(official_pair, template):
    """model_vqa.py's ids (tokenizer_image_token over the slow LlamaTokenizer) for one and two turns."""
    processor, slow = official_pair
    history = [("Describe the  tissue.\nIs there necrosis? A) Yes B) No", "Ductal carcinoma, grade 2 (pT2).")]
    for turns in ([], history):
        prompt = processor.build_prompt("What is the stage?", turns, template=template.name)
        ids = processor.encode_prompt("What is the stage?", turns, template=template.name)["input_ids"][0].tolist()
        collapsed, _ = collapse_slide(ids, None, processor.image_token_id)
        assert collapsed == llava_tokenizer_image_token(prompt, slow)
        assert collapsed[0] == slow.bos_token_id == 1


def test_slow_reference_spaces_after_special_tokens_as_legacy_says(tmp_path):
    """The one place `legacy` matters: text right after a special token ("</s>USER" in turn 2)."""
    pieces = {}
    for legacy in (True, False):
        slow = SlowLlamaReference.from_folder(write_llava_tokenizer(tmp_path / str(legacy), legacy=legacy))
        pieces[legacy] = slow.tokenize("Grade 2.</s>USER:")
        assert slow.tokenize("</s>x")[0] == "</s>"          # no lone "▁" before a leading special token
    assert pieces[True][pieces[True].index("</s>") + 1].startswith("\u2581")
    assert not pieces[False][pieces[False].index("</s>") + 1].startswith("\u2581")
