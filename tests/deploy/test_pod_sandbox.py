"""Each rendered Deployment runs as its pod would: its user, a read-only root, its volumes as the kubelet
writes them, its ServiceAccount against the real API server, and its own probes (deploy/sandbox.py).

A control plane has no kubelet, so nothing else shows that the container can start as its manifest
says. Each test plans the pod from the rendered Deployment (deploy/pod_plan.py), applies the rendered
RBAC of its ServiceAccount, starts the container in the sandbox and asserts: every process runs as the
manifest's user and groups with no capabilities, writing to / fails from inside while the emptyDir
takes writes, the readiness probe passes, readiness and liveness keep passing until the kubelet's
first liveness probe is due, and SIGTERM stops it cleanly within terminationGracePeriodSeconds. The
admission server runs twice: with the Secret `make deploy` creates, and with the one cert-manager
writes (``tls.crt``, ``tls.key`` in SEC1, ``ca.crt``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from cluster.isolation import Cluster
from deploy import kubelet_files, pod_plan, sandbox
from deploy.conftest import find
from support.paths import TESTS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the pod sandbox needs root (setpriv, mounts)")

NAMESPACE = "cattle-fleet-system"
TLS_SECRET = "gitjob-webhook-admission-tls"
DOCKERFILE = TESTS.parent / "Dockerfile"
BASE_IMAGE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                  "LANG": "C.UTF-8"}  # python:3.11-slim's, before the Dockerfile's own
IMAGE_VENV_BIN = "/opt/gitjob-webhook/bin"


def _final_stage() -> list[tuple[str, str]]:
    """The Dockerfile's last stage: (INSTRUCTION, arguments), continuation lines joined."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    split = (line.strip().split(None, 1) for line in joined.splitlines() if line.strip())
    instructions = [(parts[0].upper(), parts[1] if len(parts) > 1 else "") for parts in split]
    last_from = max(index for index, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def image_stand_in() -> pod_plan.Image:
    """The image as its Dockerfile describes it, but with this checkout's ``gitjob-webhook`` on PATH:
    the sandbox checks the pod's runtime conditions, not the image's contents."""
    stage = _final_stage()
    values = dict(stage)
    env = dict(BASE_IMAGE_ENV)
    for name, arguments in stage:
        if name == "ENV":
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                env[key] = value.replace("$PATH", env.get("PATH", ""))
    env["PATH"] = env["PATH"].replace(IMAGE_VENV_BIN, str(Path(sys.prefix) / "bin"))
    user, _, group = values["USER"].partition(":")
    return pod_plan.Image(
        entrypoint=tuple(json.loads(values["ENTRYPOINT"])), cmd=tuple(json.loads(values["CMD"])),
        env=tuple(env.items()), user=(int(user), int(group)), workdir=values.get("WORKDIR", "/"),
        # The interpreter, the virtualenv, and the checkout its editable install imports.
        paths=(sys.base_prefix, sys.prefix, str(TESTS.parent)))


def _rbac_for(objects: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
    """The rendered ServiceAccount, the bindings that name it, and the roles they bind."""
    def names_it(subject: Mapping[str, str]) -> bool:
        return (subject["kind"], subject["name"], subject.get("namespace")) == \
            ("ServiceAccount", account, NAMESPACE)

    bindings = [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")
                and any(map(names_it, o["subjects"]))]
    roles = [o for o in objects for b in bindings
             if o["kind"] == b["roleRef"]["kind"] and o["metadata"]["name"] == b["roleRef"]["name"]]
    return [find(objects, "ServiceAccount", account), *roles, *bindings]


def _assert_runs_as_the_manifest_says(pod: sandbox.Pod) -> None:
    container = pod.plan.container
    processes = pod.processes()
    assert processes, "no process in the container"
    for pid in processes:  # gunicorn's arbiter and its worker
        status = pod.status(pid)
        assert status["Uid"].split() == [str(container.uid)] * 4, status
        assert status["Gid"].split() == [str(container.gid)] * 4, status
        assert status["Groups"].split() == [str(group) for group in container.groups], status
        assert all(int(status[caps], 16) == 0 for caps in ("CapEff", "CapPrm", "CapBnd", "CapAmb")), status
        assert status["NoNewPrivs"] == "1", status
    identity = pod.exec("id")
    assert identity.stdout.startswith(f"uid={container.uid} gid={container.gid}"), identity
    write_root = pod.exec("/bin/sh", "-c", ": > /sandbox-write-check")
    assert write_root.returncode != 0 and "Read-only file system" in write_root.stderr, write_root
    empty_dirs = {volume.name for volume in pod.plan.volumes if volume.kind == "emptyDir"}
    for mount in (m for m in container.mounts if m.volume in empty_dirs and not m.read_only):
        check = f"{mount.path}/sandbox-write-check"
        wrote = pod.exec("/bin/sh", "-c", f": > {check} && rm {check}")
        assert wrote.returncode == 0, wrote


def _run_pod(deployment: Mapping[str, Any], rendered: list[dict[str, Any]], cluster: Cluster) -> None:
    """Plan, grant, start, check, watch past the kubelet's first liveness probe, stop."""
    plan = pod_plan.plan(deployment, image_stand_in(), api=("127.0.0.1", cluster.control_plane.port))
    cluster.apply(_rbac_for(rendered, plan.service_account))
    liveness = plan.container.liveness
    assert liveness is not None, "the manifest has no livenessProbe"
    with sandbox.run(plan, sandbox.ClusterSources(cluster, plan.namespace)) as pod:
        # A container not live by then would have been restarted by the kubelet.
        pod.wait_ready(timeout=liveness.initial_delay + liveness.period * liveness.failure_threshold)
        _assert_runs_as_the_manifest_says(pod)
        pod.watch(until_age=liveness.initial_delay + 0.5)
        status = pod.stop()
        assert status == 0, f"exit status {status} on SIGTERM\n--- container log ---\n{pod.log()}"


def test_the_receiver_runs_as_its_manifest_says(rendered: list[dict[str, Any]], cluster: Cluster) -> None:
    _run_pod(find(rendered, "Deployment", "gitjob-webhook-receiver"), rendered, cluster)


def test_the_admission_server_runs_as_its_manifest_says(rendered: list[dict[str, Any]], cluster: Cluster,
                                                        dev_certs: Path) -> None:
    # The Secret as `make deploy` creates it.
    made = cluster.kubectl("create", "secret", "tls", TLS_SECRET, "--namespace", NAMESPACE,
                           "--cert", str(dev_certs / "tls.crt"), "--key", str(dev_certs / "tls.key"))
    assert made.returncode == 0, made.stderr
    _run_pod(find(rendered, "Deployment", "gitjob-webhook-admission"), rendered, cluster)


def test_the_admission_server_runs_with_the_secret_cert_manager_writes(
        rendered_cert_manager: list[dict[str, Any]], cluster: Cluster, dev_certs: Path) -> None:
    # cert-manager's default key encoding, PKCS1, is SEC1 for the overlay's ECDSA key; it adds ca.crt.
    key = serialization.load_pem_private_key((dev_certs / "tls.key").read_bytes(), password=None)
    sec1 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())
    data = {"tls.crt": (dev_certs / "tls.crt").read_bytes(), "tls.key": sec1,
            "ca.crt": (dev_certs / "ca.crt").read_bytes()}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": TLS_SECRET, "namespace": NAMESPACE},
              "data": {name: base64.b64encode(value).decode() for name, value in data.items()}}
    made = cluster.control_plane.request("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", secret)
    assert made.status_code == 201, made.text
    deployment = find(rendered_cert_manager, "Deployment", "gitjob-webhook-admission")
    _run_pod(deployment, rendered_cert_manager, cluster)


