"""Who is reviewing: the review tab's settings, its sign-in (local name/password list or Hugging Face
OAuth on a Space) and the signed-in session every store call is made for. No Gradio import here.

A session lives in the browser tab's `gr.State` (kept on the server, never sent by the client), so a
client cannot claim a name it did not sign in as. Nothing is written without one: `require()` raises.
The role shown is the store's; the store checks the lead role again on every lead-only call.

    settings = ReviewSettings("curation.sqlite", users_file="review-users.json")
    session = password_sign_in(settings, store, "ann", "secret", client="203.0.113.7")   # or SignInError

Password sign-ins are throttled per client address and for everyone together, never per name (so nobody
can lock an annotator out by failing in their name): `SignInThrottle` refuses a client after
`MAX_FAILURES_PER_CLIENT` failures inside `FAILURE_WINDOW_S`, everyone after `MAX_ATTEMPTS_GLOBAL` attempts
inside `GLOBAL_WINDOW_S`, and lets `MAX_CONCURRENT_HASHES` PBKDF2 checks run at once (600,000 rounds each),
so a burst of sign-ins cannot slow the rest of the app. Unknown names cost the same PBKDF2 work as known
ones (`UsersFile.verify`) and get the same message. Messages to people who are not signed in never name a
server path (the store's, the users file's); the server log has the details.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from collections import defaultdict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from curation.errors import CurationError
from curation.store.review_store import ReviewStore
from curation.store.users import UsersFile, UsersFileError

SIGN_IN_MODES = ("auto", "password", "huggingface")
MAX_FAILURES_PER_CLIENT = 10           # failed sign-ins from one client address ...
FAILURE_WINDOW_S = 300.0               # ... within this window: that address waits until the oldest leaves it
MAX_ATTEMPTS_GLOBAL = 60               # password sign-ins of everyone together ...
GLOBAL_WINDOW_S = 60.0                 # ... within this window (each is 600,000 PBKDF2 rounds, ~0.1-0.3 s)
MAX_CONCURRENT_HASHES = 1              # PBKDF2 checks running at once; the others wait their turn ...
HASH_WAIT_S = 30.0                     # ... this long at most, then they are refused
UNKNOWN_CLIENT = "unknown client"      # requests without an address share one allowance
log = logging.getLogger("wsi_llava.app")


class SignInError(CurationError):
    """A refused sign-in, or a write attempted without one; the message says what to do."""


class StoreUnavailableError(CurationError):
    """The review store cannot be opened; the message names no path (the log has the store's own message)."""


class SignInThrottle:
    """Password sign-ins per client address and for everyone together; `clock` is injectable (tests).

        throttle.begin(client)                    # SignInError when that client, or everyone, must wait
        try:
            with throttle.hashing():              # at most MAX_CONCURRENT_HASHES PBKDF2 checks at once
                ok = users.verify(name, password)
        finally:
            throttle.end(client, failed=not ok)   # a failure counts against that client only
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_failures: int = MAX_FAILURES_PER_CLIENT,
                 window_s: float = FAILURE_WINDOW_S, max_attempts: int = MAX_ATTEMPTS_GLOBAL,
                 global_window_s: float = GLOBAL_WINDOW_S, max_concurrent: int = MAX_CONCURRENT_HASHES,
                 hash_wait_s: float = HASH_WAIT_S) -> None:
        self.clock, self.max_failures, self.window_s = clock, max_failures, window_s
        self.max_attempts, self.global_window_s, self.hash_wait_s = max_attempts, global_window_s, hash_wait_s
        self._failures: dict[str, deque] = defaultdict(deque)      # client -> times of its failed sign-ins
        self._in_flight: dict[str, int] = defaultdict(int)         # client -> its sign-ins being checked now
        self._attempts: deque = deque()                            # times of everyone's sign-ins
        self._lock = threading.Lock()
        self._hashes = threading.BoundedSemaphore(max_concurrent)

    def _prune(self, now: float) -> None:
        while self._attempts and now - self._attempts[0] >= self.global_window_s:
            self._attempts.popleft()
        for client in [c for c, times in self._failures.items() if not times or now - times[-1] >= self.window_s]:
            del self._failures[client]                             # every failure of it is out of the window
        for times in self._failures.values():
            while now - times[0] >= self.window_s:
                times.popleft()

    def begin(self, client: str) -> None:
        """Count a sign-in attempt of `client`; SignInError (nothing counted) when it must wait."""
        now = self.clock()
        with self._lock:
            self._prune(now)
            failures = self._failures.get(client, ())
            if len(failures) + self._in_flight.get(client, 0) >= self.max_failures:
                wait = failures[0] + self.window_s - now if failures else 1.0
                raise SignInError(f"Too many failed sign-ins from your address; try again in {int(wait) + 1} s. "
                                  "(Other people can still sign in.)")
            if len(self._attempts) >= self.max_attempts:
                wait = self._attempts[0] + self.global_window_s - now
                raise SignInError(f"Too many sign-ins on this server right now; try again in {int(wait) + 1} s.")
            self._attempts.append(now)
            self._in_flight[client] += 1

    def end(self, client: str, failed: bool) -> None:
        with self._lock:
            left = self._in_flight.pop(client, 0) - 1
            if left > 0:
                self._in_flight[client] = left
            if failed:
                self._failures[client].append(self.clock())

    @contextmanager
    def hashing(self) -> Iterator[None]:
        """A turn to run one password check (PBKDF2); SignInError when none comes within `hash_wait_s`."""
        if not self._hashes.acquire(timeout=self.hash_wait_s):
            raise SignInError("The server is busy checking other sign-ins; try again in a minute.")
        try:
            yield
        finally:
            self._hashes.release()


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
    throttle: SignInThrottle = field(default_factory=SignInThrottle, repr=False, compare=False)

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
        """The open store; StoreUnavailableError (without the store's path or URL, which go to the log) when
        it cannot be opened."""
        with self._lock:
            if self._store is None:
                try:
                    self._store = ReviewStore.open(self.url)
                except (CurationError, OSError) as exc:
                    log.error("review store: %s", exc)
                    raise StoreUnavailableError(
                        "The review store cannot be opened on this server right now, so the review tab cannot "
                        "work. Tell the server's operator: the server log says why (--review-store).") from exc
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def _store_role(store: ReviewStore, name: str, how: str) -> str:
    role = store.role_of(name)
    if role is None:
        raise SignInError(f"{name} {how}, but is not an annotator of this review store. A lead adds them: "
                          f"`wsi-llava curate annotators --store STORE --add {name} --as LEAD`.")
    return role


def _users(settings: ReviewSettings) -> UsersFile:
    """The sign-in list, re-read (users added since start-up can sign in); its problems go to the log only."""
    try:
        return UsersFile.load(Path(settings.users_file))
    except UsersFileError as exc:
        log.error("review sign-in: %s", exc)
        raise SignInError("The sign-in list of this server cannot be read, so nobody can sign in with a password "
                          "right now. Tell the server's operator: the server log says what is wrong with the "
                          "--users-file.") from exc


def password_sign_in(settings: ReviewSettings, store: ReviewStore, name: str, password: str,
                     client: str | None = None, throttle: SignInThrottle | None = None) -> ReviewSession:
    """The session of `name` when `password` is theirs; `client` is the address the attempt came from (the
    throttle's key; never the name)."""
    name = (name or "").strip()
    if not settings.users_file:
        raise SignInError("No users file is configured, so nobody can sign in. Create one with `python -m "
                          "curation.store.users --users-file review-users.json add NAME` and start the app "
                          "with --users-file review-users.json (or WSI_LLAVA_USERS_FILE).")
    if not name or not password:
        raise SignInError("Enter your annotator name and password.")
    throttle = throttle or settings.throttle
    client = client or UNKNOWN_CLIENT
    throttle.begin(client)
    verified = None
    try:
        users = _users(settings)
        with throttle.hashing():
            verified = users.verify(name, password)          # the same PBKDF2 work for unknown names
    finally:
        throttle.end(client, failed=verified is False)       # a server-side problem is not the client's failure
    if not verified:
        raise SignInError(f"Wrong name or password for {name}. Ask your lead to check that you are on the sign-in "
                          "list (or to set a new password).")
    return ReviewSession(name, _store_role(store, name, "signed in with a password"), "password")


def huggingface_sign_in(store: ReviewStore, username: str | None) -> ReviewSession:
    """The session of a Hugging Face OAuth profile's username (None: not signed in on the Hub)."""
    if not username:
        raise SignInError("Sign in with Hugging Face first (the button above), then press Continue.")
    return ReviewSession(username, _store_role(store, username, "signed in with Hugging Face"), "huggingface")
