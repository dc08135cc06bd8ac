"""Per-process protections of the receiver: a failure budget per source, a bound on deliveries in
flight, and a memory of deliveries already processed.

None of them ever costs a delivery that verifies: the failure budget is spent only by deliveries that
fail (4xx) or that no secret authenticated, and when it is exhausted a delivery is still served if it
verifies before parsing. Overload of the process is answered 503 by the in-flight bound, which the
provider retries (or the operator redelivers). All are bounded in memory.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

Clock = Callable[[], float]


class FailureBudget:
    """A token bucket per source of what fails: ``rate`` failures a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, max_sources: int = 10_000,
                 clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._max_sources = max_sources
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def exhausted(self, source: str) -> bool:
        """Whether the source has no failure left to spend (it is then served only if it verifies)."""
        with self._lock:
            tokens, _ = self._refilled(source, self._clock())
        return tokens < 1.0

    def spend(self, source: str) -> None:
        """Record one failure (or one unauthenticated delivery) of the source."""
        now = self._clock()
        with self._lock:
            tokens, _ = self._refilled(source, now)
            self._buckets.pop(source, None)
            self._buckets[source] = (max(0.0, tokens - 1.0), now)
            while len(self._buckets) > self._max_sources:
                self._buckets.popitem(last=False)

    def _refilled(self, source: str, now: float) -> tuple[float, float]:
        tokens, stamp = self._buckets.get(source, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - stamp) * self.rate), now


class DeliveryMemory:
    """Digests of delivery bodies already processed, for ``ttl`` seconds (bounded LRU), per worker process.

    Keyed on the body, which the signature covers, not on the delivery-id header, which nothing
    signs: a replayed push is a duplicate whatever id it is sent with.
    """

    def __init__(self, ttl: float = 3600.0, max_entries: int = 50_000,
                 clock: Clock = time.monotonic) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen(self, digest: str) -> bool:
        """True when a delivery with this very body was processed within the ttl, whichever provider
        headers it came with (Gogs, Gitea and Forgejo share a key: a body resent as another of them
        is the same delivery)."""
        now = self._clock()
        with self._lock:
            stamp = self._seen.get(digest)
            return stamp is not None and now - stamp < self._ttl

    def remember(self, digest: str) -> None:
        """Record a delivery that was fully processed."""
        now = self._clock()
        with self._lock:
            self._seen.pop(digest, None)
            self._seen[digest] = now
            while self._seen and (len(self._seen) > self._max_entries
                                  or now - next(iter(self._seen.values())) >= self._ttl):
                self._seen.popitem(last=False)


def client_address(remote: str | None, forwarded_for: str | None, trusted_hops: int) -> str:
    """The client a request comes from: with ``trusted_hops`` proxies in front (each appending the
    address it saw to X-Forwarded-For), the entry that many places from the right; else the peer.

    Entries left of that one are whatever the client sent, so they are never used; a header with too
    few entries did not pass through the trusted proxies and is ignored.
    """
    peer = remote or "unknown"
    if trusted_hops < 1 or not forwarded_for:
        return peer
    entries = [entry.strip() for entry in forwarded_for.split(",")]
    if len(entries) < trusted_hops:
        return peer
    candidate = entries[-trusted_hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer
