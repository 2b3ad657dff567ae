"""Slide inputs from files: released .pt slide tokens, features h5 (level-0 -> tiling frame), errors."""

import h5py
import numpy as np
import pytest
import torch

from modeling.errors import ModelError
from modeling.slide_inputs import SlideInputs, check_compatible, load_slide_inputs
from tests.helpers.tiny_models import tiny_config, write_features_h5, write_slide_tokens_pt


@pytest.mark.parametrize("batched", [False, True])
def test_released_slide_tokens_are_used_as_they_are(tmp_path, batched):
    path = write_slide_tokens_pt(tmp_path / "s.pt", batched=batched)
    inputs = load_slide_inputs(path)
    raw = torch.load(path)
    assert inputs.kind == "slide_tokens" and inputs.slide_tokens.shape == (1, 576, 1024)
    assert torch.equal(inputs.slide_tokens[0], raw.reshape(576, 1024))


def test_features_h5_coords_go_to_the_tiling_frame(tmp_path):
    path = write_features_h5(tmp_path / "f.h5", n_tiles=20, dim=16, patch_size=256, patch_size_level0=1024)
    with h5py.File(path) as h5:
        level0 = h5["coords"][()]
    inputs = load_slide_inputs(path)
    assert inputs.kind == "tile_features" and inputs.tile_features.shape == (1, 20, 16)
    assert inputs.tile_encoder == "random-tiny"
    np.testing.assert_array_equal(inputs.coords_tiling_px[0].numpy(), level0 / 4)     # 1024 px at level 0 = 256 px


@pytest.mark.parametrize("write, message", [
    (lambda p: torch.save(torch.zeros(2, 576, 1024), p / "x.pt"), r"expected \(S, D\) or \(1, S, D\)"),
    (lambda p: torch.save({"tokens": torch.zeros(3)}, p / "x.pt"), "holds a dict"),
    (lambda p: (p / "x.pt").write_bytes(b"not torch"), "cannot read"),
    (lambda p: torch.save(torch.full((576, 1024), float("nan")), p / "x.pt"), "NaN"),
    (lambda p: (p / "x.h5").write_bytes(b"junk"), "x.h5"),
    (lambda p: (p / "x.npy").write_bytes(b""), "unknown slide-input file type"),
])
def test_bad_files_raise_model_errors_naming_the_file(tmp_path, write, message):
    write(tmp_path)
    path = next(tmp_path.iterdir())
    with pytest.raises(ModelError, match=message) as info:
        load_slide_inputs(path)
    assert path.name in str(info.value)


def test_compatibility_with_the_model_is_checked():
    config = tiny_config(tile_feature_dim=16)
    tokens = SlideInputs("slide_tokens", "t.pt", slide_tokens=torch.zeros(1, 576, 32))
    with pytest.raises(ModelError, match="576 slide tokens but tiny-test-model takes 8"):
        check_compatible(tokens, config)
    token_only = tiny_config(with_slide_encoder=False)
    features = SlideInputs("tile_features", "f.h5", tile_features=torch.zeros(1, 5, 16),
                           coords_tiling_px=torch.zeros(1, 5, 2))
    with pytest.raises(ModelError, match="need a slide encoder"):
        check_compatible(features, token_only)


def test_only_the_pooled_width_is_zero_padded():
    config = tiny_config()
    pooled = config.slide_encoder().embed_dim
    n = config.num_slide_tokens
    check_compatible(SlideInputs("slide_tokens", "ok.pt", slide_tokens=torch.zeros(1, n, config.slide_token_dim)),
                     config)
    if pooled < config.slide_token_dim:
        check_compatible(SlideInputs("slide_tokens", "pooled.pt", slide_tokens=torch.zeros(1, n, pooled)), config)
    narrow = SlideInputs("slide_tokens", "narrow.pt", slide_tokens=torch.zeros(1, n, pooled - 1))
    with pytest.raises(ModelError, match=r"narrow.pt: slide tokens are \d+-d"):
        check_compatible(narrow, config)


def test_a_training_checkpoint_folder_says_how_to_merge_it(tmp_path):
    from modeling.checkpoints import read_checkpoint_config

    (tmp_path / "training_manifest.json").write_text("{}")
    with pytest.raises(ModelError, match="wsi-llava train --merge"):
        read_checkpoint_config(str(tmp_path))


def test_the_slide_token_source_is_recorded_for_released_tokens_and_our_own(tmp_path):
    from modeling.slide_inputs import use_slide_token_source
    from tests.helpers.tiny_models import random_slide_inputs, tiny_model

    model = tiny_model(encoder_overrides={"depth": 12})
    released = load_slide_inputs(write_slide_tokens_pt(tmp_path / "s.pt"))
    ours = load_slide_inputs(write_features_h5(tmp_path / "f.h5", n_tiles=20, dim=16))
    assert (released.token_source, ours.token_source) == ("released", None)
    assert use_slide_token_source(model, released, None) == "released"
    assert use_slide_token_source(model, ours, None) == "wsi-llava-readme" == model.config.slide_token_source
    with pytest.raises(ModelError, match=r"s.pt: holds precomputed slide tokens \(released\), so a slide token "
                                         r"source \('trident'\) cannot apply"):
        use_slide_token_source(model, released, "trident")
    inputs = random_slide_inputs(model.config, kind="tile_features")
    with torch.no_grad():
        readme = model.get_slide_embeddings(**inputs.model_kwargs())
        assert use_slide_token_source(model, inputs, "trident") == "trident" == model.config.slide_token_source
        trident = model.get_slide_embeddings(**inputs.model_kwargs())
    assert (readme - trident).abs().max() > 1e-4
    with pytest.raises(ModelError, match="unknown slide token source 'last'"):
        use_slide_token_source(model, inputs, "last")
    with pytest.raises(ModelError, match="slide_token_source: 'last' is not one of"):
        tiny_config(slide_token_source="last")
    with pytest.raises(ModelError, match="tile features have no slide token source of their own"):
        SlideInputs("tile_features", "f.h5", tile_features=torch.zeros(1, 5, 16),
                    coords_tiling_px=torch.zeros(1, 5, 2), token_source="trident")


def test_the_slide_token_source_is_saved_with_the_model(tmp_path):
    from modeling.configuration_wsi_llava import WsiLlavaConfig
    from tests.helpers.tiny_models import tiny_model

    model = tiny_model(encoder_overrides={"depth": 12})
    model.set_slide_token_source("prov-gigapath-pipeline")
    model.config.save_pretrained(tmp_path)
    assert WsiLlavaConfig.from_pretrained(tmp_path).slide_token_source == "prov-gigapath-pipeline"
