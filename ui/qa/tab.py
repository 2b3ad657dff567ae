"""The Slide Q&A tab: load a slide (upload, DICOM folder, a slide on this server, a WSI-Bench example),
see its overview with tissue and tiles, and chat with WSI-LLaVA about it; WSI-Bench answers are scored
live against their reference.

The work is done by `modeling` (model_manager, upload_sandbox, slide_service, slide_sessions) and
`evaluation` (bench_examples, live_scoring); this module draws and wires, and turns every failure into
a `gr.Error` with its real reason (`ui.errors`). Build it inside a `gr.Tab` with `QaServices` (app.py
makes them); it returns the handler to register with `demo.unload`:

    with gr.Tab("Slide Q&A"):
        end_session = build_qa_tab(services)
    demo.unload(end_session)

State is per browser session (Gradio's `session_hash`), kept in `services.sessions`.
"""

import html
import time
from pathlib import Path

import gradio as gr

from wsi_bench.tasks import resolve_task
from ui.qa.background import DONE
from modeling.errors import ModelError
from ui.qa.model_manager import FAILED_STATE, LOADING, NOT_STARTED, READY
from modeling.slide.errors import MppError, SlideError
from ui.qa.slide_steps import Step, extract_inputs, tile_for_model
from ui.qa.sessions import (
    NoSlideError,
    SlideQaSession,
    encode_slide_prefix,
    ensure_chat,
    stream_pieces,
)
from ui.qa.upload_sandbox import UPLOAD_SUFFIXES, confine, human_size
from ui.errors import redact, reports_errors, user_error
from ui.qa.services import QaServices
from ui.qa.views import (
    app_mpp_message,
    banner_markdown,
    chat_messages,
    example_choices,
    examples_markdown,
    ready_note,
    score_markdown,
    slide_markdown,
    turn_markdown,
)
from ui.zerogpu import gpu

# The GPU work, scheduled on ZeroGPU when present (a no-op elsewhere): pure functions whose results
# the caller keeps, so they may run in another process.
extract_on_gpu = gpu(duration=600)(extract_inputs)
encode_on_gpu = gpu(duration=120)(encode_slide_prefix)
stream_on_gpu = gpu(duration=300)(stream_pieces)


def _progress(progress, start: float, end: float):
    return lambda fraction, message: progress(start + (end - start) * fraction, desc=message)


