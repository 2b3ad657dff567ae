"""`wsi-llava convert-llava`: tiny checkpoints written in exactly LLaVA-1.5's layout round-trip.

The reference logits are computed without any project code: a plain LlamaForCausalLM (or its peft-merged
LoRA version) plus the mm_projector applied by hand, the slide tokens written into the `<image>` rows.
"""

import json
import tempfile

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from modeling.checkpoints import load_model
from modeling.convert_llava import convert, main
from modeling.demo_model import tiny_text_config
from tests.helpers.tiny_models import write_llava_tokenizer

MM_HIDDEN = 48


def llava_config(llama, **overrides) -> dict:
    config = {k: v for k, v in llama.config.to_dict().items() if k not in ("architectures", "dtype")}
    config.update(model_type="llava_llama", architectures=["LlavaLlamaForCausalLM"], torch_dtype="float32",
                  mm_hidden_size=MM_HIDDEN, mm_projector_type="mlp2x_gelu", mm_use_im_start_end=False,
                  mm_use_im_patch_token=False, mm_vision_tower="openai/clip-vit-large-patch14-336",
                  mm_vision_select_layer=-2, mm_vision_select_feature="patch", mm_patch_merge_type="flat",
                  image_aspect_ratio="pad", use_mm_proj=True, tune_mm_mlp_adapter=False)
    return config | overrides


def random_projector(hidden: int, seed: int, mm_hidden: int = MM_HIDDEN) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = {"0.weight": (hidden, mm_hidden), "0.bias": (hidden,), "2.weight": (hidden, hidden), "2.bias": (hidden,)}
    return {name: torch.randn(*shape, generator=g) * 0.05 for name, shape in shapes.items()}