@pytest.mark.parametrize("text, expanded", [
    pytest.param("$(NAME)", "value", id="a reference"),
    pytest.param("--ns=$(NAME)/x", "--ns=value/x", id="inside text"),
    pytest.param("$$(NAME)", "$(NAME)", id="escaped"),
    pytest.param("$(UNKNOWN)", "$(UNKNOWN)", id="unknown stays"),
    pytest.param("$(NAME", "$(NAME", id="unclosed stays"),
    pytest.param("a$b$", "a$b$", id="a lone dollar stays"),
])
def test_arguments_expand_as_the_kubelet_expands_them(text: str, expanded: str) -> None:
    assert pod_plan.expand(text, {"NAME": "value"}) == expanded


@pytest.mark.parametrize("fs_group, group, mode", [
    pytest.param(None, 0, 0o440, id="no fsGroup: root's group"),
    pytest.param(2000, 2000, 0o440, id="fsGroup: its group"),
])
def test_secret_files_are_written_as_the_kubelet_writes_them(
        tmp_path: Path, fs_group: int | None, group: int, mode: int) -> None:
    volume = tmp_path / "certs"
    kubelet_files.write_api_volume(volume, {"tls.key": kubelet_files.FileProjection(b"key", 0o440)}, fs_group)
    assert os.readlink(volume / "tls.key") == "..data/tls.key"
    assert os.readlink(volume / kubelet_files.DATA_DIR).startswith("..20")
    info = (volume / "tls.key").stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, group, mode)
    data_dir = (volume / kubelet_files.DATA_DIR).stat()
    assert stat.S_IMODE(data_dir.st_mode) == (0o2755 if fs_group else 0o755)
