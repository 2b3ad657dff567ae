"""The model's state on screen and in the flow: a model that cannot be loaded (why, how to fix, the
untrained demo offered and used only when accepted), and lazy loading on the first question."""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file

from app import build_app
from tests.app.browser import serve_blocks
from tests.app.conftest import qa_config


@pytest.fixture
def client_for(qa_data, tmp_path):
    servers = []

    def start(*flags: str) -> tuple[Client, object]:
        demo = build_app(qa_config(qa_data, "--benchmark", "", "--upload-dir", str(tmp_path / "uploads"), *flags))
        server = serve_blocks(demo)
        servers.append(server)
        return Client(server.__enter__(), verbose=False), demo

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def test_an_unloadable_model_is_explained_and_the_demo_is_opt_in(client_for, qa_data, tmp_path):
    client, demo = client_for("--model", str(tmp_path / "no-such-checkpoint"))
    demo.services.models._main.wait(30)
    banner = client.predict(api_name="/refresh_status")[0]
    assert "could not be loaded" in banner and "neither an existing folder nor a Hub id" in banner
    assert "**How to fix:**" in banner and "WSI_LLAVA_MODEL" in banner and "untrained demo model" in banner
    _, info, *_ = client.predict(handle_file(str(qa_data.slide)), 0, api_name="/upload_slide")
    assert "Tiled. The model is not ready" in info                      # the slide is still shown
    with pytest.raises(Exception, match="neither an existing folder nor a Hub id"):
        client.predict("What is it?", 0.2, 8, api_name="/ask")
    assert demo.services.models.status(demo=True).state == "not started"   # nothing random unless accepted

    banner = client.predict(api_name="/use_demo_model")
    assert "wsi-llava-tiny-random" in banner and "UNTRAINED" in banner
    chat, _, turn = client.predict("What is it?", 0.2, 8, api_name="/ask")
    assert len(chat) == 2 and "Turn 1" in turn
    other = Client(client.src, verbose=False)                          # another person: still the real reason
    assert "could not be loaded" in other.predict(api_name="/refresh_status")[0]


def test_without_preloading_the_first_question_loads_the_model_and_encodes_the_slide(client_for, qa_data):
    client, demo = client_for("--preload", "false")
    assert "loads when the first question is asked" in client.predict(api_name="/refresh_status")[0]
    _, info, *_ = client.predict(handle_file(str(qa_data.slide)), 0, api_name="/upload_slide")
    assert "Tiled. The model is not ready" in info and "- tile features:" not in info
    chat, _, turn = client.predict("Describe the tumor.", 0.0, 8, api_name="/ask")
    assert len(chat) == 2 and "encoded 1×" in turn
    assert "UNTRAINED" in client.predict(api_name="/refresh_status")[0]


def test_slides_without_resolution_need_the_mpp_field_and_load_once_it_is_typed(client_for, tmp_path):
    from tests.helpers.synthetic_slides import write_aperio_slide, write_plain_image

    client, _ = client_for()
    plain = write_plain_image(tmp_path / "photo.png", width=2048, height=2048, mpp=None).path
    with pytest.raises(Exception, match="photo.png: no usable microns-per-pixel .*in the \"Microns per pixel\" "
                                        "field on the left and press Enter") as refused:
        client.predict(handle_file(str(plain)), 0, api_name="/upload_slide")
    assert "--mpp" not in str(refused.value)                    # the command line's flags mean nothing here
    # typing the value loads the same upload again: no new upload
    thumbnail, info, *_ = client.predict(0.5, api_name="/set_mpp")
    assert "**photo.png** (uploaded)" in info and "0.5 µm/px (entered by you" in info and "**Ready:**" in info
    assert thumbnail
    _, info, *_ = client.predict(0.4, api_name="/set_mpp")                   # a typo corrected: loaded again
    assert "0.4 µm/px (entered by you" in info and "**Ready:**" in info
    # the field is only for slides without resolution metadata: a scanned slide keeps its own (a slide of this
    # test only: Gradio keeps uploads by content, and another test's server may be moving the shared one away)
    scanned = write_aperio_slide(tmp_path / "scanned.svs", width=2048, height=2048, mpp=0.5, seed=11).path
    _, info, *_ = client.predict(handle_file(str(scanned)), 0.25, api_name="/upload_slide")
    assert "0.5 µm/px (openslide.mpp)" in info and "tiles of 256 px at 0.5 um/px" in info
    _, info, *_ = client.predict(handle_file(str(plain)), 0.5, api_name="/upload_slide")   # value given up front
    assert "**photo.png** (uploaded)" in info and "0.5 µm/px (entered by you" in info
