"""The README's story on a real node: the project's image, deployed with `make deploy`, called by the
API server through its Service and by a Git provider through the `gitjob` Service.

The tests run in this order and build on each other (deploy, the webhook Secret, the GitRepo, ...);
the last one uninstalls. The bridge CNI does not enforce NetworkPolicy: the policies are checked to
be accepted by the API server, not to filter traffic.
"""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
import re
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from cluster.binaries import kubernetes_version
from node import story
from node.node import Node
from support.waiting import wait_for

pytestmark = [pytest.mark.node, pytest.mark.timeout(600)]

NS = story.NAMESPACE
GITREPOS = "/apis/fleet.cattle.io/v1alpha1/namespaces/fleet-default/gitrepos"
STREAM_GITREPOS = 800  # at most one delivery each, so that every 2xx can be checked to have been written


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """`make deploy`'s certificate folder (CERTS=...), so the checkout's certs/ is left alone."""
    return tmp_path_factory.mktemp("certs")


@pytest.fixture(scope="module")
def deployed(node: Node, certs: pathlib.Path) -> Iterator[dict[str, Any]]:
    """Fleet's `gitjob` Service, then `make deploy`; both Deployments rolled out. Yields the timings."""
    created = node.kubectl("create", "-f", "-", input=json.dumps(story.FLEET_GITJOB_SERVICE))
    assert created.returncode == 0, created.stderr
    started = time.monotonic()
    deploy = story.make_deploy(node, certs)
    assert deploy.returncode == 0, f"make deploy failed:\n{deploy.stdout}\n{deploy.stderr}"
    applied = time.monotonic()
    story.wait_rolled_out(node)
    yield {"make deploy": applied - started, "rollout": time.monotonic() - applied, "output": deploy.stdout}


@pytest.fixture(scope="module")
def webhook_secret(deployed: dict[str, Any], node: Node) -> str:
    """The global `gitjob-webhook` Secret with a `github` key, created as the README says."""
    value = secrets.token_hex(16)
    created = node.kubectl("create", "secret", "generic", "gitjob-webhook", "-n", NS,
                           f"--from-literal=github={value}")
    assert created.returncode == 0, f"the valid Secret was refused: {created.stderr}"
    return value


@pytest.fixture(scope="module")
def receiver_url(deployed: dict[str, Any], node: Node) -> str:
    """The `gitjob` Service by its ClusterIP, from the node (kube-proxy's rules take it to a pod)."""
    return f"http://{story.cluster_ip(node, 'gitjob')}/"


def _dry_run_gitrepo(node: Node) -> dict[str, Any]:
    """A GitRepo created with dryRun: it goes through the mutating webhook, and nothing is stored."""
    probe = story.gitrepo(f"probe-{secrets.token_hex(3)}", "main")
    response = node.api("POST", f"{GITREPOS}?dryRun=All", probe)
    assert response.status_code == 201, f"{response.status_code} {response.text}"
    return dict(response.json())


