"""``gitjob-webhook explain`` as a command: JSON on stdout, one-line errors with status 2."""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest
import yaml

from cluster.faults import FaultProxy
from cluster.isolation import Cluster
from support.kube import Objects, gitrepo
from support.paths import EXAMPLE_GITREPOS, PROVIDER_FIXTURES
from support.service import command

SIGNATURE = "sha256=abcee8ae5f5c28fc2e4d2a0ffe46115bf9dc9d7c2e34592846d9361fffb864d5"


def _explain(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command("explain", "--store", "offline", "--gitrepos", str(EXAMPLE_GITREPOS), *arguments),
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"},
    )


def _github_push(*headers: str) -> subprocess.CompletedProcess[str]:
    extra = [item for header in headers for item in ("--header", header)]
    return _explain(
        "--provider",
        "github",
        "--payload",
        str(PROVIDER_FIXTURES / "github/push.json"),
        "--header",
        "X-GitHub-Event=push",
        *extra,
    )


def test_explain_prints_for_every_gitrepo_whether_the_push_concerns_it() -> None:
    result = _github_push()

    assert result.returncode == 0, result.stderr
    entries = {entry["name"]: entry for entry in json.loads(result.stdout)["gitrepos"]}
    assert entries["sample-app"]["match"] is True
    release = entries["sample-app-release"]
    assert (release["match"], release["mismatch"]) == (False, "ref")
    assert "branch" in release["reason"]
    examples = entries["fleet-examples"]
    assert (examples["match"], examples["mismatch"]) == (False, "repository")


def test_explain_logs_no_delivery_and_does_not_point_at_itself(tmp_path: pathlib.Path) -> None:
    """Nothing was delivered: no "unauthenticated delivery accepted" or "delivery refused" line, and the
    answer's hint to run explain is left out of explain's own report."""
    unsecured = tmp_path / "gitrepos.yaml"
    unsecured.write_text(yaml.safe_dump({"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
                                         "metadata": {"name": "other", "namespace": "fleet-default"},
                                         "spec": {"repo": "https://github.com/example/other"}}))
    for gitrepos in (unsecured, EXAMPLE_GITREPOS):
        result = subprocess.run(
            command("explain", "--store", "offline", "--gitrepos", str(gitrepos), "--provider", "github",
                    "--payload", str(PROVIDER_FIXTURES / "github/push.json"),
                    "--header", "X-GitHub-Event=push"),
            capture_output=True, text=True, timeout=30,
            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"})
        assert result.returncode == 0, result.stderr
        assert "delivery" not in result.stderr, result.stderr
        assert "explain" not in json.dumps(json.loads(result.stdout)["answer"])


def test_explain_says_an_unsigned_delivery_would_be_refused_and_a_signed_one_patched() -> None:
    unsigned = json.loads(_github_push().stdout)
    signed = json.loads(_github_push(f"X-Hub-Signature-256={SIGNATURE}").stdout)

    assert (unsigned["signature"]["status"], unsigned["answer"]["status"]) == ("missing", 401)
    assert (signed["signature"]["status"], signed["answer"]["status"]) == ("verified", 200)
    assert {e["name"]: e["result"] for e in signed["gitrepos"]}["sample-app"] == "patched"


def test_explain_never_prints_a_secret_value() -> None:
    result = _github_push(f"X-Hub-Signature-256={SIGNATURE}")
    assert "IsWishesWereHorsesWedAllBeEatingSteak!" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param(
            ("--provider", "github", "--payload", "/nonexistent/push.json"),
            "--payload /nonexistent/push.json: cannot read",
            id="missing payload file",
        ),
        pytest.param(
            ("--provider", "gerrit", "--payload", str(PROVIDER_FIXTURES / "github/push.json")),
            "--provider 'gerrit' is not a provider; choose one of",
            id="unknown provider",
        ),
        pytest.param(
            ("--provider", "github", "--payload", str(EXAMPLE_GITREPOS), "--header", "X-GitHub-Event=push"),
            "not a valid github delivery",
            id="payload that is not JSON",
        ),
        pytest.param(
            (
                "--provider",
                "github",
                "--payload",
                str(PROVIDER_FIXTURES / "github/push.json"),
                "--header",
                "X-GitHub-Event",
            ),
            "expected NAME=VALUE",
            id="header without value",
        ),
    ],
)
def test_an_explain_mistake_is_one_line_and_status_2(arguments: tuple[str, ...], expected: str) -> None:
    result = _explain(*arguments)

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitjob-webhook: error: ") and expected in lines[0], lines
    assert result.stdout == ""


def test_explain_waits_for_the_cluster_caches_and_writes_nothing(
        cluster: Cluster, fault_proxy: FaultProxy) -> None:
    namespace = cluster.namespace("repos")
    # The repository of github/push.json: no other test's GitRepo tracks it.
    Objects(cluster.control_plane).create(
        gitrepo("sample-app", namespace, "https://github.com/binkkatal/sample_app", branch="master"))
    fault_proxy.delay("GET", r"^/apis/fleet.cattle.io/v1alpha1/gitrepos$", 1.0, count=1)  # a slow first list
    result = subprocess.run(
        command("explain", "--kubeconfig", str(fault_proxy.kubeconfig),
                "--namespace", cluster.namespace("ctl"), "--provider", "github",
                "--payload", str(PROVIDER_FIXTURES / "github/push.json"), "--header", "X-GitHub-Event=push"),
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["store"].startswith("kubernetes (")
    assert [(g["name"], g["match"]) for g in report["gitrepos"] if g["namespace"] == namespace] == [
        ("sample-app", True)]
    assert fault_proxy.requests and not [r for r in fault_proxy.requests if r.method != "GET"]
