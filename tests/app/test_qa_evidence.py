"""The Slide Q&A tab's zoomable viewer and evidence heatmaps through the Gradio API (gradio_client against a
real server in this process): the viewer serves the session's slide only, every answer gets a heatmap (viewer
overlay, overview, GeoJSON + PNG files) scored under the template it was generated with, a new question
stops a running attribution, released slide tokens say why there is none, and a WSI-Bench example's slide
comes from --slides-root."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app import build_app, launch_kwargs
from tests.app.browser import serve_blocks
from tests.app.conftest import qa_config
from ui.qa import evidence_handlers

SERVED = ("max_file_size", "css", "show_error")
UPLOAD_VIEWER = 7                 # the viewer's place among /upload_slide's outputs (QaView.slide_outputs)


@pytest.fixture(scope="module")
def qa_app(qa_data, tmp_path_factory):
    config = qa_config(qa_data, "--upload-dir", str(tmp_path_factory.mktemp("uploads")))
    demo = build_app(config)
    demo.services.models.wait(timeout_s=120)
    demo.services.examples.wait(timeout_s=60)
    with serve_blocks(demo, **{k: v for k, v in launch_kwargs(config).items() if k in SERVED}) as url:
        yield demo, url


def uploaded(qa_app, qa_data) -> tuple[Client, dict]:
    client = Client(qa_app[1], verbose=False)
    outputs = client.predict(handle_file(str(qa_data.slide)), 0, api_name="/upload_slide")
    return client, json.loads(outputs[UPLOAD_VIEWER])


def get(qa_app, viewer: dict, rest: str, base: str | None = None) -> httpx.Response:
    return httpx.get(f"{qa_app[1]}/{base or viewer['base']}{rest}", timeout=30)


def test_the_viewer_serves_the_uploaded_slide_to_its_session_only(qa_app, qa_data):
    client, viewer = uploaded(qa_app, qa_data)
    assert viewer["name"] == "breast-biopsy.svs" and (viewer["width"], viewer["height"]) == (2048, 2048)
    assert viewer["mpp"] == pytest.approx(0.5)
    assert viewer["overlays"]["tissue"]["available"] and viewer["overlays"]["grid"]["available"]
    assert viewer["overlays"]["heatmap"] == {"available": False, "note": "no answer with a heatmap yet: ask a question"}
    assert get(qa_app, viewer, "slide.dzi").status_code == 200
    tile = get(qa_app, viewer, "slide_files/11/0_0.jpeg")
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/jpeg"
    grid = get(qa_app, viewer, "overlays/grid.json").json()["data"]
    assert len(grid["coords_level0"]) == 2 * 22 and grid["patch_size_level0"] == 256        # the 22 kept tiles

    _, other = uploaded(qa_app, qa_data)                   # another browser session: its own token and handle
    token, handle = viewer["base"].split("/")[2:4]
    other_token, other_handle = other["base"].split("/")[2:4]
    for base in (f"viewer/s/{token}/{other_handle}/", f"viewer/s/{other_token}/{handle}/",
                 f"viewer/s/{token}/AAAAAAAAAAAAAAAAAAAAAA/"):
        assert get(qa_app, viewer, "slide.dzi", base).status_code == 404


def paths(files) -> list[str]:
    """The file paths of the heatmap files' output (a gr.update: value and visibility)."""
    files = files.get("value") if isinstance(files, dict) else files
    return list(files or [])


def relevance_of(geojson_path: str) -> list[float]:
    collection = json.loads(Path(geojson_path).read_text())
    return [f["properties"]["measurements"]["relevance"] for f in collection["features"]]