def test_the_image_runs_read_only_as_65532_and_answers_version(node: Node) -> None:
    """The manifests' image, run by the kubelet as the manifests run it, prints its version."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "image-version", "namespace": "default"},
           "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": "version", "image": story.image_reference(),
                                    "imagePullPolicy": "IfNotPresent",
                                    "command": ["sh", "-c", "id -u; id -g; touch /probe 2>/dev/null || "
                                                "echo read-only; exec gitjob-webhook --version"],
                                    "securityContext": {"readOnlyRootFilesystem": True,
                                                        "allowPrivilegeEscalation": False,
                                                        "capabilities": {"drop": ["ALL"]}}}]}}
    created = node.kubectl("create", "-f", "-", input=json.dumps(pod))
    assert created.returncode == 0, created.stderr
    path = "/api/v1/namespaces/default/pods/image-version"
    phase = wait_for(lambda: story.get(node, path)["status"].get("phase") in ("Succeeded", "Failed")
                     and story.get(node, path)["status"]["phase"], timeout=90, message="the pod to finish")
    logs = node.kubectl("logs", "-n", "default", "image-version").stdout.split()
    node.kubectl("delete", "pod", "-n", "default", "image-version", "--wait=false")
    version = story.image_reference().rsplit(":", 1)[1]
    assert (phase, logs) == ("Succeeded", ["65532", "65532", "read-only", "gitjob-webhook", version])


def test_make_deploy_rolls_out_both_deployments_through_their_probes(deployed: dict[str, Any],
                                                                     node: Node) -> None:
    """Two ready pods each, no restarts, the image as it was imported (no pull was possible)."""
    for component in ("receiver", "admission"):
        running = [pod for pod in story.pods(node, component) if not pod["metadata"].get("deletionTimestamp")]
        assert len(running) == 2
        for pod in running:
            (status,) = pod["status"]["containerStatuses"]
            assert status["ready"] and status["restartCount"] == 0, story.evidence(node)
            assert status["image"].endswith(story.image_reference())
    print(f"make deploy {deployed['make deploy']:.1f} s, rollout {deployed['rollout']:.1f} s")


def test_make_deploy_names_kubectl_and_the_cluster_and_warns_of_a_skew(deployed: dict[str, Any]) -> None:
    """The kubectl it found (this machine's own, or the venv's) and the cluster's version; a warning
    when they are more than one minor version apart (hack/kubectl-skew.py, tested in tests/unit)."""
    said = [line for line in deployed["output"].splitlines() if line.startswith("deploy: ")]
    versions = re.fullmatch(r"deploy: kubectl v1\.(\d+)\.\S*, cluster (v1\.(\d+)\.\S*)", said[1])
    assert versions is not None and versions[2] == kubernetes_version(), said
    skewed = abs(int(versions[1]) - int(versions[3])) > 1
    warnings = said[2:]
    assert len(warnings) == int(skewed), said
    assert all(warning.startswith("deploy: warning: kubectl") for warning in warnings), said


def test_disruption_budgets_and_network_policies_are_accepted(deployed: dict[str, Any], node: Node) -> None:
    """The PDBs see both pods of their component; the NetworkPolicies are stored (not enforced here)."""
    for name in story.DEPLOYMENTS:
        budget = story.get(node, f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{name}")
        wait_for(lambda: story.get(node, f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{name}")
                 ["status"].get("currentHealthy") == 2, timeout=30, message=f"PDB {name} to count its pods")
        assert budget["spec"]["minAvailable"] == 1
        policy = story.get(node, f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/{name}")
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_the_gitjob_service_is_taken_over_from_fleet(deployed: dict[str, Any], node: Node) -> None:
    """Fleet's `gitjob` Service now selects the receiver pods, and only them (server-side apply)."""
    service = story.get(node, f"/api/v1/namespaces/{NS}/services/gitjob")
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "gitjob-webhook",
                                           "app.kubernetes.io/component": "receiver"}
    receivers = {pod["status"]["podIP"] for pod in story.pods(node, "receiver")}
    slices = story.get(node, f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
                             f"?labelSelector=kubernetes.io/service-name%3Dgitjob")["items"]
    ready = {address for item in slices for endpoint in item.get("endpoints") or []
             if endpoint["conditions"].get("ready") for address in endpoint["addresses"]}
    assert ready == receivers


def test_a_bad_webhook_secret_is_denied_with_the_readme_message(deployed: dict[str, Any], node: Node,
                                                                tmp_path: pathlib.Path) -> None:
    """The README's example denial, reproduced with kubectl against the real API server."""
    manifest = tmp_path / "gitjob-webhook.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gitjob-webhook", "namespace": NS},
        "stringData": {"GitHub": "CHANGE-ME-1", "gitea": "CHANGE-ME-2", "gitlab": "CHANGE-ME-3\n"}}))
    applied = node.kubectl("apply", "-f", manifest.name, cwd=tmp_path)
    readme = story.one_line(story.readme_block("## Reviewing admission denials").split("\n", 1)[1])
    assert applied.returncode != 0, applied.stdout
    assert "denied the request" in applied.stderr, applied.stderr
    # The webhook's words, as the README shows them (kubectl's prefix is checked on its own below).
    denial = 'admission webhook "secrets.gitjob-webhook.fleet.cattle.io" denied the request:'
    assert story.one_line(applied.stderr).split(denial, 1)[1] == readme.split(denial, 1)[1]
    assert story.one_line(applied.stderr).startswith(
        'Error from server (Forbidden): error when creating "gitjob-webhook.yaml": ')
    assert node.api("GET", f"/api/v1/namespaces/{NS}/secrets/gitjob-webhook").status_code == 404


