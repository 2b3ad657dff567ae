"""`wsi-llava ask` on a released-style .pt, a features h5 and a slide; errors without tracebacks."""

import pytest

import wsi_llava_cli
from modeling.ask import main
from tests.helpers.tiny_models import save_tiny_checkpoint, write_features_h5, write_slide_tokens_pt

FAST = ["--max-new-tokens", "6", "--seed", "0"]


def test_ask_on_released_slide_tokens_with_the_demo_model(tmp_path, capsys):
    pt = write_slide_tokens_pt(tmp_path / "TCGA-XX.pt", batched=True)        # (1, 576, 1024) as released
    assert wsi_llava_cli.main(["ask", str(pt), "--question", "What is the histological type?", *FAST]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Model: wsi-llava-tiny-random") and "UNTRAINED" in out[0]
    assert "slide tokens (576, 1024)" in out[1]
    assert out[2] == "Q: What is the histological type?" and out[3].startswith("A: ") and len(out[3]) > 3


def test_ask_uses_and_reports_the_official_settings_and_takes_a_profile(tmp_path, capsys):
    pt = write_slide_tokens_pt(tmp_path / "TCGA-XX.pt")
    assert main([str(pt), "-q", "Grade?", *FAST]) == 0
    err = capsys.readouterr().err
    assert "profile=official, conversation_template=llava_v1, do_sample=True, temperature=0.2" in err
    assert main([str(pt), "-q", "Grade?", *FAST, "--profile", "fork-8714afc", "--conv-template", "vicuna_v1"]) == 0
    captured = capsys.readouterr()
    assert "profile=fork-8714afc, conversation_template=vicuna_v1" in captured.err
    assert "repetition_penalty=1.1" in captured.err and "\nA: " in captured.out
    assert main([str(pt), "-q", "Grade?", "--temperature", "-1"]) == 1
    assert "temperature must be >= 0" in capsys.readouterr().err


def test_ask_on_a_features_h5_with_a_saved_checkpoint(tmp_path, capsys):
    checkpoint = save_tiny_checkpoint(tmp_path / "ckpt", tile_feature_dim=192)
    h5 = write_features_h5(tmp_path / "slide.h5", n_tiles=60, dim=192)
    assert main([str(h5), "-q", "Grade?", "--model", str(checkpoint), "--temperature", "0", *FAST]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Model: tiny-test-model (UNTRAINED") and "60 tiles x 192-d features" in out


def test_ask_on_a_slide_runs_the_slide_pipeline(tmp_path, capsys):
    from tests.helpers.synthetic_slides import write_aperio_slide

    slide = write_aperio_slide(tmp_path / "slide.svs", width=2048, height=2048, mpp=0.5)
    assert main([str(slide.path), "-q", "Describe the tumor.", "--num-workers", "0", *FAST]) == 0
    captured = capsys.readouterr()
    assert "Tile encoder: random-tiny (UNTRAINED" in captured.err
    assert "tiles x 192-d features" in captured.out and "\nA: " in captured.out


@pytest.mark.parametrize("make_input, extra, message", [
    (lambda p: p / "missing.pt", [], "slide-token file not found"),
    (lambda p: write_slide_tokens_pt(p / "short.pt", num_tokens=100), [], "100 slide tokens"),
    (lambda p: write_features_h5(p / "uni.h5", dim=1024, encoder="uni"), [], "'uni' tile encoder"),
    (lambda p: p / "notes.txt", [], "no such file"),
])
def test_bad_inputs_exit_1_with_a_message(tmp_path, capsys, make_input, extra, message):
    path = make_input(tmp_path)
    assert main([str(path), "-q", "Grade?", *FAST, *extra]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert captured.out.startswith("Model: wsi-llava-tiny-random")      # the model is always named


def test_converted_llava_checkpoints_point_to_convert_llava(tmp_path, capsys):
    pt = write_slide_tokens_pt(tmp_path / "s.pt")
    assert main([str(pt), "-q", "Grade?", "--model", "Lucas-yuc/wsi-llava-v1.5-7b-e1"]) == 1
    assert "wsi-llava convert-llava Lucas-yuc/wsi-llava-v1.5-7b-e1" in capsys.readouterr().err
