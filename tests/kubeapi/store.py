"""Object storage: one global resourceVersion counter, bounded watch history, condition-variable wake-ups.

All writes are serialised under one lock. Callers compute a new object outside the lock (admission may
call out over the network) and commit it with the resourceVersion they started from; a mismatch is a 409.
"""
from __future__ import annotations

import bisect
import copy
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from . import errors
from .resources import ResourceType

Key = tuple[str, str, str, str]  # (group, plural, namespace, name)


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    group: str
    plural: str
    obj: dict[str, Any]
    prev: dict[str, Any] | None


class Expired(Exception):
    """A watch asked for history that has been compacted away."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.message = str(self)


def _key(rt: ResourceType, namespace: str | None, name: str) -> Key:
    return (rt.group, rt.plural, (namespace or "") if rt.namespaced else "", name)


class Store:
    def __init__(self, history_size: int = 1000) -> None:
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self._rv = 0
        self._objects: dict[Key, dict[str, Any]] = {}
        self._history: deque[Event] = deque()
        self._history_size = history_size
        self._floor = 0  # events with rv <= floor are not replayable
        self.epoch = 0  # bumped to end every open watch

    # -- reads -------------------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self._objects.get(_key(rt, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, rt: ResourceType, namespace: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        """Current rv and the deep-copied objects of `rt` (in `namespace`, or all), sorted by ns/name."""
        with self.lock:
            items = [copy.deepcopy(o) for (g, p, ns, _), o in self._objects.items()
                     if g == rt.group and p == rt.plural and (not namespace or ns == namespace)]
            rv = self._rv
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return rv, items

    def page(self, rt: ResourceType, namespace: str | None, after: tuple[str, str] | None, limit: int,
             keep: Callable[[dict[str, Any]], bool]) -> tuple[int, list[dict[str, Any]], bool]:
        """One page of a list: rv, up to `limit` (0: all) deep-copied objects sorted by ns/name after
        `after` that `keep` accepts, and whether more follow. Only the page is copied."""
        with self.lock:
            keyed = sorted(((ns, name), o) for (g, p, ns, name), o in self._objects.items()
                           if g == rt.group and p == rt.plural and (not namespace or ns == namespace))
            rv = self._rv
            start = bisect.bisect_right(keyed, after, key=lambda item: item[0]) if after else 0
            items: list[dict[str, Any]] = []
            more = False
            for _, obj in keyed[start:]:
                if not keep(obj):
                    continue
                if limit and len(items) >= limit:
                    more = True
                    break
                items.append(copy.deepcopy(obj))
        return rv, items, more

    # -- writes ------------------------------------------------------------------------------------
    def _record(self, etype: str, rt: ResourceType, obj: dict[str, Any], prev: dict[str, Any] | None) -> None:
        self._history.append(Event(self._rv, etype, rt.group, rt.plural, copy.deepcopy(obj), prev))
        while len(self._history) > self._history_size:
            self._floor = self._history.popleft().rv
        self.cond.notify_all()

    def commit(self, rt: ResourceType, obj: dict[str, Any], expect_rv: str | None) -> dict[str, Any]:
        """Store `obj`. `expect_rv` None means "must not exist" (create); otherwise the stored object
        must still have that resourceVersion (409 Conflict when it moved, 404 when it is gone)."""
        meta = obj["metadata"]
        key = _key(rt, meta.get("namespace"), meta["name"])
        with self.lock:
            current = self._objects.get(key)
            if expect_rv is None and current is not None:
                raise errors.already_exists(rt, meta["name"])
            if expect_rv is not None:
                if current is None:
                    raise errors.not_found(rt, meta["name"])
                if current["metadata"]["resourceVersion"] != expect_rv:
                    raise errors.conflict(rt, meta["name"])
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            stored = copy.deepcopy(obj)
            self._objects[key] = stored
            self._record("ADDED" if current is None else "MODIFIED", rt, stored, current)
            return copy.deepcopy(stored)

    def remove(self, rt: ResourceType, namespace: str | None, name: str,
               expect_rv: str | None = None) -> dict[str, Any]:
        """Delete now; the DELETED event carries the last state with a new resourceVersion."""
        key = _key(rt, namespace, name)
        with self.lock:
            current = self._objects.get(key)
            if current is None:
                raise errors.not_found(rt, name)
            if expect_rv is not None and current["metadata"]["resourceVersion"] != expect_rv:
                raise errors.conflict(rt, name)
            del self._objects[key]
            self._rv += 1
            last = copy.deepcopy(current)
            last["metadata"]["resourceVersion"] = str(self._rv)
            self._record("DELETED", rt, last, current)
            return copy.deepcopy(last)

    def remove_namespace_contents(self, namespace: str, types: Iterable[ResourceType]) -> None:
        for rt in types:
            if rt.namespaced:
                for obj in self.list(rt, namespace)[1]:
                    try:
                        self.remove(rt, namespace, obj["metadata"]["name"])
                    except errors.ApiError:
                        pass

    def clear(self) -> None:
        """Forget all objects and history (the counter keeps growing) and end open watches."""
        with self.lock:
            self._objects.clear()
            self._history.clear()
            self._floor = self._rv
            self.epoch += 1
            self.cond.notify_all()

    def compact(self) -> None:
        with self.lock:
            self._history.clear()
            self._floor = self._rv

    def end_watches(self) -> None:
        with self.lock:
            self.epoch += 1
            self.cond.notify_all()

    # -- watch -------------------------------------------------------------------------------------
    def wait_events(self, rt: ResourceType, after: int, deadline: float, epoch: int,
                    cancelled: Callable[[], bool] = lambda: False) -> tuple[list[Event], int] | None:
        """Events of `rt` with rv > `after`, blocking until there is one, and the rv seen up to.

        Returns ([], after) at the deadline, None when the watch must end (epoch moved or cancelled),
        and raises Expired when `after` is older than the retained history."""
        with self.cond:
            while True:
                if self.epoch != epoch or cancelled():
                    return None
                if after < self._floor:
                    raise Expired(after, self._floor)
                events = [e for e in self._history
                          if e.rv > after and e.group == rt.group and e.plural == rt.plural]
                if self._history and self._history[-1].rv > after:
                    after = self._history[-1].rv  # other types' events are skipped for good
                if events:
                    return events, after
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return [], after
                self.cond.wait(min(remaining, 1.0))
