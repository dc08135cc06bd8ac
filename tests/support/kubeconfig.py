"""Kubeconfig files as the tests hand them to the service and kubectl: one cluster, one user, one
context, written by one function (the control plane's admin, a closed port, an impostor server)."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from typing import Any

import yaml


def write_kubeconfig(path: pathlib.Path, server: str, *, cluster: Mapping[str, Any] | None = None,
                     user: Mapping[str, Any] | None = None, user_name: str = "u",
                     context: str = "c") -> pathlib.Path:
    """A kubeconfig at ``path`` (mode 0600) for ``server``, with the ``cluster`` fields besides the
    server (``certificate-authority-data`` …) and the ``user`` entry (default: the token ``t``)."""
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": context, "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": user_name, "user": dict(user) if user is not None else {"token": "t"}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user_name}}],
    }
    path.write_text(yaml.safe_dump(config))
    os.chmod(path, 0o600)
    return path
