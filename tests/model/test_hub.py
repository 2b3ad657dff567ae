"""push_to_hub / from_pretrained through the loopback Hub stand-in, and the stand-in itself."""

import pytest
import torch

from modeling.errors import ModelError
from modeling.checkpoints import load_model
from tests.helpers.tiny_models import random_slide_inputs, tiny_model_and_processor


def test_push_to_hub_then_from_pretrained_gives_identical_logits(hub):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model, processor = tiny_model_and_processor()
    model.push_to_hub("tester/wsi-llava-tiny")
    processor.push_to_hub("tester/wsi-llava-tiny")
    files = hub.state.files("tester/wsi-llava-tiny")
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= set(files)
    assert hub.state.repos[("model", "tester/wsi-llava-tiny")].resolve("main").files["model.safetensors"].lfs

    loaded = AutoModelForImageTextToText.from_pretrained("tester/wsi-llava-tiny").eval()
    loaded_processor = AutoProcessor.from_pretrained("tester/wsi-llava-tiny")
    prompt = loaded_processor.encode_prompt("Grade?")
    kwargs = random_slide_inputs(model.config, "tile_features").model_kwargs()
    with torch.no_grad():
        assert torch.equal(model(**prompt, **kwargs).logits, loaded(**prompt, **kwargs).logits)
    via_loader = load_model("tester/wsi-llava-tiny", device="cpu")
    assert via_loader.name == "tiny-test-model" and not via_loader.is_trained


def test_revisions_branches_and_tags(hub):
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi()
    api.create_repo("tester/revs")
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="notes.txt", repo_id="tester/revs").oid
    api.create_tag("tester/revs", tag="v1")
    api.create_branch("tester/revs", branch="dev")
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="notes.txt", repo_id="tester/revs", revision="dev")
    def read(revision: str) -> bytes:
        with open(hf_hub_download("tester/revs", "notes.txt", revision=revision), "rb") as handle:
            return handle.read()

    assert read("main") == read("v1") == read(first) == b"v1" and read("dev") == b"v2"
    tree = api.list_repo_tree("tester/revs", recursive=True)
    assert {entry.path for entry in tree} == {".gitattributes", "notes.txt"}


def test_a_missing_model_repo_is_a_clear_model_error(hub):
    with pytest.raises(ModelError, match="no such Hub repository"):
        load_model("nobody/nothing", device="cpu")


def test_datasets_push_and_load_and_space_upload(hub, tmp_path):
    import datasets
    from huggingface_hub import HfApi

    data = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"q": ["a", "b", "c"], "n": [1, 2, 3]}),
                                 "test": datasets.Dataset.from_dict({"q": ["d"], "n": [4]})})
    data.push_to_hub("tester/bench", private=True)
    files = hub.state.files("tester/bench", repo_type="dataset")
    assert any(p.startswith("data/train-") and p.endswith(".parquet") for p in files) and "README.md" in files
    loaded = datasets.load_dataset("tester/bench")
    assert loaded["train"]["n"] == [1, 2, 3] and loaded["test"]["q"] == ["d"]

    api = HfApi()
    api.create_repo("tester/demo-space", repo_type="space", space_sdk="gradio")
    (tmp_path / "app.py").write_text("print('hi')\n")
    api.upload_folder(folder_path=str(tmp_path), repo_id="tester/demo-space", repo_type="space")
    assert hub.state.files("tester/demo-space", repo_type="space")["app.py"] == b"print('hi')\n"
    assert api.space_info("tester/demo-space").sdk == "gradio"
