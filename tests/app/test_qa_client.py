"""The Slide Q&A tab through its Gradio API (gradio_client against a real server in this process):
upload -> overview -> two questions on one cached slide prefix, WSI-Bench examples with reference and
live score, and every refusal reaching the client with its real reason."""

from __future__ import annotations

import os
import time

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app import build_app, launch_kwargs
from tests.app.browser import serve_blocks
from tests.app.conftest import qa_config

SERVED = ("max_file_size", "css", "show_error")


@pytest.fixture(scope="module")
def qa_app(qa_data, tmp_path_factory):
    config = qa_config(qa_data, "--max-upload-mb", "1", "--upload-dir", str(tmp_path_factory.mktemp("uploads")))
    demo = build_app(config)
    demo.services.models.wait(timeout_s=120)
    demo.services.examples.wait(timeout_s=60)
    with serve_blocks(demo, **{k: v for k, v in launch_kwargs(config).items() if k in SERVED}) as url:
        yield demo, url


def new_client(qa_app) -> Client:
    return Client(qa_app[1], verbose=False)


def texts(messages: list[dict]) -> list[tuple[str, str]]:
    """Chatbot messages as (role, text) pairs (gradio 6 sends content as a list of parts)."""
    out = []
    for message in messages:
        content = message["content"]
        text = content if isinstance(content, str) else "".join(part.get("text", "") for part in content)
        out.append((message["role"], text))
    return out


def colour_fraction(image: np.ndarray, channel: int, margin: int = 40) -> float:
    """Fraction of pixels whose `channel` exceeds both others by `margin` (tile blue, contour green)."""
    others = [c for c in range(3) if c != channel]
    main = image[..., channel].astype(int)
    return float(((main > image[..., others[0]] + margin) & (main > image[..., others[1]] + margin)).mean())


def test_upload_draws_tissue_and_tiles_and_gets_the_slide_ready(qa_app, qa_data):
    demo, _ = qa_app
    client = new_client(qa_app)
    thumbnail, info, chat, bench, reference, score, turn, viewer, cleared = client.predict(
        handle_file(str(qa_data.slide)), 0, api_name="/upload_slide")
    assert "**breast-biopsy.svs** (uploaded) · aperio · 2048 × 2048 px" in info
    assert "22 tiles of 256 px at 0.5 um/px" in info and "random-tiny tile encoder (UNTRAINED" in info
    assert "slide encoding" in info and "**Ready:**" in info and chat == [] and cleared is None
    assert '"name":"breast-biopsy.svs"' in viewer and '"handle":"' in viewer        # the zoomable viewer's slide
    image = np.asarray(Image.open(thumbnail).convert("RGB"))
    assert colour_fraction(image, 2) > 0.05 and colour_fraction(image, 1, margin=30) > 0.001   # tiles, contours
    kept = demo.services.sandbox.session_dir(client.session_hash) / "slide" / "breast-biopsy.svs"
    assert kept.is_file() and kept.stat().st_size == qa_data.slide.stat().st_size
    for private in (kept, qa_data.server_slides / "on-server.svs", "/etc/passwd"):    # never served back
        assert httpx.get(f"{qa_app[1]}/gradio_api/file={private}").status_code in (403, 404)


def test_two_questions_stream_on_one_cached_slide_prefix(qa_app, qa_data):
    demo, _ = qa_app
    client = new_client(qa_app)
    client.predict(handle_file(str(qa_data.slide)), 0, api_name="/upload_slide")
    model = demo.services.models.get().model
    encoder_calls = []
    hook = model.slide_encoder.register_forward_hook(lambda *args: encoder_calls.append(1))
    try:
        job = client.submit("What is the histological type?", 0.0, 24, api_name="/ask")
        first_chat, question_box, turn = job.result()
        partial_answers = {texts(out[0])[-1][1] for out in job.outputs() if out[0]}
        second_chat, _, second_turn = client.predict("And the grade?", 0.0, 24, api_name="/ask")
    finally:
        hook.remove()
    assert question_box == "" and len(partial_answers) >= 3            # the answer arrived in pieces
    assert [role for role, _ in texts(second_chat)] == ["user", "assistant", "user", "assistant"]
    assert texts(second_chat)[:2] == texts(first_chat) and texts(second_chat)[2][1] == "And the grade?"
    assert encoder_calls == []        # encoded once at upload; both answers reused the cached prefix
    assert "Turn 2" in second_turn and "encoded 1×" in second_turn
    session = demo.services.sessions.peek(client.session_hash)
    assert session.prefix_encodings == 1 and [q for q, _ in session.history()] == [
        "What is the histological type?", "And the grade?"]

    chat, score, turn = client.predict(api_name="/new_conversation")
    assert chat == [] and session.history() == [] and session.chat is not None    # same slide, same cache