def write_llava_checkpoint(folder, llama, projector, tokenizer_dir=None, **config_overrides):
    """config.json (llava_llama) + model.safetensors (model.* / lm_head / model.mm_projector.*) + tokenizer."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(llava_config(llama, **config_overrides)))
    state = {k: v.contiguous() for k, v in llama.state_dict().items()}
    state |= {f"model.mm_projector.{k}": v for k, v in projector.items()}
    state["model.vision_tower.vision_tower.embeddings.class_embedding"] = torch.zeros(4)   # CLIP leftovers
    save_file(state, folder / "model.safetensors")
    if tokenizer_dir is not None:
        write_llava_tokenizer(folder)         # tokenizer.model + tokenizer_config.json, as LLaVA releases ship them
    return folder


@pytest.fixture(scope="module")
def llava_base(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("llava")
    torch.manual_seed(0)
    text = tiny_text_config(512)
    text.pop("model_type")
    llama = LlamaForCausalLM(LlamaConfig(**text)).eval()
    projector = random_projector(llama.config.hidden_size, seed=1)
    folder = write_llava_checkpoint(root / "llava-tiny", llama, projector, tokenizer_dir=root / "spm")
    return folder, llama, projector


def reference_logits(llama, projector, input_ids, slide_tokens, image_id):
    mask = input_ids == image_id
    embeds = llama.get_input_embeddings()(input_ids.masked_fill(mask, 0))
    hidden = F.gelu(F.linear(slide_tokens, projector["0.weight"], projector["0.bias"]))
    projected = F.linear(hidden, projector["2.weight"], projector["2.bias"])
    embeds[mask] = projected.reshape(-1, projected.shape[-1])
    return llama(inputs_embeds=embeds).logits


def assert_converted_matches(dst, llama, projector):
    loaded = load_model(str(dst), device="cpu")
    model, processor = loaded.model, loaded.processor
    assert loaded.is_trained and model.config.slide_token_dim == MM_HIDDEN and model.slide_encoder is None
    assert model.config.num_slide_tokens == processor.num_slide_tokens == 576
    prompt = processor.encode_prompt("What is the histological type?")
    slide_tokens = torch.randn(1, 576, MM_HIDDEN)
    with torch.no_grad():
        ours = model(**prompt, slide_tokens=slide_tokens).logits
        expected = reference_logits(llama, projector, prompt["input_ids"], slide_tokens, processor.image_token_id)
    assert ours.shape[-1] == 513 and processor.image_token_id == 512
    torch.testing.assert_close(ours[..., :512], expected, rtol=1e-5, atol=1e-5)
    assert (ours[..., 512] == 0).all()                            # `<image>` has an all-zero lm_head row


def test_full_llava_checkpoint_round_trips(llava_base, tmp_path):
    folder, llama, projector = llava_base
    notes = convert(str(folder), tmp_path / "out")
    assert any("vision-tower" in n for n in notes)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "model.safetensors" in written and "processor_config.json" in written
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "wsi_llava"
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    assert_converted_matches(tmp_path / "out", llama, projector)


def test_lora_checkpoint_with_non_lora_trainables_merges(llava_base, tmp_path):
    import copy

    from peft import LoraConfig, get_peft_model

    folder, llama, _ = llava_base
    peft_model = get_peft_model(copy.deepcopy(llama), LoraConfig(
        r=4, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"]))
    torch.manual_seed(3)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.05)
    peft_model.peft_config["default"].base_model_name_or_path = str(folder)
    lora_dir = tmp_path / "llava-tiny-lora"
    peft_model.save_pretrained(lora_dir)
    (lora_dir / "config.json").write_text(json.dumps(llava_config(llama)))
    new_projector = random_projector(llama.config.hidden_size, seed=7)
    torch.save({f"base_model.model.model.mm_projector.{k}": v for k, v in new_projector.items()},
               lora_dir / "non_lora_trainables.bin")
    merged = peft_model.merge_and_unload().eval()
    ids = torch.tensor([[1, 20, 30, 40]])
    with torch.no_grad():
        assert not torch.allclose(merged(ids).logits, llama(ids).logits, atol=1e-3)   # the adapter matters

    write_llava_tokenizer(lora_dir, legacy=False)                 # the official loader reads the BASE's (legacy true)
    assert main([str(lora_dir), str(tmp_path / "out")]) == 0      # base from adapter_config.json
    assert_converted_matches(tmp_path / "out", merged, new_projector)
    from modeling.processing_wsi_llava import WsiLlavaProcessor

    assert WsiLlavaProcessor.from_pretrained(tmp_path / "out").tokenizer.legacy is True


def _lora_release(folder, llama, base_name_or_path):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(llava_config(llama)))
    (folder / "adapter_config.json").write_text(json.dumps({
        "base_model_name_or_path": base_name_or_path, "peft_type": "LORA", "r": 4, "lora_alpha": 8,
        "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}))
    return folder


@pytest.mark.parametrize("configured, suggestion", [
    ("./LLaVA-main/llava-v1.5-7b/", "--base liuhaotian/llava-v1.5-7b"),     # finetune_lora.sh's --model_name_or_path
    ("/data/users/x/checkpoints/vicuna-7b-v1.5", "--base lmsys/vicuna-7b-v1.5"),
    ("/data/users/x/my-own-base", "--base liuhaotian/llava-v1.5-7b"),
])
def test_a_lora_base_named_by_a_training_time_path_is_an_error_with_the_fix(llava_base, tmp_path, capsys,
                                                                           configured, suggestion):
    _, llama, _ = llava_base
    lora = _lora_release(tmp_path / "wsi-llava-lora", llama, configured)
    assert main([str(lora), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert repr(configured) in err and suggestion in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_converted_processor_stores_the_official_templates(llava_base, tmp_path):
    """Generation prompts use llava_v1 (wsi-vqa.sh --conv-mode llava_v1); training keeps vicuna_v1."""
    from modeling.processing_wsi_llava import WsiLlavaProcessor

    folder, _, _ = llava_base
    convert(str(folder), tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "processor_config.json").read_text())
    assert (saved["conversation_template"], saved["generation_template"]) == ("vicuna_v1", "llava_v1")
    processor = WsiLlavaProcessor.from_pretrained(tmp_path / "out")
    assert processor.build_prompt("Grade?").startswith("A chat between a curious human")


def _fast_tokenizer_json_without_bos(folder, out):
    from transformers import LlamaTokenizer

    LlamaTokenizer.from_pretrained(str(folder)).save_pretrained(out)
    data = json.loads((out / "tokenizer.json").read_text())
    data["post_processor"] = None                                   # no BOS template
    return data


@pytest.mark.parametrize("case", ["add_bos_token_unset", "tokenizer_json_without_bos"])
def test_bos_is_added_like_the_official_slow_tokenizer(llava_base, tmp_path, case):
    """The official loader (slow LlamaTokenizer) adds BOS unless tokenizer_config.json says otherwise and never
    reads tokenizer.json; transformers 5 would drop BOS in both cases."""
    import shutil

    from modeling.processing_wsi_llava import WsiLlavaProcessor

    folder, _, _ = llava_base
    src = tmp_path / "src"
    shutil.copytree(folder, src)
    write_llava_tokenizer(src, add_bos_token=None)
    if case == "tokenizer_json_without_bos":
        (src / "tokenizer.json").write_text(json.dumps(_fast_tokenizer_json_without_bos(src, tmp_path / "fast")))
    notes = convert(str(src), tmp_path / "out")
    processor = WsiLlavaProcessor.from_pretrained(tmp_path / "out")
    ids = processor.encode_prompt("Grade?")["input_ids"][0].tolist()
    assert ids[0] == processor.tokenizer.bos_token_id == 1 and ids.count(1) == 1
    assert any("add_bos_token=True" in note for note in notes)
    assert (case == "tokenizer_json_without_bos") == any("tokenizer.json ignored" in note for note in notes)


def test_a_tokenizer_that_differs_from_the_official_one_is_refused(llava_base, tmp_path, capsys):
    """sentencepiece's default remove_extra_whitespaces (not LLaMA's) is ignored by the fast tokenizer, so its
    ids differ from the slow tokenizer's ("USER: " loses its trailing space there): refused, DST untouched."""
    import shutil

    folder, _, _ = llava_base
    src = tmp_path / "src"
    shutil.copytree(folder, src)
    write_llava_tokenizer(src, remove_extra_whitespaces=True)
    assert main([str(src), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert str(src / "tokenizer.model") in err and "first difference at position" in err and "ours [" in err
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_conversion_from_a_hub_id(llava_base, tmp_path, hub):
    from huggingface_hub import HfApi

    folder, llama, projector = llava_base
    HfApi().create_repo("tester/llava-tiny")
    HfApi().upload_folder(folder_path=str(folder), repo_id="tester/llava-tiny")
    convert("tester/llava-tiny", tmp_path / "out")
    assert_converted_matches(tmp_path / "out", llama, projector)


@pytest.mark.parametrize("overrides, message", [
    ({"mm_use_im_start_end": True}, "mm_use_im_start_end"),
    ({"mm_projector_type": "mlp4x_relu"}, "projector_type"),
    ({"model_type": "mistral"}, "not a LLaVA-1.5 layout"),
])
def test_unsupported_checkpoints_fail_clearly(llava_base, tmp_path, capsys, overrides, message):
    folder, llama, projector = llava_base
    with tempfile.TemporaryDirectory() as spm:
        bad = write_llava_checkpoint(tmp_path / "bad", llama, projector, tokenizer_dir=spm, **overrides)
    assert main([str(bad), str(tmp_path / "out")]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_missing_projector_and_existing_destination(llava_base, tmp_path, capsys):
    folder, llama, _ = llava_base
    with tempfile.TemporaryDirectory() as spm:
        bare = write_llava_checkpoint(tmp_path / "bare", llama, {}, tokenizer_dir=spm)
    assert main([str(bare), str(tmp_path / "out")]) == 1
    assert "no projector weights" in capsys.readouterr().err
    (tmp_path / "exists").mkdir()
    assert main([str(folder), str(tmp_path / "exists")]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_attaching_prov_gigapath_weights_enables_tile_features(llava_base, tmp_path):
    from modeling.slide_encoder import LongNetSlideEncoder, SlideEncoderConfig

    _, llama, _ = llava_base
    projector = random_projector(llama.config.hidden_size, seed=9, mm_hidden=1024)     # as released: 1024-d
    folder = write_llava_checkpoint(tmp_path / "llava", llama, projector, tokenizer_dir=tmp_path / "spm",
                                    mm_hidden_size=1024)
    torch.manual_seed(5)
    encoder = LongNetSlideEncoder(SlideEncoderConfig()).eval()               # gigapath_slide_enc12l768d shape
    torch.save({"model": encoder.state_dict()}, tmp_path / "slide_encoder.pth")
    assert main([str(folder), str(tmp_path / "out"), "--slide-encoder", "prov-gigapath",
                 "--slide-encoder-checkpoint", str(tmp_path / "slide_encoder.pth")]) == 0
    model = load_model(str(tmp_path / "out"), device="cpu").model
    assert (model.config.tile_encoder, model.config.slide_token_dim) == ("prov-gigapath", 1024)
    assert torch.equal(model.slide_encoder.norm.weight, encoder.norm.weight)
    features, coords = torch.randn(1, 30, 1536), torch.randint(0, 50, (1, 30, 2)).float() * 256
    ids = torch.tensor([[1] + [model.config.image_token_index] * 576 + [7]])
    with torch.no_grad():
        padded = F.pad(encoder(features, coords), (0, 1024 - 768))          # WSI-LLaVA's 768 -> 1024 zero-padding
        from_tokens = model(input_ids=ids, slide_tokens=padded).logits
        from_features = model(input_ids=ids, tile_features=features, coords_tiling_px=coords).logits
    torch.testing.assert_close(from_features, from_tokens)


def test_a_real_llava_v15_config_translates():
    """The key set of liuhaotian/llava-v1.5-7b's config.json (transformers 4.31 era)."""
    from modeling.configuration_wsi_llava import WsiLlavaConfig
    from modeling.llava_layout import check_llava_config, llama_text_config

    llava = {"_name_or_path": "./checkpoints/vicuna-7b-v1-5", "architectures": ["LlavaLlamaForCausalLM"],
             "bos_token_id": 1, "eos_token_id": 2, "freeze_mm_mlp_adapter": False, "hidden_act": "silu",
             "hidden_size": 4096, "image_aspect_ratio": "pad", "image_grid_pinpoints": None,
             "initializer_range": 0.02, "intermediate_size": 11008, "max_length": 4096,
             "max_position_embeddings": 4096, "mm_hidden_size": 1024, "mm_projector_type": "mlp2x_gelu",
             "mm_use_im_patch_token": False, "mm_use_im_start_end": False, "mm_vision_select_feature": "patch",
             "mm_vision_select_layer": -2, "mm_vision_tower": "openai/clip-vit-large-patch14-336",
             "model_type": "llava", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
             "pad_token_id": 0, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
             "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.31.0",
             "tune_mm_mlp_adapter": False, "use_cache": True, "use_mm_proj": True, "vocab_size": 32000}
    check_llava_config(llava, "llava-v1.5-7b")
    text = llama_text_config(llava) | {"vocab_size": 32001}
    config = WsiLlavaConfig(text_config=text, slide_encoder_config=None, slide_token_dim=1024, image_token_index=32000)
    assert (config.text_config.hidden_size, config.text_config.num_hidden_layers) == (4096, 32)
    assert config.text_config.max_position_embeddings == 4096 and config.text_config.rms_norm_eps == 1e-05


@pytest.mark.parametrize("legacy_in_config, expected", [(None, True), (True, True), (False, False)],
                         ids=["unset", "legacy_true", "legacy_false"])
def test_converted_tokenizer_tokenizes_later_turns_as_llava_did(llava_base, tmp_path, legacy_in_config, expected):
    """LLaVA-1.5 ran transformers 4.x, whose LlamaTokenizer treats an unset `legacy` as True; text after
    "</s>" (every turn after the first) tokenizes differently with legacy True and False."""
    import shutil

    from transformers import LlamaTokenizer

    from modeling.processing_wsi_llava import WsiLlavaProcessor

    folder, _, _ = llava_base
    src = tmp_path / "src"
    shutil.copytree(folder, src)
    config_file = src / "tokenizer_config.json"
    tokenizer_config = json.loads(config_file.read_text())
    tokenizer_config.pop("legacy", None)
    if legacy_in_config is not None:
        tokenizer_config["legacy"] = legacy_in_config
    config_file.write_text(json.dumps(tokenizer_config))
    convert(str(src), tmp_path / "out")
    processor = WsiLlavaProcessor.from_pretrained(tmp_path / "out")
    assert processor.tokenizer.legacy is expected
    as_llava_read_it = LlamaTokenizer.from_pretrained(str(src), legacy=expected)
    prompt = processor.build_prompt("Grade?", [("What is the type?", "Ductal carcinoma.")])
    after_slide = prompt.split("<image>")[1]
    ids = processor.tokenize(prompt)[0]
    expected_tail = as_llava_read_it(after_slide).input_ids[1:]                 # chunk without its BOS
    assert ids[-len(expected_tail):] == expected_tail
    assert ids[-len(expected_tail) - 1] == processor.image_token_id


def test_hub_download_takes_one_copy_of_the_weights(llava_base, tmp_path, hub):
    """Repos often hold the weights twice (pytorch_model*.bin and *.safetensors; 13 GB each for 7B):
    only the safetensors are fetched, plus LLaVA's own .bin files (non_lora_trainables, adapter)."""
    import shutil

    from huggingface_hub import HfApi

    from modeling.convert_llava import fetch_folder

    folder, llama, projector = llava_base
    both = tmp_path / "both"
    shutil.copytree(folder, both)
    torch.save({"model.mm_projector.0.weight": torch.zeros(1)}, both / "pytorch_model.bin")   # must not be read
    torch.save({}, both / "non_lora_trainables.bin")
    HfApi().create_repo("tester/llava-both")
    HfApi().upload_folder(folder_path=str(both), repo_id="tester/llava-both")
    snapshot = fetch_folder("tester/llava-both", None)
    names = {p.name for p in snapshot.iterdir()}
    assert "model.safetensors" in names and "non_lora_trainables.bin" in names
    assert "pytorch_model.bin" not in names
    convert("tester/llava-both", tmp_path / "out")
    assert_converted_matches(tmp_path / "out", llama, projector)


def test_projector_only_checkpoint_is_named_as_such(llava_base, tmp_path, capsys):
    """LLaVA's pretraining stage writes config.json + mm_projector.bin only (no language model)."""
    folder, llama, projector = llava_base
    only = tmp_path / "projector-only"
    only.mkdir()
    (only / "config.json").write_text((folder / "config.json").read_text())
    torch.save({f"model.mm_projector.{k}": v for k, v in projector.items()}, only / "mm_projector.bin")
    assert main([str(only), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "mm_projector.bin" in err and "projector only" in err


def test_missing_lm_head_is_a_model_error(llava_base, tmp_path, capsys):
    from safetensors.torch import load_file

    folder, llama, projector = llava_base
    broken = tmp_path / "no-lm-head"
    import shutil

    shutil.copytree(folder, broken)
    state = load_file(str(broken / "model.safetensors"))
    del state["lm_head.weight"]
    save_file(state, broken / "model.safetensors")
    assert main([str(broken), str(tmp_path / "out")]) == 1
    assert "language_model.lm_head.weight" in capsys.readouterr().err
