"""Write files so a crash never leaves a half-written one: write to a temporary name, then rename.

Used by curation and evaluation outputs (`modeling.slide.outputs` does the same for the slide
pipeline, which may not import this package). The temporary file is a hidden sibling named after
the process and thread, created with the usual permissions (umask), and removed on any failure.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Iterable


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, value, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(value, indent=indent, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
