"""A token bucket: at most `burst` requests at once, refilled at `rate_per_s` (one per session).

    bucket = TokenBucket(rate_per_s=100, burst=400)
    ok, retry_after_s = bucket.take()          # False: answer 429 with Retry-After: ceil(retry_after_s)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(f"need rate_per_s > 0 and burst >= 1, got {rate_per_s}, {burst}")
        self.rate_per_s, self.burst, self._clock = float(rate_per_s), int(burst), clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self, cost: float = 1.0) -> tuple[bool, float]:
        """Spend `cost` tokens if there are enough; else (False, seconds until there will be)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
            self._updated = now
            if self._tokens >= cost:
                self._tokens -= cost
                return True, 0.0
            return False, (cost - self._tokens) / self.rate_per_s
