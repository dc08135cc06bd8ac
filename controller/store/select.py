"""Choosing the store: a cluster when one is configured, else the offline file (``--store``)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from controller.settings import Settings
from controller.store import Store, StoreError
from controller.store.offline import OfflineStore


IN_CLUSTER = "in-cluster"
"""The source of cluster access inside a pod: its ServiceAccount token."""
IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def cluster_config_source(kubeconfig: str | None, environ: Mapping[str, str], home: str) -> str | None:
    """Where cluster access would come from: a kubeconfig path, ``in-cluster``, or None."""
    if kubeconfig:
        return kubeconfig
    if environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(IN_CLUSTER_TOKEN):
        return IN_CLUSTER
    for path in (environ.get("KUBECONFIG", "").split(os.pathsep)[0], os.path.join(home, ".kube", "config")):
        if path and os.path.exists(path):
            return path
    return None


def open_store(settings: Settings, role: str = "receiver", environ: Mapping[str, str] | None = None) -> Store:
    """The store ``settings`` ask for; raises StoreError naming the file or config that is wrong.

    ``role`` is the listener: only the receiver watches the Secrets GitRepos name (it verifies
    deliveries); the admission server needs the global Secret alone.
    """
    environ = os.environ if environ is None else environ
    source = None if settings.store == "offline" else \
        cluster_config_source(settings.kubeconfig, environ, os.path.expanduser("~"))
    if settings.store == "kubernetes" and source is None:
        raise StoreError("--store kubernetes: no cluster configured (no --kubeconfig, no in-cluster "
                         "service account, no $KUBECONFIG or ~/.kube/config)")
    if source is None:
        return OfflineStore.from_file(settings.gitrepos, settings.namespace)
    from controller.store.kube import KubeStore
    return KubeStore.connect(settings, source, per_gitrepo_secrets=role != "admission")


class StoreNotReady(Exception):
    """The cluster's caches did not sync in time."""


def wait_until_ready(store: Store, seconds: float) -> None:
    """Block until the store's caches have synced; StoreNotReady after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        ready, reason = store.readiness()
        if ready:
            return
        if time.monotonic() > deadline:
            raise StoreNotReady(f"{store.description}: not ready after {seconds:g}s: {reason}")
        time.sleep(0.05)
