"""Who is reviewing: the review tab's settings, its sign-in (local name/password list or Hugging Face
OAuth on a Space) and the signed-in session every store call is made for. No Gradio import here.

A session lives in the browser tab's `gr.State` (kept on the server, never sent by the client), so a
client cannot claim a name it did not sign in as. Nothing is written without one: `require()` raises.
The role shown is the store's; the store checks the lead role again on every lead-only call.

    settings = ReviewSettings("curation.sqlite", users_file="review-users.json")
    session = password_sign_in(settings, store, "ann", "secret")      # -> ReviewSession or SignInError
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

from curation.errors import CurationError
from curation.store.review_store import ReviewStore
from curation.store.users import UsersFile

SIGN_IN_MODES = ("auto", "password", "huggingface")
MAX_FAILURES = 5                       # failed sign-ins per name ...
FAILURE_WINDOW_S = 300.0               # ... within this window lock the name for the rest of it


class SignInError(CurationError):
    """A refused sign-in, or a write attempted without one; the message says what to do."""


def on_space_with_oauth() -> bool:
    """True on a Hugging Face Space whose card sets `hf_oauth: true` (Spaces then set OAUTH_CLIENT_ID)."""
    return os.environ.get("SYSTEM") == "spaces" and bool(os.environ.get("OAUTH_CLIENT_ID"))


def oauth_installed() -> bool:
    """Gradio's OAuth needs its `oauth` extra (authlib, itsdangerous); without it gr.LoginButton fails."""
    return all(importlib.util.find_spec(name) is not None for name in ("authlib", "itsdangerous"))


@dataclass
class ReviewSettings:
    store_url: str                            # SQLite path or SQLAlchemy URL of the review store
    users_file: str | None = None             # local name/password list (curation.store.users)
    thumbnails_dir: str | None = None         # <slide_id>.png/.jpg thumbnails, when available
    export_dir: str | None = None             # where lead exports go (one sub-folder per export name)
    sign_in: str = "auto"                     # auto: Hugging Face OAuth on a Space, else password

    def __post_init__(self) -> None:
        if not self.store_url:
            raise SignInError("the review tab needs a store (a SQLite path or an SQLAlchemy URL).")
        if self.sign_in not in SIGN_IN_MODES:
            raise SignInError(f"sign_in must be one of {SIGN_IN_MODES}, got {self.sign_in!r}.")

    @property
    def wants_huggingface(self) -> bool:
        return self.sign_in == "huggingface" or (self.sign_in == "auto" and on_space_with_oauth())

    @property
    def uses_huggingface(self) -> bool:
        """Hugging Face OAuth when wanted and installed; otherwise the password list (see `sign_in_note`)."""
        return self.wants_huggingface and oauth_installed()

    @property
    def sign_in_note(self) -> str:
        if self.wants_huggingface and not self.uses_huggingface:
            return ("Hugging Face sign-in is unavailable here: Gradio's OAuth extra is not installed "
                    "(`pip install 'gradio[oauth]'`); signing in with the local name/password list instead.")
        return ""


@dataclass(frozen=True)
class ReviewSession:
    name: str
    role: str                                 # "annotator" | "lead", from the store at sign-in
    via: str                                  # "password" | "huggingface"

    @property
    def is_lead(self) -> bool:
        return self.role == "lead"


def require(session: ReviewSession | None) -> ReviewSession:
    if session is None:
        raise SignInError("Sign in first: the review store takes no anonymous reads or writes.")
    return session


class StoreHandle:
    """Opens the store on first use (app start-up never waits on a database) and keeps it open."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: ReviewStore | None = None
        self._lock = threading.Lock()

    def get(self) -> ReviewStore:
        with self._lock:
            if self._store is None:
                self._store = ReviewStore.open(self.url)
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


class FailureLog:
    """Failed sign-ins per name; a name with MAX_FAILURES inside the window is refused until it passes."""

    def __init__(self) -> None:
        self._times: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def wait_s(self, name: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._times[name]
            while times and now - times[0] > FAILURE_WINDOW_S:
                times.popleft()
            return FAILURE_WINDOW_S - (now - times[0]) if len(times) >= MAX_FAILURES else 0.0

    def failed(self, name: str) -> None:
        with self._lock:
            self._times[name].append(time.monotonic())

    def clear(self, name: str) -> None:
        with self._lock:
            self._times.pop(name, None)


FAILURES = FailureLog()


def _store_role(store: ReviewStore, name: str, how: str) -> str:
    role = store.role_of(name)
    if role is None:
        raise SignInError(f"{name} {how}, but is not an annotator of the review store {store.label}. A lead "
                          f"adds them: `wsi-llava curate annotators --store STORE --add {name} --as LEAD`.")
    return role


def password_sign_in(settings: ReviewSettings, store: ReviewStore, name: str, password: str,
                     failures: FailureLog = FAILURES) -> ReviewSession:
    name = (name or "").strip()
    if not settings.users_file:
        raise SignInError("No users file is configured, so nobody can sign in. Create one with `python -m "
                          "curation.store.users --users-file review-users.json add NAME` and start the app "
                          "with --users-file review-users.json (or WSI_LLAVA_USERS_FILE).")
    if not name or not password:
        raise SignInError("Enter your annotator name and password.")
    wait = failures.wait_s(name)
    if wait > 0:
        raise SignInError(f"Too many failed sign-ins for {name}; try again in {int(wait) + 1} s.")
    users = UsersFile.load(Path(settings.users_file))        # re-read: users added since start-up can sign in
    if not users.verify(name, password):
        failures.failed(name)
        raise SignInError(f"Wrong name or password for {name}. Ask your lead to check that you are on the sign-in "
                          "list (or to set a new password).")
    failures.clear(name)
    return ReviewSession(name, _store_role(store, name, "signed in with a password"), "password")


def huggingface_sign_in(store: ReviewStore, username: str | None) -> ReviewSession:
    """The session of a Hugging Face OAuth profile's username (None: not signed in on the Hub)."""
    if not username:
        raise SignInError("Sign in with Hugging Face first (the button above), then press Continue.")
    return ReviewSession(username, _store_role(store, username, "signed in with Hugging Face"), "huggingface")
