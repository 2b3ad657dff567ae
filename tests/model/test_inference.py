"""Inference: cached multi-turn equals recomputation, streaming, official defaults, 4-bit on CPU."""

import pytest
import torch

from modeling.checkpoints import KEEP_UNQUANTIZED, load_model
from modeling.errors import ModelError
from modeling.inference import (AnswerNoRepeatNGram, GenerationSettings, SlideChatSession, generate_kwargs,
                                stream_answer)
from tests.helpers.tiny_models import random_slide_inputs, save_tiny_checkpoint, tiny_model_and_processor

QUESTIONS = ["What is the histological type?", "What is the grade?", "Describe the stroma."]


@pytest.fixture(scope="module")
def tiny():
    model, processor = tiny_model_and_processor()
    return model, processor, random_slide_inputs(model.config, "tile_features")


def session_lead(processor):
    return (processor.tokenizer.bos_token_id,)          # what SlideChatSession passes: the official [BOS]


def _from_scratch(model, processor, inputs, question, history, settings):
    prompt = processor.encode_prompt(question, history)
    length = prompt["input_ids"].shape[1]
    with torch.inference_mode():
        out = model.generate(**prompt, **inputs.model_kwargs(), pad_token_id=processor.pad_token_id,
                             **generate_kwargs(settings, length, session_lead(processor)))
    return processor.decode_answer(out[0, length:])


def test_multi_turn_with_cached_slide_prefix_equals_recomputation(tiny):
    model, processor, inputs = tiny
    settings = GenerationSettings.greedy(max_new_tokens=12)
    session = SlideChatSession(model, processor, inputs, settings)
    lengths = []
    hook = model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(kwargs["inputs_embeds"].shape[1]), with_kwargs=True)
    try:
        answers, prefills = [], []
        for question in QUESTIONS:
            lengths.clear()
            answers.append(session.ask(question))
            prefills.append(lengths[0] if len(lengths) > 1 else None)
    finally:
        hook.remove()
    history = []
    for question, answer in zip(QUESTIONS, answers, strict=True):
        assert answer == _from_scratch(model, processor, inputs, question, history, settings)
        history.append((question, answer))
    assert session.history == history
    # turn 1 encodes the slide prefix once; later turns prefill only the new text (no slide placeholders)
    prefix = len(session._prefix_ids)
    full_turn2 = processor.encode_prompt(QUESTIONS[1], history[:1])["input_ids"].shape[1]
    assert prefills[1] == full_turn2 - prefix < full_turn2 - model.config.num_slide_tokens


def test_streaming_yields_text_pieces_that_make_the_answer(tiny):
    model, processor, inputs = tiny
    settings = GenerationSettings.greedy(max_new_tokens=16)
    # a random model emits byte-fallback tokens whose partial UTF-8 the streamer renders differently
    # from a one-shot decode; keep it to whole-character tokens here
    tokens = processor.tokenizer.convert_ids_to_tokens(range(300))
    byte_tokens = [i for i, token in enumerate(tokens) if token.startswith("<0x")]
    original = model.generation_config.suppress_tokens
    model.generation_config.suppress_tokens = list(original) + byte_tokens
    try:
        pieces = list(stream_answer(model, processor, inputs, QUESTIONS[0], settings=settings))
        expected = _from_scratch(model, processor, inputs, QUESTIONS[0], [], settings)
    finally:
        model.generation_config.suppress_tokens = original
    assert len(pieces) >= 2 and all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces).strip() == expected


def test_streaming_reraises_generation_errors(tiny):
    model, processor, inputs = tiny
    session = SlideChatSession(model, processor, inputs, GenerationSettings.greedy(max_new_tokens=4))
    session._generate_kwargs = lambda question, streamer=None, settings=None: {"streamer": streamer, "bogus": 1}
    with pytest.raises(ValueError, match="bogus"):
        list(session.stream("x"))


