"""Choosing the store: a cluster when one is configured, else the offline file (``--store``)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from controller.logs import fields
from controller.settings import Settings
from controller.store import Store, StoreError
from controller.store.offline import OfflineStore

if TYPE_CHECKING:
    from controller.store.kubeapi import KubeApi


log = logging.getLogger(__name__)

IN_CLUSTER = "in-cluster"
"""The source of cluster access inside a pod: its ServiceAccount token."""
IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


NO_CLUSTER = ("no cluster configured (no --kubeconfig, no in-cluster service account, no $KUBECONFIG or "
              "~/.kube/config)")


def cluster_config_source(kubeconfig: str | None, environ: Mapping[str, str], home: str) -> str | None:
    """Where cluster access would come from: a kubeconfig path, ``in-cluster``, or None.

    A kubeconfig named explicitly (``--kubeconfig``, ``$KUBECONFIG``) that does not exist is an
    error, not a reason to fall back to another cluster or to the offline store.
    """
    if kubeconfig:
        if not os.path.exists(kubeconfig):
            raise StoreError(f"--kubeconfig {kubeconfig}: no such file")
        return kubeconfig
    if environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(IN_CLUSTER_TOKEN):
        return IN_CLUSTER
    named = environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if named:
        if not os.path.exists(named):
            raise StoreError(f"$KUBECONFIG names {named}, which does not exist")
        return named
    default = os.path.join(home, ".kube", "config")
    return default if os.path.exists(default) else None


def open_store(settings: Settings, role: str = "receiver", environ: Mapping[str, str] | None = None,
               one_shot: bool = False) -> Store:
    """The store ``settings`` ask for; raises StoreError naming the file or config that is wrong.

    ``role`` is the listener: only the receiver watches the Secrets GitRepos name (it verifies
    deliveries); the admission server needs the global Secret alone. ``one_shot`` is for a command
    line (see :func:`~controller.store.kubeclient.api_client`).
    """
    environ = os.environ if environ is None else environ
    if settings.store == "kubernetes" and settings.gitrepos:
        raise StoreError("--gitrepos is the offline store's file: it cannot go with --store kubernetes")
    # An explicit --gitrepos FILE means the offline store, whatever cluster is configured.
    explicit_file = settings.store == "auto" and settings.gitrepos is not None
    source = None if settings.store == "offline" or explicit_file else \
        cluster_config_source(settings.kubeconfig, environ, os.path.expanduser("~"))
    if settings.store == "kubernetes" and source is None:
        raise StoreError(f"--store kubernetes: {NO_CLUSTER}")
    if source is None:
        try:
            configured = cluster_config_source(settings.kubeconfig, environ, os.path.expanduser("~")) \
                if explicit_file else None
        except StoreError:
            configured = None   # a kubeconfig named but missing: not used anyway
        if configured is not None:
            log.warning("--gitrepos given: serving the offline store, not the configured cluster",
                        extra=fields(gitrepos=settings.gitrepos, kubeconfig=configured))
        try:
            store = OfflineStore.from_file(settings.gitrepos, settings.namespace)
        except StoreError as error:
            raise StoreError(f"--gitrepos {error}") from None
        if settings.gitrepos is None:
            log.warning("the offline store is empty: every delivery matches nothing "
                        "(pass --gitrepos FILE, or a cluster with --kubeconfig)")
        return store
    from controller.store.kube import KubeStore
    return KubeStore.connect(settings, source, per_gitrepo_secrets=role != "admission", one_shot=one_shot)


def command_api(settings: Settings) -> KubeApi:
    """The cluster of a command that writes or reads a few objects directly (``certs inject``,
    ``secret``); raises StoreError when none is configured or its kubeconfig is wrong."""
    from controller.store.kubeclient import KubeConfigError, kube_api
    source = cluster_config_source(settings.kubeconfig, os.environ, os.path.expanduser("~"))
    if source is None:
        raise StoreError(NO_CLUSTER)
    try:
        return kube_api(source, one_shot=True)
    except KubeConfigError as error:
        raise StoreError(str(error)) from None


class StoreNotReady(Exception):
    """The cluster's caches did not sync in time."""


def wait_until_ready(store: Store, seconds: float, patience: float | None = None) -> None:
    """Block until the store's caches have synced; StoreNotReady after ``seconds``, or once reading
    the cluster has kept failing for ``patience`` seconds (a command line, not a server, gives up)."""
    started = time.monotonic()
    failing_since: float | None = None
    while True:
        ready, reason = store.readiness()
        if ready:
            return
        now, problem = time.monotonic(), store.problem()
        failing_since = (failing_since or now) if problem else None
        gave_up = patience is not None and failing_since is not None and now - failing_since >= patience
        if gave_up or now - started > seconds:
            detail = f"last failure: {problem}" if problem else "no failure: the API server is slow or silent"
            raise StoreNotReady(f"{store.description}: not ready after {now - started:.0f}s: {reason} "
                                f"({detail})")
        time.sleep(0.05)


ONE_SHOT_SECONDS = 30.0
"""How long a command line waits for the caches to sync at most."""
ONE_SHOT_PATIENCE = 5.0
"""How long a command line lets reading the cluster keep failing before it gives up."""


@contextmanager
def synced_once(settings: Settings) -> Iterator[Store]:
    """The store of a one-shot command (``status``, ``explain``), synced, stopped on leaving; without
    a cluster or a ``--gitrepos`` file, a StoreError.

    At the default log level the caches' progress lines and their failures are not logged: the
    command either prints its view or fails naming the last failure (StoreNotReady). Other warnings
    (an insecure kubeconfig, the offline store chosen over a cluster) still show.
    """
    # An empty offline store would look like an answer ("No GitRepos found.", nothing matched).
    if settings.gitrepos is None and settings.store == "offline":
        raise StoreError("--store offline needs --gitrepos FILE")
    if settings.gitrepos is None and settings.store == "auto" and \
            cluster_config_source(settings.kubeconfig, os.environ, os.path.expanduser("~")) is None:
        raise StoreError(f"no GitRepos to read: {NO_CLUSTER}, and no --gitrepos FILE")
    if settings.log_level == "info":
        logging.getLogger("controller.store").setLevel(logging.WARNING)
        # Also an unexpected error's traceback: its one line is the command's error.
        logging.getLogger("controller.store.reflector").setLevel(logging.CRITICAL)
    store = open_store(settings, one_shot=True)
    unanswered = store.unanswered(ONE_SHOT_PATIENCE)
    if unanswered:
        raise StoreNotReady(f"{store.description}: {unanswered}")
    store.start()
    try:
        wait_until_ready(store, ONE_SHOT_SECONDS, patience=ONE_SHOT_PATIENCE)
        yield store
    finally:
        store.stop()