def test_a_gitrepo_created_with_kubectl_comes_back_with_hourly_polling(webhook_secret: str,
                                                                       node: Node) -> None:
    """The API server called the admission pods through their Service (failurePolicy Ignore would
    let the GitRepo through unchanged, so the interval proves the call)."""
    # The admission pods see the new Secret through their watch: webhook mode turns on shortly after.
    wait_for(lambda: _dry_run_gitrepo(node)["spec"].get("pollingInterval") == "1h", timeout=30,
             message="webhook mode to turn on in the admission pods")
    created = node.kubectl("create", "-o", "json", "-f", "-",
                           input=json.dumps(story.gitrepo("sample-app", "master")))
    assert created.returncode == 0, created.stderr
    stored = json.loads(created.stdout)
    assert stored["spec"]["pollingInterval"] == "1h"
    assert stored["metadata"]["annotations"]["gitjob.fleet.cattle.io/polling-interval-defaulted"] == "true"


def test_a_signed_github_push_patches_the_gitrepo_and_leaves_an_event(webhook_secret: str, receiver_url: str,
                                                                      node: Node) -> None:
    """GitHub's push, signed with the Secret's key, sent to the `gitjob` Service's ClusterIP."""
    wait_for(lambda: node.api("GET", f"{GITREPOS}/sample-app").status_code == 200, timeout=10,
             message="the GitRepo of the previous test")
    delivery = story.github_push(webhook_secret, "node-push-1")
    answer = story.deliver(receiver_url, delivery)
    assert answer.status_code == 200, answer.text
    assert answer.json()["gitrepos"] == [{"commit": delivery.commit, "name": "sample-app",
                                          "namespace": "fleet-default", "ref": "refs/heads/master",
                                          "result": "patched"}]
    assert story.get(node, f"{GITREPOS}/sample-app")["status"]["webhookCommit"] == delivery.commit
    # Events are recorded after the answer, by the receiver's event thread.
    received = ("/api/v1/namespaces/fleet-default/events?fieldSelector="
                "involvedObject.name%3Dsample-app,reason%3DWebhookReceived")
    events = wait_for(lambda: story.get(node, received)["items"], timeout=30,
                      message="the WebhookReceived Event")
    assert [event["involvedObject"]["kind"] for event in events] == ["GitRepo"]
    assert delivery.commit[:12] in events[0]["message"]


def _create_gitrepos(node: Node, names: list[str]) -> None:
    """Create GitRepos in parallel (each goes through the mutating webhook)."""
    def create(name: str) -> int:
        return node.api("POST", GITREPOS, story.gitrepo(name, name)).status_code
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as creators:
        codes = list(creators.map(create, names))
    assert set(codes) == {201}, f"creating the stream's GitRepos: {sorted(set(codes))}"


