"""The Slide Q&A tab's slide handlers: load a slide (upload, DICOM folder, a slide on this server, a WSI-Bench
example), reload it with typed microns per pixel, pick a WSI-Bench question.

Plain functions over `QaServices` and the tab's `QaView`; they yield `{component: value}` dicts (the slide
panel while the slide loads) and turn every failure into a `gr.Error` with its real reason (`ui.errors`).
`ui.qa.tab` binds them to their events (`ui.events.bind`). State is per browser session (Gradio's
`session_hash`), kept in `services.sessions`.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import gradio as gr

from modeling.errors import ModelError
from modeling.slide.errors import MppError, SlideError
from ui.errors import redact, reports_errors, user_error
from ui.qa import slide_viewer
from ui.qa.background import DONE
from ui.qa.layout import QaView
from ui.qa.services import QaServices
from ui.qa.sessions import (
    SlideQaSession,
    encode_slide_prefix,
    ensure_chat,
    stream_pieces,
)
from ui.qa.slide_steps import Step, extract_inputs, tile_for_model
from ui.qa.upload_sandbox import UploadError, confine
from ui.qa.views import app_mpp_message, examples_markdown, ready_note, slide_markdown
from ui.viewer.component import viewer_value
from ui.zerogpu import gpu
from wsi_bench.tasks import resolve_task

# The GPU work, scheduled on ZeroGPU when present (a no-op elsewhere): pure functions whose results
# the caller keeps, so they may run in another process.
extract_on_gpu = gpu(duration=600)(extract_inputs)
encode_on_gpu = gpu(duration=120)(encode_slide_prefix)
stream_on_gpu = gpu(duration=300)(stream_pieces)

NO_BENCH = {"choices": [], "value": None, "visible": False}


def scaled_progress(progress, start: float, end: float):
    """`progress` for one part of a handler's work: fractions 0..1 land between `start` and `end`."""
    return lambda fraction, message: progress(start + (end - start) * fraction, desc=message)


def session_of(services: QaServices, request: gr.Request) -> SlideQaSession:
    return services.sessions.get(request.session_hash)


def cleared(view: QaView, session: SlideQaSession, image, note: str, bench=None, viewer: str | None = None) -> dict:
    """The slide panel with `note`, an empty conversation and no WSI-Bench question (unless `bench`); the
    viewer's new value when given (`ui.qa.slide_viewer`), else it stays as it is."""
    out = {view.thumbnail: image, view.slide_info: slide_markdown(session, note), view.chatbot: [],
           view.bench_question: bench if bench is not None else gr.update(**NO_BENCH), view.reference: "",
           view.score: "", view.turn_status: "No question yet."}
    if viewer is not None:
        out[view.viewer] = viewer
    return out


def failure_noted(view: QaView, flow, name: str, public=lambda text: text):
    """`flow`'s outputs; on failure the slide panel says why too (then the error goes up as a toast)."""
    try:
        yield from flow
    except Exception as exc:
        reason = html.escape(public(redact(str(exc))), quote=False)
        yield {view.thumbnail: None, view.slide_info: f"**Could not load {name}:** {reason}", view.chatbot: [],
               view.bench_question: gr.update(**NO_BENCH), view.reference: "", view.score: "",
               view.turn_status: "No question yet.",
               view.viewer: viewer_value(None, note=f"Could not load {name}: see the slide panel above.")}
        raise


def public_errors(services: QaServices, flow, source: str):
    """`flow`'s outputs; the errors of an uploaded slide without our upload folders in their text."""
    if source != "uploaded":
        yield from flow
        return
    try:
        yield from flow
    except (SlideError, ModelError) as exc:
        raise type(exc)(services.sandbox.public_message(str(exc))) from exc
    except OSError as exc:          # a file the upload could not be written as: its name, not our folders
        raise UploadError(services.sandbox.public_message(f"the upload could not be stored ({exc.strerror or exc})"
                                                         + (f": {Path(exc.filename).name}" if exc.filename else ""))
                          ) from exc


def slide_file_flow(services: QaServices, view: QaView, session: SlideQaSession, path: Path, name: str,
                    source: str, mpp_value, progress):
    """Tile the slide with its own resolution; the MPP field is used only when the slide has none (then the
    session remembers the slide, and entering a value loads it again: `retry_with_mpp`)."""
    with session.lock:
        session.clear_slide()
        yield cleared(view, session, None, f"Opening **{name}** …",
                      viewer=slide_viewer.closed(services, session, f"Opening {name} …"))
        loaded = services.ready_model(session)
        model_config = loaded.model.config if loaded else None
        first = scaled_progress(progress, 0, .2)
        try:
            tiled = tile_for_model(path, model_config, services.pipeline(), first)
        except MppError as exc:
            if not mpp_value:
                session.mpp_from_field = (path, name, source)
                raise MppError(app_mpp_message(exc)) from exc
            tiled = tile_for_model(path, model_config, services.pipeline(mpp_value), first)
        settings = services.pipeline(tiled.mpp_override)
        session.set_tiled(name, source, tiled)
        if tiled.mpp_override is not None:        # another value typed later loads it again
            session.mpp_from_field = (path, name, source)
        shown = slide_viewer.show_tiled(services, session, tiled)
        if loaded is None:
            yield cleared(view, session, tiled.overview, "Tiled. The model is not ready (see above): tile features "
                                                         "and the slide encoding run when the first question is asked.",
                          viewer=shown)
            return
        yield cleared(view, session, tiled.overview, "Extracting tile features …", viewer=shown)
        ensure_chat(session, loaded, settings, scaled_progress(progress, .2, 1.0), extract_on_gpu, encode_on_gpu,
                    generation=services.config.generation_settings())
        yield cleared(view, session, tiled.overview, ready_note(session), viewer=shown)