def test_official_defaults_and_answer_only_ngram_ban():
    settings = GenerationSettings()
    kwargs = generate_kwargs(settings, prompt_length=5)
    assert (settings.temperature, settings.num_beams, settings.no_repeat_ngram_size) == (0.2, 1, 3)
    assert kwargs["do_sample"] and kwargs["temperature"] == 0.2
    assert not generate_kwargs(GenerationSettings(temperature=0), 5)["do_sample"]
    ban = AnswerNoRepeatNGram(3, prompt_length=4)
    prompt = [7, 8, 9, 7]                                     # "7 8 9" in the prompt must not be banned ...
    scores = ban(torch.tensor([prompt + [8]]), torch.zeros(1, 12))
    assert torch.isfinite(scores).all()
    scores = ban(torch.tensor([prompt + [3, 4, 5, 3, 4]]), torch.zeros(1, 12))   # ... but "3 4 5" in the answer is
    assert torch.isinf(scores[0, 5]) and torch.isfinite(scores[0, 6])
    with pytest.raises(ModelError, match="temperature"):
        GenerationSettings(temperature=-1)


def test_session_refuses_inputs_the_model_cannot_take(tiny):
    model, processor, _ = tiny
    wrong = random_slide_inputs(model.config, "slide_tokens", token_dim=64)
    with pytest.raises(ModelError, match="not zero padding"):
        SlideChatSession(model, processor, wrong)


def test_4bit_load_and_generate_on_cpu(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "ckpt")
    loaded = load_model(str(path), load_4bit=True, device="cpu")
    assert loaded.quantization == "4bit-nf4" and "UNTRAINED" in loaded.banner()
    kinds = {name: type(module).__name__ for name, module in loaded.model.named_modules()}
    assert kinds["language_model.model.layers.0.self_attn.q_proj"] == "Linear4bit"
    assert all(kind == "Linear" for name, kind in kinds.items()
               if any(name.startswith(f"{prefix}") or name.endswith(prefix) for prefix in KEEP_UNQUANTIZED)
               and kind.startswith("Linear"))
    assert loaded.model.projector[0].weight.dtype == torch.float32
    inputs = random_slide_inputs(loaded.model.config, "tile_features")
    answer = SlideChatSession(loaded.model, loaded.processor, inputs,
                              GenerationSettings(max_new_tokens=6, seed=0)).ask("Grade?")
    assert isinstance(answer, str)


def test_official_length_limit_and_answer_only_repetition_penalty():
    """model_vqa.py@f9ac921 generates up to 2048 new tokens from inputs_embeds (transformers 4.37.2), whose
    output starts with a lone BOS: a repetition penalty (the fork's --repetition_penalty) sees [BOS] + the
    answer, never the prompt's words."""
    assert GenerationSettings().max_new_tokens == 2048
    kwargs = generate_kwargs(GenerationSettings(repetition_penalty=2.0, no_repeat_ngram_size=0), prompt_length=3,
                             lead_ids=(1,))
    assert "repetition_penalty" not in kwargs                 # HF's own penalty would also hit the prompt
    (penalty,) = kwargs["logits_processor"]
    scores = penalty(torch.tensor([[4, 5, 6, 7]]), torch.ones(1, 10))
    assert (scores[0, [1, 7]] == 0.5).all() and (scores[0, [4, 5, 6]] == 1).all()   # BOS and the answer's 7


def test_the_ngram_ban_sees_the_official_bos_too():
    """[BOS] + answer, as the official generate passes it: "BOS a b" blocks b after a repeated "BOS a"."""
    ban = AnswerNoRepeatNGram(3, prompt_length=2, lead_ids=(1,))
    scores = ban(torch.tensor([[7, 8, 5, 6]]), torch.zeros(1, 10))      # answer 5 6 -> seen as 1 5 6
    assert torch.isfinite(scores).all()
    scores = ban(torch.tensor([[7, 8, 1, 5]]), torch.zeros(1, 10))      # answer 1 5 -> "1 5" follows BOS again ...
    assert torch.isfinite(scores).all()                                  # ... but only a 3-gram bans
    scores = AnswerNoRepeatNGram(2, prompt_length=2, lead_ids=(1,))(torch.tensor([[7, 8, 5, 1]]), torch.zeros(1, 10))
    assert torch.isinf(scores[0, 5])                                     # "1 5" (BOS 5) would repeat


