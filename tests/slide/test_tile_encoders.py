"""The tile-encoder registry: exact Prov-GigaPath settings, labelled random encoders, and clear errors
when Hub weights are gated or unreachable (never a silent random initialisation)."""

import http.server
import threading

import pytest
import torch
from huggingface_hub import constants

from modeling.errors import ModelError
from modeling.tile_encoders import (
    TILE_ENCODERS,
    TileEncoderError,
    TileEncoderSpec,
    TileTransformSpec,
    load_tile_encoder,
)


def test_prov_gigapath_entry_matches_the_published_setting():
    spec = TILE_ENCODERS["prov-gigapath"]
    assert spec.source == "hf_hub:prov-gigapath/prov-gigapath" and spec.feature_dim == 1536 and spec.trained
    assert (spec.tile_size_px, spec.target_mpp) == (256, 0.5)
    assert spec.transform == TileTransformSpec(resize_px=256, crop_px=224, interpolation="bicubic",
                                               mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    transform = spec.transform.build()
    names = [type(step).__name__ for step in transform.transforms]
    assert names == ["Resize", "CenterCrop", "ToTensor", "Normalize"]


def test_random_tiny_is_labelled_untrained_and_deterministic(tiny_encoder):
    assert tiny_encoder.name == "random-tiny" and tiny_encoder.trained is False
    metadata = tiny_encoder.metadata()
    assert metadata["encoder_trained"] is False and "UNTRAINED" in metadata["encoder_weights"]
    again = load_tile_encoder("random-tiny")
    batch = torch.zeros(2, 3, 224, 224)
    with torch.inference_mode():
        assert tiny_encoder.model(batch).shape == (2, 192)
        torch.testing.assert_close(tiny_encoder.model(batch), again.model(batch))


def test_untrained_entries_must_be_named_random():
    with pytest.raises(ValueError, match="must be named random-"):
        TileEncoderSpec(name="my-vit", feature_dim=8, transform=TileTransformSpec(224, None), builder=None,
                        trained=False, source="random init", description="")


def test_unknown_encoder_lists_the_registered_ones():
    with pytest.raises(TileEncoderError, match="Unknown tile encoder 'conch'.*prov-gigapath"):
        load_tile_encoder("conch")


def test_offline_without_cache_explains_how_to_get_the_weights(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(TileEncoderError) as caught:
        load_tile_encoder("prov-gigapath")
    message = str(caught.value)
    assert "prov-gigapath/prov-gigapath" in message and "HF_TOKEN" in message and "not in the local cache" in message
    assert "No random weights" in message and isinstance(caught.value, ModelError)


class _GatedHub(http.server.BaseHTTPRequestHandler):
    """Answers every request like the Hub does for a gated repo without access."""

    def _gated(self):
        self.send_response(401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to model prov-gigapath/prov-gigapath is restricted.")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = _gated

    def log_message(self, *args):
        pass


@pytest.fixture
def gated_hub(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GatedHub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield url
    server.shutdown()
    server.server_close()


def test_gated_checkpoint_says_how_to_get_access(gated_hub):
    with pytest.raises(TileEncoderError) as caught:
        load_tile_encoder("prov-gigapath")
    message = str(caught.value)
    assert "gated" in message and "https://huggingface.co/prov-gigapath/prov-gigapath" in message
    assert "HF_TOKEN" in message and "No random weights" in message


FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cache_timm_repo(cache_dir, repo_id: str) -> None:
    """Put a tiny timm ViT into an HF cache the way a download would leave it (refs/main -> snapshot)."""
    import json

    import timm
    from safetensors.torch import save_file

    repo_dir = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / FAKE_COMMIT
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(FAKE_COMMIT)
    config = {"architecture": "vit_tiny_patch16_224", "num_classes": 0, "model_args": {"depth": 1},
              "pretrained_cfg": {"input_size": [3, 224, 224], "num_classes": 0, "mean": [0.485, 0.456, 0.406],
                                 "std": [0.229, 0.224, 0.225]}}
    (snapshot / "config.json").write_text(json.dumps(config))
    model = timm.create_model("vit_tiny_patch16_224", depth=1, num_classes=0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snapshot / "model.safetensors"))


def test_timm_hub_loading_pins_the_cached_commit(tmp_path, monkeypatch):
    from modeling.tile_encoders import _timm_hub_builder

    _cache_timm_repo(tmp_path, "test-org/tiny-vit")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    spec = TileEncoderSpec(name="tiny-hub", feature_dim=192, transform=TileTransformSpec(256, 224),
                           builder=_timm_hub_builder("test-org/tiny-vit"), trained=True,
                           source="hf_hub:test-org/tiny-vit", description="test entry")
    monkeypatch.setitem(TILE_ENCODERS, "tiny-hub", spec)
    encoder = load_tile_encoder("tiny-hub")
    assert encoder.revision == FAKE_COMMIT and encoder.trained
    assert encoder.metadata()["encoder_weights"] == f"pretrained: hf_hub:test-org/tiny-vit @ {FAKE_COMMIT}"
    with torch.inference_mode():
        assert encoder.model(torch.zeros(1, 3, 224, 224)).shape == (1, 192)


def test_prov_gigapath_weights_of_the_wrong_width_are_refused(tmp_path, monkeypatch):
    _cache_timm_repo(tmp_path, "prov-gigapath/prov-gigapath")      # a 192-d model where 1536-d is expected
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(TileEncoderError, match="outputs 192-d features but the registry entry says 1536"):
        load_tile_encoder("prov-gigapath")


def test_random_encoders_accept_only_their_own_revision():
    assert load_tile_encoder("random-tiny", revision="random-init-seed0").revision == "random-init-seed0"
    with pytest.raises(TileEncoderError, match="no revision 'main'"):
        load_tile_encoder("random-tiny", revision="main")
