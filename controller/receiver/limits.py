"""Per-process protections of the receiver: a token bucket per source, and a memory of deliveries.

Both are in memory and per worker process, which is why the server runs one worker by default.
Both are bounded so that a flood of distinct sources or delivery ids cannot grow memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

Clock = Callable[[], float]


class RateLimiter:
    """A token bucket per source key: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, max_sources: int = 10_000,
                 clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._max_sources = max_sources
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, source: str) -> float:
        """Take a token; return 0 when allowed, else the seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, stamp = self._buckets.pop(source, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[source] = (tokens, now)
            while len(self._buckets) > self._max_sources:
                self._buckets.popitem(last=False)
        return wait


class DeliveryMemory:
    """Delivery ids with the digest of their body, remembered for ``ttl`` seconds (bounded LRU)."""

    def __init__(self, ttl: float = 3600.0, max_entries: int = 50_000,
                 clock: Clock = time.monotonic) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, str, str], float] = OrderedDict()

    def seen(self, provider: str, delivery_id: str, digest: str) -> bool:
        """True when this provider's delivery id arrived with this very body within the ttl."""
        if not delivery_id:
            return False
        now = self._clock()
        with self._lock:
            stamp = self._seen.get((provider, delivery_id, digest))
            return stamp is not None and now - stamp < self._ttl

    def remember(self, provider: str, delivery_id: str, digest: str) -> None:
        """Record a delivery that was fully processed."""
        if not delivery_id:
            return
        now = self._clock()
        with self._lock:
            self._seen.pop((provider, delivery_id, digest), None)
            self._seen[(provider, delivery_id, digest)] = now
            while self._seen and (len(self._seen) > self._max_entries
                                  or now - next(iter(self._seen.values())) >= self._ttl):
                self._seen.popitem(last=False)
