"""List-then-watch of one Kubernetes collection, feeding a cache: the heart of every watch-fed cache.

The reflector lists, hands the items to the cache, then watches from the list's resourceVersion.
A watch that ends or is cut resumes from the last resourceVersion seen (no event lost); a 410
Expired relists; a periodic resync relists too. Failures back off exponentially with jitter, and
are logged once per change of state, never once per attempt.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import urllib3

from controller.logs import fields, safe
from controller.store.kubeapi import MAX_ANSWER_BYTES, ApiError, KubeApi

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
T = TypeVar("T")
# How long one watch request stays open before the reflector renews it.
WATCH_SECONDS = 240
PAGE_SIZE = 500


class Expired(Exception):
    """The watch's resourceVersion is too old: the collection must be listed again."""


@dataclass(frozen=True)
class Collection:
    """An API collection path and its selectors, e.g. ``/apis/fleet.cattle.io/v1alpha1/gitrepos``."""

    path: str
    field_selector: str = ""
    label_selector: str = ""

    def query(self, **extra: Any) -> list[tuple[str, Any]]:
        """Query parameters for a list or watch request."""
        params: list[tuple[str, Any]] = []
        if self.field_selector:
            params.append(("fieldSelector", self.field_selector))
        if self.label_selector:
            params.append(("labelSelector", self.label_selector))
        params.extend((key, value) for key, value in extra.items() if value is not None)
        return params


class Backoff:
    """Exponential backoff with full jitter: 0.2 s doubling up to 30 s."""

    def __init__(self, base: float = 0.2, cap: float = 30.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def next(self) -> float:
        """The delay before the next attempt."""
        delay = min(self.cap, self.base * 2 ** self.attempt)
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        """After a success."""
        self.attempt = 0


class Reflector(Generic[T]):
    """Keeps ``on_replace``/``on_event`` callbacks fed from one collection, in a daemon thread.

    ``convert`` turns each API object into the cache's own value as soon as it arrives, so the
    raw JSON of a large list is never held all at once.
    """

    def __init__(self, name: str, api: KubeApi, collection: Collection,
                 convert: Callable[[JsonObject], T],
                 on_replace: Callable[[list[T]], None],
                 on_event: Callable[[str, T], None],
                 resync_period: float = 600.0) -> None:
        self.name = name
        self.api = api
        self.collection = collection
        self.convert = convert
        self.on_replace = on_replace
        self.on_event = on_event
        self.resync_period = resync_period
        self.synced = threading.Event()
        # Set once the first list has been tried, whether or not it succeeded.
        self.attempted = threading.Event()
        self._stop = threading.Event()
        self._state = ""
        self.problem = ""
        """Why the last list or watch failed, until one succeeds again (for readiness reasons)."""
        self._thread = threading.Thread(target=self._run, name=f"reflector-{name}", daemon=True)
        self._response: Any = None

    def start(self) -> None:
        """Begin listing and watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop at the next event or timeout; closes an open watch."""
        self._stop.set()
        response = self._response
        connection = getattr(response, "connection", None) if response is not None else None
        sock = getattr(connection, "sock", None)
        if sock is not None:
            # Shut the socket down rather than close it: closing a TLS socket another thread is
            # reading blocks, a shutdown wakes the reader, which then closes it itself.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _run(self) -> None:
        backoff = Backoff()
        version = ""
        resync_at = 0.0
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list()
                    backoff.reset()
                    resync_at = time.monotonic() + self.resync_period
                version = self._watch(version, resync_at)
                if time.monotonic() >= resync_at:
                    version = ""
            except Expired:
                self._set_state("relisting", "watch expired (410)")
                version = ""
            except ApiError as error:
                self.attempted.set()
                if error.status == 410:   # some servers refuse an expired watch with an HTTP 410
                    self._set_state("relisting", "watch expired (410)")
                    version = ""
                    continue
                self._set_state("failing", _describe(error))
                self._stop.wait(backoff.next())
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
                # A failed list keeps version empty; a broken watch resumes from the last version.
                if self._stop.is_set():
                    return
                self._set_state("failing", _describe(error))
                self._stop.wait(backoff.next())
            except Exception as error:  # a bug, or an answer no check foresaw: log it, back off, relist
                detail = f"unexpected {type(error).__name__}: {safe(str(error), 200)}"
                if detail != self.problem:   # the traceback once, not at every backoff step
                    log.exception(f"cache {self.name}: unexpected error")
                self._set_state("failing", detail)
                version = ""
                self._stop.wait(backoff.next())

    def _list(self) -> str:
        # In pages, so that a list of 100k GitRepos never sits in memory as one JSON document.
        items: list[T] = []
        token = None
        while True:
            body = self.api.request("GET", self.collection.path, timeout=60,
                                    query=self.collection.query(limit=PAGE_SIZE, **{"continue": token}))
            page = body.get("items")
            if not isinstance(page, list):  # an empty collection is "items": [], never absent
                raise ApiError(0, f"the answer to listing {self.collection.path} is not a list")
            items.extend(self.convert(item) for item in page if isinstance(item, dict))
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                break
        self.on_replace(items)
        self.synced.set()
        self.attempted.set()
        self._set_state("synced", f"{len(items)} objects")
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, version: str, resync_at: float) -> str:
        timeout = max(1, min(WATCH_SECONDS, int(resync_at - time.monotonic())))
        response = self.api.stream(self.collection.path, self.collection.query(
            watch="true", resourceVersion=version, allowWatchBookmarks="true", timeoutSeconds=timeout),
            read_timeout=timeout + 30)
        self._response = response
        try:
            for event in _lines(response):
                kind, obj = event.get("type"), event.get("object") or {}
                if not isinstance(obj, dict):
                    raise ValueError("a watch event's object is not a JSON object")
                if kind == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        raise Expired()
                    raise ApiError(code if isinstance(code, int) else 0,
                                   safe(str(obj.get("message") or "watch error"), 300) or "watch error")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self.on_event(kind, self.convert(obj))
                if self._stop.is_set():
                    break
        finally:
            self._response = None
            response.release_conn()
        self._set_state("synced", "watching")
        return version

    def _set_state(self, state: str, detail: str) -> None:
        self.problem = detail if state == "failing" else ""
        if state != self._state:
            level = logging.WARNING if state == "failing" else logging.INFO
            log.log(level, f"cache {self.name}: {state}", extra=fields(cache=self.name, detail=detail))
            self._state = state


def _lines(response: Any) -> Iterator[dict[str, Any]]:
    """JSON watch events, one per line, from a streaming urllib3 response; a line is at most
    MAX_ANSWER_BYTES (each chunk is scanned once, so a long line costs linear time)."""
    parts: list[bytes] = []
    size = 0
    for chunk in response.stream(1 << 16, decode_content=False):
        while (end := chunk.find(b"\n")) >= 0:
            line, chunk = b"".join(parts) + chunk[:end], chunk[end + 1:]
            parts, size = [], 0
            if line.strip():
                yield _event(line)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise ValueError(f"a watch event is over {MAX_ANSWER_BYTES >> 20} MiB")
        if chunk:
            parts.append(chunk)
    rest = b"".join(parts)
    if rest.strip():
        yield _event(rest)


def _event(line: bytes) -> dict[str, Any]:
    """One watch event; ValueError when the line is not one (the watch then counts as failing)."""
    try:
        event = json.loads(line)
    except RecursionError:
        raise ValueError("a watch event nests too deep") from None
    if not isinstance(event, dict):
        raise ValueError("a watch event is not a JSON object")
    return event


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiError):
        return str(error)
    return f"{type(error).__name__}: {error}"
