"""Append-only JSONL journals that survive interruptions (atomic whole-file writes: common.atomic).

A journal is a JSONL file appended one flushed line per finished item; after a crash its last line may
be cut short, so `read_journal` skips lines that are not valid JSON and says how many.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from common.jsonl import iter_jsonl


class JournalWriter:
    """Append one JSON line per call, flushed at once; safe to call from several threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._handle = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def _repair_tail(self) -> None:
        """End a line cut short by a crash with a newline, so the next row starts on its own line."""
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb+") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")

    def write(self, row: dict) -> None:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()

    def __enter__(self) -> "JournalWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_journal(path: str | Path) -> tuple[list[dict], int]:
    """(rows, number of unreadable lines) of a journal; a missing file is ([], 0)."""
    path = Path(path)
    if not path.is_file():
        return [], 0
    rows, bad = [], 0
    for line in iter_jsonl(path):
        if line.error is None and isinstance(line.value, dict):
            rows.append(line.value)
        else:
            bad += 1
    return rows, bad
