"""Reading JSON Lines files one line at a time, with the line number and the problem of each line.

Callers decide what a bad line means (stop with an error naming file:line, or record it and go on):

    for line in iter_jsonl(path):
        if line.error:
            raise MyError(f"{path}:{line.number}: {line.error}")
        use(line.value)

A line's problem is one of: not UTF-8 (the byte, its byte offset in the file and the `iconv` fix), not
valid JSON, or nested too deeply (`common.text_files`: the limit and how to change it). Lines end at
"\\n" (a "\\r\\n" ending is fine); a byte order mark before the first line is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from common.text_files import NotUtf8Error, decode_utf8, iconv_hint, json_problem, loads_json, max_json_depth


@dataclass(frozen=True)
class JsonLine:
    number: int              # 1-based line number in the file
    value: Any = None        # the decoded JSON value (None when `error` is set)
    error: str | None = None  # "not valid JSON (...)", "not UTF-8 text: ...", "nested too deeply (...)"


def iter_jsonl(path: str | Path) -> Iterator[JsonLine]:
    """Every non-blank line of `path`, decoded (blank lines are skipped)."""
    limit = max_json_depth()
    offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            start, offset = offset, offset + len(raw)
            try:
                text = decode_utf8(raw, base_offset=start, base_line=number, bom=number == 1)
            except NotUtf8Error as exc:
                yield JsonLine(number, error=f"{exc}; {iconv_hint(path)}")
                continue
            if not text.strip():
                continue
            try:
                value = loads_json(text, limit)
            except ValueError as exc:          # json.JSONDecodeError or JsonNestingError
                yield JsonLine(number, error=json_problem(exc, one_line=True))
                continue
            yield JsonLine(number, value)