def test_wsi_bench_example_shows_the_reference_and_scores_the_answer(qa_app):
    client = new_client(qa_app)
    banner, examples_status, examples, server, _ = client.predict(api_name="/refresh_status")   # (no button output)
    assert "UNTRAINED" in banner and "2 example slides" in examples_status
    assert [value for _, value in examples["choices"]] == ["S1", "S2"]
    assert [label for label, _ in server["choices"]] == ["server-slides/on-server.svs"]
    thumbnail, info, chat, bench, *_ = client.predict("S1", api_name="/pick_example")
    assert thumbnail is None and "released features 576 × 1024" in info and "4 WSI-Bench questions" in info
    labels = [label for label, _ in bench["choices"]]
    assert labels[0].startswith("Grading: What is the FIGO grading") and len(labels) == 4

    question, reference, score = client.predict(0, api_name="/pick_bench_question")
    assert question == "What is the FIGO grading of this tumor?" and "FIGO grade I." in reference
    assert "(Grading, WSI-Bench" in reference                        # the task's title, not its id
    client.predict(question, 0.0, 16, api_name="/ask")
    score = client.predict(api_name="/score_answer")
    assert "**WSI-Precision:**" in score and "**WSI-Relevance:**" in score and "Approximate" in score

    question, _, _ = client.predict(2, api_name="/pick_bench_question")                # multiple choice
    client.predict(question, 0.0, 8, api_name="/ask")
    assert "**Accuracy:**" in client.predict(api_name="/score_answer")
    client.predict("Something else entirely?", 0.0, 8, api_name="/ask")
    follow_up = client.predict(api_name="/score_answer")
    assert "Not scored: question 3" in follow_up and "**Accuracy:**" in follow_up    # the earlier score stays
    client.predict(1, api_name="/pick_bench_question")
    client.predict("Another question?", 0.0, 8, api_name="/ask")
    assert "**Accuracy:**" not in client.predict(api_name="/score_answer")          # not asked yet: nothing kept


def test_a_refused_upload_replaces_the_slide_shown_and_says_why(qa_app, qa_data, tmp_path):
    import zipfile

    demo, _ = qa_app
    client = new_client(qa_app)
    client.predict(str(qa_data.server_slides / "on-server.svs"), 0, api_name="/pick_server_slide")
    archive = tmp_path / "two-slides.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(qa_data.slide, "a.svs")
        zf.write(qa_data.slide, "b.svs")
    job = client.submit(handle_file(str(archive)), 0, api_name="/upload_slide")
    with pytest.raises(Exception, match="two-slides.zip: expected one slide"):
        job.result()
    info = job.outputs()[-1][1]
    assert info.startswith("**Could not load two-slides.zip:**") and "on-server" not in info
    assert not demo.services.sessions.peek(client.session_hash).has_slide    # its file is gone: so is the slide


@pytest.mark.parametrize("content, message", [
    (lambda slide: b"sample,diagnosis\n", "breast.svs: cannot open it as a slide: not a whole-slide image: the file "
                                           "content is text"),
    (lambda slide: slide.read_bytes()[:60_000], "breast.svs: .*truncated TIFF: page 0 needs image data up to byte"),
])
def test_unreadable_uploads_fail_with_the_slide_pipeline_reason(qa_app, qa_data, tmp_path, content, message):
    client = new_client(qa_app)
    path = tmp_path / "breast.svs"
    path.write_bytes(content(qa_data.slide))
    with pytest.raises(Exception, match=message) as caught:
        client.predict(handle_file(str(path)), 0, api_name="/upload_slide")
    assert "wsi-llava-uploads" not in str(caught.value) and str(tmp_path) not in str(caught.value)   # no server paths


def test_preconditions_and_unknown_choices_are_explained(qa_app):
    client = new_client(qa_app)
    with pytest.raises(Exception, match="No slide yet: upload a slide"):
        client.predict("What is it?", 0.2, 8, api_name="/ask")
    with pytest.raises(Exception, match="Type a question first"):
        client.predict("  ", 0.2, 8, api_name="/ask")
    with pytest.raises(Exception, match="'TCGA-ZZ' is not one of the listed WSI-Bench examples"):
        client.predict("TCGA-ZZ", api_name="/pick_example")


def test_type_and_size_limits(qa_app, tmp_path):
    client = new_client(qa_app)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a slide")
    with pytest.raises(Exception, match="Invalid file type.*'.svs'"):
        client.predict(handle_file(str(notes)), 0, api_name="/upload_slide")
    big = tmp_path / "big.svs"
    big.write_bytes(os.urandom(1_200_000))                                     # the app's limit is 1 MB
    with pytest.raises(ValueError, match="exceeds the maximum file size"):   # refused before sending
        client.predict(handle_file(str(big)), 0, api_name="/upload_slide")
    with open(big, "rb") as handle:                                           # and by the server itself
        response = httpx.post(f"{qa_app[1]}/gradio_api/upload", files={"files": ("big.svs", handle)})
    assert response.status_code == 413 and "File size exceeded maximum allowed size" in response.text


