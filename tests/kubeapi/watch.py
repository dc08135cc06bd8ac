"""Chunked watch streams: synthetic ADDED on rv 0/unset, replay from history, 410 as an ERROR event,
`timeoutSeconds`, and selector filtering (objects moving in/out of a selector become ADDED/DELETED)."""
from __future__ import annotations

import json
import select
import socket
import time
from typing import Any, Callable

from . import errors
from .resources import ResourceType
from .selectors import parse_field_selector, parse_label_selector
from .store import Expired, Store

DEFAULT_TIMEOUT = 1800.0


class WatchRequest:
    """A parsed watch: validated before any header is sent, so bad parameters still get a 400."""

    def __init__(self, rt: ResourceType, namespace: str | None, query: dict[str, str]) -> None:
        self.rt, self.namespace = rt, namespace
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
        self.matches: Callable[[dict[str, Any]], bool] = lambda o: bool(
            (not namespace or o["metadata"].get("namespace") == namespace)
            and labels(o["metadata"].get("labels") or {}) and fields(o))
        try:
            self.timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else DEFAULT_TIMEOUT
            rv = query.get("resourceVersion") or "0"
            self.resource_version = int(rv)
        except ValueError:
            raise errors.bad_request("invalid resourceVersion or timeoutSeconds") from None
        self.resume = self.resource_version != 0


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _line(etype: str, obj: dict[str, Any]) -> bytes:
    return _chunk(json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n")


def _peer_gone(sock: socket.socket) -> bool:
    """A watch client never sends anything; readable means EOF, a close alert, or a reset."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def stream(req: WatchRequest, store: Store, write: Callable[[bytes], None], sock: socket.socket,
           is_cut: Callable[[], bool]) -> bool:
    """Write events until the deadline; return False when cut (no terminating chunk must follow)."""
    deadline = time.monotonic() + req.timeout
    epoch = store.epoch
    if not req.resume:
        with store.lock:
            after, items = store.list(req.rt, None)
        for obj in items:
            if req.matches(obj):
                write(_line("ADDED", obj))
    else:
        after = req.resource_version
    while True:
        if is_cut():
            return False
        try:
            res = store.wait_events(req.rt, after, min(deadline, time.monotonic() + 1.0), epoch, is_cut)
        except Expired as exc:
            write(_line("ERROR", errors.status_body(410, exc.message, "Expired")))
            break
        if is_cut():
            return False
        if res is None:
            break
        events, after = res
        for ev in events:
            now_in = req.matches(ev.obj)
            was_in = ev.prev is not None and req.matches(ev.prev)
            etype = ev.type
            if ev.type == "MODIFIED":
                if now_in and not was_in:
                    etype = "ADDED"
                elif was_in and not now_in:
                    etype = "DELETED"
                elif not now_in:
                    continue
            elif not now_in:
                continue
            write(_line(etype, ev.obj))
        if time.monotonic() >= deadline:
            break
        if not events and _peer_gone(sock):
            return False
    write(b"0\r\n\r\n")
    return True
