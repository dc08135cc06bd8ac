"""Helpers of the resilience and security tests: signed GitHub deliveries and seed objects."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

GLOBAL_SECRET = "resilience-global-secret-8f3a"
REPO = "https://github.com/example/repo"


def signature(body: bytes, secret: str = GLOBAL_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push_body(commit: str, repo: str = REPO, branch: str = "main") -> bytes:
    return json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "after": commit,
            "repository": {"html_url": repo, "clone_url": repo + ".git"},
        }
    ).encode()


def push_headers(body: bytes, delivery: str, secret: str | None = GLOBAL_SECRET) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery}
    if secret is not None:
        headers["X-Hub-Signature-256"] = signature(body, secret)
    return headers


def commit_for(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()


def gitrepo(name: str, repo: str = REPO, namespace: str = "fleet-default", **spec: object) -> dict[str, Any]:
    return {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"repo": repo, "branch": "main", **spec},
    }


def global_secret(value: str = GLOBAL_SECRET, **more: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "gitjob-webhook", "namespace": "cattle-fleet-system"},
        "stringData": {"github": value, **more},
    }
