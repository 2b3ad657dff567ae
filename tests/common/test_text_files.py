"""Safe reading of the users' text files: UTF-8 errors named by line and byte offset, a JSON nesting limit."""

import json

import pytest

from common.jsonl import iter_jsonl
from common.text_files import (
    DEFAULT_MAX_JSON_DEPTH,
    MAX_JSON_DEPTH_ENV,
    JsonNestingError,
    loads_json,
    read_json,
    read_text,
)


class InputError(Exception):
    pass


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_up_to_the_limit_reads_and_beyond_it_is_refused(monkeypatch):
    assert loads_json(nested(DEFAULT_MAX_JSON_DEPTH)) is not None
    with pytest.raises(JsonNestingError, match=f"more than {DEFAULT_MAX_JSON_DEPTH} levels"):
        loads_json(nested(DEFAULT_MAX_JSON_DEPTH + 1))
    with pytest.raises(JsonNestingError, match=MAX_JSON_DEPTH_ENV):
        loads_json(nested(100000))                       # beyond Python's parser: no RecursionError
    monkeypatch.setenv(MAX_JSON_DEPTH_ENV, "3")
    assert loads_json('{"a": [{"b": 1}]}') == {"a": [{"b": 1}]}
    with pytest.raises(JsonNestingError, match="more than 3 levels"):
        loads_json('{"a": [{"b": [1]}]}')
    assert loads_json('"[[[[[[[[ brackets in a string are no nesting"').startswith("[[[")


def test_jsonl_lines_name_the_byte_offset_in_the_file_and_go_on(tmp_path):
    path = tmp_path / "rows.jsonl"
    first = '{"text": "café"}\r\n'.encode("utf-8")              # multi-byte text, a CRLF ending
    bad = b'{"text": "caf\xe9"}\n'
    path.write_bytes(b"\xef\xbb\xbf" + first + b"\n" + bad + nested(500).encode() + b"\n" + b'{"ok": 1}\n')
    lines = list(iter_jsonl(path))
    assert [(line.number, line.value) for line in lines if not line.error] == [(1, {"text": "café"}), (5, {"ok": 1})]
    offset = 3 + len(first) + 1 + bad.index(b"\xe9")
    assert lines[1].number == 3 and f"byte 0xe9 at line 3, byte offset {offset}" in lines[1].error
    assert "iconv -f latin1 -t utf-8" in lines[1].error
    assert lines[2].number == 4 and "nested too deeply" in lines[2].error


def test_whole_files_raise_the_callers_error_naming_the_file(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": 1}).encode())
    assert read_json(path, error=InputError) == {"a": 1}            # a byte order mark is dropped
    path.write_bytes(b'{"a":\n "\xff"}')
    with pytest.raises(InputError, match=r"a.json: not UTF-8 text: byte 0xff at line 2, byte offset 8 \(column 3"):
        read_json(path, error=InputError)
    path.write_text('{"a": ')
    with pytest.raises(InputError, match=r"a.json: not valid JSON \(Expecting value at line 1 column 7\)"):
        read_json(path, error=InputError)
    with pytest.raises(InputError, match="--flag x.txt: cannot read it"):
        read_text(tmp_path / "x.txt", error=InputError, label="--flag x.txt")
