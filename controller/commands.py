"""The work behind each subcommand, after the command line has been parsed into Settings."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from controller import certs, server
from controller.cli import Failure, UsageError
from controller.logs import fields
from controller.settings import Listen, Settings
from controller.store import Store, StoreError
from controller.store.select import open_store
from controller.tls import CertificateError, ReloadingContext

log = logging.getLogger("gitjob_webhook")

EXPLAIN_SYNC_SECONDS = 30.0
DEFAULT_LISTEN = {"receiver": Listen("0.0.0.0", 8080), "admission": Listen("0.0.0.0", 8443)}


def check_serving(listener: str, settings: Settings) -> tuple[Store, ReloadingContext | None]:
    """Everything that can be checked before forking: TLS files, the store, the port.

    Returns the store (not started: its threads belong in the worker) and, for the admission
    listener, the reloading TLS context.
    """
    context = None
    if listener == "admission":
        if not settings.tls_cert or not settings.tls_key:
            raise UsageError("serve admission needs --tls-cert and --tls-key "
                             "(run `gitjob-webhook certs --out certs` for development ones)")
        try:
            context = ReloadingContext(settings.tls_cert, settings.tls_key)
        except (CertificateError, OSError) as error:
            raise UsageError(f"--tls-cert/--tls-key: {_describe(error)}") from None
    try:
        store = open_store(settings, listener)
    except StoreError as error:
        raise UsageError(str(error)) from None
    try:
        server.check_bindable(settings.listen or DEFAULT_LISTEN[listener])
    except server.ListenError as error:
        raise Failure(f"{listener}: {error}") from None
    return store, context


def serve_command(listener: str, settings: Settings) -> int:
    """Run one listener under gunicorn until it is told to stop."""
    settings = settings.replace(listen=settings.listen or DEFAULT_LISTEN[listener])
    assert settings.listen is not None
    # Before anything imports prometheus-client: it chooses single- or multi-process storage at import.
    server.prepare_multiprocess_metrics(settings.workers)
    store, context = check_serving(listener, settings)
    log.info(f"store: {store.description}", extra=fields(listener=listener))

    def factory() -> Any:
        if listener == "receiver":
            from controller.receiver.app import create_app
            return create_app(settings, store)
        from controller.admission.app import create_app as create_admission_app
        return create_admission_app(settings, store)

    log.info(f"{listener} listening", extra=fields(
        address=str(settings.listen), tls=context is not None, workers=settings.workers,
        threads=settings.threads))
    server.run(factory, server.gunicorn_options(settings, settings.listen, listener,
                                                context.front if context else None))
    return 0


def certs_command(arguments: dict[str, Any], settings: Settings) -> int:
    """``certs``: create or renew the certificates; ``certs inject``: publish the CA bundle."""
    try:
        if arguments.get("action") == "inject":
            return _inject(arguments, settings)
        names = certs.service_names(arguments["service"], settings.namespace, arguments["host"])
        result = certs.ensure_certificates(arguments["out"], names)
    except certs.CertsError as error:
        raise UsageError(str(error)) from None
    print(f"{arguments['out']}: CA {result.ca}, serving certificate {result.serving} "
          f"for {', '.join(result.names)}")
    return 0


def _inject(arguments: dict[str, Any], settings: Settings) -> int:
    from controller.store.kubeapi import KubeApi
    from controller.store.kubeclient import KubeConfigError, api_client
    from controller.store.select import cluster_config_source
    from controller.webhookconfig import inject_ca_bundle
    ca_pem = certs.read_ca(arguments.get("ca") or os.path.join(arguments["out"], certs.CA_FILE))
    source = cluster_config_source(settings.kubeconfig, os.environ, os.path.expanduser("~"))
    try:
        api = KubeApi(api_client(source))
    except KubeConfigError as error:
        raise UsageError(str(error)) from None
    for line in inject_ca_bundle(api, ca_pem, certs.WEBHOOK_CONFIGURATIONS):
        print(line)
    return 0


def explain_command(arguments: dict[str, Any], settings: Settings) -> int:
    """``explain``: print what a delivery would do, offline, without writing anything."""
    from controller.explain import ExplainError, explain
    try:
        with open(arguments["payload"], "rb") as handle:
            body = handle.read()
    except OSError as error:
        raise UsageError(f"--payload {arguments['payload']}: cannot read: {error.strerror}") from None
    headers = []
    for item in arguments["header"]:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--header {item!r}: expected NAME=VALUE")
        headers.append((name.strip(), value.strip()))
    try:
        store = open_store(settings)
        store.start()
        try:
            _wait_until_ready(store, EXPLAIN_SYNC_SECONDS)
            report = explain(arguments["provider"], headers, body, store, settings)
        finally:
            store.stop()
    except (StoreError, ExplainError) as error:
        raise UsageError(str(error)) from None
    except StoreNotReady as error:
        raise Failure(str(error)) from None
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


class StoreNotReady(Exception):
    """The cluster's caches did not sync in time."""


def _wait_until_ready(store: Store, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        ready, reason = store.readiness()
        if ready:
            return
        if time.monotonic() > deadline:
            raise StoreNotReady(f"{store.description}: not ready after {seconds:g}s: {reason}")
        time.sleep(0.05)


def _describe(error: Exception) -> str:
    if isinstance(error, OSError):
        return f"{error.filename}: {error.strerror}"
    return str(error)
