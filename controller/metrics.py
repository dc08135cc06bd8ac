"""Prometheus metrics of both listeners, correct with one or several gunicorn workers.

With several workers each process writes its samples to ``PROMETHEUS_MULTIPROC_DIR`` (set by the
server before any worker starts) and ``/metrics`` aggregates the directory; with one worker the
default registry is served directly.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)
from prometheus_client.metrics_core import Metric

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "gitjob_webhook_http_requests_total", "HTTP requests answered, by listener, route and status.",
    ["listener", "route", "method", "status"])
HTTP_DURATION = Histogram(
    "gitjob_webhook_http_request_duration_seconds", "Time to answer an HTTP request.",
    ["listener", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

DELIVERIES = Counter(
    "gitjob_webhook_deliveries_total", "Provider deliveries, by provider, event and outcome.",
    ["provider", "event", "outcome"])
DELIVERY_DURATION = Histogram(
    "gitjob_webhook_delivery_duration_seconds", "Time from receiving a delivery to answering it.",
    ["provider"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
GITREPO_PATCHES = Counter(
    "gitjob_webhook_gitrepo_patches_total", "GitRepo status writes, by result (patched, current, failed).",
    ["result"])
PREVIOUS_SECRET_DELIVERIES = Counter(
    "gitjob_webhook_previous_secret_deliveries_total",
    "Deliveries that verified only with a webhook Secret's previous keys (a rotation's overlap).",
    ["provider"])
UNAUTHENTICATED = Counter(
    "gitjob_webhook_unauthenticated_deliveries_total",
    "Deliveries accepted although no secret applied to them (no global or per-GitRepo secret).",
    ["provider"])

ADMISSION_DECISIONS = Counter(
    "gitjob_webhook_admission_decisions_total",
    "Admission decisions, by webhook, operation, result (allowed, patched, denied) and reason.",
    ["webhook", "operation", "result", "reason"])

CACHE_SYNCED = Gauge(
    "gitjob_webhook_cache_synced", "1 when the named watch-fed cache has synced.", ["cache"],
    multiprocess_mode="liveall")
CACHED_OBJECTS = Gauge(
    "gitjob_webhook_cached_objects", "Objects held in the named watch-fed cache.", ["cache"],
    multiprocess_mode="liveall")
CACHE_LAST_SYNC = Gauge(
    "gitjob_webhook_cache_last_sync_timestamp_seconds",
    "When the named watch-fed cache last listed its collection in full (start, relist, resync).", ["cache"],
    multiprocess_mode="liveall")

MISSED_PUSHES = Counter(
    "gitjob_webhook_missed_pushes_total",
    "Commits Fleet found by polling that no webhook delivery announced within --missed-push-grace "
    "(counted by the leader of the reconcile Lease).")
GITREPOS_BY_STATE = Gauge(
    "gitjob_webhook_gitrepos",
    "GitRepos by webhook health state, as `gitjob-webhook status` shows it (the leader of the "
    "reconcile Lease exports the counts, other processes 0).", ["state"],
    multiprocess_mode="livemax")
TLS_CERTIFICATE_EXPIRY = Gauge(
    "gitjob_webhook_tls_certificate_expiry_timestamp_seconds",
    "When the admission server's serving certificate expires (notAfter), as loaded at start or last reload.",
    multiprocess_mode="mostrecent")


# A sample file starts with the 4-byte count of bytes used, padded to 8.
_HEADER = 8


class _Workers:
    """The samples of every worker in a multiprocess directory.

    A worker creates its file for a kind of metric the first time it records one, and the file is
    empty for an instant before the worker sizes it; prometheus-client's own collector fails on such a
    file. Files only grow, so one seen empty has no samples yet and is left for the next scrape.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        return multiprocess.MultiProcessCollector.merge(  # type: ignore[no-untyped-call,no-any-return]
            list(_sized(glob.glob(os.path.join(self.directory, "*.db")))), accumulate=True)


def _sized(paths: Iterable[str]) -> Iterator[str]:
    for path in paths:
        try:
            if os.stat(path).st_size >= _HEADER:
                yield path
        except FileNotFoundError:
            continue  # a dead worker's live gauges, removed since the listing


def exposition() -> tuple[bytes, str]:
    """The metrics text of this process, or of all workers when several share a directory."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        registry.register(_Workers(directory))
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