def test_fork_stop_words_stop_like_its_keywords_stopping_criteria(tiny):
    """The fork's criteria: output ids ending in a keyword's ids stop at once; its decoded-text check only
    starts once [BOS] + answer is longer than its prompt (`start_len`), as in model_vqa.py@8714afc."""
    from modeling.generation_settings import FORK_8714AFC_STOP_WORDS
    from modeling.inference import KeywordStop

    _, processor, _ = tiny
    tok = processor.tokenizer
    stop = KeywordStop(FORK_8714AFC_STOP_WORDS, tok, prompt_length=3, official_prompt_length=6, lead_ids=(1,))
    user = tok("USER:").input_ids[1:]
    assert stop(torch.tensor([[9, 9, 9] + tok("Grade 2.").input_ids[1:] + user]), None).all()
    assert stop(torch.tensor([[9, 9, 9, tok.eos_token_id]]), None).all()                # "</s>"
    assert not stop(torch.tensor([[9, 9, 9] + tok("Grade").input_ids[1:]]), None).any()
    # "\nTASK:" tokenizes with a leading "▁", so only the decoded text finds it after a word; that text is the
    # last min(n - start_len, longest keyword) of the n output ids, Python-sliced: nothing while n <= start_len / 2
    answer = tok("Grade two\nTASK:").input_ids[1:]
    output = torch.tensor([[9, 9, 9] + answer])                           # n = len(answer) + 1 with the BOS
    n = len(answer) + 1
    early = KeywordStop(["\nTASK:"], tok, prompt_length=3, official_prompt_length=2 * n + 2, lead_ids=(1,))
    assert not early(output, None).any()
    longest = early.max_keyword_len
    late = KeywordStop(["\nTASK:"], tok, prompt_length=3, official_prompt_length=n - longest, lead_ids=(1,))
    assert late(output, None).all()
    between = KeywordStop(["\nTASK:"], tok, prompt_length=3, official_prompt_length=n + 2, lead_ids=(1,))
    assert between(output, None).all()                                    # output[2:]: the whole answer but "Gr"


def test_fork_profile_session_stops_and_trims(tiny):
    from modeling.inference import KeywordStop

    model, processor, inputs = tiny
    fork = GenerationSettings.from_profile("fork-8714afc", max_new_tokens=5, temperature=0.0)
    session = SlideChatSession(model, processor, inputs, fork)
    kwargs = session._generate_kwargs(QUESTIONS[0])
    (stop,) = kwargs["stopping_criteria"]
    assert isinstance(stop, KeywordStop) and stop.start_len == kwargs["input_ids"].shape[1] - 8 + 1
    assert [type(p).__name__ for p in kwargs["logits_processor"]] == ["AnswerOnly", "AnswerNoRepeatNGram"]
    assert session._answer(torch.tensor([[5] + processor.tokenizer("Ductal.\nUSER: more").input_ids[1:]]), 1,
                           None) == "Ductal."


def test_the_prompt_template_is_a_setting_and_the_prefix_follows_it(tiny):
    """llava_v1 by default (the processor's generation template); another template re-encodes the slide
    prefix (its system prompt differs) and answers like a from-scratch run with that template."""
    model, processor, inputs = tiny
    session = SlideChatSession(model, processor, inputs, GenerationSettings.greedy(max_new_tokens=5))
    assert session.template_name() == "llava_v1"
    session.ask(QUESTIONS[0])
    llava_prefix = list(session._prefix_ids)
    vicuna = GenerationSettings.greedy(max_new_tokens=5, conversation_template="vicuna_v1")
    history = list(session.history)
    answer = session.ask(QUESTIONS[1], vicuna)
    assert session._prefix_ids != llava_prefix
    prompt = processor.encode_prompt(QUESTIONS[1], history, template="vicuna_v1")
    length = prompt["input_ids"].shape[1]
    with torch.inference_mode():
        out = model.generate(**prompt, **inputs.model_kwargs(), pad_token_id=processor.pad_token_id,
                             **generate_kwargs(vicuna, length, session.lead_ids))
    assert answer == processor.decode_answer(out[0, length:]).strip()


