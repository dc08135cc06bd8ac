"""The README's story on the node: `make deploy`, signed deliveries, what the README shows.

Helpers only; tests/node/test_node_story.py tells the story.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pathlib
import re
import socket
import ssl
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
import yaml

from node.node import Node
from support.paths import MANIFESTS, PROVIDER_FIXTURES
from support.waiting import wait_for

REPO = MANIFESTS.parent
README = REPO / "README.md"
NAMESPACE = "cattle-fleet-system"
DEPLOYMENTS = ("gitjob-webhook-receiver", "gitjob-webhook-admission")
OUR_LABEL = "app.kubernetes.io/name=gitjob-webhook"
ADMISSION_SERVICE = "gitjob-webhook-admission"
ROLLOUT_SECONDS = 180.0
FLEET_GITJOB_PORTS = [{"name": "http-80", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
# Fleet's own Service `gitjob` as its chart makes it: the manifests take it over, the README's
# uninstall gives it back.
FLEET_GITJOB_SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "gitjob", "namespace": NAMESPACE, "labels": {"app": "gitjob"}},
    "spec": {"selector": {"app": "gitjob"}, "ports": FLEET_GITJOB_PORTS},
}


def image_reference() -> str:
    """The image the manifests deploy: `gitjob-webhook:<newTag>` (manifests/base/kustomization.yaml)."""
    kustomization = yaml.safe_load((MANIFESTS / "base" / "kustomization.yaml").read_text())
    image = next(entry for entry in kustomization["images"] if entry["name"] == "gitjob-webhook")
    return f"{image.get('newName', 'gitjob-webhook')}:{image['newTag']}"


def make_deploy(node: Node, certs: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """`make deploy` against the node (KUBECONFIG), with its certificates in ``certs``."""
    home = node.workdir / "deploy-home"
    home.mkdir(exist_ok=True)
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "deploy", f"CERTS={certs}"],
                          capture_output=True, text=True, timeout=300, env=node.kubectl_env(home))


def get(node: Node, path: str) -> dict[str, Any]:
    """GET an object as the admin; AssertionError unless 200."""
    response = node.api("GET", path)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return dict(response.json())


def rolled_out(node: Node, name: str) -> bool:
    """Whether the Deployment's current template has all its replicas updated, ready and available."""
    deployment = get(node, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}")
    status, wanted = deployment.get("status", {}), deployment["spec"]["replicas"]
    return bool(status.get("observedGeneration") == deployment["metadata"]["generation"]
                and status.get("updatedReplicas") == wanted and status.get("readyReplicas") == wanted
                and status.get("availableReplicas") == wanted and status.get("replicas") == wanted)


