"""Evidence heatmaps: the deletion test on a tiny model trained here to depend on a known region, the
scored answer is the chat's, the 4-bit CPU path, released tokens refused, and the writers.

The deletion test: a tiny WSI-LLaVA learns to answer "Is there a tumor?" from a 3 x 3-tile lesion
placed anywhere on a 12 x 12-tile synthetic slide (tests/helpers/evidence_task.py). Masking (= replacing
with the slide's mean tile, the baseline the relevance is defined against) the top 10 % of tiles by
relevance must lower log p("Yes") more than every one of 20 random 10 % masks, by at least half of what
masking the whole lesion costs (so a tiny drop that merely beats tiny random drops fails), and the top
tiles must hold the lesion. Not "mean + 3 std" of the random drops: they are heavy-tailed (a random mask
that happens to cover most of the lesion flips the answer; benchmarks/evidence_deletion.py shows one such
case in 15), so that bound is not sound. Plain gradient x input fails this test on this model (it
recovers ~0.1 % of the lesion's drop, see the benchmark). The numbers are printed (pytest -s) and
recorded as the test's property.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from modeling.checkpoints import load_model
from modeling.evidence import (RELEASED_TOKENS_MESSAGE, NoHeatmapError, TileEvidence, answer_log_likelihood,
                               explain_answer)
from modeling.evidence_methods import EvidenceSettings, allocate_steps, scan_path
from modeling.evidence_outputs import (blend_on_overview, evidence_paths, overview_overlay, viewer_tiles,
                                       write_evidence_files, write_overview_overlay)
from modeling.slide.heatmap import NEGATIVE_RGB, POSITIVE_RGB, ZERO_RGB, render_tile_heatmap
from modeling.slide.tile_geojson import tiles_feature_collection
from modeling.slide.tile_layout import TileLayout
from modeling.slide_inputs import load_slide_inputs
from tests.helpers.evidence_task import QUESTION, deletion_experiment, make_region_slide, train_region_model
from tests.helpers.tiny_models import (random_slide_inputs, save_tiny_checkpoint, tiny_model_and_processor,
                                       write_features_h5, write_slide_tokens_pt)


@pytest.fixture(scope="module")
def trained():
    model, processor, _ = train_region_model(seed=0)
    return model, processor


@pytest.fixture(scope="module")
def lesion_slide():
    return make_region_slide(seed=2024, lesion=True)


def test_masking_the_most_relevant_tiles_lowers_the_answer_far_more_than_random_masking(trained, lesion_slide,
                                                                                        record_property):
    model, processor = trained
    inputs = lesion_slide.inputs
    assert answer_log_likelihood(model, processor, inputs, [], QUESTION, "Yes") > \
        answer_log_likelihood(model, processor, inputs, [], QUESTION, "No")          # the model learnt the task
    evidence = explain_answer(model, processor, inputs, [], QUESTION, "Yes")
    numbers = deletion_experiment(model, processor, lesion_slide, evidence, draws=20)
    record_property("evidence_deletion", json.dumps(numbers))
    print("\nevidence deletion test:", json.dumps(numbers))
    random = np.array(numbers["random_drops"])
    assert numbers["lesion_drop"] > 1.0                                  # the answer does rest on the lesion
    assert numbers["top_drop"] > random.max()
    assert numbers["top_drop"] > 0.5 * numbers["lesion_drop"]
    assert numbers["lesion_recall"] >= 8 / 9
    change = evidence.answer_log_likelihood - evidence.baseline_log_likelihood
    assert abs(evidence.completeness_gap) < 0.25 * abs(change)          # the scores add up to the change


def test_the_scored_answer_is_what_the_chat_generated(trained, lesion_slide):
    """Turn 2 of a chat: log p(answer) equals the sum of the generated tokens' log-probabilities."""
    model, processor = trained
    history = [(QUESTION, "Yes")]
    prompt = processor.encode_prompt(QUESTION, history)
    with torch.inference_mode():
        out = model.generate(**prompt, **lesion_slide.inputs.model_kwargs(), max_new_tokens=6, do_sample=False,
                             pad_token_id=processor.pad_token_id, output_logits=True, return_dict_in_generate=True)
    generated = out.sequences[0, prompt["input_ids"].shape[1]:].tolist()
    eos = processor.tokenizer.eos_token_id
    count = generated.index(eos) if eos in generated else len(generated)
    expected = sum(float(torch.log_softmax(out.logits[t][0].float(), -1)[generated[t]]) for t in range(count))
    answer = processor.decode_answer(generated)
    assert answer and processor.tokenizer(answer, add_special_tokens=False)["input_ids"] == generated[:count]
    scored = answer_log_likelihood(model, processor, lesion_slide.inputs, history, QUESTION, answer)
    assert scored == pytest.approx(expected, abs=1e-4)
    evidence = explain_answer(model, processor, lesion_slide.inputs, history, QUESTION, answer,
                              settings=EvidenceSettings(method="grad_x_input"))
    assert evidence.answer_log_likelihood == pytest.approx(expected, abs=1e-4)
    assert evidence.answer_num_tokens == count


