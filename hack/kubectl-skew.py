#!/usr/bin/env python3
"""Say what `make deploy` deploys with: kubectl's version, the cluster's, and a warning when they are skewed.

Usage: kubectl version -o json | hack/kubectl-skew.py

kubectl supports clusters one minor version older or newer than itself; further apart, server-side
apply and the manifests' fields may be refused or misread. Prints one line (two with the warning)
and always exits 0: the deploy goes on, the operator has been told.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

MINOR = re.compile(r"^v?(?P<major>\d+)\.(?P<minor>\d+)")
SUPPORTED_SKEW = 1


def describe(versions: Any) -> list[str]:
    """The lines to print for ``kubectl version -o json``'s output (parsed)."""
    versions = versions if isinstance(versions, dict) else {}
    client = _git_version(versions.get("clientVersion"))
    server = _git_version(versions.get("serverVersion"))
    lines = [f"kubectl {client or 'of unknown version'}, cluster {server or 'of unknown version'}"]
    client_minor, server_minor = _minor(client), _minor(server)
    if client_minor and server_minor and (client_minor[0] != server_minor[0]
                                          or abs(client_minor[1] - server_minor[1]) > SUPPORTED_SKEW):
        lines.append(f"warning: kubectl {client} is more than {SUPPORTED_SKEW} minor version from the "
                     f"cluster's {server}; use a kubectl within that skew (KUBECTL=...)")
    return lines


def _git_version(info: Any) -> str:
    version = info.get("gitVersion") if isinstance(info, dict) else None
    return version if isinstance(version, str) else ""


def _minor(version: str) -> tuple[int, int] | None:
    found = MINOR.match(version)
    return (int(found["major"]), int(found["minor"])) if found else None


def main() -> int:
    try:
        versions = json.load(sys.stdin)
    except ValueError:
        versions = {}
    print("\n".join(describe(versions)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