def uploaded_flow(services: QaServices, view: QaView, file_box, session: SlideQaSession, accept, shown_name: str,
                  slide_name, mpp_value, progress):
    """An upload: the session's slide is dropped, `accept()` moves the upload into its folder, then the slide
    flow; its outputs plus a cleared `file_box`. A refused upload says why in the slide panel too."""
    def flow():
        with session.lock:
            session.clear_slide()
            slide_viewer.closed(services, session, "")     # accept() deletes the old upload: its handle goes first
        path = accept()
        yield from slide_file_flow(services, view, session, path, slide_name(path), "uploaded", mpp_value, progress)

    noted = failure_noted(view, flow(), shown_name, services.sandbox.public_message)
    for outputs in public_errors(services, noted, "uploaded"):
        yield {**outputs, file_box: None}


@reports_errors
def upload_slide(services: QaServices, view: QaView, file, mpp_value, request: gr.Request, progress=gr.Progress()):
    if not file:
        return
    session = session_of(services, request)
    yield from uploaded_flow(services, view, view.upload, session,
                             lambda: services.sandbox.accept(session.session_id, file), Path(file).name,
                             lambda path: path.name, mpp_value, progress)


@reports_errors
def upload_dicom_folder(services: QaServices, view: QaView, files, mpp_value, request: gr.Request,
                        progress=gr.Progress()):
    if not files:
        return
    session = session_of(services, request)
    yield from uploaded_flow(services, view, view.upload_folder, session,
                             lambda: services.sandbox.accept_folder(session.session_id, files), "DICOM folder",
                             lambda path: "DICOM folder", mpp_value, progress)


def wants_retry(services: QaServices, value, count, request: gr.Request):
    """The microns per pixel field left or submitted: the retry counter bumped when that reloads the slide (the
    check is instant and outside the GPU queue, so leaving the field never waits behind someone's slide)."""
    session = services.sessions.peek(request.session_hash)
    if session is None or session.mpp_from_field is None or not value:
        return gr.skip()
    if session.tiled is not None and session.tiled.mpp_override == float(value):
        return gr.skip()                          # loaded with this value already
    return count + 1


@reports_errors
def retry_with_mpp(services: QaServices, view: QaView, mpp_value, request: gr.Request, progress=gr.Progress()):
    """The microns per pixel typed for a slide without them in its metadata: load that slide again with it."""
    session = services.sessions.peek(request.session_hash)
    if session is None or session.mpp_from_field is None or not mpp_value:
        yield gr.skip()
        return
    path, name, source = session.mpp_from_field
    flow = slide_file_flow(services, view, session, path, name, source, mpp_value, progress)
    yield from public_errors(services, failure_noted(view, flow, name, services.sandbox.public_message), source)


@reports_errors
def pick_server_slide(services: QaServices, view: QaView, choice, mpp_value, request: gr.Request,
                      progress=gr.Progress()):
    if not choice:
        return
    path = confine(choice, services.config.allowed_roots, what="slide")
    flow = slide_file_flow(services, view, session_of(services, request), path, path.name, "server", mpp_value,
                           progress)
    yield from failure_noted(view, flow, path.name)


@reports_errors
def pick_example(services: QaServices, view: QaView, slide_id, request: gr.Request, progress=gr.Progress()):
    if not slide_id:
        return
    if services.examples is None or services.examples.state != DONE:
        raise user_error(examples_markdown(services), title="WSI-Bench examples")
    chosen = services.catalog.get(slide_id)
    flow = example_flow(services, view, session_of(services, request), chosen, progress)
    yield from failure_noted(view, flow, chosen.slide_id)


def example_flow(services: QaServices, view: QaView, session: SlideQaSession, chosen, progress):
    from modeling.model_inputs import slide_model_inputs

    with session.lock:
        session.clear_slide()
        yield cleared(view, session, None, f"Loading the released features of **{chosen.slide_id}** …",
                      viewer=slide_viewer.closed(services, session, f"Loading {chosen.slide_id} …"))
        started = time.monotonic()
        progress(0.1, desc="fetching the released slide tokens")
        inputs = slide_model_inputs(services.catalog.features_file(chosen), loaded=None)   # .pt / .h5 as they are
        session.set_inputs(chosen.slide_id, "WSI-Bench example", inputs, chosen,
                           [Step("released features", time.monotonic() - started, chosen.features_ref)])
        shown = slide_viewer.show_example(services, session, chosen)
        yield cleared(view, session, None, "Released features loaded.", viewer=shown)
        loaded = services.ready_model(session)
        if loaded is not None:
            ensure_chat(session, loaded, services.pipeline(), scaled_progress(progress, .3, 1.0), extract_on_gpu,
                        encode_on_gpu, generation=services.config.generation_settings())
        bench = gr.update(choices=[(chosen.question_label(i), i) for i in range(len(chosen.items))], value=None,
                          visible=True)
        yield cleared(view, session, None, ready_note(session), bench, viewer=shown)


@reports_errors
def pick_bench_question(services: QaServices, view: QaView, index, request: gr.Request):
    session = session_of(services, request)
    if index is None or session.example is None:
        return {view.question: gr.update(), view.reference: "", view.score: ""}
    if not isinstance(index, int) or not 0 <= index < len(session.example.items):
        raise user_error(f"{index!r} is not a question of {session.example.slide_id}.", "WSI-Bench examples")
    item = session.example.items[index]
    session.bench_item, session.bench_score = item, None
    return {view.question: item.question,
            view.reference: (f"**Reference answer** ({resolve_task(item.task).title}, WSI-Bench "
                             f"`{item.question_id}`)\n\n{item.answer}"),
            view.score: "_Ask this question: the answer is scored against the reference._"}
