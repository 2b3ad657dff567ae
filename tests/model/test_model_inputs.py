"""One slide -> model inputs (`modeling.model_inputs.slide_model_inputs`) for `ask`, `evaluate predict` and the
app, with the inputs checked against the model exactly once on each path (by the chat)."""

import json

import pytest

import modeling.inference
import modeling.slide_inputs
from modeling.checkpoints import load_model
from modeling.demo_model import DEMO_MODEL_NAME
from modeling.errors import ModelError
from modeling.model_inputs import is_slide_input_file, slide_model_inputs
from tests.helpers.tiny_models import save_tiny_checkpoint, write_features_h5, write_slide_tokens_pt


@pytest.fixture(scope="module")
def demo():
    return load_model(DEMO_MODEL_NAME, device="cpu")


@pytest.fixture
def checks(monkeypatch):
    """Counts every compatibility check, wherever it is called from."""
    calls = []
    real = modeling.slide_inputs.check_compatible

    def counting(inputs, config):
        calls.append(inputs.source)
        return real(inputs, config)

    monkeypatch.setattr(modeling.slide_inputs, "check_compatible", counting)
    monkeypatch.setattr(modeling.inference, "check_compatible", counting)
    return calls


def test_released_tokens_features_and_slides_become_inputs(demo, tmp_path):
    from tests.helpers.synthetic_slides import write_aperio_slide

    pt = write_slide_tokens_pt(tmp_path / "s.pt", batched=True)
    assert slide_model_inputs(pt, demo).slide_tokens.shape == (1, 576, 1024)
    h5 = write_features_h5(tmp_path / "s.h5", n_tiles=30, dim=192)
    assert slide_model_inputs(h5, demo).tile_features.shape == (1, 30, 192)
    slide = write_aperio_slide(tmp_path / "slide.svs", width=2048, height=2048, mpp=0.5)
    messages = []
    inputs = slide_model_inputs(slide.path, demo, num_workers=0, announce=messages.append)
    assert inputs.kind == "tile_features" and inputs.tile_encoder == "random-tiny"
    assert messages[0].startswith("Tile encoder: random-tiny (UNTRAINED")
    assert is_slide_input_file("x.PT") and not is_slide_input_file(slide.path)
    with pytest.raises(ModelError, match="no such file"):
        slide_model_inputs(tmp_path / "missing.svs", demo)


def test_a_model_without_slide_encoder_names_what_it_can_read(tmp_path):
    loaded = load_model(str(save_tiny_checkpoint(tmp_path / "ckpt", with_slide_encoder=False)), device="cpu")
    (tmp_path / "slide.svs").write_bytes(b"x")
    with pytest.raises(ModelError, match="has no slide encoder.*slide-token .pt"):
        slide_model_inputs(tmp_path / "slide.svs", loaded)


def test_ask_checks_the_inputs_once(tmp_path, checks, capsys):
    from modeling.ask import main

    pt = write_slide_tokens_pt(tmp_path / "s.pt")
    assert main([str(pt), "-q", "Grade?", "--max-new-tokens", "2"]) == 0
    assert checks == [str(pt)]


def test_predict_checks_each_slide_once(tmp_path, checks, capsys):
    from evaluation.cli import main
    from tests.evaluation.fixtures import write_benchmark
    from tests.helpers.tiny_models import TINY_NUM_SLIDE_TOKENS, TINY_SLIDE_TOKEN_DIM

    bench = write_benchmark(tmp_path / "bench")
    features = tmp_path / "features" / "TCGA-XX"
    features.mkdir(parents=True)
    write_slide_tokens_pt(features / "S1.pt", num_tokens=TINY_NUM_SLIDE_TOKENS, dim=TINY_SLIDE_TOKEN_DIM,
                          padded_from=None)
    assert main(["predict", "--model", str(save_tiny_checkpoint(tmp_path / "ckpt")), "--benchmark", str(bench),
                 "--features-root", str(tmp_path / "features"), "--out", str(tmp_path / "p.jsonl"),
                 "--max-new-tokens", "2", "--device", "cpu"]) == 3             # the other slides have no inputs
    answered = json.loads(capsys.readouterr().out)["n_answered"]
    assert answered >= 2 and checks == [str(features / "S1.pt")]        # one slide, several questions


def test_the_app_checks_examples_and_slides_once(demo, tmp_path, checks):
    from tests.helpers.synthetic_slides import write_aperio_slide
    from ui.qa.sessions import SlideQaSession, ensure_chat
    from ui.qa.slide_steps import PipelineSettings, tile_for_model

    session = SlideQaSession("s1")
    pt = write_slide_tokens_pt(tmp_path / "example.pt")
    session.set_inputs("example", "WSI-Bench example", slide_model_inputs(pt, demo))
    ensure_chat(session, demo)
    assert checks == [str(pt)]
    slide = write_aperio_slide(tmp_path / "slide.svs", width=2048, height=2048, mpp=0.5)
    session.set_tiled("slide.svs", "upload", tile_for_model(slide.path, demo.model.config))
    ensure_chat(session, demo, PipelineSettings(tile_workers=0))
    assert checks == [str(pt), str(slide.path)]
