"""Per-browser-session slide Q&A state, and the registry that ends sessions and deletes their uploads.

A session holds one slide at a time: an uploaded or server slide (tiled, then encoded when a model is
ready) or released slide tokens (a WSI-Bench example), the chat about it, and the model it talks to.
The chat (`modeling.inference.SlideChatSession`) keeps the slide prefix's KV cache: the slide is
encoded once (`prefix_encodings`) and every later question reuses it.

    sessions = SlideSessions(sandbox, idle_ttl_s=7200)
    session = sessions.get("3fa8c1...")                    # created on first use
    with session.lock:
        session.set_tiled("a.svs", "upload", tiled)        # or session.set_inputs(name, "example", inputs)
        ensure_chat(session, loaded, PipelineSettings(), progress)
        answer = "".join(session.stream("What is the grade?", GenerationSettings()))
    sessions.end("3fa8c1...")                              # chat dropped, upload folder deleted

Idle sessions (browser gone without an unload, API clients) are ended by `sweep()` after `idle_ttl_s`.
"""

from __future__ import annotations

from collections.abc import Callable

import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from modeling.slide.errors import SlideError
from ui.qa.slide_steps import PipelineSettings, Progress, Step, TiledSlide, extract_inputs, tile_for_model


class NoSlideError(SlideError):
    """A question or action that needs a slide, in a session that has none."""


@dataclass
class SlideQaSession:
    session_id: str
    # a plain Lock: Gradio resumes a generator handler in any worker thread, and a Lock (unlike an RLock)
    # may be released by another thread than the one that took it
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # held only to decide and draw (or clear) the heatmap overlay: a heatmap finishing while the conversation is
    # cleared is either cleared after it is drawn or never drawn (never held during model passes)
    overlay_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    name: str | None = None              # what the slide is called on screen
    source: str | None = None            # "upload" | "server" | "example"
    tiled: TiledSlide | None = None      # slide files only
    inputs: object | None = None         # SlideInputs
    inputs_encoder: str | None = None    # the tile encoder the tile features came from (None: slide tokens)
    chat: object | None = None           # SlideChatSession
    chat_model: object | None = None     # the LoadedModel the chat runs on
    example: object | None = None        # the WSI-Bench example (ui.qa.examples.SlideExample)
    bench_item: object | None = None     # the WSI-Bench question picked from the example
    bench_score: object | None = None    # the live score of the answer to `bench_item` (kept over follow-ups)
    mpp_from_field: tuple | None = None  # (path, name, source): a slide without MPP metadata; it takes the typed one
    overview_redrawn: bool = False       # tiled again for another tile encoder: the overview shown is older
    use_demo: bool = False               # this person accepted the untrained demo model
    steps: list[Step] = field(default_factory=list)
    prefix_encodings: int = 0            # how often the slide prefix was computed (once per slide and model)
    turns: int = 0
    answers_total: int = 0               # answers ever given in this session (never reset): names an answer
    last_template: str | None = None     # the prompt template of the latest answer (its heatmap scores under it)
    viewer_handle: str | None = None     # the slide's handle in the viewer registry (ui.viewer), if shown there
    evidence: object | None = None       # TileEvidence of answer number `evidence_answer`
    evidence_answer: int = 0
    evidence_files: list[str] = field(default_factory=list)   # its GeoJSON and PNG, in `evidence_dir`
    evidence_dir: str | None = None      # a temp folder of this session's heatmap files
    evidence_stop_upto: int = 0          # answers up to this number get no heatmap (a newer question or slide came)
    last_used: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def clear_slide(self) -> None:
        self.name = self.source = self.tiled = self.inputs = self.inputs_encoder = None
        self.chat = self.chat_model = self.example = self.bench_item = self.bench_score = None
        self.mpp_from_field, self.overview_redrawn = None, False
        self.steps, self.prefix_encodings, self.turns = [], 0, 0
        self.drop_evidence()

    def drop_evidence(self) -> None:
        """Forget the heatmap shown and delete its files (Gradio keeps its own copies of files it served)."""
        self.evidence, self.evidence_answer, self.evidence_files = None, 0, []
        if self.evidence_dir is not None:
            shutil.rmtree(self.evidence_dir, ignore_errors=True)
            self.evidence_dir = None

    def stop_evidence(self) -> None:
        """No heatmap for the answers given so far: a running attribution stops at its next model pass, a
        queued one does not start (a new question, slide or conversation makes them stale)."""
        self.evidence_stop_upto = self.answers_total

    def set_tiled(self, name: str, source: str, tiled: TiledSlide) -> None:
        self.clear_slide()
        self.name, self.source, self.tiled = name, source, tiled
        self.steps = list(tiled.steps)

    def set_inputs(self, name: str, source: str, inputs, example=None, steps: list[Step] | None = None) -> None:
        self.clear_slide()
        self.name, self.source, self.inputs, self.example = name, source, inputs, example
        self.steps = list(steps or [])

    @property
    def has_slide(self) -> bool:
        return self.tiled is not None or self.inputs is not None

    def history(self) -> list[tuple[str, str]]:
        return list(self.chat.history) if self.chat is not None else []

    def new_conversation(self) -> None:
        """Forget the turns, keep the slide and its cached prefix."""
        if self.chat is not None:
            self.chat.history.clear()
        self.bench_score = None
        self.drop_evidence()

    def stream(self, question: str, settings, generate=None) -> Iterator[str]:
        """The answer's pieces as they are generated (the chat must exist: see `ensure_chat`).

        `generate(chat, question, settings)` runs the generation (default `stream_pieces`); the app passes
        a GPU-scheduled version. Should it run in another process (ZeroGPU), the turn is still recorded."""
        if self.chat is None:
            raise NoSlideError("No slide is ready for questions; load a slide first.")
        chat, turns_before = self.chat, len(self.chat.history)
        pieces = []
        for piece in (generate or stream_pieces)(chat, question, settings):
            pieces.append(piece)
            yield piece
        if len(chat.history) == turns_before:          # generated elsewhere: record the turn here
            from modeling.generation_settings import finish_answer

            chat.history.append((question, finish_answer(settings or chat.settings, "".join(pieces))))
        self.turns += 1
        self.answers_total += 1
        self.last_template = chat.template_name(settings)


