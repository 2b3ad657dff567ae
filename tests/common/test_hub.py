"""common.hub: the one Hub-id rule, downloads whose failures say what to do (as the caller's exception
type), upload failures, and the reachability probe — through the loopback Hub stand-in."""

import pytest

from common.hub import HubError, hub_download, hub_errors, hub_snapshot, looks_like_hub_id, settle_hub_access
from modeling.errors import ModelError


@pytest.mark.parametrize("text, expected", [
    ("Lucas-yuc/WSI-LLaVA-7b", True), ("org/name.v2", True),
    ("results.v2/run", False), ("./a/b", False), ("/abs/x", False), ("~/x", False), ("a/b/c", False),
    ("single", False), ("a/", False), ("", False), (None, False)])
def test_one_rule_for_what_is_a_hub_id(text, expected):
    assert looks_like_hub_id(text) is expected


GATED = "gated-lab/gated-model"


def test_an_existing_folder_is_never_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert not looks_like_hub_id("org/name")


def test_missing_gated_and_private_repos_give_clear_errors_of_the_callers_type(hub):
    # not a real model's id: the download lands in this worker's HF cache, where the tile-encoder tests would
    # then find a config.json that is not Prov-GigaPath's
    hub.state.upload(GATED, {"config.json": "{}"}, owner="gated-lab", gated=True)
    with pytest.raises(HubError, match="gated.*HF_TOKEN"):
        hub_download(GATED, "config.json")
    with pytest.raises(ModelError, match="gated.*HF_TOKEN.*or pass PATH") as caught:
        hub_download(GATED, "config.json", error=ModelError, hint="or pass PATH")
    assert caught.value.__cause__ is not None                       # chained to huggingface_hub's error
    hub.state.grant(GATED, "tester")
    assert hub_download(GATED, "config.json")
    hub.state.upload("someone/secret", {"config.json": "{}"}, owner="someone", private=True)
    with pytest.raises(ModelError, match="no such Hub repository, or it is private"):
        hub_download("someone/secret", "config.json", error=ModelError)
    with pytest.raises(HubError, match="has no file 'slide_encoder.pth'"):
        hub_download(GATED, "slide_encoder.pth")
    with pytest.raises(HubError, match="no such Hub dataset"):
        hub_snapshot("nobody/bench", repo_type="dataset")


def test_refused_uploads_say_that_the_token_needs_write_access(hub):
    from huggingface_hub import HfApi

    hub.state.upload("someone/theirs", {"a.txt": "x"}, owner="someone")
    with pytest.raises(HubError, match="uploading to someone/theirs failed: .*write access"):
        with hub_errors("uploading to someone/theirs", repo_id="someone/theirs", write=True):
            HfApi().upload_file(path_or_fileobj=b"y", path_in_repo="b.txt", repo_id="someone/theirs")


def test_an_unreachable_hub_is_switched_off_at_once(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")       # discard port: nothing listens
    assert settle_hub_access(["local-folder-name"]) is None                 # nothing on the Hub: no probe
    assert "cannot be reached" in settle_hub_access(["Lucas-yuc/WSI-LLaVA-7b"], timeout_s=1.0)
    assert constants.HF_HUB_OFFLINE is True
