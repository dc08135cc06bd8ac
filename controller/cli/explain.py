"""``explain``: what one delivery would do, and for every GitRepo why (not); writes nothing."""

from __future__ import annotations

import json
import sys
from typing import Any

from controller.cli.errors import Failure, UsageError
from controller.settings import Settings
from controller.store import StoreError
from controller.store.select import StoreNotReady, open_store, wait_until_ready

SYNC_SECONDS = 30.0
FAILING_SECONDS = 5.0
"""Give up once reading the cluster has failed for this long: a wrong token will not heal."""


def run(arguments: dict[str, Any], settings: Settings) -> int:
    """Print the report of ``--payload`` as ``--provider`` would send it, against the store."""
    from controller.receiver.explain import ExplainError, explain
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
            wait_until_ready(store, SYNC_SECONDS, patience=FAILING_SECONDS)
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
