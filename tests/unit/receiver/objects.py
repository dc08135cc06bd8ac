"""Builders for the Kubernetes objects and deliveries the receiver tests feed the pipeline."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from controller.serving.errors import ServiceError
from controller.providers.base import lower_headers
from controller.receiver.pipeline import Delivery, Receiver

# Fleet's test fixtures (research report, section 7).
C = "af69d162de5a276abc86e0686b2b44033cd3f442"
GOOD_SECRET = "supersecretvalue"
BAD_SECRET = "bad-secret"
CONTROLLER_NAMESPACE = "default"


def gitrepo(name: str = "test", namespace: str = "default", repo: str = "https://github.com/example/repo",
            *, branch: str = "", revision: str = "", webhook_secret: str = "", webhook_commit: str = "",
            polling_interval: str | None = None) -> dict[str, Any]:
    """A GitRepo object with only the fields given."""
    spec: dict[str, Any] = {"repo": repo}
    for key, value in (("branch", branch), ("revision", revision), ("webhookSecret", webhook_secret),
                       ("pollingInterval", polling_interval)):
        if value:
            spec[key] = value
    obj: dict[str, Any] = {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
                           "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    if webhook_commit:
        obj["status"] = {"webhookCommit": webhook_commit}
    return obj


def secret(name: str = "gitjob-webhook", namespace: str = CONTROLLER_NAMESPACE,
           **data: str) -> dict[str, Any]:
    """A Secret object; keyword names with ``_`` become keys with ``-`` (``bitbucket_server``)."""
    encoded = {key.replace("_", "-"): base64.b64encode(value.encode()).decode()
               for key, value in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "data": encoded}


def body(payload: Mapping[str, Any]) -> bytes:
    """A compact JSON body."""
    return json.dumps(payload, separators=(",", ":")).encode()


def github_push(html_url: str = "https://github.com/example/repo", ref: str = "refs/heads/main",
                after: str = C, **repository: str) -> bytes:
    """Fleet's minimal GitHub push body."""
    return body({"ref": ref, "after": after, "repository": {"html_url": html_url, **repository}})


def hmac_hex(key: str, data: bytes) -> str:
    """Lower-case hex HMAC-SHA256."""
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()


def github_headers(data: bytes, key: str | None = GOOD_SECRET, event: str = "push",
                   delivery: str = "") -> dict[str, str]:
    """GitHub headers, signed with ``key`` unless it is None."""
    headers = {"X-GitHub-Event": event, "Content-Type": "application/json"}
    if key is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac_hex(key, data)
    if delivery:
        headers["X-GitHub-Delivery"] = delivery
    return headers


def outcome(receiver: Receiver, headers: Mapping[str, str], data: bytes) -> tuple[int, dict[str, Any]]:
    """Status and JSON body, whether the pipeline answered or raised (as the HTTP layer would)."""
    try:
        reply = receiver.handle(Delivery(lower_headers(headers.items()), data))
    except ServiceError as error:
        return error.status, {"error": error.code, "message": error.message, "headers": error.headers}
    return reply.status, {**reply.body, "headers": reply.headers}
