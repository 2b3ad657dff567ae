"""Persistent cache of validated LLM replies (SQLite), shared by all threads of one `LLMClient`.

A re-run with the same model, prompt version, sampling settings and inputs reads its replies from here
and sends no request. Only replies that passed validation are stored. With no path the cache lives in
memory for the process. Inspect one with `sqlite3 cache.sqlite "select prompt, count(*) from replies
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
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path) if path else ":memory:"
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            if path:
                self._db.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL survives a crash of the process; only an OS crash may drop the last replies
                # (they are then asked again). FULL would fsync every reply under the lock (~4 ms each).
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise LLMConfigError(f"LLM cache {self.path}: cannot open it as SQLite ({exc}). "
                                "Delete the file or pass another --cache path.") from exc
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedReply | None:
        with self._lock:
            row = self._db.execute("SELECT reply, input_tokens, output_tokens FROM replies WHERE key = ?",
                                   (key,)).fetchone()
        return CachedReply(*row) if row else None

    def put(self, key: str, prompt: str, prompt_version: str, model: str, reply: str,
            input_tokens: int, output_tokens: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (key, prompt, prompt_version, model, reply, input_tokens, output_tokens,
                              time.time()))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
