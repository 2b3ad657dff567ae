"""Provenance stored with every slide-pipeline output: the software version and UTC timestamps.

(Writing those outputs atomically is `common.atomic`.)
"""

from __future__ import annotations

import functools
import sys
from datetime import datetime, timezone
from pathlib import Path

PACKAGE_NAME = "wsi-llava-studio"


def _dist_info_version() -> str | None:
    """The installed version from the first `wsi_llava_studio-*.dist-info/METADATA` on sys.path: what
    `importlib.metadata.version` finds, without importing it (its email parser costs ~30 ms of start-up)."""
    prefix = PACKAGE_NAME.replace("-", "_") + "-"
    for entry in sys.path:
        try:
            folders = sorted(p for p in Path(entry or ".").glob(f"{prefix}*.dist-info") if p.is_dir())
        except OSError:
            continue
        for folder in folders:
            try:
                with open(folder / "METADATA", encoding="utf-8") as handle:
                    for line in handle:
                        if line.startswith("Version:"):
                            return line.split(":", 1)[1].strip()
                        if not line.strip():
                            break                                   # end of the headers
            except OSError:
                continue
    return None


@functools.cache
def software_version() -> str:
    version = _dist_info_version()
    if version is None:
        from importlib import metadata

        try:
            version = metadata.version(PACKAGE_NAME)
        except metadata.PackageNotFoundError:
            return f"{PACKAGE_NAME} (not installed; source tree)"
    return f"{PACKAGE_NAME} {version}"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
