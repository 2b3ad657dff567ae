"""Reading JSON Lines files one line at a time, with the line number and the parse error of each line.

Callers decide what a bad line means (stop with an error naming file:line, or record it and go on):

    for line in iter_jsonl(path):
        if line.error:
            raise MyError(f"{path}:{line.number}: {line.error}")
        use(line.value)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


@dataclass(frozen=True)
class JsonLine:
    number: int              # 1-based line number in the file
    value: Any = None        # the decoded JSON value (None when `error` is set)
    error: str | None = None  # "not valid JSON (...)" for a line that does not parse


def iter_jsonl(path: str | Path) -> Iterator[JsonLine]:
    """Every non-blank line of `path`, decoded (blank lines are skipped)."""
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield JsonLine(number, json.loads(text))
            except json.JSONDecodeError as exc:
                yield JsonLine(number, error=f"not valid JSON ({exc.msg})")
