"""The webhook Secrets the service reads: each by name, never listed with any other Secret.

The global Secret and each Secret a GitRepo names get a watch of their own, scoped by
``fieldSelector=metadata.name=…`` (which RBAC ``resourceNames`` can authorize), up to
``watch_limit`` of them. Beyond that bound one thread reads the remaining ones in turn with a GET
each, so a fleet naming thousands of Secrets costs one thread, not thousands.

A Secret is *known* once a list, watch or GET has answered for it (present or absent); until then,
and while it cannot be read at all (forbidden, failing), it is *unknown*, which the receiver answers
with 503 rather than ever treating it as absent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from controller.fleet.secrets import WebhookSecret, decode_data, webhook_secret
from controller.logs import fields
from controller.store import SecretUnknown
from controller.store.kubeapi import ApiError, KubeApi, secrets_path
from controller.store.reflector import Collection, JsonObject, Reflector

log = logging.getLogger(__name__)

SecretKey = tuple[str, str]
_ABSENT = None


class SecretCache:
    """Known Secrets by ``(namespace, name)``, fed by watches and, past the bound, by a poller."""

    def __init__(self, api: KubeApi, resync_period: float, watch_limit: int = 32,
                 poll_interval: float = 0.2) -> None:
        self.api = api
        self.resync_period = resync_period
        self.watch_limit = watch_limit
        self._lock = threading.Lock()
        self._values: dict[SecretKey, WebhookSecret | None] = {}
        self._watches: dict[SecretKey, Reflector[tuple[SecretKey, WebhookSecret] | None]] = {}
        self._poller = _Poller(self, poll_interval)
        self._pinned: SecretKey | None = None
        self._started = False

    def start(self, pinned: SecretKey) -> None:
        """Start with the one Secret that is always watched (the global one)."""
        self._started = True
        self._pinned = pinned
        self.want([pinned])
        self._poller.start()

    def stop(self) -> None:
        """Stop every watch and the poller."""
        self._poller.stop()
        with self._lock:
            watches = list(self._watches.values())
        for watch in watches:
            watch.stop()

    def want(self, keys: Iterable[SecretKey]) -> None:
        """Read exactly these Secrets (and the pinned one) from now on; forget the others."""
        if not self._started:
            return
        wanted = set(keys) | ({self._pinned} if self._pinned else set())
        with self._lock:
            for key in list(self._watches):
                if key not in wanted:
                    self._watches.pop(key).stop()
            for key in set(self._values) - wanted:
                self._values.pop(key, None)
            # Watches stay where they are; new Secrets get one while there is room, then are polled.
            room = max(0, self.watch_limit - len(self._watches))
            new = sorted(wanted - self._watches.keys(), key=lambda key: (key != self._pinned, key))
            for key in new[:room]:
                self._watch(key)
            polled = wanted - self._watches.keys()
        self._poller.assign(sorted(polled))

    def get(self, key: SecretKey) -> WebhookSecret | None:
        """The Secret's data, or None when it is known not to exist; raises SecretUnknown."""
        with self._lock:
            if key in self._values:
                return self._values[key]
        raise SecretUnknown(f"Secret {key[0]}/{key[1]} has not been read yet")

    def waiting(self) -> list[str]:
        """Secrets whose first read has not been tried yet (the pinned one until it is known)."""
        with self._lock:
            names = [f"{ns}/{name}" for (ns, name), watch in self._watches.items()
                     if not (watch.synced if (ns, name) == self._pinned else watch.attempted).is_set()]
        return names + self._poller.untried()

    def pinned_problem(self) -> str:
        """Why the pinned Secret (the global one) could not be read yet ("" once it was, or not tried)."""
        with self._lock:
            watch = self._watches.get(self._pinned) if self._pinned is not None else None
        return "" if watch is None or watch.synced.is_set() else watch.problem

    def unreadable(self) -> list[str]:
        """Secrets tried but still unknown (forbidden or failing): their GitRepos' deliveries wait."""
        with self._lock:
            watched = [f"{ns}/{name}" for (ns, name), watch in self._watches.items()
                       if watch.attempted.is_set() and (ns, name) not in self._values]
        return sorted(watched + self._poller.failing())

    def _set(self, key: SecretKey, value: WebhookSecret | None) -> None:
        with self._lock:
            self._values[key] = value

    def _watch(self, key: SecretKey) -> None:
        namespace, name = key

        def replace(values: list[tuple[SecretKey, WebhookSecret] | None]) -> None:
            found = next((value for value in values if value is not None), None)
            self._set(key, found[1] if found is not None else _ABSENT)

        def event(kind: str, value: tuple[SecretKey, WebhookSecret] | None) -> None:
            self._set(key, value[1] if kind != "DELETED" and value is not None else _ABSENT)

        watch: Reflector[tuple[SecretKey, WebhookSecret] | None] = Reflector(
            f"secret {namespace}/{name}", self.api,
            Collection(secrets_path(namespace), field_selector=f"metadata.name={name}"),
            secret_value, replace, event, self.resync_period)
        self._watches[key] = watch
        watch.start()


class _Poller:
    """One thread reading the Secrets past the watch bound, one GET at a time, in turn."""

    def __init__(self, cache: SecretCache, interval: float) -> None:
        self.cache = cache
        self.interval = interval
        self._keys: list[SecretKey] = []
        self._tried: set[SecretKey] = set()
        self._failing: set[SecretKey] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="secret-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def assign(self, keys: list[SecretKey]) -> None:
        with self._lock:
            self._keys = keys
            self._tried &= set(keys)
        self._wake.set()

    def failing(self) -> list[str]:
        with self._lock:
            return [f"{ns}/{name}" for ns, name in self._failing]

    def untried(self) -> list[str]:
        with self._lock:
            return [f"{ns}/{name}" for ns, name in self._keys if (ns, name) not in self._tried]

    def _run(self) -> None:
        position = 0
        while not self._stop.is_set():
            with self._lock:
                keys = list(self._keys)
            if not keys:
                self._wake.wait()
                self._wake.clear()
                continue
            key = keys[position % len(keys)]
            position += 1
            self._read(key)
            with self._lock:
                self._tried.add(key)
            self._stop.wait(self.interval)

    def _read(self, key: SecretKey) -> None:
        namespace, name = key
        try:
            obj = self.cache.api.request("GET", f"{secrets_path(namespace)}/{name}", timeout=10)
        except ApiError as error:
            if error.status != 404:
                # Logged once per Secret when it starts failing, not at every turn.
                if key not in self._failing:
                    log.warning("secret not readable",
                                extra=fields(secret=f"{namespace}/{name}", error=str(error)))
                with self._lock:
                    self._failing.add(key)
                return
            obj = None
        if key in self._failing:
            log.info("secret readable again", extra=fields(secret=f"{namespace}/{name}"))
            with self._lock:
                self._failing.discard(key)
        value = secret_value(obj) if obj is not None else None
        self.cache._set(key, value[1] if value is not None else _ABSENT)


def secret_value(obj: JsonObject) -> tuple[SecretKey, WebhookSecret] | None:
    """A Secret object's key and decoded data; an undecodable value is logged (by key) and left out."""
    metadata = obj.get("metadata") or {}
    decoded = decode_data(obj)
    for key in sorted(decoded.bad):
        log.warning("secret value cannot be decoded; key ignored",
                    extra=fields(secret=f"{metadata.get('namespace')}/{metadata.get('name')}", key=key))
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or "")), webhook_secret(obj)