def build_qa_tab(services: QaServices):
    config = services.config
    models, sessions, sandbox = services.models, services.sessions, services.sandbox

    with gr.Row():
        banner = gr.Markdown(lambda: banner_markdown(models.status(), config), elem_id="qa-model-banner")
        use_demo = gr.Button("Use the untrained demo model", visible=False, variant="secondary", scale=0,
                             elem_id="qa-use-demo")
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label=f"Upload a slide (up to {human_size(config.max_upload_bytes)}; DICOM, MIRAX or "
                                   "VMS as a .zip)", file_types=list(UPLOAD_SUFFIXES), elem_id="qa-upload")
            with gr.Accordion("Upload a DICOM folder", open=False):
                upload_folder = gr.File(label="DICOM WSI folder", file_count="directory", elem_id="qa-upload-folder")
            mpp = gr.Number(label="Microns per pixel, only for slides without resolution metadata (0: from the slide)",
                            value=0, minimum=0, elem_id="qa-mpp")
            example = gr.Dropdown(label="Or a WSI-Bench example (released slide tokens)",
                                  choices=example_choices(services), value=None, allow_custom_value=True,
                                  elem_id="qa-example")   # the list may arrive after the page: checked here
            examples_status = gr.Markdown(lambda: examples_markdown(services), elem_id="qa-examples-status")
            server_slide = gr.Dropdown(label="Or a slide on this server", choices=services.server_slides(),
                                       value=None, allow_custom_value=True, visible=bool(config.allowed_roots),
                                       elem_id="qa-server-slide")
        with gr.Column(scale=1):
            thumbnail = gr.Image(label="Overview: tissue (green), holes (orange), tiles (blue)", type="pil",
                                 format="png", interactive=False, height=420, elem_id="qa-thumbnail")
            slide_info = gr.Markdown("No slide yet.", elem_id="qa-slide-info")
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(label="Conversation about the slide", height=420, elem_id="qa-chat")
            with gr.Row():
                question = gr.Textbox(label="Question", placeholder="What is the histological type of this tumor?",
                                      scale=4, lines=2, elem_id="qa-question")
                ask_button = gr.Button("Ask", variant="primary", scale=1, elem_id="qa-ask")
            turn_status = gr.Markdown("No question yet.", elem_id="qa-turn-status")
            with gr.Row():
                new_chat = gr.Button("New conversation (same slide)", size="sm", elem_id="qa-new-conversation")
            with gr.Accordion("Generation settings", open=False):
                temperature = gr.Slider(0.0, 1.5, value=config.temperature, step=0.05,
                                        label="Temperature (0 = greedy; official 0.2)", elem_id="qa-temperature")
                max_new_tokens = gr.Slider(8, 2048, value=config.max_new_tokens, step=8, label="Max new tokens",
                                           elem_id="qa-max-new-tokens")
        with gr.Column(scale=2):
            bench_question = gr.Dropdown(label="WSI-Bench question of this example", choices=[], value=None,
                                         visible=False, elem_id="qa-bench-question")
            reference = gr.Markdown(elem_id="qa-reference")
            score = gr.Markdown(elem_id="qa-score")
    timer = gr.Timer(1.0)

    slide_outputs = [thumbnail, slide_info, chatbot, bench_question, reference, score, turn_status]

    def session_of(request: gr.Request) -> SlideQaSession:
        return sessions.get(request.session_hash)

    no_bench = {"choices": [], "value": None, "visible": False}

    def cleared(session: SlideQaSession, image, note: str, bench=None):
        bench = bench if bench is not None else gr.update(**no_bench)
        return image, slide_markdown(session, note), [], bench, "", "", "No question yet."

    def failure_noted(flow, name: str, public=lambda text: text):
        """`flow`'s outputs; on failure the slide panel says why too (then the error goes up as a toast)."""
        try:
            yield from flow
        except Exception as exc:
            reason = html.escape(public(redact(str(exc))), quote=False)
            yield None, f"**Could not load {name}:** {reason}", [], gr.update(**no_bench), "", "", "No question yet."
            raise

    def slide_file_flow(session: SlideQaSession, path: Path, name: str, source: str, mpp_value, progress):
        """Tile the slide with its own resolution; the MPP field is used only when the slide has none (then the
        session remembers the slide, and entering a value loads it again: `retry_with_mpp`)."""
        with session.lock:
            session.clear_slide()
            yield cleared(session, None, f"Opening **{name}** …")
            loaded = services.ready_model(session)
            model_config = loaded.model.config if loaded else None
            try:
                tiled = tile_for_model(path, model_config, services.pipeline(), _progress(progress, 0, .2))
            except MppError as exc:
                if not mpp_value:
                    session.mpp_from_field = (path, name, source)
                    raise MppError(app_mpp_message(exc)) from exc
                tiled = tile_for_model(path, model_config, services.pipeline(mpp_value), _progress(progress, 0, .2))
            settings = services.pipeline(tiled.mpp_override)
            session.set_tiled(name, source, tiled)
            if tiled.mpp_override is not None:        # another value typed later loads it again
                session.mpp_from_field = (path, name, source)
            if loaded is None:
                yield cleared(session, tiled.overview, "Tiled. The model is not ready (see above): tile features and "
                                                       "the slide encoding run when the first question is asked.")
                return
            yield cleared(session, tiled.overview, "Extracting tile features …")
            ensure_chat(session, loaded, settings, _progress(progress, .2, 1.0), extract_on_gpu, encode_on_gpu)
            yield cleared(session, tiled.overview, ready_note(session))

    def public_errors(flow, source: str):
        """`flow`'s outputs; the errors of an uploaded slide without our upload folders in their text."""
        if source != "uploaded":
            yield from flow
            return
        try:
            yield from flow
        except (SlideError, ModelError) as exc:
            raise type(exc)(sandbox.public_message(str(exc))) from exc

    def uploaded_flow(session: SlideQaSession, accept, shown_name: str, slide_name, mpp_value, progress):
        """An upload: the session's slide is dropped, `accept()` moves the upload into its folder, then the slide
        flow; outputs plus a cleared file input. A refused upload says why in the slide panel too."""
        def flow():
            with session.lock:
                session.clear_slide()
            path = accept()
            yield from slide_file_flow(session, path, slide_name(path), "uploaded", mpp_value, progress)

        for outputs in public_errors(failure_noted(flow(), shown_name, sandbox.public_message), "uploaded"):
            yield *outputs, None

    @reports_errors
    def upload_slide(file, mpp_value, request: gr.Request, progress=gr.Progress()):
        if not file:
            return
        session = session_of(request)
        yield from uploaded_flow(session, lambda: sandbox.accept(session.session_id, file), Path(file).name,
                                 lambda path: path.name, mpp_value, progress)

    @reports_errors
    def upload_dicom_folder(files, mpp_value, request: gr.Request, progress=gr.Progress()):
        if not files:
            return
        session = session_of(request)
        yield from uploaded_flow(session, lambda: sandbox.accept_folder(session.session_id, files), "DICOM folder",
                                 lambda path: "DICOM folder", mpp_value, progress)

    @reports_errors
    def retry_with_mpp(mpp_value, request: gr.Request, progress=gr.Progress()):
        """The microns per pixel typed for a slide without them in its metadata: load that slide again with it."""
        session = sessions.peek(request.session_hash)
        if session is None or session.mpp_from_field is None or not mpp_value:
            yield tuple(gr.skip() for _ in slide_outputs)
            return
        path, name, source = session.mpp_from_field
        flow = slide_file_flow(session, path, name, source, mpp_value, progress)
        yield from public_errors(failure_noted(flow, name, sandbox.public_message), source)

    @reports_errors
    def pick_server_slide(choice, mpp_value, request: gr.Request, progress=gr.Progress()):
        if not choice:
            return
        path = confine(choice, config.allowed_roots, what="slide")
        flow = slide_file_flow(session_of(request), path, path.name, "server", mpp_value, progress)
        yield from failure_noted(flow, path.name)

    @reports_errors
    def pick_example(slide_id, request: gr.Request, progress=gr.Progress()):
        if not slide_id:
            return
        if services.examples is None or services.examples.state != DONE:
            raise user_error(examples_markdown(services), title="WSI-Bench examples")
        chosen = services.catalog.get(slide_id)
        yield from failure_noted(example_flow(session_of(request), chosen, progress), chosen.slide_id)

    def example_flow(session: SlideQaSession, chosen, progress):
        from modeling.slide_inputs import load_slide_inputs

        with session.lock:
            session.clear_slide()
            yield cleared(session, None, f"Loading the released features of **{chosen.slide_id}** …")
            started = time.monotonic()
            progress(0.1, desc="fetching the released slide tokens")
            inputs = load_slide_inputs(services.catalog.features_file(chosen))
            session.set_inputs(chosen.slide_id, "WSI-Bench example", inputs, chosen,
                               [Step("released features", time.monotonic() - started, chosen.features_ref)])
            loaded = services.ready_model(session)
            if loaded is not None:
                ensure_chat(session, loaded, services.pipeline(), _progress(progress, .3, 1.0), extract_on_gpu,
                            encode_on_gpu)
            bench = gr.update(choices=[(chosen.question_label(i), i) for i in range(len(chosen.items))], value=None,
                              visible=True)
            yield cleared(session, None, ready_note(session), bench)

    @reports_errors
    def pick_bench_question(index, request: gr.Request):
        session = session_of(request)
        if index is None or session.example is None:
            return gr.update(), "", ""
        if not isinstance(index, int) or not 0 <= index < len(session.example.items):
            raise user_error(f"{index!r} is not a question of {session.example.slide_id}.", "WSI-Bench examples")
        item = session.example.items[index]
        session.bench_item, session.bench_score = item, None
        return (item.question, f"**Reference answer** ({resolve_task(item.task).title}, WSI-Bench "
                               f"`{item.question_id}`)\n\n{item.answer}",
                "_Ask this question: the answer is scored against the reference._")

    def wait_for_model(session: SlideQaSession, progress):
        models.begin(demo=session.use_demo)
        while (status := models.status(demo=session.use_demo)).state in (LOADING, NOT_STARTED):
            progress(None, desc=f"waiting for the model: {redact(status.detail)} ({status.elapsed_s:.0f} s)")
            time.sleep(0.5)
        return models.get(demo=session.use_demo)

    @reports_errors
    def ask(text, temperature_value, max_tokens_value, request: gr.Request, progress=gr.Progress()):
        from modeling.inference import GenerationSettings

        text = (text or "").strip()
        if not text:
            raise user_error("Type a question first.")
        session = session_of(request)
        if not session.has_slide:
            raise NoSlideError("No slide yet: upload a slide, pick a slide on this server or a WSI-Bench example.")
        settings = GenerationSettings(temperature=float(temperature_value), max_new_tokens=int(max_tokens_value))
        with session.lock:
            loaded = wait_for_model(session, progress)
            mpp_value = session.tiled.mpp_override if session.tiled else None
            ensure_chat(session, loaded, services.pipeline(mpp_value), _progress(progress, 0, 1.0), extract_on_gpu,
                        encode_on_gpu)
            history, answer = session.history(), ""
            yield chat_messages(history, (text, "")), "", f"Answering question {len(history) + 1} …"
            for piece in session.stream(text, settings, generate=stream_on_gpu):
                answer += piece
                yield chat_messages(history, (text, answer)), "", gr.skip()
            yield chat_messages(session.history()), "", turn_markdown(session)

    @reports_errors
    def score_answer(request: gr.Request):
        session = session_of(request)
        item, history = session.bench_item, session.history()
        if item is None or not history:
            return ""
        asked, answer = history[-1]
        if asked.strip() != item.question.strip():
            note = f"_Not scored: question {len(history)} is not the selected WSI-Bench question._"
            if session.bench_score is None:
                return note
            return (f"{score_markdown(session.bench_score)}\n\n{note} _The score above is the WSI-Bench question's, "
                    "asked earlier in this conversation._")
        session.bench_score = services.scorer.score(item, answer)
        return score_markdown(session.bench_score)

    def slide_panel(request: gr.Request):
        """The slide panel after a question: the steps run for it (tile features, slide encoding) are listed, and
        the overview is redrawn when the slide was tiled again for the model's tile encoder."""
        session = sessions.peek(request.session_hash)
        if session is None or not session.has_slide:
            return gr.skip(), gr.skip()
        overview = gr.skip()
        if session.overview_redrawn and session.tiled is not None:
            overview, session.overview_redrawn = session.tiled.overview, False
        return overview, slide_markdown(session, ready_note(session))

    @reports_errors
    def new_conversation(request: gr.Request):
        session = session_of(request)
        with session.lock:
            session.new_conversation()
        return [], "", "No question yet."

    @reports_errors
    def accept_demo(request: gr.Request, progress=gr.Progress()):
        session = session_of(request)
        progress(None, desc="building the untrained demo model")
        models.wait(demo=True)
        with session.lock:
            session.use_demo = True
            session.chat = session.chat_model = None      # rebuilt on the demo model at the next question
        return banner_markdown(models.status(demo=True), config), gr.update(visible=False)

    def refresh(request: gr.Request):
        session = sessions.peek(request.session_hash)
        demo = bool(session and session.use_demo)
        status = models.status(demo=demo)
        listed = services.listings_final
        final = status.state in (READY, FAILED_STATE) and listed
        examples = gr.update(choices=example_choices(services)) if listed else gr.skip()
        server = gr.update(choices=services.server_slides()) if listed else gr.skip()
        return (banner_markdown(status, config), gr.update(visible=status.state == FAILED_STATE and not demo),
                examples_markdown(services), examples, server, gr.Timer(active=not final))

    def end_session(request: gr.Request):
        sessions.end(request.session_hash)

    gpu_queue = {"concurrency_limit": 1, "concurrency_id": "gpu"}
    on_slide = {"show_progress_on": [thumbnail], **gpu_queue}     # the slide panel stays readable
    upload.upload(upload_slide, [upload, mpp], [*slide_outputs, upload], api_name="upload_slide", **on_slide)
    upload_folder.upload(upload_dicom_folder, [upload_folder, mpp], [*slide_outputs, upload_folder],
                         api_name="upload_dicom_folder", **on_slide)
    server_slide.input(pick_server_slide, [server_slide, mpp], slide_outputs, api_name="pick_server_slide",
                       **on_slide)
    example.input(pick_example, [example], slide_outputs, api_name="pick_example", **on_slide)
    bench_question.input(pick_bench_question, [bench_question], [question, reference, score],
                         api_name="pick_bench_question")
    # typing the microns per pixel reloads the slide that lacked them; the check is instant and outside the GPU
    # queue, so leaving the field otherwise never waits behind someone else's slide
    mpp_retry = gr.State(0)

    def wants_retry(value, count, request: gr.Request):
        session = sessions.peek(request.session_hash)
        if session is None or session.mpp_from_field is None or not value:
            return gr.skip()
        if session.tiled is not None and session.tiled.mpp_override == float(value):
            return gr.skip()                          # loaded with this value already
        return count + 1

    gr.on([mpp.submit, mpp.blur], wants_retry, [mpp, mpp_retry], mpp_retry, api_visibility="private",
          show_progress="hidden", concurrency_limit=None)
    mpp_retry.change(retry_with_mpp, [mpp], slide_outputs, api_name="set_mpp", **on_slide)
    # progress and a refusal show on the turn line: the conversation stays readable (an error on the chatbot
    # would cover it until the next answer)
    asked = gr.on([ask_button.click, question.submit], ask, [question, temperature, max_new_tokens],
                  [chatbot, question, turn_status], api_name="ask", show_progress_on=[turn_status], **gpu_queue)
    asked.success(score_answer, None, score, api_name="score_answer")
    asked.success(slide_panel, None, [thumbnail, slide_info], api_visibility="private", show_progress="hidden")
    new_chat.click(new_conversation, None, [chatbot, score, turn_status], api_name="new_conversation")
    use_demo.click(accept_demo, None, [banner, use_demo], api_name="use_demo_model")
    status_outputs = [banner, use_demo, examples_status, example, server_slide, timer]
    timer.tick(refresh, None, status_outputs, api_name="refresh_status", concurrency_limit=None, show_progress="hidden")
    # at page load too: the example list is there at once, not a second later
    gr.on(None, refresh, None, status_outputs, api_visibility="private", concurrency_limit=None,
          show_progress="hidden")
    return end_session
