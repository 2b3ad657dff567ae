"""Provenance stored with every slide-pipeline output: the software version and UTC timestamps.

(Writing those outputs atomically is `common.atomic`.)
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone

PACKAGE_NAME = "wsi-llava-studio"


@functools.cache
def software_version() -> str:
    from importlib import metadata

    try:
        return f"{PACKAGE_NAME} {metadata.version(PACKAGE_NAME)}"
    except metadata.PackageNotFoundError:
        return f"{PACKAGE_NAME} (not installed; source tree)"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
