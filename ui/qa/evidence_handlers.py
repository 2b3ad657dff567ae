"""The Slide Q&A tab's evidence heatmaps: after an answer has streamed, which tiles of the slide it rests on
(`modeling.evidence.explain_answer`: the answer's log-likelihood attributed to the tile features), shown on
the zoomable viewer and the overview, and offered as files (GeoJSON for QuPath, PNG).

    asked.success(bind(explain_latest_answer, services, view), None, view.heatmap_outputs(), **GPU_QUEUE)
    gr.on([ask.click, question.submit], bind(stop_for_question, services), [question], None)   # not queued
    gr.on([upload.upload, ...], bind(stop_for_slide, services, view), None, [status, files])  # not queued
    new_chat.click(bind(stop_for_new_conversation, services, view), None, view.heatmap_outputs())

What runs when, and why it is safe on the one model every session shares:
- The attribution is its own event, chained after the answer (`.success`), in the app's one GPU queue
  (`concurrency_id="gpu"`, limit 1) like generation, slide encoding and tile features: so it never runs
  while any session generates, encodes or attributes on the shared model (the attribution switches the
  model to eval mode and freezes its parameters for the call). The UI stays responsive: the answer is
  complete and the chat usable while it runs; progress shows on the heatmap line.
- It holds the session's lock only to take the turn it explains (the latest answer, its question, the
  turns before it, its prompt template, the slide inputs) and to store the result, never during the
  model passes: "New conversation" and the end of a session never wait for an attribution.
- A new question (or slide, or conversation) stops it: a small unqueued event marks the session's answers
  so far as stale (`SlideQaSession.stop_evidence`); a running attribution stops at its next model pass
  (the progress callback raises), a queued one does not start. The result is stored only when the
  session still shows the same chat and answer. On ZeroGPU the attribution runs in ZeroGPU's worker
  process, which does not see that mark: there it finishes before the next question's turn.

Released WSI-Bench slide tokens have no tile positions: the heatmap line says plainly that no heatmap can
be drawn, and why (`modeling.evidence.NoHeatmapError`), without running the model.
"""

from __future__ import annotations

import html
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from modeling.errors import ModelError
from modeling.slide.errors import SlideError
from ui.errors import redact, reports_errors
from ui.qa import slide_viewer
from ui.qa.layout import QaView
from ui.qa.services import QaServices
from ui.qa.sessions import SlideQaSession
from ui.zerogpu import gpu

HIDDEN_FILES = {"value": None, "visible": False}
LEGEND = "red: the tile supports the answer, blue: it speaks against it"


class AttributionStopped(Exception):
    """A newer question, slide or conversation made the running attribution stale."""


def attribute(model, processor, inputs, history, question: str, answer: str, template, progress):
    """`explain_answer` (a TileEvidence); a pure function of its arguments, so it may run on ZeroGPU."""
    from modeling.evidence import explain_answer

    return explain_answer(model, processor, inputs, history, question, answer, progress, template=template)


attribute_on_gpu = gpu(duration=300)(attribute)


@dataclass(frozen=True)
class AnswerToExplain:
    number: int                      # session.answers_total when taken: names the answer
    chat: object                     # the chat it belongs to (the result is kept only if it is still shown)
    loaded: object                   # the LoadedModel it was generated on
    history: list                    # the turns before it
    question: str
    answer: str
    template: str | None             # its prompt template


def latest_answer(session: SlideQaSession) -> AnswerToExplain | str | None:
    """The latest answer to explain; a reason (str) when it cannot have a heatmap; None when there is nothing
    to do (no answer, explained already, or stale). Call with the session's lock held."""
    from modeling.evidence import NoHeatmapError, check_explainable

    history = session.history()
    number = session.answers_total
    if not history or session.chat_model is None or number <= session.evidence_stop_upto \
            or number == session.evidence_answer:
        return None
    try:
        check_explainable(session.inputs)
    except NoHeatmapError as exc:
        return f"**No evidence heatmap for this answer:** {html.escape(str(exc), quote=False)}."
    question, answer = history[-1]
    return AnswerToExplain(number, session.chat, session.chat_model, history[:-1], question, answer,
                           session.last_template)


def _reporter(session: SlideQaSession, number: int, progress):
    def report(fraction: float, message: str) -> None:
        if number <= session.evidence_stop_upto:
            raise AttributionStopped(f"answer {number}")
        progress(fraction, desc=f"heatmap of answer {number}: {message}")
    return report


def started(services: QaServices, view: QaView, session: SlideQaSession, job: AnswerToExplain) -> dict:
    """The heatmap outputs while answer `job.number` is attributed: the previous heatmap taken down."""
    viewer = slide_viewer.with_heatmap(services, session, None, note=f"the heatmap of answer {job.number} is "
                                                                     "being computed")
    return {view.viewer: viewer if viewer is not None else gr.skip(),
            view.thumbnail: session.tiled.overview if session.tiled is not None else gr.skip(),
            view.heatmap_status: f"Drawing the evidence heatmap of answer {job.number}: which tiles it rests on …",
            view.heatmap_files: gr.update(**HIDDEN_FILES)}


