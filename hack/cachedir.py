"""Where the build scripts of hack/ (and the node tests' host records) keep what outlives a clone."""

from __future__ import annotations

import os
import pathlib


def root() -> pathlib.Path:
    """``$GITJOB_WEBHOOK_CACHE``, else ``gitjob-webhook`` in the user's cache (``$XDG_CACHE_HOME`` or
    ``~/.cache``): one folder per kind of thing below it (k8s, helm, containerd, node-images, node)."""
    configured = os.environ.get("GITJOB_WEBHOOK_CACHE")
    if configured:
        return pathlib.Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache) / "gitjob-webhook"
