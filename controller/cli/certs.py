"""``certs``: create or renew the CA and serving certificate; ``certs inject``: publish the CA."""

from __future__ import annotations

import os
from typing import Any

from controller.certs import issue
from controller.certs.inject import InjectError, inject_ca_bundle
from controller.cli.errors import Failure, UsageError
from controller.settings import Settings
from controller.store import StoreError


def run(arguments: dict[str, Any], settings: Settings) -> int:
    """Make (or keep) the certificates in ``--out``; with ``inject``, write the CA to the webhooks."""
    try:
        if arguments.get("action") == "inject":
            return _inject(arguments, settings)
        names = issue.service_names(arguments["service"], settings.namespace, arguments["host"])
        result = issue.ensure_certificates(arguments["out"], names)
    except issue.CertsError as error:
        raise UsageError(str(error)) from None
    print(f"{arguments['out']}: CA {result.ca}, serving certificate {result.serving} "
          f"for {', '.join(result.names)}")
    return 0


def _inject(arguments: dict[str, Any], settings: Settings) -> int:
    from controller.store.select import command_api
    try:
        ca_pem = issue.read_ca(arguments.get("ca") or os.path.join(arguments["out"], issue.CA_FILE))
    except issue.CertsError as error:
        raise UsageError(f"{'--ca' if arguments.get('ca') else '--out'} {error}") from None
    try:
        api = command_api(settings)
    except StoreError as error:
        raise UsageError(str(error)) from None
    try:
        lines = inject_ca_bundle(api, ca_pem)
    except InjectError as error:
        for line in error.done:
            print(line)
        raise Failure(str(error)) from None
    for line in lines:
        print(line)
    return 0
