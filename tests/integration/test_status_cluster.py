"""``gitjob-webhook status`` on a real kube-apiserver: one GitRepo in each state (status written
through the status subresource, as Fleet and the receiver write it), the table, the data, the
selector, and the same view through real kubectl as the plugin ``kubectl gitjob-webhook``."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from cluster.isolation import Cluster
from support.kube import Objects, gitrepo, secret
from support.service import command

A, B = "a" * 40, "b" * 40
VENV_BIN = pathlib.Path(sys.executable).parent


def ago(**delta: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Fleet:
    """GitRepos in every state in ``namespace``; the controller namespace has no global Secret."""

    cluster: Cluster
    controller_namespace: str
    namespace: str

    def status(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command("status", "--kubeconfig", str(self.cluster.kubeconfig), "--controller-namespace",
                    self.controller_namespace, "-n", self.namespace, *arguments),
            capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home", "GITJOB_WEBHOOK_LOG_LEVEL": "warning"})


@pytest.fixture
def fleet(cluster: Cluster) -> Fleet:
    objects = Objects(cluster.control_plane)
    controller_namespace, namespace = cluster.namespace("ctl"), cluster.namespace("repos")
    objects.create(secret("hook", namespace, github="s3cret"))
    statuses = {
        "synced": {"commit": A, "pollingCommit": A, "webhookCommit": A, "lastWebhookTime": ago(minutes=5),
                   "lastPollingTriggered": ago(minutes=30)},
        "pending": {"commit": A, "pollingCommit": A, "webhookCommit": B, "lastWebhookTime": ago(seconds=5),
                    "lastPollingTriggered": ago(minutes=30)},
        "missed": {"commit": A, "pollingCommit": B, "webhookCommit": A, "lastWebhookTime": ago(hours=2),
                   "lastPollingTriggered": ago(minutes=10)},
        "silent": {"commit": A, "pollingCommit": A},
    }
    for name, status in statuses.items():
        objects.create(gitrepo(name, namespace, f"https://github.com/example/{name}", branch="main",
                               webhookSecret="hook", pollingInterval="1h"))
        objects.patch("GitRepo", namespace, name, {"status": status}, subresource="status")
    polled = gitrepo("polled", namespace, "https://github.com/example/polled")
    polled["metadata"]["labels"] = {"tier": "legacy"}
    objects.create(polled)
    objects.create(gitrepo("lost", namespace, "git@github.com:example/lost.git", revision="v1.2.0",
                           webhookSecret="gone"))
    return Fleet(cluster, controller_namespace, namespace)


def test_status_shows_one_aligned_line_per_gitrepo_and_the_counts(fleet: Fleet) -> None:
    result = fleet.status()

    assert result.returncode == 0, result.stderr
    header, *lines, last = result.stdout.splitlines()
    rows = {cells[1]: cells for cells in (re.split(r"\s{3,}", line) for line in lines)}
    assert re.split(r"\s{3,}", header) == ["NAMESPACE", "NAME", "REPO", "TRACKS", "MODE", "POLLING", "SECRET",
                                           "LAST DELIVERY", "STATE"]
    assert list(rows) == ["lost", "missed", "pending", "polled", "silent", "synced"]
    assert {name: cells[-1] for name, cells in rows.items()} == {
        "lost": "never received", "missed": "missed push", "pending": "webhook pending",
        "polled": "no webhook", "silent": "never received", "synced": "in sync"}
    assert rows["synced"][2:7] == ["github.com/example/synced", "branch main", "webhook (own Secret)", "1h",
                                   "own"]
    assert rows["synced"][7].startswith("5m")
    assert rows["polled"][4:8] == ["polling (no Secret)", "15s (Fleet default)", "none", "<none>"]
    assert rows["lost"][3:7] == ["tag v1.2.0", "webhook (own Secret)", "15s (Fleet default)", "missing"]
    assert {line.index(cells[-1]) for line, cells in zip(lines, rows.values())} == {header.index("STATE")}
    assert last == "6 GitRepos: 1 in sync, 1 webhook pending, 1 missed push, 2 never received, 1 no webhook"
    assert "\033[" not in result.stdout


def test_status_as_json_carries_the_whole_status(fleet: Fleet) -> None:
    result = fleet.status("-o", "json")

    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    missed = next(item for item in view["gitrepos"] if item["name"] == "missed")
    assert (missed["pollingCommit"], missed["webhookCommit"], missed["state"]) == (B, A, "missed push")
    assert missed["webhookModeSource"] == "auto/gitrepo-secret"
    assert view["summary"]["never received"] == 2


def test_a_label_selector_narrows_the_view(fleet: Fleet) -> None:
    result = fleet.status("--selector", "tier in (legacy)", "-o", "wide")

    assert result.returncode == 0, result.stderr
    assert [line.split()[1] for line in result.stdout.splitlines()[1:-1]] == ["polled"]
    assert "POLLED COMMIT" in result.stdout.splitlines()[0]


def test_kubectl_finds_the_plugin_and_runs_it_against_the_cluster(fleet: Fleet) -> None:
    kubectl = str(fleet.cluster.control_plane.binaries.path("kubectl"))
    env = {"PATH": f"{VENV_BIN}{os.pathsep}/usr/bin:/bin", "HOME": str(fleet.cluster.directory),
           "KUBECONFIG": str(fleet.cluster.kubeconfig),
           "GITJOB_WEBHOOK_NAMESPACE": fleet.controller_namespace,
           "GITJOB_WEBHOOK_LOG_LEVEL": "warning"}

    listed = subprocess.run([kubectl, "plugin", "list"], capture_output=True, text=True, timeout=30, env=env)
    assert str(VENV_BIN / "kubectl-gitjob_webhook") in listed.stdout, listed.stdout + listed.stderr

    ran = subprocess.run([kubectl, "gitjob-webhook", "status", "-n", fleet.namespace], capture_output=True,
                         text=True, timeout=60, env=env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == \
        "6 GitRepos: 1 in sync, 1 webhook pending, 1 missed push, 2 never received, 1 no webhook"


def test_no_gitrepo_in_the_namespace_is_said_on_stderr(fleet: Fleet) -> None:
    result = fleet.status("--selector", "tier=none")

    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.strip().endswith(
        f"No GitRepos found in namespace {fleet.namespace} matching tier=none.")


def test_a_kubeconfig_that_skips_tls_verification_is_said_once(fleet: Fleet, tmp_path: pathlib.Path) -> None:
    config = yaml.safe_load(fleet.cluster.kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"].pop("certificate-authority-data")
        entry["cluster"]["insecure-skip-tls-verify"] = True
    insecure = tmp_path / "insecure.kubeconfig"
    insecure.write_text(yaml.safe_dump(config))

    ran = fleet.status("--kubeconfig", str(insecure))

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1].startswith("6 GitRepos")
    assert ran.stderr.count("insecure-skip-tls-verify") == 1, ran.stderr
    assert "InsecureRequestWarning" not in ran.stderr
