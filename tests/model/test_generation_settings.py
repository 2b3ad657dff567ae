"""Generation settings: the official defaults, the named profiles, and one home every command line and the
app read their defaults from."""

import json
from dataclasses import replace

import pytest

import modeling.generation_settings as home
from modeling.inference import generate_kwargs
from modeling.errors import ModelError
from modeling.generation_settings import (
    FORK_8714AFC_STOP_WORDS,
    OFFICIAL,
    PROFILES,
    GenerationSettings,
    finish_answer,
    resolve_dtype_name,
    settings_from_args,
    trim_answer_8714afc,
)


def test_the_defaults_are_model_vqa_at_the_release():
    """model_vqa.py@f9ac921 as scripts/wsi-vqa.sh runs it: --temperature 0.2 (do_sample = temperature > 0),
    top_p None, num_beams 1, no_repeat_ngram_size=3, max_new_tokens=2048; no penalty, no stop words."""
    settings = GenerationSettings()
    assert settings == OFFICIAL == PROFILES["official"]
    assert (settings.temperature, settings.do_sample, settings.top_p, settings.num_beams) == (0.2, True, None, 1)
    assert (settings.no_repeat_ngram_size, settings.max_new_tokens) == (3, 2048)
    assert settings.repetition_penalty is None and settings.stop_words == () and not settings.trim_answer
    assert settings.conversation_template is None and settings.seed is None       # the checkpoint's: llava_v1
    kwargs = generate_kwargs(settings, prompt_length=10)
    assert {k: kwargs[k] for k in ("do_sample", "temperature", "num_beams", "max_new_tokens")} == \
        {"do_sample": True, "temperature": 0.2, "num_beams": 1, "max_new_tokens": 2048}
    assert "top_p" not in kwargs and [type(p).__name__ for p in kwargs["logits_processor"]] == ["AnswerNoRepeatNGram"]
    assert resolve_dtype_name("auto", "cuda") == "float16" and resolve_dtype_name("auto", "cpu") == "float32"


def test_profiles_differ_from_the_official_settings_only_where_named():
    greedy, fork = PROFILES["greedy"], PROFILES["fork-8714afc"]
    assert replace(greedy, temperature=0.2, profile="official") == OFFICIAL and not greedy.do_sample
    assert replace(fork, repetition_penalty=None, stop_words=(), trim_answer=False, profile="official") == OFFICIAL
    assert fork.repetition_penalty == 1.1 and fork.trim_answer
    assert fork.stop_words == FORK_8714AFC_STOP_WORDS == ("</s>", "USER:", "\nUSER:", "\nASSISTANT:", "\nHuman:",
                                                          "\nQUESTION:", "\nTASK:")
    assert GenerationSettings.from_profile("fork-8714afc", temperature=0.0, seed=None).temperature == 0.0
    assert GenerationSettings.greedy(max_new_tokens=4).profile == "greedy"


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -0.1}, "temperature"), ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"top_p": 1.5}, "top_p"), ({"conversation_template": "llava_v2"}, "Unknown conversation template"),
    ({"profile": "mine"}, "Unknown generation profile"), ({"repetition_penalty": 0}, "repetition_penalty"),
])
def test_bad_settings_are_model_errors(kwargs, message):
    with pytest.raises(ModelError, match=message):
        GenerationSettings(**kwargs)
    with pytest.raises(ModelError, match="Unknown generation profile"):
        GenerationSettings.from_profile("fork")


def test_every_setting_is_recorded_as_json():
    record = PROFILES["fork-8714afc"].record(conversation_template="llava_v1")
    assert set(record) >= {"temperature", "top_p", "num_beams", "no_repeat_ngram_size", "max_new_tokens",
                           "repetition_penalty", "stop_words", "trim_answer", "seed", "profile", "do_sample"}
    assert record["conversation_template"] == "llava_v1" and record["stop_words"][0] == "</s>"
    assert json.loads(json.dumps(record)) == record


@pytest.mark.parametrize("text, expected", [
    ("", ""),
    ("Invasive ductal carcinoma.\nUSER: What is the grade?", "Invasive ductal carcinoma."),
    ("Grade 2.\nQ: next", "Grade 2."),
    ("  Line one.  \n\nLine one.\nLine two.\n", "Line one.\nLine two."),
    ("Stage pT2.\n1234567890 1234567890 12\nafter", "Stage pT2."),          # a mostly-digit line ends it
    ("Ki-67 30%, 2 of 10 fields", "Ki-67 30%, 2 of 10 fields"),
    ("A USER: B", "A USER: B"),                                           # markers need their newline
])
def test_fork_answer_trimming(text, expected):
    assert trim_answer_8714afc(text) == expected
    assert finish_answer(PROFILES["fork-8714afc"], text) == expected
    assert finish_answer(OFFICIAL, f"  {text} ") == text.strip()          # official: .strip() only


def _ask_settings():
    from modeling.ask import _parser

    return settings_from_args(_parser().parse_args(["slide.pt", "-q", "Grade?"]))


def _predict_settings():
    from evaluation.cli import build_parser

    args = build_parser().parse_args(["predict", "--model", "m", "--benchmark", "b", "--features-root", "f",
                                      "--out", "o.jsonl"])
    return settings_from_args(args)


def _app_settings():
    from ui.config import load_config

    config = load_config([], environ={})
    settings = config.generation_settings()
    assert (config.temperature, config.max_new_tokens) == (settings.temperature, settings.max_new_tokens)  # the tab's
    return settings


def test_every_command_and_the_app_read_the_defaults_from_one_home(monkeypatch):
    assert _ask_settings() == OFFICIAL
    assert _predict_settings() == replace(OFFICIAL, seed=0)          # evaluate predict seeds every answer
    assert _app_settings() == OFFICIAL
    changed = replace(OFFICIAL, max_new_tokens=77, no_repeat_ngram_size=5)
    monkeypatch.setitem(home.PROFILES, "official", changed)
    assert _ask_settings() == changed
    assert _predict_settings() == replace(changed, seed=0)
    assert _app_settings() == changed


def test_command_line_and_app_overrides(monkeypatch):
    from modeling.ask import _parser
    from ui.config import AppConfigError, load_config

    args = _parser().parse_args(["s.pt", "-q", "x", "--profile", "fork-8714afc", "--temperature", "0",
                                 "--conv-template", "vicuna_v1", "--seed", "3"])
    settings = settings_from_args(args)
    assert (settings.profile, settings.temperature, settings.conversation_template, settings.seed) == \
        ("fork-8714afc", 0.0, "vicuna_v1", 3) and settings.repetition_penalty == 1.1
    config = load_config(["--generation-profile", "greedy", "--conv-template", "vicuna_v1"], environ={})
    assert config.temperature == 0.0 and config.generation_settings(max_new_tokens=64) == \
        GenerationSettings.from_profile("greedy", max_new_tokens=64, conversation_template="vicuna_v1")
    assert load_config([], {"WSI_LLAVA_TEMPERATURE": "0.7"}).generation_settings().temperature == 0.7
    with pytest.raises(AppConfigError, match="WSI_LLAVA_CONV_TEMPLATE"):
        load_config([], {"WSI_LLAVA_CONV_TEMPLATE": "v1"})