def test_deleting_a_receiver_pod_during_deliveries_loses_none(webhook_secret: str, receiver_url: str,
                                                              node: Node) -> None:
    """Each delivery is answered 2xx or 503, and every 2xx was written, while a receiver pod goes
    through its preStop pause and graceful shutdown and its replacement starts: deliveries go on
    until the old pod is gone and the Deployment is whole again (bounded by STREAM_GITREPOS)."""
    names = [f"stream-{index:03d}" for index in range(STREAM_GITREPOS)]
    _create_gitrepos(node, names)
    victim = story.pods(node, "receiver")[0]["metadata"]["name"]
    answers: dict[str, tuple[int | str, str, float]] = {}
    pending = iter(enumerate(names))
    lock, started, over = threading.Lock(), threading.Event(), threading.Event()

    def send() -> None:
        while not over.is_set():
            with lock:
                index, name = next(pending, (-1, ""))
            if index < 0:
                return
            delivery = story.github_push(webhook_secret, f"stream-{index}", f"refs/heads/{name}",
                                         story.commit_for(index))
            try:
                code: int | str = story.deliver(receiver_url, delivery).status_code
            except Exception as error:  # a refused or reset connection is a lost delivery
                code = f"{type(error).__name__}: {error}"
            answers[name] = (code, delivery.commit, time.monotonic())
            if len(answers) >= 10:
                started.set()

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as senders:
        workers = [senders.submit(send) for _ in range(2)]
        assert started.wait(timeout=60), "no delivery was answered"
        deleted_at = time.monotonic()
        deleted = node.kubectl("-n", NS, "delete", "pod", victim, "--wait=false")
        assert deleted.returncode == 0, deleted.stderr
        try:
            gone_at = wait_for(lambda: node.api("GET", f"/api/v1/namespaces/{NS}/pods/{victim}").status_code
                               == 404 and time.monotonic(), timeout=120, message=f"pod {victim} to go")
            story.wait_rolled_out(node)
        finally:
            over.set()
            for worker in workers:
                worker.result(timeout=60)
    lost = {name: answer[0] for name, answer in answers.items() if answer[0] not in range(200, 300)
            and answer[0] != 503}
    assert not lost, f"deliveries answered otherwise: {lost}"
    unwritten = [name for name, (code, commit, _) in answers.items() if code in range(200, 300)
                 and story.get(node, f"{GITREPOS}/{name}").get("status", {}).get("webhookCommit") != commit]
    assert not unwritten, f"2xx deliveries whose commit is not in the GitRepo's status: {unwritten}"
    during = [answer for answer in answers.values() if deleted_at <= answer[2] <= gone_at]
    after = [answer for answer in answers.values() if answer[2] > gone_at]
    codes = sorted({answer[0] for answer in answers.values()}, key=str)
    print(f"{len(answers)} deliveries ({codes}): {len(during)} while the pod terminated "
          f"({gone_at - deleted_at:.1f} s), {len(after)} after")
    assert during and after, f"the stream ({STREAM_GITREPOS} GitRepos) did not outlast the pod's termination"


def test_a_rotated_serving_certificate_keeps_admission_answering(webhook_secret: str, certs: pathlib.Path,
                                                                 node: Node) -> None:
    """`make deploy` with a renewed certificate (same CA): the pods switch to it without a restart,
    and the API server's calls succeed all along. Deleting the serving certificate makes `make certs`
    issue a new one from the same CA, as it does within 30 days of expiry."""
    old_ca = (certs / "ca.crt").read_bytes()
    (certs / "tls.crt").unlink()
    (certs / "tls.key").unlink()
    deploy = story.make_deploy(node, certs)
    assert deploy.returncode == 0, f"{deploy.stdout}\n{deploy.stderr}"
    assert (certs / "ca.crt").read_bytes() == old_ca
    renewed = story.pem_to_der((certs / "tls.crt").read_bytes())
    server_name = f"{story.ADMISSION_SERVICE}.{NS}.svc"
    checks = {"answered": 0, "missed": 0}

    def all_pods_serve_the_new_certificate() -> bool:
        # Admission must answer through the API server on every poll, renewed or not.
        try:
            answered = _dry_run_gitrepo(node)["spec"].get("pollingInterval") == "1h"
        except AssertionError:
            answered = False
        checks["answered" if answered else "missed"] += 1
        addresses = [pod["status"]["podIP"] for pod in story.pods(node, "admission")]
        return all(story.served_certificate(address, 8443, certs / "ca.crt", server_name) == renewed
                   for address in addresses)
    wait_for(all_pods_serve_the_new_certificate, timeout=150, interval=1.0,
             message="both admission pods to serve the renewed certificate")
    assert story.served_certificate(story.cluster_ip(node, story.ADMISSION_SERVICE), 443, certs / "ca.crt",
                                    server_name) == renewed
    restarts = [status["restartCount"] for pod in story.pods(node, "admission")
                for status in pod["status"]["containerStatuses"]]
    assert (restarts, checks["missed"]) == ([0, 0], 0)
    print(f"admission answered all {checks['answered']} dry-run creates during the rotation")


