"""Write atomically: every output file is written under a temporary name, then renamed onto its name, so a
crash, Ctrl-C or a full disk never leaves a half-written file. The one writer for every package.

    with atomic_path("out/patches/slide_patches.h5") as tmp:    # tmp = out/patches/.slide_patches.h5.tmp-<pid>-<tid>
        write_everything_to(tmp)                                # renamed on success, removed on any exception
    atomic_write_json("summary.json", summary, indent=2)
    atomic_write_jsonl("scores.jsonl", rows)

The temporary file is a hidden sibling named after the process and thread (so concurrent writers never
share one), created by the writer with the usual permissions (umask). `remove_stale_temps` deletes what
an earlier crashed process left beside a path.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, Iterable


def temp_name(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")


def remove_stale_temps(path: str | Path) -> None:
    """Delete leftovers of earlier crashed writes of `path` (call it only where one writer owns `path`)."""
    path = Path(path)
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{path.name}.tmp-*"):
            with contextlib.suppress(OSError):
                stale.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; rename it onto `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)


def atomic_write_json(path: str | Path, value, indent: int | None = 1,
                      default: Callable | None = None) -> None:
    """UTF-8 JSON (non-ASCII kept as is) and a final newline; `default` as in `json.dumps`."""
    atomic_write_text(path, json.dumps(value, indent=indent, ensure_ascii=False, default=default) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
