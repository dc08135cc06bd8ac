"""Small builders and assertions shared by the conformance tests."""
from __future__ import annotations

import json
from typing import Any, Callable

import pytest
from kubernetes.client.exceptions import ApiException

GROUP, VERSION, PLURAL = "fleet.cattle.io", "v1alpha1", "gitrepos"


def gitrepo(name: str, namespace: str = "fleet-local", labels: dict[str, str] | None = None,
            **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GitRepo", "metadata": meta,
            "spec": {"repo": "https://github.com/rancher/fleet-examples", **spec}}


def api_error(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    """Run `call`, expect an ApiException, return (status, decoded Status body)."""
    with pytest.raises(ApiException) as info:
        call()
    return info.value.status, json.loads(info.value.body)


def raw_request(emulator: Any, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, token: str | None = "default") -> tuple[int, Any]:
    """A request outside the official client: (status, decoded JSON body or None)."""
    import requests

    hdrs = {"Content-Type": "application/json", **(headers or {})}
    tok = emulator.token if token == "default" else token
    if tok:
        hdrs.setdefault("Authorization", f"Bearer {tok}")
    with requests.Session() as session:
        with session.request(method, emulator.url + path, data=body, headers=hdrs,
                             verify=emulator.ca_file or True, timeout=10) as resp:
            return resp.status_code, (resp.json() if resp.content else None)
