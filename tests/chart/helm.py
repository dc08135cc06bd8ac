"""helm, as the chart tests run it: the cached binary hack/helm-binary.py builds, in a home of its own.

Every run gets HOME and the XDG and HELM_* directories under one temporary directory and nothing of
the developer's environment but PATH, so no repository, plugin or kubeconfig of theirs takes part.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from support import scripts

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILDER = "helm-binary"
CHART = ROOT / "charts" / "gitjob-webhook"
RELEASE = "gitjob-webhook"
NAMESPACE = "cattle-fleet-system"


class HelmUnavailable(Exception):
    """helm is not in the cache and could not be built; the message says why."""


def binary() -> pathlib.Path:
    """Where the cached helm of tools/helm/go.mod's version is (it may not exist yet)."""
    path: pathlib.Path = scripts.load(BUILDER).binary_path()
    return path


def ensure(progress: Callable[[str], None] | None = None) -> pathlib.Path:
    """The cached helm, built first when missing (the builder's lines go to ``progress``)."""
    if binary().is_file():
        return binary()
    returncode, lines = scripts.run(BUILDER, progress=progress)
    if returncode != 0 or not binary().is_file():
        reason = lines[-1] if lines else f"hack/{BUILDER}.py exited with {returncode}"
        raise HelmUnavailable(f"the chart tests need helm: {reason} (run `make helm`)")
    return binary()


def documents(text: str) -> list[dict[str, Any]]:
    """The objects of a YAML stream, without empty documents."""
    return [document for document in yaml.safe_load_all(text) if document]


@dataclass(frozen=True)
class Helm:
    """helm with a home of its own, and optionally a kubeconfig."""

    path: pathlib.Path
    home: pathlib.Path
    kubeconfig: pathlib.Path | None = None

    def with_kubeconfig(self, kubeconfig: pathlib.Path) -> Helm:
        """The same helm, talking to the cluster of ``kubeconfig``."""
        return Helm(self.path, self.home, kubeconfig)

    def environment(self) -> dict[str, str]:
        """HOME, XDG and HELM_* directories under ``home``; KUBECONFIG when there is one."""
        home = str(self.home)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
               "XDG_CACHE_HOME": f"{home}/cache", "XDG_CONFIG_HOME": f"{home}/config",
               "XDG_DATA_HOME": f"{home}/data", "HELM_CACHE_HOME": f"{home}/cache/helm",
               "HELM_CONFIG_HOME": f"{home}/config/helm", "HELM_DATA_HOME": f"{home}/data/helm"}
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run helm; never raises on a failure (the caller checks ``returncode``)."""
        return subprocess.run([str(self.path), *args], capture_output=True, text=True, timeout=timeout,
                              env=self.environment())

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start helm in the background (the caller waits for it)."""
        return subprocess.Popen([str(self.path), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.environment())

    def values_file(self, values: Mapping[str, Any], name: str = "values.yaml") -> pathlib.Path:
        """Write ``values`` as a values file (JSON is YAML) and return its path."""
        path = self.home / name
        path.write_text(json.dumps(values))
        return path

    def template(self, values: Mapping[str, Any] | None = None, *args: str,
                 namespace: str = NAMESPACE) -> subprocess.CompletedProcess[str]:
        """``helm template`` of the chart with ``values`` (a values file) and extra arguments."""
        given = ["--values", str(self.values_file(values))] if values else []
        return self.run("template", RELEASE, str(CHART), "--namespace", namespace, *given, *args)

    def render(self, values: Mapping[str, Any] | None = None, *args: str,
               namespace: str = NAMESPACE) -> list[dict[str, Any]]:
        """The objects ``helm template`` renders; fails the test with helm's message when it refuses."""
        run = self.template(values, *args, namespace=namespace)
        assert run.returncode == 0, run.stderr
        return documents(run.stdout)