def pods(node: Node, component: str) -> list[dict[str, Any]]:
    """The component's pods (``receiver`` or ``admission``), terminating ones included."""
    selector = f"app.kubernetes.io/name%3Dgitjob-webhook,app.kubernetes.io/component%3D{component}"
    return list(get(node, f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={selector}")["items"])


def evidence(node: Node) -> str:
    """What the kubelet and the pods say: pod states, events, each container's last log lines."""
    parts = []
    for args in (("get", "deployments,replicasets,pods,endpointslices", "-o", "wide"),
                 ("get", "events", "--sort-by=.lastTimestamp")):
        parts.append(node.kubectl("-n", NAMESPACE, *args).stdout)
    for component in ("receiver", "admission"):
        for pod in pods(node, component):
            name = pod["metadata"]["name"]
            for status in pod.get("status", {}).get("containerStatuses", []):
                parts.append(f"--- {name} {json.dumps(status.get('state'))} "
                             f"last: {json.dumps(status.get('lastState'))}")
            for previous in ("--previous", None):
                flags = [previous] if previous else []
                logs = node.kubectl("-n", NAMESPACE, "logs", name, "--tail=15", *flags)
                if logs.stdout.strip():
                    parts.append(f"--- logs {name} {previous or ''}\n{logs.stdout.strip()}")
    return "\n".join(parts)


def programmed(node: Node, service: str) -> bool:
    """Whether kube-proxy's rules send the Service's ClusterIP to exactly its ready endpoints (a
    Deployment is Available before kube-proxy has caught up, and a client then gets "refused")."""
    slices = get(node, f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices"
                       f"?labelSelector=kubernetes.io/service-name%3D{service}")["items"]
    ready = {f"{address}:{port['port']}" for item in slices for endpoint in item.get("endpoints") or []
             if endpoint["conditions"].get("ready") for address in endpoint["addresses"]
             for port in item.get("ports") or []}
    rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    rule = rf'--comment "?{NAMESPACE}/{service}:\S*"? .*--to-destination (\S+)'
    destinations = set(re.findall(rule, rules))
    return bool(ready) and destinations == ready


def wait_rolled_out(node: Node, timeout: float = ROLLOUT_SECONDS) -> None:
    """Wait until both Deployments are rolled out and their Services route to their ready pods; on
    timeout fail with the pods' evidence."""
    try:
        wait_for(lambda: all(rolled_out(node, name) for name in DEPLOYMENTS)
                 and programmed(node, "gitjob") and programmed(node, ADMISSION_SERVICE),
                 timeout=timeout, interval=0.5,
                 message="both Deployments to roll out, Ready through their probes, and be routed to")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{evidence(node)}") from None


def cluster_ip(node: Node, service: str) -> str:
    """A Service's ClusterIP in cattle-fleet-system."""
    return str(get(node, f"/api/v1/namespaces/{NAMESPACE}/services/{service}")["spec"]["clusterIP"])


def readme_block(heading: str) -> str:
    """The first fenced code block under the README's ``heading`` (read at run time: the README is
    the specification)."""
    text = README.read_text()
    section = text.split(f"\n{heading}\n", 1)[1]
    found = re.search(r"```[a-z]*\n(.*?)```", section, re.DOTALL)
    assert found is not None, f"README: no code block under {heading!r}"
    return found.group(1)


def readme_commands(heading: str) -> list[str]:
    """The shell commands of that block: comments dropped, continuation lines joined."""
    joined = readme_block(heading).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def one_line(text: str) -> str:
    """Whitespace-normalised text (the README wraps kubectl's one-line message)."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Delivery:
    """A GitHub push, signed as GitHub signs it: HMAC-SHA256 over the exact bytes sent."""

    body: bytes
    headers: dict[str, str]
    commit: str


def github_push(secret: str, delivery_id: str, ref: str | None = None, commit: str | None = None) -> Delivery:
    """GitHub's real push payload (tests/fixtures), optionally to another ref and commit, signed."""
    body = (PROVIDER_FIXTURES / "github" / "push.json").read_bytes()
    payload = json.loads(body)
    if ref is not None or commit is not None:
        payload["ref"] = ref or payload["ref"]
        payload["after"] = commit or payload["after"]
        payload["head_commit"]["id"] = payload["after"]
        body = json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return Delivery(body, {"Content-Type": "application/json", "X-GitHub-Event": "push",
                           "X-GitHub-Delivery": delivery_id, "X-Hub-Signature-256": f"sha256={signature}",
                           "Connection": "close"}, payload["after"])


def deliver(url: str, delivery: Delivery, timeout: float = 15.0) -> requests.Response:
    """POST one delivery on a connection of its own, as a provider does."""
    with requests.Session() as session:
        session.trust_env = False  # a proxy from the environment must not see test traffic
        return session.post(url, data=delivery.body, headers=delivery.headers, timeout=timeout)


def commit_for(index: int) -> str:
    """A made-up 40-hex commit, distinct per index."""
    return hashlib.sha1(f"gitjob-webhook node test {index}".encode()).hexdigest()


def served_certificate(address: str, port: int, ca_file: pathlib.Path, server_name: str) -> bytes:
    """The DER certificate a TLS server presents, verified against ``ca_file`` for ``server_name``."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection((address, port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def pem_to_der(pem: bytes) -> bytes:
    """The DER bytes of a PEM certificate."""
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def gitrepo(name: str, branch: str, namespace: str = "fleet-default",
            spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A GitRepo tracking the fixtures' GitHub repository at ``branch``."""
    return {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"repo": "https://github.com/binkkatal/sample_app", "branch": branch, **(spec or {})}}


def as_list(objects: Sequence[Mapping[str, Any]]) -> str:
    """YAML of a v1 List, for one `kubectl apply -f -`."""
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": list(objects)})
