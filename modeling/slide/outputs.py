"""Writing outputs so that nothing is ever half-written: temporary name, then an atomic rename.

    with atomic_path("out/patches/slide_patches.h5") as tmp:   # tmp = out/patches/.slide_patches.h5.tmp-<pid>
        write_everything_to(tmp)
    # renamed on success; removed on any exception (including Ctrl-C)

Also the software version and UTC timestamps stored with every output for provenance.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

PACKAGE_NAME = "wsi-llava-studio"


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove_stale_temps(path: str | Path) -> None:
    """Delete leftovers of an earlier crashed write of `path` (only this slide's writer touches them)."""
    path = Path(path)
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{path.name}.tmp-*"):
            with contextlib.suppress(OSError):
                stale.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` when the block succeeds."""
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


def write_json_atomic(path: str | Path, payload) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=False)
            handle.write("\n")


def software_version() -> str:
    from importlib import metadata

    try:
        return f"{PACKAGE_NAME} {metadata.version(PACKAGE_NAME)}"
    except metadata.PackageNotFoundError:
        return f"{PACKAGE_NAME} (not installed; source tree)"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
