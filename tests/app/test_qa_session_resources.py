"""What a Q&A session holds goes with it: its viewer handle (no deleted upload kept open and served after
the session idled out, or after a refused upload replaced it), its running heatmap, and no server path in
what an upload failure says."""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from tests.helpers.synthetic_slides import write_aperio_slide
from ui.qa import slide_handlers
from ui.qa.services import QaServices
from ui.qa.sessions import SlideSessions
from ui.qa.upload_sandbox import UploadSandbox
from ui.viewer.handles import ViewerRegistry

VIEW = SimpleNamespace(**{name: name for name in ("thumbnail", "slide_info", "chatbot", "bench_question",
                                                  "reference", "score", "turn_status", "viewer", "upload")})


@pytest.fixture
def world(tmp_path):
    incoming = tmp_path / "in"
    incoming.mkdir()
    slide = write_aperio_slide(incoming / "s.svs", width=2048, height=2048, downsamples=(1, 4)).path
    sandbox = UploadSandbox(tmp_path / "up", max_bytes=1 << 30, incoming_roots=[incoming], quota_bytes=1 << 30)
    registry = ViewerRegistry()
    services = QaServices(config=None, models=None, sessions=SlideSessions(sandbox, idle_ttl_s=3600),
                          sandbox=sandbox, scorer=None, viewer=registry)
    return SimpleNamespace(services=services, sandbox=sandbox, registry=registry, slide=slide, incoming=incoming)


def shown_upload(world, session_id: str):
    session = world.services.sessions.get(session_id)
    path = world.sandbox.accept(session_id, world.slide)
    view = world.registry.open(session_id, path, slot="qa")
    session.viewer_handle = view.handle
    return session, view


def test_an_ended_session_releases_its_viewer_handle_and_stops_its_heatmap(world):
    session, view = shown_upload(world, "s1")
    session.answers_total = 2                              # two answers given; their heatmaps may be running
    world.services.sessions.end("s1")                      # the tab closed, or the idle sweep
    assert world.registry.lookup(view.session_token, view.handle) is None
    assert not (world.sandbox.root / "s1").exists()
    assert session.evidence_stop_upto == 2 and session.viewer_handle is None


def test_a_refused_upload_after_a_shown_slide_releases_the_old_handle(world):
    session, view = shown_upload(world, "s1")
    bad = world.incoming / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(gr.Error):
        for _ in slide_handlers.upload_slide(world.services, VIEW, str(bad), None, SimpleNamespace(session_hash="s1"),
                                             progress=lambda *a, **k: None):
            pass
    assert world.registry.lookup(view.session_token, view.handle) is None   # its file was deleted by accept()
    assert session.viewer_handle is None


def test_an_upload_that_cannot_be_written_names_no_server_folder(world):
    archive = world.incoming / "long.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("/".join(["d" * 200] * 25) + "/s.svs", b"x" * 100)    # a path the file system refuses
    world.services.sessions.get("victim-session")
    with pytest.raises(gr.Error) as raised:
        for _ in slide_handlers.upload_slide(world.services, VIEW, str(archive), None,
                                             SimpleNamespace(session_hash="victim-session"),
                                             progress=lambda *a, **k: None):
            pass
    message = raised.value.message
    assert "could not be stored" in message
    assert str(world.sandbox.root) not in message and "victim-session" not in message and "OSError" not in message


def test_new_conversation_while_a_heatmap_is_stored_never_leaves_it_on_screen(tmp_path, monkeypatch):
    """The clear arrives while `shown` writes the heatmap's files: the heatmap is then not drawn at all."""
    import modeling.evidence_outputs as outputs
    from ui.qa import evidence_handlers
    from ui.qa.sessions import SlideQaSession
    from ui.viewer.overlays import Overlays

    slide = write_aperio_slide(tmp_path / "s.svs", width=2048, height=2048, downsamples=(1, 4)).path
    registry = ViewerRegistry()
    session = SlideQaSession("s1")
    session.name, session.chat, session.answers_total = "s.svs", SimpleNamespace(history=[("q1", "a1")]), 1
    session.viewer_handle = registry.open("s1", slide, slot="qa", overlays=Overlays()).handle
    services = SimpleNamespace(viewer=registry, sessions=SimpleNamespace(peek=lambda sid: session),
                               sandbox=UploadSandbox(tmp_path / "up", max_bytes=1 << 30, incoming_roots=[tmp_path]))
    view = SimpleNamespace(viewer="viewer", thumbnail="thumbnail", heatmap_status="status", heatmap_files="files")
    job = evidence_handlers.AnswerToExplain(1, session.chat, object(), [], "q1", "a1", None)
    evidence = SimpleNamespace(relevance=[0.5], method="x", timings_s={}, answer_log_likelihood=0.0,
                               baseline_log_likelihood=0.0)
    cleared = {}

    def write_files_while_the_person_clears(evidence, stem):
        cleared.update(evidence_handlers.stop_for_new_conversation(services, view, SimpleNamespace(session_hash="s1")))
        Path(f"{stem}.geojson").write_text("{}")
        Path(f"{stem}.png").write_bytes(b"")
        return {"geojson": f"{stem}.geojson", "png": f"{stem}.png"}

    monkeypatch.setattr(outputs, "write_evidence_files", write_files_while_the_person_clears)
    monkeypatch.setattr(outputs, "viewer_tiles", lambda evidence: [{"x": 0, "y": 0, "w": 256, "h": 256,
                                                                    "relevance": 0.5, "relevance_normalized": 1.0}])
    out = evidence_handlers.shown(services, view, session, job, evidence)
    assert cleared and "not shown" in out["status"] and "viewer" not in out
    assert registry.describe("s1", session.viewer_handle).overlays["heatmap"]["available"] is False
    assert session.evidence is None and session.evidence_files == []