@reports_errors
def explain_latest_answer(services: QaServices, view: QaView, request: gr.Request, progress=gr.Progress()):
    """Attribute the session's latest answer to the slide's tiles (after it has streamed; see the module
    docstring for the queue, the lock and how a new question stops it)."""
    session = services.sessions.peek(request.session_hash)
    job = None
    if session is not None:
        with session.lock:
            job = latest_answer(session)
    if job is None or isinstance(job, str):
        yield {view.heatmap_status: job if job is not None else gr.skip()}
        return
    yield started(services, view, session, job)
    try:
        model, processor = job.loaded.model, job.loaded.processor
        evidence = attribute_on_gpu(model, processor, job.chat.slide_inputs, job.history, job.question, job.answer,
                                    job.template, _reporter(session, job.number, progress))
    except AttributionStopped:
        yield {view.heatmap_status: f"_The heatmap of answer {job.number} was stopped: a newer question, slide or "
                                    "conversation came first._"}
        return
    except (ModelError, SlideError) as exc:
        yield {view.heatmap_status: f"**No evidence heatmap for answer {job.number}:** "
                                    f"{html.escape(redact(str(exc)), quote=False)}"}
        return
    with session.lock:
        outputs = shown(services, view, session, job, evidence)
    yield outputs


def shown(services: QaServices, view: QaView, session: SlideQaSession, job: AnswerToExplain, evidence) -> dict:
    """Keep `evidence` as the session's heatmap, write its files and show it (lock held); nothing when the
    session moved on meanwhile."""
    from modeling.evidence_outputs import blend_on_overview, viewer_tiles, write_evidence_files

    if moved_on(session, job):
        return not_shown(view, job)
    session.drop_evidence()
    session.evidence_dir = evidence_folder(services, session)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(session.name or "slide").stem)[:80] or "slide"
    files = write_evidence_files(evidence, Path(session.evidence_dir) / f"{stem}-answer{job.number}")
    session.evidence, session.evidence_answer = evidence, job.number
    session.evidence_files = [str(files["geojson"]), str(files["png"])]
    cells = [{**tile, "value": tile["relevance"]} for tile in viewer_tiles(evidence)]
    with session.overlay_lock:               # the conversation may have been cleared while the files were written
        if moved_on(session, job):
            session.drop_evidence()
            return not_shown(view, job)
        viewer = slide_viewer.with_heatmap(services, session, cells, label="relevance (nats)")
    thumbnail = blend_on_overview(evidence, session.tiled.overview) if session.tiled is not None else gr.skip()
    return {view.viewer: viewer if viewer is not None else gr.skip(), view.thumbnail: thumbnail,
            view.heatmap_status: summary_markdown(evidence, job.number, in_viewer=viewer is not None),
            view.heatmap_files: gr.update(value=session.evidence_files, visible=True)}


def moved_on(session: SlideQaSession, job: AnswerToExplain) -> bool:
    """The session no longer shows the answer `job` explains (another chat or answer, or it was stopped)."""
    return session.chat is not job.chat or session.answers_total != job.number or job.number <= session.evidence_stop_upto


def not_shown(view: QaView, job: AnswerToExplain) -> dict:
    return {view.heatmap_status: f"_The heatmap of answer {job.number} is not shown: the conversation moved on._"}


def evidence_folder(services: QaServices, session: SlideQaSession) -> str:
    """A new folder for the heatmap's files inside the session's upload folder: deleted with the session and,
    after a crash, by the next start-up's sweep, as its uploads are."""
    parent = services.sandbox.session_dir(session.session_id)
    parent.mkdir(parents=True, exist_ok=True)
    parent.chmod(0o700)
    return tempfile.mkdtemp(prefix="evidence-", dir=parent)


def summary_markdown(evidence, number: int, in_viewer: bool) -> str:
    where = "on the overview and in the viewer (tick *Heatmap*)" if in_viewer else "on the overview"
    seconds = evidence.timings_s.get("total", 0.0)
    return (f"**Evidence heatmap of answer {number}** {where}: {len(evidence.relevance)} tiles scored by "
            f"{evidence.method.replace('_', ' ')} in {seconds:.1f} s; {LEGEND}. The answer's log-likelihood is "
            f"{evidence.answer_log_likelihood:.2f} nats ({evidence.baseline_log_likelihood:.2f} with every tile "
            "replaced by the slide's mean tile). The files below open in QuPath (File > Import objects).")


def stop_for_question(services: QaServices, text, request: gr.Request) -> None:
    """A question is being asked: the heatmaps of the answers so far are stale (see the module docstring)."""
    session = services.sessions.peek(request.session_hash)
    if session is not None and (text or "").strip():
        session.stop_evidence()


def stop_for_slide(services: QaServices, view: QaView, request: gr.Request):
    """Another slide or a new conversation: no heatmap of the old answers is drawn, the files go."""
    session = services.sessions.peek(request.session_hash)
    if session is not None:
        session.stop_evidence()
    return {view.heatmap_status: "", view.heatmap_files: gr.update(**HIDDEN_FILES)}


def stop_for_new_conversation(services: QaServices, view: QaView, request: gr.Request):
    """A new conversation on the same slide: the heatmap comes off the viewer and the overview too."""
    session = services.sessions.peek(request.session_hash)
    if session is None:
        return {view.heatmap_status: gr.skip()}
    with session.overlay_lock:
        session.stop_evidence()
        viewer = slide_viewer.with_heatmap(services, session, None, note=slide_viewer.NO_HEATMAP_YET)
    return {**stop_for_slide(services, view, request), view.viewer: viewer if viewer is not None else gr.skip(),
            view.thumbnail: session.tiled.overview if session.tiled is not None else gr.skip()}
