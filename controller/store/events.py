"""Kubernetes Events on GitRepos, written in the background and aggregated like client-go does.

A delivery never waits for its Event: ``record`` only queues. Identical events (same object,
reason, message and type) share one deterministic name, so a repeat bumps ``count`` and
``lastTimestamp`` of the existing Event instead of creating another one, across restarts and
replicas alike.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import socket
import threading
from datetime import datetime, timezone

from controller.fleet.gitrepos import API_VERSION, GitRepo
from controller.logs import fields
from controller.store import timestamp
from controller.store.kubeapi import MERGE_PATCH, ApiError, KubeApi, JsonObject, events_path

log = logging.getLogger(__name__)

COMPONENT = "gitjob-webhook"
QUEUE_SIZE = 1000


def event_name(gitrepo: GitRepo, reason: str, message: str, kind: str) -> str:
    """The Event's name: the GitRepo's name and a digest of what the Event says."""
    digest = hashlib.sha256(f"{gitrepo.uid}\0{reason}\0{message}\0{kind}".encode()).hexdigest()[:16]
    return f"{gitrepo.name[:200]}.{digest}"


def event_object(gitrepo: GitRepo, reason: str, message: str, kind: str, now: datetime) -> JsonObject:
    """A core v1 Event about the GitRepo."""
    stamp = timestamp(now)
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": event_name(gitrepo, reason, message, kind), "namespace": gitrepo.namespace},
        "involvedObject": {"apiVersion": API_VERSION, "kind": "GitRepo", "namespace": gitrepo.namespace,
                           "name": gitrepo.name, "uid": gitrepo.uid},
        "reason": reason, "message": message, "type": kind, "count": 1,
        "firstTimestamp": stamp, "lastTimestamp": stamp,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT, "reportingInstance": socket.gethostname(),
    }


class EventRecorder:
    """A queue and one thread writing Events; full queue → the Event is dropped with a warning."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self._queue: queue.Queue[tuple[GitRepo, str, str, str] | None] = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._dropping = False

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)

    def record(self, gitrepo: GitRepo, reason: str, message: str, kind: str = "Normal") -> None:
        """Queue an Event (never blocks, never raises)."""
        try:
            self._queue.put_nowait((gitrepo, reason, message, kind))
            self._dropping = False
        except queue.Full:
            if not self._dropping:
                log.warning("event queue full; dropping events", extra=fields(gitrepo=gitrepo.ref))
            self._dropping = True

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued Event has been written (for tests and shutdown)."""
        done = threading.Event()

        def wait_for_queue() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait_for_queue, daemon=True).start()
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._write(*item)
            except ApiError as error:
                log.warning("event not recorded", extra=fields(gitrepo=item[0].ref if item else None,
                                                               error=str(error)))
            except Exception:  # whatever an Event says or the server answers, the recorder lives on
                log.exception("event not recorded", extra=fields(gitrepo=item[0].ref if item else None))
            finally:
                self._queue.task_done()

    def _write(self, gitrepo: GitRepo, reason: str, message: str, kind: str) -> None:
        now = datetime.now(timezone.utc)
        event = event_object(gitrepo, reason, message, kind, now)
        try:
            self.api.request("POST", events_path(gitrepo.namespace), body=event, timeout=5)
            return
        except ApiError as error:
            if error.status != 409:
                raise
        name = event["metadata"]["name"]
        existing = self.api.request("GET", events_path(gitrepo.namespace, name), timeout=5)
        self.api.request("PATCH", events_path(gitrepo.namespace, name), content_type=MERGE_PATCH, timeout=5,
                         body={"count": int(existing.get("count") or 1) + 1,
                               "lastTimestamp": event["lastTimestamp"]})