def test_4bit_language_model_on_cpu(trained, lesion_slide, tmp_path):
    model, processor = trained
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    loaded = load_model(str(tmp_path / "ckpt"), load_4bit=True, device="cpu")
    assert loaded.quantization == "4bit-nf4"
    steps = []
    evidence = explain_answer(loaded.model, loaded.processor, lesion_slide.inputs, [], QUESTION, "Yes",
                              progress=lambda fraction, message: steps.append(fraction))
    assert evidence.relevance.shape == (144,) and np.isfinite(evidence.relevance).all()
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps)
    assert np.isin(lesion_slide.region, evidence.top_tiles(0.1)).mean() >= 2 / 3


def test_parameters_stay_as_they_were(trained, lesion_slide):
    model, processor = trained
    before = {name: p.requires_grad for name, p in model.named_parameters()}
    model.train()
    explain_answer(model, processor, lesion_slide.inputs, [], QUESTION, "Yes",
                   settings=EvidenceSettings(gradient_steps=2, scan_points=2, refine_passes=0, min_interval=0.5))
    assert model.training                                             # mode restored
    model.eval()
    assert {name: p.requires_grad for name, p in model.named_parameters()} == before
    assert all(p.grad is None for p in model.parameters())            # gradients went to the inputs only


def test_integrated_gradients_add_up_on_a_random_model():
    model, processor = tiny_model_and_processor(seed=3)
    inputs = make_region_slide(seed=5, lesion=True).inputs
    evidence = explain_answer(model, processor, inputs, [], "Describe the slide.", "Invasive carcinoma.",
                              settings=EvidenceSettings(gradient_steps=32))
    change = evidence.answer_log_likelihood - evidence.baseline_log_likelihood
    assert evidence.completeness_gap == pytest.approx(0.0, abs=0.05 * abs(change) + 1e-4)
    assert evidence.passes["forward_backward"] == 32


def test_path_scan_bisects_a_jump_and_steps_follow_the_change():
    settings = EvidenceSettings(scan_points=4, refine_passes=8, gradient_steps=8, min_interval=1 / 256)
    alphas, values = scan_path(lambda a: 5.0 if a > 0.6 else 0.0, settings)
    widths, changes = np.diff(alphas), np.abs(np.diff(values))
    assert widths[np.argmax(changes)] <= 1 / 256 + 1e-12              # the jump is pinned down
    counts = allocate_steps(widths, changes, settings.gradient_steps)
    assert counts.sum() == 8 and counts[np.argmax(changes)] >= 4     # half the steps go where L changes


def test_released_slide_tokens_get_the_plain_refusal():
    model, processor = tiny_model_and_processor()
    tokens = random_slide_inputs(model.config, "slide_tokens")
    with pytest.raises(NoHeatmapError) as caught:
        explain_answer(model, processor, tokens, [], "Grade?", "Grade 2.")
    assert str(caught.value) == RELEASED_TOKENS_MESSAGE
    without_positions = random_slide_inputs(model.config, "tile_features")       # no level-0 layout
    with pytest.raises(NoHeatmapError, match="without level-0 tile positions"):
        explain_answer(model, processor, without_positions, [], "Grade?", "Grade 2.")


def test_features_h5_inputs_carry_their_level0_layout(tmp_path):
    path = write_features_h5(tmp_path / "slide-7.h5", n_tiles=12, dim=16, patch_size=256, patch_size_level0=1024)
    inputs = load_slide_inputs(path)
    layout = inputs.layout
    assert layout.slide_id == "slide-7" and layout.tile_size_level0_px == 1024 and len(layout) == 12
    np.testing.assert_array_equal(layout.coords_level0, inputs.coords_tiling_px[0].numpy() * 4)


# -- writers ----------------------------------------------------------------------------------------------
LAYOUT = TileLayout("s1", np.array([[0, 0], [512, 0], [0, 512]]), 512, (1024, 1024))   # no tile at (512, 512)
VALUES = np.array([2.0, -1.0, 0.0])


def _evidence() -> TileEvidence:
    return TileEvidence(LAYOUT, VALUES, "integrated_gradients", 1, "slide_mean_tile", -0.5, -3.0, 0.01, 2,
                        "Tumor?", "Yes", "s1.h5", {"forward": 9, "forward_backward": 16}, {"total": 1.0})


def test_geojson_is_tiles_with_relevance_measurements():
    collection = json.loads(json.dumps(tiles_feature_collection(LAYOUT, {"relevance": VALUES}, {"method": "m"}),
                                       allow_nan=False))
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 3
    feature = collection["features"][1]
    assert feature["geometry"] == {"type": "Polygon",
                                   "coordinates": [[[512, 0], [1024, 0], [1024, 512], [512, 512], [512, 0]]]}
    assert feature["properties"]["objectType"] == "tile"
    assert feature["properties"]["measurements"] == {"relevance": -1.0}
    assert collection["wsi_llava"]["method"] == "m" and collection["wsi_llava"]["slide_id"] == "s1"
    with pytest.raises(ValueError, match="NaN"):
        tiles_feature_collection(LAYOUT, {"relevance": np.array([1.0, np.nan, 0.0])})
    with pytest.raises(ValueError, match="2 values for 3 tiles"):
        tiles_feature_collection(LAYOUT, {"relevance": VALUES[:2]})


