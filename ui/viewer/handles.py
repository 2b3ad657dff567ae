"""Opaque per-session slide handles: which browser session may see which slide, for how long, how fast.

    registry = ViewerRegistry(ViewerSettings())
    view = registry.open(request.session_hash, "slide.svs", name="biopsy.svs", slot="qa",
                         overlays=overlays_from_tiling(tiled.tiling))          # SlideError: unreadable
    view.url_base                   # "viewer/s/<session token>/<handle>/" (relative to the app's root)
    registry.set_overlays(request.session_hash, view.handle, heatmap=heatmap_overlay(cells))
    registry.release_session(request.session_hash)                              # demo.unload

How the browser proves its session: every viewer URL carries two random values, the session's secret
token (minted on the session's first `open`, never Gradio's own session id) and the slide's handle. A
request is served only when the handle exists, belongs to the session that token was minted for, and has
not expired (unused for `handle_ttl_s`); everything else (another session's handle, an expired, released
or made-up one, a wrong token) gets the same 404. The token and handle reach only that session's page (in
the viewer component's value), never a path. A "copy link" URL is a capability for that session's view:
it works, in any tab, while the session lives.

Limits: a session keeps at most `max_handles_per_session` handles (opening one more releases its oldest;
opening into a `slot` that holds one releases that one), and its requests share one token bucket
(`rate_per_s`, `rate_burst`: 429 with Retry-After past that).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ui.viewer.cache import TileCache
from ui.viewer.overlays import OVERLAY_KINDS, Overlays, detect_tissue_geojson
from ui.viewer.ratelimit import TokenBucket
from ui.viewer.settings import ViewerSettings
from ui.viewer.tiles import TileSource

HANDLE_BYTES = 16                 # secrets.token_urlsafe: 22 characters
SESSION_TOKEN_BYTES = 24          # 32 characters
SWEEP_EVERY_S = 60.0


@dataclass(frozen=True)
class ViewerHandle:
    """What a tab gets from `open`: the handle and what the viewer component needs to show the slide."""

    handle: str
    session_token: str
    name: str
    width: int                    # level-0 px
    height: int
    mpp: float | None             # level-0 um/px (None: no scale bar)
    objective_power: float | None
    overlays: dict                # kind -> {"available", "note"}
    version: int                  # bumped when overlays change: the component redraws them

    @property
    def url_base(self) -> str:
        return f"viewer/s/{self.session_token}/{self.handle}/"


@dataclass
class _Entry:
    handle: str
    session_id: str
    source: TileSource
    name: str
    slot: str
    overlays: Overlays
    expires_at: float
    overview_png: bytes | None = None
    version: int = 1
    tissue_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass
class _Session:
    session_id: str
    token: str
    bucket: TokenBucket
    handles: OrderedDict[str, None] = field(default_factory=OrderedDict)   # oldest first


class ViewerRegistry:
    def __init__(self, settings: ViewerSettings | None = None, cache: TileCache | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings or ViewerSettings()
        self.cache = cache or TileCache(self.settings.cache_bytes)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._sessions: dict[str, _Session] = {}
        self._by_token: dict[str, _Session] = {}
        self._last_sweep = clock()

    # -- tabs' side -----------------------------------------------------------------------------------
    def open(self, session_id: str, path: str | Path, *, name: str | None = None, slot: str = "main",
             mpp_override: float | None = None, overlays: Overlays | None = None, overview=None) -> ViewerHandle:
        """A new handle on `path` for `session_id` (SlideError when the slide cannot be read). `overview`
        (a PIL image) is the fallback picture; by default the slide's own thumbnail."""
        if not session_id:
            raise ValueError("a viewer handle needs the browser session's id (gr.Request.session_hash)")
        self.sweep()
        source = TileSource(path, self.settings, self.cache, mpp_override=mpp_override)
        overview_png = _png(overview) if overview is not None else None
        with self._lock:
            session = self._session_for(session_id)
            for old in [h for h in session.handles if self._entries[h].slot == slot]:
                self._drop(old)
            while len(session.handles) >= self.settings.max_handles_per_session:
                self._drop(next(iter(session.handles)))
            handle = secrets.token_urlsafe(HANDLE_BYTES)
            entry = _Entry(handle, session_id, source, name or Path(path).name, slot, overlays or Overlays(),
                           self._clock() + self.settings.handle_ttl_s, overview_png)
            self._entries[handle] = entry
            session.handles[handle] = None
            return self._describe(entry, session)

    def set_overlays(self, session_id: str, handle: str, notes: dict[str, str] | None = None,
                     **overlays) -> ViewerHandle:
        """Replace some overlays (tissue=, grid=, heatmap=: the dicts of ui.viewer.overlays, None to clear);
        `notes` (kind -> text) say why a cleared overlay is not available (shown on its toggle)."""
        unknown = (set(overlays) | set(notes or {})) - set(OVERLAY_KINDS)
        if unknown:
            raise ValueError(f"unknown overlay(s) {sorted(unknown)}; the viewer draws {OVERLAY_KINDS}")
        with self._lock:
            entry = self._entries.get(handle)
            if entry is None or entry.session_id != session_id:
                raise KeyError(f"no viewer handle {handle!r} in this session")
            for kind, value in overlays.items():
                setattr(entry.overlays, kind, value)
                entry.overlays.notes.pop(kind, None)
            entry.overlays.notes.update(notes or {})
            entry.version += 1
            return self._describe(entry, self._sessions[session_id])

    def describe(self, session_id: str, handle: str) -> ViewerHandle | None:
        with self._lock:
            entry = self._entries.get(handle)
            if entry is None or entry.session_id != session_id:
                return None
            return self._describe(entry, self._sessions[session_id])

    def release(self, session_id: str, handle: str) -> None:
        with self._lock:
            entry = self._entries.get(handle)
            if entry is not None and entry.session_id == session_id:
                self._drop(handle)

    def release_session(self, session_id: str) -> None:
        """Drop every handle of the session and its token (call it from the tab's `demo.unload`)."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
            if session is None:
                return
            self._by_token.pop(session.token, None)
            for handle in list(session.handles):
                self._drop(handle)

    def sweep(self) -> int:
        """Release expired handles (done on every `open` and at most once a minute on requests)."""
        now = self._clock()
        with self._lock:
            self._last_sweep = now
            expired = [h for h, entry in self._entries.items() if entry.expires_at <= now]
            for handle in expired:
                self._drop(handle)
            for session in [s for s in self._sessions.values() if not s.handles]:   # nothing left to see
                del self._sessions[session.session_id]
                self._by_token.pop(session.token, None)
            return len(expired)

    # -- routes' side ---------------------------------------------------------------------------------
    def lookup(self, token: str, handle: str) -> _Entry | None:
        """The entry when `handle` is live and belongs to the session `token` was minted for; else None."""
        if self._clock() - self._last_sweep > SWEEP_EVERY_S:
            self.sweep()
        with self._lock:
            entry = self._entries.get(handle)
            session = self._by_token.get(token)
            if entry is None or session is None or entry.session_id != session.session_id \
                    or not hmac.compare_digest(session.token, token):
                return None
            now = self._clock()
            if entry.expires_at <= now:
                self._drop(handle)
                return None
            entry.expires_at = now + self.settings.handle_ttl_s
            return entry

    def allow(self, token: str) -> tuple[bool, float]:
        """Spend one request of the token's session (True for unknown tokens: they get 404 anyway)."""
        with self._lock:
            session = self._by_token.get(token)
        return session.bucket.take() if session is not None else (True, 0.0)

    def tissue_geojson(self, entry: _Entry) -> tuple[dict | None, str]:
        """The entry's tissue contours, found on the slide on first request when they were not given."""
        overlays = entry.overlays
        if overlays.tissue is None and overlays.tissue_lazy:
            with entry.tissue_lock:
                if overlays.tissue is None and overlays.tissue_lazy:
                    overlays.tissue, note = detect_tissue_geojson(entry.source.path, entry.source.mpp_override)
                    overlays.tissue_lazy = False
                    if note:
                        overlays.notes["tissue"] = note
        return overlays.tissue, overlays.available()["tissue"]["note"]

    def overview_png(self, entry: _Entry) -> bytes:
        if entry.overview_png is None:
            entry.overview_png = entry.source.overview_png(self.settings.overview_max_px)
        return entry.overview_png

    def stats(self) -> dict:
        with self._lock:
            return {"handles": len(self._entries), "sessions": len(self._sessions), "cache": self.cache.stats()}

    # -- internals (called with the lock held) ---------------------------------------------------------
    def _session_for(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
            session = _Session(session_id, token, TokenBucket(self.settings.rate_per_s, self.settings.rate_burst,
                                                              clock=self._clock))
            self._sessions[session_id] = session
            self._by_token[token] = session
        return session

    def _drop(self, handle: str) -> None:
        entry = self._entries.pop(handle, None)
        if entry is None:
            return
        session = self._sessions.get(entry.session_id)
        if session is not None:
            session.handles.pop(handle, None)
        entry.source.close()

    def _describe(self, entry: _Entry, session: _Session) -> ViewerHandle:
        source = entry.source
        return ViewerHandle(entry.handle, session.token, entry.name, source.dimensions[0], source.dimensions[1],
                            source.mpp, source.objective_power, entry.overlays.available(), entry.version)


def _png(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
