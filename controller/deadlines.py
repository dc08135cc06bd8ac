"""A deadline for a whole exchange on the main thread of a command line.

A socket timeout bounds each read: a server that answers one byte at a time resets it with every
byte and is never late. ``within`` bounds the whole block instead (SIGALRM, so only on the main
thread; elsewhere the block runs with its socket timeouts alone).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Expired(Exception):
    """The block did not finish within its deadline."""


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Raise :class:`Expired` in the block once ``seconds`` have passed in all (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_number: int, _frame: object) -> None:
        raise Expired()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