def test_png_heatmap_colours_tiles_and_leaves_no_tissue_transparent():
    rgba = render_tile_heatmap(VALUES, LAYOUT, level0_per_px=128)          # 4 px per tile
    assert rgba.shape == (8, 8, 4)
    assert tuple(rgba[1, 1, :3]) == POSITIVE_RGB and rgba[1, 1, 3] == 255  # the largest value: full red
    assert tuple(rgba[1, 5, :3]) == tuple(round((z + n) / 2) for z, n in zip(ZERO_RGB, NEGATIVE_RGB))
    assert tuple(rgba[5, 1, :3]) == ZERO_RGB
    assert (rgba[4:, 4:, 3] == 0).all()                                    # no tile there
    faded = render_tile_heatmap(VALUES, LAYOUT, 128, opacity=0.5, fade_weak=True)
    assert faded[1, 1, 3] == 128 and faded[5, 1, 3] == 0


def test_evidence_files_overlay_and_viewer_values(tmp_path):
    evidence = _evidence()
    paths = write_evidence_files(evidence, tmp_path / "out" / "slide1")
    assert paths == {"geojson": tmp_path / "out" / "slide1.geojson", "png": tmp_path / "out" / "slide1.png"}
    collection = json.loads(paths["geojson"].read_text())
    assert collection["wsi_llava"]["answer_log_likelihood"] == -0.5
    assert [f["properties"]["measurements"]["relevance_normalized"] for f in collection["features"]] == [1, -0.5, 0]
    with Image.open(paths["png"]) as png:
        assert png.mode == "RGBA" and png.size == (32, 32)                  # 16 px per tile at most
    assert evidence_paths(tmp_path, "s1") == (tmp_path / "s1.evidence.geojson", tmp_path / "s1.evidence.png")
    thumbnail = Image.new("RGB", (50, 50), (200, 180, 200))
    assert overview_overlay(evidence, thumbnail.size).size == (50, 50)
    with Image.open(write_overview_overlay(evidence, (50, 40), tmp_path / "overlay.png")) as overlay:
        assert overlay.mode == "RGBA" and overlay.size == (50, 40)
    blended = blend_on_overview(evidence, thumbnail)
    assert blended.mode == "RGB" and blended.size == (50, 50)
    assert blended.getpixel((40, 40)) == (200, 180, 200) and blended.getpixel((10, 10)) != (200, 180, 200)
    tiles = viewer_tiles(evidence)
    assert tiles[1] == {"x": 512, "y": 0, "w": 512, "h": 512, "relevance": -1.0, "relevance_normalized": -0.5}


# -- the command line ---------------------------------------------------------------------------------------
def test_ask_writes_the_heatmap_for_tile_features(tmp_path, capsys):
    from modeling.ask import main

    checkpoint = save_tiny_checkpoint(tmp_path / "ckpt", tile_feature_dim=192)
    h5 = write_features_h5(tmp_path / "slide.h5", n_tiles=30, dim=192)
    out = tmp_path / "heatmaps" / "slide"
    assert main([str(h5), "-q", "Grade?", "--model", str(checkpoint), "--temperature", "0",
                 "--max-new-tokens", "4", "--heatmap", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"Evidence heatmap: {out}.geojson" in captured.out and "100%" in captured.err
    assert len(json.loads((tmp_path / "heatmaps" / "slide.geojson").read_text())["features"]) == 30
    assert (tmp_path / "heatmaps" / "slide.png").is_file()


def test_ask_on_released_tokens_answers_then_says_why_there_is_no_heatmap(tmp_path, capsys):
    from modeling.ask import main

    pt = write_slide_tokens_pt(tmp_path / "TCGA-XX.pt")
    assert main([str(pt), "-q", "Grade?", "--max-new-tokens", "4", "--seed", "0",
                 "--heatmap", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "\nA: " in captured.out and RELEASED_TOKENS_MESSAGE in captured.err
    assert "Traceback" not in captured.err and not list(tmp_path.glob("out*"))


def test_the_answer_is_scored_under_the_prompt_template_it_was_generated_with():
    from modeling.evidence import answer_token_ids
    from tests.helpers.tiny_models import tiny_processor

    processor = tiny_processor()
    default, _ = answer_token_ids(processor, [], "Grade?", "Grade 2.")
    official, _ = answer_token_ids(processor, [], "Grade?", "Grade 2.", template="llava_v1")
    training, _ = answer_token_ids(processor, [], "Grade?", "Grade 2.", template="vicuna_v1")
    assert default == official != training
