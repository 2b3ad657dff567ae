"""Persistent cache of validated LLM replies (SQLite), shared by all threads of one `LLMClient`.

A re-run with the same model, prompt version, sampling settings and inputs reads its replies from here
and sends no request. Only replies that passed validation (and redaction of the API key, `llm.redaction`)
are stored; the file is created with the first one. With no path the cache lives in memory for the process. Inspect one with `sqlite3 cache.sqlite "select prompt, count(*) from replies
group by prompt"`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from llm.errors import LLMConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    prompt TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    model TEXT NOT NULL,
    reply TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    created_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class CachedReply:
    reply: str
    input_tokens: int
    output_tokens: int


class ResponseCache:
    """The file is created with its first reply (a run that got none leaves nothing behind); an existing
    file is opened, and checked to be SQLite, at once."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path) if path else ":memory:"
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if not path or Path(path).exists():
            self._open()

    def _open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        on_disk = self.path != ":memory:"
        if on_disk:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            if on_disk:
                db.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL survives a crash of the process; only an OS crash may drop the last replies
                # (they are then asked again). FULL would fsync every reply under the lock (~4 ms each).
                db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            db.commit()
        except sqlite3.DatabaseError as exc:
            raise LLMConfigError(f"LLM cache {self.path}: cannot open it as SQLite ({exc}). "
                                "Delete the file or pass another --cache path.") from exc
        self._db = db
        return db

    def get(self, key: str) -> CachedReply | None:
        with self._lock:
            if self._db is None:
                return None
            row = self._db.execute("SELECT reply, input_tokens, output_tokens FROM replies WHERE key = ?",
                                   (key,)).fetchone()
        return CachedReply(*row) if row else None

    def put(self, key: str, prompt: str, prompt_version: str, model: str, reply: str,
            input_tokens: int, output_tokens: int) -> None:
        with self._lock:
            db = self._open()
            db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (key, prompt, prompt_version, model, reply, input_tokens, output_tokens, time.time()))
            db.commit()

    def __len__(self) -> int:
        with self._lock:
            return 0 if self._db is None else self._db.execute("SELECT count(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
