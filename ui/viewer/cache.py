"""A small thread-safe LRU cache of encoded tiles (or decoded pixel arrays), bounded by the bytes it holds.

    cache = TileCache(max_bytes=64 * 1024 * 1024)
    data = cache.get(key)                      # None when absent (and counts a miss)
    cache.put(key, jpeg_bytes)                 # evicts the least recently used entries past the budget
    cache.stats()                              # {"entries", "bytes", "hits", "misses", "evictions"}

Keys are any hashable; the viewer uses (slide file identity, Deep Zoom settings, level, column, row), so
sessions viewing the same file share its tiles (access is checked before the cache is asked).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class TileCache:
    def __init__(self, max_bytes: int):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            data = self._entries.get(key)
            if data is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return data

    def put(self, key: Hashable, data) -> None:
        """Keep `data` (bytes, or an array: its `nbytes` count) under `key`; an entry larger than a quarter of
        the budget is not kept."""
        size = _size(data)
        if size > self.max_bytes // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= _size(old)
            self._entries[key] = data
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= _size(evicted)
                self.evictions += 1

    def discard(self, predicate) -> int:
        """Drop every entry whose key satisfies `predicate(key)`; returns how many went."""
        with self._lock:
            doomed = [key for key in self._entries if predicate(key)]
            for key in doomed:
                self._bytes -= _size(self._entries.pop(key))
            return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes

    def stats(self) -> dict:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes, "max_bytes": self.max_bytes,
                    "hits": self.hits, "misses": self.misses, "evictions": self.evictions}


def _size(data) -> int:
    return int(data.nbytes) if hasattr(data, "nbytes") else len(data)
