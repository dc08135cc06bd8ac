"""make deploy's kubectl/cluster version line and its skew warning (hack/kubectl-skew.py)."""

from __future__ import annotations

from typing import Any

import pytest

from support import scripts

skew = scripts.load("kubectl-skew")


def _versions(client: str | None, server: str | None) -> dict[str, Any]:
    versions: dict[str, Any] = {}
    if client is not None:
        versions["clientVersion"] = {"gitVersion": client}
    if server is not None:
        versions["serverVersion"] = {"gitVersion": server}
    return versions


@pytest.mark.parametrize(("client", "server", "warned"), [
    ("v1.37.2", "v1.37.2", False),
    ("v1.37.1", "v1.36.9", False),
    ("v1.36.0", "v1.37.2", False),
    ("v1.37.2", "v1.35.4", True),
    ("v1.32.4-dispatcher", "v1.37.2", True),
    ("v1.37.2", "v1.34.1+k3s1", True),
    ("v1.37.2", None, False),     # the cluster did not answer: nothing to compare
    ("v1.37.2", "unknown", False),
])
def test_a_skew_of_more_than_one_minor_version_is_warned_of(
        client: str, server: str | None, warned: bool) -> None:
    lines = skew.describe(_versions(client, server))
    assert lines[0] == f"kubectl {client}, cluster {server or 'of unknown version'}"
    assert len(lines) == 1 + warned
    warning = f"warning: kubectl {client} is more than 1 minor version"
    assert all(line.startswith(warning) for line in lines[1:])


@pytest.mark.parametrize("output", [None, [], "text", {"clientVersion": "v1"}])
def test_output_that_is_not_kubectls_is_unknown_versions(output: Any) -> None:
    assert skew.describe(output) == ["kubectl of unknown version, cluster of unknown version"]