def test_make_deploy_again_changes_nothing(webhook_secret: str, certs: pathlib.Path, node: Node) -> None:
    """A second `make deploy` with the same certificates: no rollout, no new pods, same caBundle."""
    def state() -> dict[str, Any]:
        webhooks = [story.get(node, f"/apis/admissionregistration.k8s.io/v1/{kind}/gitjob-webhook-admission")
                    for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")]
        tls = story.get(node, f"/api/v1/namespaces/{NS}/secrets/gitjob-webhook-admission-tls")
        return {
            "generations": [story.get(node, f"/apis/apps/v1/namespaces/{NS}/deployments/{name}")["metadata"]
                            ["generation"] for name in story.DEPLOYMENTS],
            "pods": sorted(pod["metadata"]["name"] for part in ("receiver", "admission")
                           for pod in story.pods(node, part)),
            "caBundles": [hook["webhooks"][0]["clientConfig"].get("caBundle") for hook in webhooks],
            "tls": tls["metadata"]["resourceVersion"],
        }
    before = state()
    deploy = story.make_deploy(node, certs)
    assert deploy.returncode == 0, f"{deploy.stdout}\n{deploy.stderr}"
    assert state() == before


def test_the_readme_uninstall_leaves_nothing_of_ours(webhook_secret: str, node: Node,
                                                     tmp_path: pathlib.Path) -> None:
    """The README's uninstall commands, run as written; then no object of ours is left, the `gitjob`
    Service is Fleet's again, and GitRepo writes no longer call a webhook."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").symlink_to(node.artifacts.kubernetes.path("kubectl"))
    for command in story.readme_commands("## Uninstalling"):
        done = node.shell(command, path=bin_dir)
        assert done.returncode == 0, f"{command}: {done.stderr}"
    wait_for(lambda: not story.pods(node, "receiver") and not story.pods(node, "admission"), timeout=90,
             message="our pods to terminate")
    kinds = ("all,serviceaccounts,roles,rolebindings,clusterroles,clusterrolebindings,poddisruptionbudgets,"
             "networkpolicies,mutatingwebhookconfigurations,validatingwebhookconfigurations,"
             "validatingadmissionpolicies,validatingadmissionpolicybindings,leases,secrets,configmaps")
    left = node.kubectl("get", kinds, "-A", "-l", story.OUR_LABEL, "-o", "name")
    assert left.returncode == 0, left.stderr
    named = [node.kubectl("-n", NS, "get", kind, name, "-o", "name").stdout.strip() for kind, name in (
        ("secret", "gitjob-webhook-admission-tls"), ("lease", "gitjob-webhook-reconcile"),
        ("service", "gitjob-webhook-admission"))]
    service = story.get(node, f"/api/v1/namespaces/{NS}/services/gitjob")
    problems = [f"still there: {name}" for name in [*left.stdout.split(), *named] if name]
    if service["spec"]["selector"] != {"app": "gitjob"}:
        problems.append(f"the gitjob Service selects {service['spec']['selector']}, not Fleet's app=gitjob")
    if service["spec"]["ports"] != story.FLEET_GITJOB_PORTS:
        problems.append(f"the gitjob Service's ports are {service['spec']['ports']}, not Fleet's")
    assert not problems, "after the README's uninstall steps: " + "; ".join(problems)
    after = node.kubectl("create", "-o", "json", "-f", "-",
                         input=json.dumps(story.gitrepo("after-uninstall", "x")))
    assert after.returncode == 0 and "pollingInterval" not in json.loads(after.stdout)["spec"]
