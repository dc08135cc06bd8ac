"""The order in which the API server saw things happen: watch events replayed from a resourceVersion.

A watch from a resourceVersion taken before an action replays everything that changed since, each
event with the resourceVersion (the etcd revision) at which it happened. On one etcd these grow with
every write, so comparing them orders writes to different kinds of objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from cluster.controlplane import ControlPlane


@dataclass(frozen=True)
class Event:
    """One watch event: ADDED, MODIFIED or DELETED, of the object named, at a revision."""

    type: str
    name: str
    revision: int
    object: dict[str, Any]


def current_revision(plane: ControlPlane) -> str:
    """The resourceVersion the API server is at now (a consistent list's)."""
    listed = plane.request("GET", "/api/v1/namespaces/default/configmaps?limit=1")
    listed.raise_for_status()
    return str(listed.json()["metadata"]["resourceVersion"])


def replay(plane: ControlPlane, path: str, since: str, done: Callable[[list[Event]], bool],
           timeout: int = 30) -> list[Event]:
    """The events of collection ``path`` after resourceVersion ``since``, read until ``done`` holds."""
    url = f"{plane.url}{path}?watch=1&resourceVersion={since}&timeoutSeconds={timeout}"
    events: list[Event] = []
    with requests.get(url, headers={"Authorization": f"Bearer {plane.token}"}, verify=str(plane.ca_file),
                      stream=True, timeout=timeout + 5) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line:
                continue
            event = json.loads(line)
            if event["type"] not in ("ADDED", "MODIFIED", "DELETED"):
                continue
            metadata = event["object"]["metadata"]
            events.append(Event(event["type"], metadata["name"], int(metadata["resourceVersion"]),
                                event["object"]))
            if done(events):
                return events
    raise AssertionError(f"watching {path} from {since}: the awaited events never came; saw "
                         + ", ".join(f"{e.type} {e.name}@{e.revision}" for e in events))


def first(events: list[Event], type: str, name: str) -> Event:
    """The first event of that type for that name."""
    return next(event for event in events if event.type == type and event.name == name)


def seen(type: str, *names: str) -> Callable[[list[Event]], bool]:
    """A ``done`` condition: an event of ``type`` has come for each of ``names``."""
    return lambda events: {name for name in names} <= {e.name for e in events if e.type == type}
