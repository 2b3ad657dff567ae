"""Reading the users' text files safely: UTF-8 decoding that names where it fails, JSON with a nesting limit.

Every reader of a JSON, JSON Lines, CSV or .txt input goes through here, so bad bytes and hostile nesting
give one message naming the file, the line and the byte offset, and the fix, never a traceback:

    text = read_text("reports.csv", error=ReportFormatError)      # raises ReportFormatError(...) if not UTF-8
    value = read_json("Grading_test.json", error=BenchFormatError) # + "not valid JSON" / "nested too deeply"
    value = loads_json(line)                                      # json.JSONDecodeError or JsonNestingError

Rules: text is UTF-8 (a leading byte order mark is dropped, as Excel writes one); a JSON value may nest
arrays and objects at most `max_json_depth()` levels deep (default `DEFAULT_MAX_JSON_DEPTH`, raised or
lowered with the environment variable `WSI_LLAVA_MAX_JSON_DEPTH`; Python's parser itself stops near its
recursion limit, about 1000 levels). JSON Lines files read per line (`common.jsonl`): there these problems
are per-line errors and the caller decides whether to stop or to skip the line.
"""

from __future__ import annotations

import codecs
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_MAX_JSON_DEPTH = 100          # WSI-Bench records nest 4 levels; score rows 5
MAX_JSON_DEPTH_ENV = "WSI_LLAVA_MAX_JSON_DEPTH"


class JsonNestingError(ValueError):
    """A JSON value nested deeper than the limit (or deeper than Python's parser can go)."""


class NotUtf8Error(ValueError):
    """Bytes that are not UTF-8; the message says where ("not UTF-8 text: byte 0xe9 at line 3, ...")."""


def max_json_depth() -> int:
    value = os.environ.get(MAX_JSON_DEPTH_ENV, "").strip()
    try:
        return max(1, int(value)) if value else DEFAULT_MAX_JSON_DEPTH
    except ValueError:
        return DEFAULT_MAX_JSON_DEPTH


def _nesting_message(limit: int) -> str:
    return (f"nested too deeply (more than {limit} levels of arrays/objects; the limit is the environment "
            f"variable {MAX_JSON_DEPTH_ENV}, default {DEFAULT_MAX_JSON_DEPTH})")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True when `value` nests lists/dicts more than `limit` levels deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (list, dict)))
    return False


def loads_json(text: str, limit: int | None = None) -> Any:
    """`json.loads`, refusing values nested deeper than `limit` (default `max_json_depth()`) with
    `JsonNestingError` (a ValueError, as `json.JSONDecodeError` is)."""
    limit = limit or max_json_depth()
    try:
        value = json.loads(text)
    except RecursionError:        # Python's parser gives up near its recursion limit, whatever the setting
        raise JsonNestingError(_nesting_message(min(limit, sys.getrecursionlimit()))) from None
    if isinstance(value, (list, dict)):
        opened = text.count("[") + text.count("{")            # a cheap bound first: brackets in the text
        if opened > limit and _depth_exceeds(value, limit):
            raise JsonNestingError(_nesting_message(limit))
    return value


def json_problem(exc: ValueError, *, one_line: bool = False) -> str:
    """What is wrong, in words, for an error of `loads_json`: "not valid JSON (...)" or "nested too deeply"
    (`one_line`: the text was one JSON Lines line, so only the column is worth saying)."""
    if isinstance(exc, json.JSONDecodeError):
        where = f"column {exc.colno}" if one_line else f"line {exc.lineno} column {exc.colno}"
        return f"not valid JSON ({exc.msg} at {where})"
    return str(exc)


def iconv_hint(path: str | Path) -> str:
    path = Path(path)
    fixed = path.with_name(f"{path.stem}.utf8{path.suffix}")
    return (f"convert it to UTF-8, e.g. `iconv -f latin1 -t utf-8 {path} > {fixed}` if it is Latin-1 "
            "(Windows-1252: -f cp1252), and pass the converted file")


def not_utf8_message(exc: UnicodeDecodeError, data: bytes, base_offset: int = 0, base_line: int = 1) -> str:
    """ "not UTF-8 text: byte 0xe9 at line 3, byte offset 37" for an error decoding `data`, which starts at
    `base_offset` bytes into its file, on line `base_line`."""
    offset = base_offset + exc.start
    line = base_line + data.count(b"\n", 0, exc.start)
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    return (f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, byte offset {offset} "
            f"(column {column} of the line)")


def decode_utf8(data: bytes, *, base_offset: int = 0, base_line: int = 1, bom: bool = True) -> str:
    """UTF-8 `data` as text (a leading BOM dropped when `bom`), or `NotUtf8Error` saying where it fails
    (file-relative when `base_offset` / `base_line` say where `data` starts in its file)."""
    skip = len(codecs.BOM_UTF8) if bom and data.startswith(codecs.BOM_UTF8) else 0
    body = data[skip:] if skip else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8Error(not_utf8_message(exc, body, base_offset + skip, base_line)) from None


def read_text(path: str | Path, *, error: type[Exception] = ValueError, label: str | None = None) -> str:
    """The UTF-8 text of `path`; an unreadable or undecodable file raises `error` with one message naming
    `label` (default: the path), the line and the byte offset, and the fix."""
    path = Path(path)
    label = label or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{label}: cannot read it ({exc.strerror or exc}).") from exc
    try:
        return decode_utf8(data)
    except NotUtf8Error as exc:
        raise error(f"{label}: {exc}; {iconv_hint(path)}.") from None


def read_json(path: str | Path, *, error: type[Exception] = ValueError, label: str | None = None) -> Any:
    """The JSON value in `path` (UTF-8); bad bytes, bad JSON or too deep nesting raise `error` naming the file."""
    label = label or str(path)
    text = read_text(path, error=error, label=label)
    try:
        return loads_json(text)
    except ValueError as exc:
        raise error(f"{label}: {json_problem(exc)}.") from None
