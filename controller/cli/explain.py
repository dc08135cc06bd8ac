"""``explain``: what one delivery would do, and for every GitRepo why (not); writes nothing."""

from __future__ import annotations

import json
import sys
from typing import Any

from controller.cli.errors import Failure, UsageError
from controller.settings import Settings
from controller.store import StoreError
from controller.store.select import StoreNotReady, synced_once


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
        with synced_once(settings) as store:
            report = explain(arguments["provider"], headers, body, store, settings)
    except (StoreError, ExplainError) as error:
        raise UsageError(str(error)) from None
    except StoreNotReady as error:
        raise Failure(str(error)) from None
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