def test_only_slides_under_the_allowed_roots_are_opened(qa_app, qa_data):
    client = new_client(qa_app)
    thumbnail, info, *_, viewer = client.predict(str(qa_data.server_slides / "on-server.svs"), 0,
                                                 api_name="/pick_server_slide")
    assert "**on-server.svs** (server)" in info and thumbnail and '"name":"on-server.svs"' in viewer   # zoomable
    link = qa_data.server_slides / "link-out.svs"
    if not link.exists():
        link.symlink_to(qa_data.outside / "secret.svs")
    for attempt in ("../outside/secret.svs", str(qa_data.outside / "secret.svs"), "/etc/passwd", str(link)):
        with pytest.raises(Exception, match="is outside the folders this server may read"):
            client.predict(attempt, 0, api_name="/pick_server_slide")


def test_secrets_are_never_sent_to_the_browser(qa_app, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key-0123456789")
    page_config = httpx.get(f"{qa_app[1]}/config").text
    assert os.environ["HF_TOKEN"] not in page_config and "sk-test-secret" not in page_config
    from modeling.errors import ModelError
    from ui.errors import to_gr_error

    shown = to_gr_error(ModelError(f"the Hub refused token {os.environ['HF_TOKEN']} and key "
                                   "sk-test-secret-key-0123456789")).message
    assert os.environ["HF_TOKEN"] not in shown and "sk-test-secret" not in shown and "[HF_TOKEN hidden]" in shown


def test_closing_the_session_deletes_its_uploads(qa_app, qa_data):
    demo, url = qa_app
    client = new_client(qa_app)
    client.predict(handle_file(str(qa_data.slide)), 0, api_name="/upload_slide")
    folder = demo.services.sandbox.session_dir(client.session_hash)
    assert folder.is_dir()
    with httpx.stream("GET", f"{url}/gradio_api/heartbeat/{client.session_hash}", timeout=10) as heartbeat:
        next(heartbeat.iter_lines())                       # the session is alive ... and the tab closes
    deadline = time.monotonic() + 10
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not folder.exists() and demo.services.sessions.peek(client.session_hash) is None


def test_the_prompt_template_of_the_tab_reaches_the_prompt(qa_app, qa_data):
    demo, _ = qa_app
    client = new_client(qa_app)
    client.predict(handle_file(str(qa_data.slide)), 0, api_name="/upload_slide")
    processor = demo.services.models.get().processor
    used = []
    original = processor.build_prompt

    def recording(question, history=(), with_slide=True, template=None):
        used.append(template)
        return original(question, history, with_slide, template)

    processor.build_prompt = recording
    try:
        client.predict("What is the grade?", 0.0, 8, api_name="/ask")             # no template: the checkpoint's
        client.predict("And the stage?", 0.0, 8, "vicuna_v1", api_name="/ask")    # switched mid-conversation
    finally:
        processor.build_prompt = original
    assert used[0] == "llava_v1" and used[-1] == "vicuna_v1"
    session = demo.services.sessions.peek(client.session_hash)
    assert [q for q, _ in session.history()] == ["What is the grade?", "And the stage?"]


def test_a_huge_question_is_refused_at_once_and_nothing_runs(qa_app, qa_data):
    """A 1 MB question is refused by its length (not a RuntimeError of a 375 GB allocation); one under the
    character limit whose prompt and max new tokens exceed the model's context is refused with both numbers.
    Neither reaches the model; the conversation goes on."""
    demo, _ = qa_app
    client = new_client(qa_app)
    client.predict(handle_file(str(qa_data.slide)), 0, api_name="/upload_slide")
    model = demo.services.models.get().model
    calls = []
    hooks = [module.register_forward_pre_hook(lambda *args: calls.append(1))
             for module in (model, model.language_model, model.slide_encoder)]
    try:
        with pytest.raises(Exception, match=r"The question has 1,048,576 characters; at most 4,000 are accepted "
                                            r"\(--max-question-chars") as refused:
            client.predict("x" * (1 << 20), 0.0, 24, api_name="/ask")
        assert "RuntimeError" not in str(refused.value)
        long_question = "Describe the tumour cells. " * 140                # 3,779 characters: under the limit
        with pytest.raises(Exception, match=r"needs [\d,]+ tokens, over the model's context of 4,096: the prompt is "
                                            r"[\d,]+ tokens \(the question, the 576 slide tokens.*up to 2,048 new "
                                            r"tokens.*Ask a shorter question, allow at most [\d,]+ new tokens"):
            client.predict(long_question, 0.0, 2048, api_name="/ask")
        assert calls == []
    finally:
        for hook in hooks:
            hook.remove()
    chat, _, turn = client.predict("What is the grade?", 0.0, 8, api_name="/ask")
    assert [text for role, text in texts(chat) if role == "user"] == ["What is the grade?"] and "Turn 1" in turn