def stream_pieces(chat, question: str, settings) -> Iterator[str]:
    yield from chat.stream(question, settings=settings)


def encode_slide_prefix(chat) -> None:
    """Compute the chat's slide-prefix KV cache now (slide encoder + projector + LLM over the prefix).

    `SlideChatSession` would do this lazily on the first question; doing it here lets the app show it
    as its own progress step."""
    chat.prepare()


def ensure_chat(session: SlideQaSession, loaded, settings: PipelineSettings = PipelineSettings(),
                progress: Progress = lambda f, m: None, extract=extract_inputs, encode=encode_slide_prefix,
                generation=None):
    """The session's chat on `loaded`, building what is missing: tiles (for another tile encoder), tile
    features, the chat and its encoded slide prefix. Progress: 0-0.85 features, 0.85-1 slide encoding.
    `generation` (GenerationSettings, default the official ones) sets the prompt template the prefix is
    encoded with; the slide inputs are checked against the model once, by the chat.

    `extract` and `encode` do the heavy work (the app passes GPU-scheduled versions); everything they
    produce is returned to and kept by this function, so they may run in another process."""
    from modeling.inference import SlideChatSession

    if session.chat is not None and session.chat_model is loaded:
        return session.chat
    if not session.has_slide:
        raise NoSlideError("No slide yet: upload a slide, pick a slide on this server or a WSI-Bench example.")
    config = loaded.model.config
    if session.tiled is not None and (session.inputs is None or session.inputs_encoder != config.tile_encoder):
        if session.tiled.tile_encoder != config.tile_encoder:
            progress(0.0, f"tiling again for the {config.tile_encoder} tile encoder")
            retiled = tile_for_model(session.tiled.path, config, settings)
            again = [Step(f"{step.name} again, for the {config.tile_encoder} tile encoder", step.seconds, step.detail)
                     for step in retiled.steps]
            session.tiled, session.steps, session.overview_redrawn = retiled, session.steps + again, True
        started = time.monotonic()
        session.inputs = extract(session.tiled, loaded, settings, lambda f, m: progress(0.85 * f, m))
        session.inputs_encoder = config.tile_encoder
        session.steps.append(Step("tile features", time.monotonic() - started, _features_detail(session.inputs, config)))
    progress(0.85, "slide encoding")
    started = time.monotonic()
    chat = SlideChatSession(loaded.model, loaded.processor, session.inputs, generation)
    encode(chat)
    session.chat, session.chat_model = chat, loaded
    session.prefix_encodings += 1
    what = "slide encoder + projector" if session.inputs_encoder else "projector (released slide tokens)"
    session.steps.append(Step("slide encoding", time.monotonic() - started,
                              f"{what} + language-model prefix on {loaded.name}; cached for every question"))
    progress(1.0, "ready")
    return chat


def _features_detail(inputs, config) -> str:
    from modeling.tile_encoders import TILE_ENCODERS

    spec = TILE_ENCODERS.get(config.tile_encoder)
    state = "" if spec is None else (" (trained)" if spec.trained else " (UNTRAINED random weights)")
    count, width = inputs.tile_features.shape[1:]
    return f"{count} tiles x {width}-d from the {config.tile_encoder} tile encoder{state}"


class SlideSessions:
    def __init__(self, sandbox=None, idle_ttl_s: float = 7200.0):
        self.sandbox = sandbox               # UploadSandbox or None
        self.idle_ttl_s = idle_ttl_s
        self.on_end: list[Callable[[SlideQaSession], None]] = []     # e.g. release its viewer handle
        self._sessions: dict[str, SlideQaSession] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str) -> SlideQaSession:
        self.sweep()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                session = self._sessions[session_id] = SlideQaSession(session_id)
        session.touch()
        return session

    def peek(self, session_id: str) -> SlideQaSession | None:
        with self._lock:
            return self._sessions.get(session_id)

    def end(self, session_id: str) -> None:
        """Drop the session (its chat and caches, its `on_end` resources such as a viewer handle), stop its
        heatmaps and delete its uploads."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.stop_evidence()                  # a running attribution stops at its next model pass
            with session.lock:
                session.clear_slide()
                for release in self.on_end:
                    release(session)
        if self.sandbox is not None:
            self.sandbox.discard(session_id)

    def sweep(self) -> list[str]:
        """End sessions idle for longer than `idle_ttl_s` (and not busy); returns their ids."""
        now = time.monotonic()
        with self._lock:
            idle = [sid for sid, s in self._sessions.items() if now - s.last_used > self.idle_ttl_s]
        ended = []
        for session_id in idle:
            session = self.peek(session_id)
            if session is not None and session.lock.acquire(blocking=False):
                session.lock.release()
                self.end(session_id)
                ended.append(session_id)
        return ended

    def close_all(self) -> None:
        with self._lock:
            ids = list(self._sessions)
        for session_id in ids:
            self.end(session_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
