"""Batched generation equals one-at-a-time token for token (greedy and seeded sampling), and `evaluate predict
--batch-size` writes the rows the one-at-a-time run writes."""

import json
from collections import Counter

import pytest

from evaluation.cli import main
from modeling.batch_generation import BatchRequest, generate_batch
from modeling.errors import ModelError
from modeling.generation_settings import GenerationSettings
from modeling.inference import SlideChatSession
from tests.evaluation.fixtures import write_benchmark, write_released_tokens
from tests.helpers.tiny_models import (
    TINY_SLIDE_TOKEN_DIM,
    random_slide_inputs,
    save_tiny_checkpoint,
    tiny_model_and_processor,
    write_slide_tokens_pt,
)

QUESTIONS = ["What is the histological type?", "Grade?",
             "Describe the global morphology, the tissue architecture and the infiltration of this tumor.", "Stage?"]


@pytest.fixture(scope="module")
def tiny():
    model, processor = tiny_model_and_processor()
    slides = [random_slide_inputs(model.config, "tile_features", n_tiles=40, seed=1),
              random_slide_inputs(model.config, "tile_features", n_tiles=13, seed=2),   # another number of tiles
              random_slide_inputs(model.config, "slide_tokens", seed=3)]                # released-style tokens
    # prompts of three lengths, three kinds of slide inputs, one slide twice
    requests = [BatchRequest(slides[0], QUESTIONS[0]), BatchRequest(slides[1], QUESTIONS[1]),
                BatchRequest(slides[2], QUESTIONS[2]), BatchRequest(slides[0], QUESTIONS[3])]
    return model, processor, requests


def serial(model, processor, requests, settings):
    answers = []
    for request in requests:
        one = settings if request.seed is None else GenerationSettings(**{**settings.__dict__, "seed": request.seed})
        answers.append(SlideChatSession(model, processor, request.slide_inputs, one).generate_answer(request.question))
    return answers


def assert_equal(model, processor, requests, settings):
    expected = serial(model, processor, requests, settings)
    batched = generate_batch(model, processor, requests, settings)
    assert [b.token_ids for b in batched] == [ids for ids, _ in expected]
    assert [b.answer for b in batched] == [answer for _, answer in expected]
    return batched


@pytest.mark.parametrize("settings", [
    GenerationSettings.greedy(max_new_tokens=24, seed=0),
    GenerationSettings(max_new_tokens=24, seed=0),                    # official: sampling at 0.2, n-gram ban 3
    GenerationSettings(max_new_tokens=24, seed=7, temperature=1.0, top_p=0.9),
], ids=["greedy", "official-sampled", "sampled-t1-top-p"])
def test_batched_equals_one_at_a_time(tiny, settings):
    model, processor, requests = tiny
    assert_equal(model, processor, requests, settings)


def test_rows_ending_at_different_steps_are_cut_where_they_end(tiny):
    """Make a frequent token an EOS: rows stop at different steps, as they do alone."""
    model, processor, requests = tiny
    settings = GenerationSettings(max_new_tokens=30, seed=0, temperature=1.0)
    counts = Counter(t for ids, _ in serial(model, processor, requests, settings) for t in ids)
    original = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [original, counts.most_common(3)[2][0]]
    try:
        for one in (settings, GenerationSettings.greedy(max_new_tokens=30)):
            batched = assert_equal(model, processor, requests, one)
            assert len({len(b.token_ids) for b in batched}) >= 2
    finally:
        model.generation_config.eos_token_id = original


def test_stop_words_see_each_rows_own_prompt_length(tiny):
    """KeywordStop's decoded window depends on the row's official prompt length: different per row."""
    model, processor, requests = tiny
    settings = GenerationSettings(max_new_tokens=120, seed=0, temperature=1.0, stop_words=("a", "in"),
                                  repetition_penalty=1.1, trim_answer=True)
    batched = assert_equal(model, processor, requests, settings)
    assert max(len(b.token_ids) for b in batched) < 120


def test_each_row_samples_with_its_own_seed(tiny):
    model, processor, requests = tiny
    settings = GenerationSettings(max_new_tokens=16, temperature=1.0)
    seeded = [BatchRequest(requests[0].slide_inputs, QUESTIONS[0], seed=seed) for seed in (1, 2, 1)]
    batched = assert_equal(model, processor, seeded, settings)
    assert batched[0].token_ids == batched[2].token_ids != batched[1].token_ids
    assert [b.seed for b in batched] == [1, 2, 1]


def test_beam_search_is_refused(tiny):
    model, processor, requests = tiny
    with pytest.raises(ModelError, match="beam search"):
        generate_batch(model, processor, requests, GenerationSettings.greedy(num_beams=2))


def _predict(tmp_path, features, name, *extra):
    out = tmp_path / f"{name}.jsonl"
    args = ["predict", "--model", str(tmp_path / "ckpt"), "--benchmark", str(tmp_path / "bench"),
            "--features-root", str(features), "--out", str(out), "--max-new-tokens", "6", "--device", "cpu", *extra]
    return main(args), out


def test_predict_batch_size_writes_the_rows_of_one_at_a_time(tmp_path, capsys):
    write_benchmark(tmp_path / "bench")
    save_tiny_checkpoint(tmp_path / "ckpt")
    features = write_released_tokens(tmp_path / "features", "TCGA-XX/S1", "TCGA-XX/S2", "TCGA-BRCA/S5", seeded=True)
    write_slide_tokens_pt(features / "TCGA-XX" / "S3.pt", num_tokens=3, dim=TINY_SLIDE_TOKEN_DIM)  # unusable
    code, one = _predict(tmp_path, features, "one")
    assert code == 3                                   # one failed, one without inputs
    serial_report = json.loads(capsys.readouterr().out)
    code, batched = _predict(tmp_path, features, "batched", "--batch-size", "4")
    assert code == 3
    report = json.loads(capsys.readouterr().out)
    assert report["batch_size"] == 4 and report["n_answered"] == serial_report["n_answered"] == 8
    assert report["n_failed"] == serial_report["n_failed"] == 1 and "3 slide tokens" in report["failures"][0]["error"]

    def rows(path):
        return {(r["task"], r["question_id"]): r for r in map(json.loads, path.read_text().splitlines())}

    assert rows(batched) == rows(one)          # predictions, settings (sampling at 0.2, seed 0), everything
    code, _ = _predict(tmp_path, features, "zero", "--batch-size", "0")
    assert code == 1 and "--batch-size must be positive" in capsys.readouterr().err


def test_the_slide_prefix_runs_once_per_distinct_slide(tiny):
    """Three distinct slides among four requests: the prefix (system prompt + slide) is run for three rows,
    then the four questions after it; one at a time would run four prefixes."""
    model, processor, requests = tiny
    shapes = []
    hook = model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["inputs_embeds"].shape[:2])), with_kwargs=True)
    try:
        generate_batch(model, processor, requests, GenerationSettings.greedy(max_new_tokens=2))
    finally:
        hook.remove()
    prefix = processor.encode_prompt("x")["input_ids"][0].tolist().index(model.config.image_token_index)
    assert shapes[0] == (3, prefix + model.config.num_slide_tokens)
    assert shapes[1][0] == 4 and shapes[1][1] < max(len(processor.encode_prompt(q)["input_ids"][0]) for q in QUESTIONS)
