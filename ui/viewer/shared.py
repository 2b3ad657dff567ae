"""Decoded slide data shared by every viewer handle of the process: OpenSlide's tile cache, the direct JPEG
path's decoded tiles, and plain images decoded once per file (`ui.viewer.tiles` uses them).

    osr.set_cache(shared_cache("openslide", 256 << 20))
    image = shared_plain_image(path, file_identity(path))
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from PIL import Image

from ui.viewer.cache import TileCache

_SHARED_CACHES: dict[tuple[str, int], object] = {}
_SHARED_CACHES_LOCK = threading.Lock()


def shared_cache(kind: str, capacity_bytes: int):
    """One cache of decoded slide tiles per kind and capacity, shared by every slide: "openslide" (given to
    every OpenSlide handle; its own is 32 MiB per handle, ~128 tiles) or "direct" (the direct JPEG path's,
    keyed by file identity)."""
    with _SHARED_CACHES_LOCK:
        if (kind, capacity_bytes) not in _SHARED_CACHES:
            if kind == "openslide":
                import openslide

                _SHARED_CACHES[kind, capacity_bytes] = openslide.OpenSlideCache(capacity_bytes)
            else:
                _SHARED_CACHES[kind, capacity_bytes] = TileCache(capacity_bytes)
        return _SHARED_CACHES[kind, capacity_bytes]


_PLAIN_IMAGES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def shared_plain_image(path: Path, identity: tuple) -> Image.Image:
    """A plain image decoded once for every handle showing the same file (up to 8192^2 px: 256 MB each as
    RGBA), kept while any handle holds it."""
    with _SHARED_CACHES_LOCK:
        image = _PLAIN_IMAGES.get(identity)
        if image is None:
            image = Image.open(path)
            image.load()
            if image.mode not in ("RGB", "RGBA"):
                image = image.convert("RGBA")
            _PLAIN_IMAGES[identity] = image
        return image