def test_official_dtype_is_float16_on_cuda_and_float32_on_cpu(tmp_path):
    from modeling.checkpoints import torch_dtype

    assert torch_dtype(None, "cuda") == torch_dtype("auto", "cuda:1") == torch.float16
    assert torch_dtype(None, "cpu") == torch.float32 and torch_dtype("bfloat16", "cuda") == torch.bfloat16
    loaded = load_model(str(save_tiny_checkpoint(tmp_path / "ckpt")), device="cpu", dtype="bfloat16")
    assert loaded.model.dtype == torch.bfloat16


def test_turn2_logits_from_the_cached_prefix_equal_recomputation_and_see_the_slide(tiny):
    """Stronger than comparing decoded text (byte-fallback tokens of a random model decode alike): the
    cached turn 2 gives the same tokens and logits as a from-scratch run, and a prefix cached for another
    slide would not."""
    model, processor, inputs = tiny
    settings = GenerationSettings.greedy(max_new_tokens=6)
    session = SlideChatSession(model, processor, inputs, settings)
    session.ask(QUESTIONS[0])
    prompt = processor.encode_prompt(QUESTIONS[1], session.history)
    extra = dict(output_logits=True, return_dict_in_generate=True)
    with torch.inference_mode():
        cached = model.generate(**session._generate_kwargs(QUESTIONS[1]), **extra)
        full = model.generate(**prompt, **inputs.model_kwargs(), pad_token_id=processor.pad_token_id,
                              **generate_kwargs(settings, prompt["input_ids"].shape[1], session.lead_ids), **extra)
        other = SlideChatSession(model, processor, random_slide_inputs(model.config, "tile_features", seed=7),
                                 settings)
        other.history = list(session.history)
        wrong = model.generate(**other._generate_kwargs(QUESTIONS[1]), **extra)
    assert torch.equal(cached.sequences, full.sequences)
    torch.testing.assert_close(torch.stack(cached.logits), torch.stack(full.logits), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(wrong.logits[0], full.logits[0], rtol=1e-4, atol=1e-5)


def test_closing_a_stream_stops_generation(tiny):
    """A client that stops reading (Stop button, closed tab) must not leave the model generating up to
    max_new_tokens in the background while the generator's close() waits for it."""
    model, processor, inputs = tiny
    session = SlideChatSession(model, processor, inputs, GenerationSettings.greedy(max_new_tokens=300))
    session.prepare()
    steps = []
    hook = model.language_model.register_forward_pre_hook(lambda module, args, kwargs: steps.append(1),
                                                          with_kwargs=True)
    original = model.generation_config.suppress_tokens
    model.generation_config.suppress_tokens = list(original) + [processor.tokenizer.eos_token_id]   # never ends early
    try:
        stream = session.stream(QUESTIONS[0])
        next(stream)
        stream.close()
    finally:
        hook.remove()
        model.generation_config.suppress_tokens = original
    assert len(steps) < 100
    assert session.history == []                      # an abandoned answer is not a turn


def test_beam_search_reuses_the_cached_prefix_too(tiny):
    """num_beams is a setting: the cached slide prefix (batch 1) must be expanded to the beams."""
    model, processor, inputs = tiny
    settings = GenerationSettings.greedy(max_new_tokens=6, num_beams=2)
    session = SlideChatSession(model, processor, inputs, settings)
    for question in QUESTIONS[:2]:
        history = list(session.history)
        assert session.ask(question) == _from_scratch(model, processor, inputs, question, history, settings)


def test_a_turn_over_the_context_is_refused_with_both_numbers_before_any_compute():
    long_question = "Describe the tumour cells and the stroma around them in detail. " * 2
    model, processor = tiny_model_and_processor(text_overrides={"max_position_embeddings": 128})
    inputs = random_slide_inputs(model.config, "tile_features")
    session = SlideChatSession(model, processor, inputs, GenerationSettings.greedy(max_new_tokens=16))
    prompt = len(session._prompt_ids(long_question))
    assert 128 - 16 < prompt < 128                  # the prompt fits, the prompt and 16 new tokens do not
    calls = []
    hooks = [module.register_forward_pre_hook(lambda *args: calls.append(1))
             for module in (model, model.language_model, model.slide_encoder)]
    try:
        with pytest.raises(ModelError, match=r"needs \d+ tokens, over the model's context of 128: the prompt is \d+ "
                                             r"tokens .*8 slide tokens.*up to 16 new tokens.*Ask a shorter question, "
                                             r"allow at most \d+ new tokens .*start a new conversation") as refused:
            session.ask(long_question)
        assert calls == [] and session.history == []                          # nothing ran, no turn recorded
        with pytest.raises(ModelError, match="context of 128"):
            list(session.stream(long_question))
        assert calls == []
        assert f"the prompt is {prompt} tokens" in str(refused.value)
        assert f"needs {prompt + 16} tokens" in str(refused.value)
        short = GenerationSettings.greedy(max_new_tokens=128 - prompt)       # exactly the context: allowed
        session.ask(long_question, short)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls and len(session.history) == 1


def test_the_context_is_the_language_models():
    from modeling.inference import check_prompt_fits, context_tokens

    model, _ = tiny_model_and_processor()
    assert context_tokens(model.config) == 4096 == model.config.text_config.max_position_embeddings
    check_prompt_fits(4000, 96, 4096, 576)
    with pytest.raises(ModelError, match="needs 4,097 tokens, over the model's context of 4,096") as refused:
        check_prompt_fits(4001, 96, 4096, 576)
    assert "allow at most 95 new tokens" in str(refused.value)
    with pytest.raises(ModelError) as refused:
        check_prompt_fits(5000, 1, 4096, 576)
    assert "allow at most" not in str(refused.value)              # no room at all: a shorter question or a new chat


def test_ask_refuses_a_question_over_the_limit_before_loading_a_model(tmp_path, capsys, monkeypatch):
    from modeling import ask, checkpoints
    from modeling.generation_settings import DEFAULT_MAX_QUESTION_CHARS
    from tests.helpers.tiny_models import write_slide_tokens_pt

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded for a question that is refused")

    monkeypatch.setattr(checkpoints, "load_model", no_model)
    pt = write_slide_tokens_pt(tmp_path / "TCGA-XX.pt")
    assert ask.main([str(pt), "-q", "x" * 1_000_000, "--max-new-tokens", "4"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (f"wsi-llava ask: error: The question has 1,000,000 characters; at most "
                           f"{DEFAULT_MAX_QUESTION_CHARS:,} are accepted (--max-question-chars; WSI-Bench's longest "
                           "question has 755). Shorten the question.")
    assert ask.main([str(pt), "-q", "x" * 20, "--max-question-chars", "10"]) == 1
    assert "The question has 20 characters; at most 10 are accepted" in capsys.readouterr().err
    monkeypatch.undo()                                  # the demo model (576 slide tokens, 4,096-token context)
    assert ask.main([str(pt), "-q", "Grade?", "--max-new-tokens", "4000"]) == 1
    captured = capsys.readouterr()
    assert "Q: Grade?" not in captured.out                # refused before the question is echoed
    err = captured.err.strip().splitlines()[-1]
    assert err.startswith("wsi-llava ask: error: This question needs ") and "over the model's context of 4,096" in err
    assert "up to 4,000 new tokens are allowed" in err and "Nothing was run." in err