def test_each_answer_gets_a_heatmap_in_the_viewer_the_overview_and_files(qa_app, qa_data):
    demo, _ = qa_app
    client, viewer = uploaded(qa_app, qa_data)
    session = demo.services.sessions.peek(client.session_hash)
    plain = np.asarray(session.tiled.overview.convert("RGB"))
    client.predict("What is the histological type?", 0.0, 16, api_name="/ask")
    shown, thumbnail, status, files = client.predict(api_name="/explain_answer")
    assert "**Evidence heatmap of answer 1**" in status and "22 tiles scored by integrated gradients" in status
    geojson, png = sorted(paths(files), key=lambda path: not path.endswith(".geojson"))
    assert Path(geojson).name == "breast-biopsy-answer1.geojson" and Path(png).name == "breast-biopsy-answer1.png"
    relevance = relevance_of(geojson)
    assert len(relevance) == 22 and any(value != 0 for value in relevance)
    assert Image.open(png).mode == "RGBA"
    blended = np.asarray(Image.open(thumbnail).convert("RGB"))
    assert blended.shape == plain.shape and np.abs(blended.astype(int) - plain).mean() > 1     # heat on the overview
    shown = json.loads(shown)
    assert shown["handle"] == viewer["handle"] and shown["overlays"]["heatmap"]["available"]   # the same view
    heat = get(qa_app, shown, "overlays/heatmap.json").json()["data"]
    assert heat["scale"] == "diverging" and heat["max"] == -heat["min"] > 0
    assert sorted(cell[4] for cell in heat["cells"]) == pytest.approx(sorted(relevance))
    first, kept = session.evidence, session.evidence_files
    assert (first.question, first.answer) == session.history()[0] and all(Path(f).is_file() for f in kept)

    client.predict(api_name="/explain_answer")
    assert session.evidence is first                            # explained already: nothing recomputed
    processor = demo.services.models.get().processor
    used, original = [], processor.build_prompt
    processor.build_prompt = lambda q, h=(), s=True, template=None: used.append((q, template)) or original(q, h, s, template)
    try:
        client.predict("And the grade?", 0.0, 16, "vicuna_v1", api_name="/ask")
        used.clear()
        _, _, status, files = client.predict(api_name="/explain_answer")
    finally:
        processor.build_prompt = original
    assert "**Evidence heatmap of answer 2**" in status and used == [("And the grade?", "vicuna_v1")]
    assert session.evidence.question == "And the grade?" and not any(Path(f).exists() for f in kept)   # old ones go
    assert sorted(Path(f).name for f in paths(files)) == ["breast-biopsy-answer2.geojson", "breast-biopsy-answer2.png"]


def test_a_new_question_stops_a_running_attribution(qa_app, qa_data, monkeypatch):
    demo, _ = qa_app
    client, _ = uploaded(qa_app, qa_data)
    session = demo.services.sessions.peek(client.session_hash)
    real = evidence_handlers.attribute_on_gpu

    def interrupted(*args):
        progress = args[-1]
        progress(0.1, "scanning the path")
        session.stop_evidence()                      # what the Ask button's instant event does meanwhile
        return real(*args)

    monkeypatch.setattr(evidence_handlers, "attribute_on_gpu", interrupted)
    client.predict("Is there tumour?", 0.0, 8, api_name="/ask")
    status = client.predict(api_name="/explain_answer")[2]
    assert "heatmap of answer 1 was stopped" in status and session.evidence is None
    model = demo.services.models.get().model
    assert all(p.requires_grad for p in model.parameters()) and not model.training   # restored after the stop
    monkeypatch.setattr(evidence_handlers, "attribute_on_gpu", real)
    client.predict("And now?", 0.0, 8, api_name="/ask")
    assert "**Evidence heatmap of answer 2**" in client.predict(api_name="/explain_answer")[2]


def test_released_tokens_get_no_heatmap_and_the_slide_comes_from_the_slides_root(qa_app):
    client = Client(qa_app[1], verbose=False)
    viewer = json.loads(client.predict("S1", api_name="/pick_example")[UPLOAD_VIEWER])
    assert viewer["name"] == "S1" and viewer["width"] == 2048                         # TCGA-XX/S1.svs under the root
    assert not viewer["overlays"]["grid"]["available"] and "released slide tokens" in viewer["overlays"]["grid"]["note"]
    assert "no heatmap can be drawn for released slide tokens" in viewer["overlays"]["heatmap"]["note"]
    tissue = get(qa_app, viewer, "overlays/tissue.json").json()
    assert tissue["available"] and tissue["data"]["features"]                       # found on the slide, lazily
    client.predict("What is the grade?", 0.0, 8, api_name="/ask")
    _, _, status, files = client.predict(api_name="/explain_answer")
    assert status.startswith("**No evidence heatmap for this answer:** no heatmap can be drawn for released slide "
                             "tokens: they are 576 pooled tokens without tile positions") and not paths(files)

    viewer = json.loads(client.predict("S2", api_name="/pick_example")[UPLOAD_VIEWER])
    assert viewer["handle"] is None and "no file for slide S2 under --slides-root" in viewer["note"]


def test_closing_the_session_ends_its_viewer_handles_and_heatmap_files(qa_app, qa_data):
    demo, url = qa_app
    client, viewer = uploaded(qa_app, qa_data)
    client.predict("What is it?", 0.0, 8, api_name="/ask")
    client.predict(api_name="/explain_answer")
    folder = Path(demo.services.sessions.peek(client.session_hash).evidence_dir)
    assert folder.is_dir() and get(qa_app, viewer, "slide.dzi").status_code == 200
    with httpx.stream("GET", f"{url}/gradio_api/heartbeat/{client.session_hash}", timeout=10) as heartbeat:
        next(heartbeat.iter_lines())                       # the session is alive ... and the tab closes
    deadline = time.monotonic() + 10
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not folder.exists() and get(qa_app, viewer, "slide.dzi").status_code == 404
