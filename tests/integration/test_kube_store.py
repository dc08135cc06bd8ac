"""The Kubernetes store against a real kube-apiserver: caches, resume, relist, patches, Events, RBAC.

Each test has a controller namespace of its own (the global Secret) and a namespace for its
GitRepos, whose repository URLs name that namespace: the GitRepo cache is cluster-wide.
"""

from __future__ import annotations

import datetime
import logging
import pathlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from cluster.controlplane import ControlPlane
from cluster.faults import FaultProxy
from cluster.isolation import Cluster
from controller.fleet.gitrepos import GitRepo
from controller.fleet.urls import repo_key
from controller.settings import Settings
from controller.store import GitRepoGone, SecretUnknown, StoreUnavailable
from controller.store.kube import KubeStore
from controller.store.kubeapi import KubeApi
from controller.store.kubeclient import api_client
from support.kube import CLOSE_WATCHES_ON_STOP, Objects, api_path, gitrepo, secret
from support.waiting import wait_for

WHEN = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)
COMMIT = "af69d162de5a276abc86e0686b2b44033cd3f442"
GITREPOS = "/apis/fleet.cattle.io/v1alpha1/gitrepos"


@dataclass(frozen=True)
class SentRequest:
    """A request the store sent, as it sent it."""

    method: str
    path: str
    content_type: str
    body: Any


class RecordingApi(KubeApi):
    """The store's own KubeApi, keeping a copy of every request it sends."""

    def __init__(self, kubeconfig: str) -> None:
        super().__init__(api_client(kubeconfig))
        self.sent: list[SentRequest] = []

    def request(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        self.sent.append(SentRequest(method, path, options.get("content_type", "application/json"),
                                     options.get("body")))
        return super().request(method, path, **options)


StartStore = Callable[..., KubeStore]


@pytest.fixture
def objects(cluster: Cluster) -> Objects:
    return Objects(cluster.control_plane)


@pytest.fixture
def controller_namespace(cluster: Cluster) -> str:
    return cluster.namespace("ctl")


@pytest.fixture
def repos(cluster: Cluster) -> str:
    """The namespace of the test's GitRepos."""
    return cluster.namespace("repos")


@pytest.fixture
def start_store() -> Iterator[StartStore]:
    """Start KubeStores (fast patch deadline so that tests stay quick); all are stopped at the end."""
    started: list[KubeStore] = []

    def start(kubeconfig: pathlib.Path, namespace: str, per_gitrepo_secrets: bool = True,
              **changes: Any) -> KubeStore:
        settings = Settings(kubeconfig=str(kubeconfig), namespace=namespace,
                            patch_deadline=2.0).replace(**changes)
        kube = KubeStore(RecordingApi(str(kubeconfig)), settings, str(kubeconfig), per_gitrepo_secrets)
        kube.start()
        started.append(kube)
        return kube

    yield start
    for kube in started:
        kube.stop()


def key(url: str) -> str:
    """The index key of a repository URL."""
    found = repo_key(url)
    assert found is not None, url
    return found


def ready(kube: KubeStore) -> bool:
    return kube.readiness()[0]


def in_namespace(gitrepos: Sequence[GitRepo], namespace: str) -> list[str]:
    return sorted(g.name for g in gitrepos if g.namespace == namespace)


def the_gitrepo(kube: KubeStore, namespace: str, name: str) -> GitRepo:
    return next(g for g in kube.gitrepos() if (g.namespace, g.name) == (namespace, name))


def gitrepo_lists(proxy: FaultProxy) -> list[dict[str, str]]:
    """The queries of every cluster-wide GitRepo list (not watch) that went through the proxy."""
    return [r.query for r in proxy.requests
            if r.method == "GET" and r.path == GITREPOS and r.query.get("watch") != "true"]


def test_the_caches_sync_and_readiness_turns_true(
        cluster: Cluster, objects: Objects, start_store: StartStore, controller_namespace: str,
        repos: str) -> None:
    objects.create(gitrepo("app", repos, f"https://github.com/{repos}/app"))
    objects.create(secret("gitjob-webhook", controller_namespace, github="s3cret"))
    kube = start_store(cluster.kubeconfig, controller_namespace)
    wait_for(lambda: ready(kube), timeout=30, message="caches synced")
    assert in_namespace(kube.gitrepos_for(key(f"git@github.com:{repos}/app.git")), repos) == ["app"]
    assert dict(kube.secret(controller_namespace, "gitjob-webhook") or {}) == {"github": b"s3cret"}


def test_readiness_is_false_while_the_gitrepo_list_fails(
        fault_proxy: FaultProxy, start_store: StartStore, controller_namespace: str) -> None:
    fault_proxy.fail_next("GET", f"^{GITREPOS}$", 503, count=10_000)
    kube = start_store(fault_proxy.kubeconfig, controller_namespace)
    wait_for(lambda: len(gitrepo_lists(fault_proxy)) >= 2, timeout=30, message="two failed lists")
    assert kube.readiness() == (False, "GitRepo cache not synced yet")
    fault_proxy.clear()
    wait_for(lambda: ready(kube), timeout=60, message="ready once the API server answers")


def test_readiness_waits_for_the_global_secret(
        fault_proxy: FaultProxy, start_store: StartStore, controller_namespace: str) -> None:
    fault_proxy.fail_next("GET", f"^/api/v1/namespaces/{controller_namespace}/secrets$", 503, count=10_000)
    kube = start_store(fault_proxy.kubeconfig, controller_namespace)
    wait_for(lambda: len([r for r in fault_proxy.requests if r.status == 503]) >= 2, timeout=30,
             message="two failed reads of the global Secret")
    ready_now, reason = kube.readiness()
    assert not ready_now and reason.startswith("Secret cache not synced yet")
    assert f"{controller_namespace}/gitjob-webhook" in reason
    fault_proxy.clear()
    wait_for(lambda: ready(kube), timeout=60, message="ready once the global Secret is read")


def test_watch_events_keep_the_cache_current(
        cluster: Cluster, objects: Objects, start_store: StartStore, controller_namespace: str,
        repos: str) -> None:
    kube = start_store(cluster.kubeconfig, controller_namespace)
    wait_for(lambda: ready(kube), timeout=30)
    late = key(f"https://gitlab.example.com/{repos}/late")
    objects.create(gitrepo("late", repos, f"https://gitlab.example.com/{repos}/late.git"))
    wait_for(lambda: kube.gitrepos_for(late), timeout=30, message="the new GitRepo in the cache")
    objects.delete("GitRepo", repos, "late")
    wait_for(lambda: not kube.gitrepos_for(late), timeout=30, message="the deleted GitRepo gone")


def test_a_cut_watch_resumes_from_its_resource_version_without_a_relist(
        fault_proxy: FaultProxy, objects: Objects, start_store: StartStore, controller_namespace: str,
        repos: str) -> None:
    kube = start_store(fault_proxy.kubeconfig, controller_namespace)
    wait_for(lambda: ready(kube), timeout=30)
    lists_before = len(gitrepo_lists(fault_proxy))
    wait_for(lambda: fault_proxy.cut_streams() >= 1, timeout=30, message="an open watch to cut")
    objects.create(gitrepo("after-cut", repos, f"https://github.com/{repos}/after-cut"))
    wait_for(lambda: "after-cut" in in_namespace(kube.gitrepos(), repos), timeout=30,
             message="the GitRepo created after the cut")
    assert len(gitrepo_lists(fault_proxy)) == lists_before


def relisted(caplog: pytest.LogCaptureFixture) -> bool:
    """The GitRepo reflector was told its watch expired (a 410) and listed again."""
    return any(record.getMessage() == "cache gitrepos: relisting"
               and getattr(record, "fields", {}).get("detail") == "watch expired (410)"
               for record in caplog.records)


@pytest.mark.parametrize("private_control_plane", [CLOSE_WATCHES_ON_STOP], indirect=True)
def test_a_watch_expired_by_an_api_server_restart_relists(
        private_control_plane: ControlPlane, start_store: StartStore,
        caplog: pytest.LogCaptureFixture) -> None:
    plane = private_control_plane
    objects = Objects(plane)
    caplog.set_level(logging.INFO, logger="controller.store.reflector")
    kube = start_store(plane.kubeconfig, "cattle-fleet-system")
    wait_for(lambda: ready(kube), timeout=30)
    # A write the reflector does not follow: its last resourceVersion is now older than the store's,
    # and the restarted server's watch cache begins after it.
    objects.create({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "bump", "namespace": "fleet-local"}})
    plane.restart_apiserver()
    wait_for(lambda: relisted(caplog), timeout=60, message="a relist after the 410")
    objects.create(gitrepo("after-restart", "fleet-default", "https://github.com/restart/after"))
    wait_for(lambda: "after-restart" in in_namespace(kube.gitrepos(), "fleet-default"), timeout=30,
             message="the watch following again after the relist")


@pytest.mark.parametrize("private_control_plane", [["--watch-cache=false"]], indirect=True)
def test_a_watch_from_a_compacted_resource_version_relists_and_catches_up(
        private_control_plane: ControlPlane, start_store: StartStore, tmp_path: pathlib.Path,
        caplog: pytest.LogCaptureFixture) -> None:
    plane = private_control_plane
    objects = Objects(plane)
    caplog.set_level(logging.INFO, logger="controller.store.reflector")
    objects.create(gitrepo("deleted-while-away", "fleet-default", "https://github.com/compact/deleted"))
    proxy = FaultProxy(plane, tmp_path).start()
    try:
        kube = start_store(proxy.kubeconfig, "cattle-fleet-system")
        wait_for(lambda: ready(kube), timeout=30)
        lists_before = len(gitrepo_lists(proxy))
        proxy.refuse(True)
        objects.create(gitrepo("created-while-away", "fleet-default", "https://github.com/compact/created"))
        objects.delete("GitRepo", "fleet-default", "deleted-while-away")
        plane.compact()
        proxy.refuse(False)
        wait_for(lambda: in_namespace(kube.gitrepos(), "fleet-default") == ["created-while-away"], timeout=60,
                 message="the cache to show what changed while the watch was away")
        assert relisted(caplog)
        assert len(gitrepo_lists(proxy)) > lists_before
    finally:
        proxy.stop()


def test_only_referenced_secrets_are_read_and_only_by_name(
        fault_proxy: FaultProxy, objects: Objects, start_store: StartStore, controller_namespace: str,
        repos: str) -> None:
    objects.create(secret("team-a-hook", repos, github="a"))
    objects.create(secret("unrelated", repos, password="do-not-read"))
    kube = start_store(fault_proxy.kubeconfig, controller_namespace)
    wait_for(lambda: ready(kube), timeout=30)
    with pytest.raises(SecretUnknown):   # named by no GitRepo: never read, so not known
        kube.secret(repos, "team-a-hook")
    objects.create(gitrepo("team-a", repos, f"https://github.com/{repos}/team-a",
                           webhookSecret="team-a-hook"))
    wait_for(lambda: dict(kube.secret(repos, "team-a-hook") or {}) == {"github": b"a"}, timeout=30,
             message="the referenced Secret in the cache")
    with pytest.raises(SecretUnknown):
        kube.secret(repos, "unrelated")
    secret_reads = [r for r in fault_proxy.requests if "/secrets" in r.path]
    assert {r.path for r in secret_reads} == {f"/api/v1/namespaces/{controller_namespace}/secrets",
                                              f"/api/v1/namespaces/{repos}/secrets"}
    assert {r.query.get("fieldSelector") for r in secret_reads} == {"metadata.name=gitjob-webhook",
                                                                    "metadata.name=team-a-hook"}


def test_the_admission_store_reads_only_the_global_secret(
        fault_proxy: FaultProxy, objects: Objects, start_store: StartStore, controller_namespace: str,
        repos: str) -> None:
    objects.create(gitrepo("team-a", repos, f"https://github.com/{repos}/team-a",
                           webhookSecret="team-a-hook"))
    kube = start_store(fault_proxy.kubeconfig, controller_namespace, per_gitrepo_secrets=False)
    wait_for(lambda: ready(kube), timeout=30)
    assert "team-a" in in_namespace(kube.gitrepos(), repos)
    secret_reads = [r for r in fault_proxy.requests if "/secrets" in r.path]
    assert {(r.path, r.query.get("fieldSelector")) for r in secret_reads} == {
        (f"/api/v1/namespaces/{controller_namespace}/secrets", "metadata.name=gitjob-webhook")}


def test_a_status_patch_is_a_merge_patch_of_the_status_subresource_only(
        cluster: Cluster, objects: Objects, start_store: StartStore, controller_namespace: str,
        repos: str) -> None:
    before = objects.create(gitrepo("app", repos, f"https://github.com/{repos}/app", branch="main"))
    kube = start_store(cluster.kubeconfig, controller_namespace)
    wait_for(lambda: ready(kube), timeout=30)
    updated = kube.patch_status(the_gitrepo(kube, repos, "app"), COMMIT, WHEN)
    after = objects.must_get("GitRepo", repos, "app")
    assert after["status"]["webhookCommit"] == updated.webhook_commit == COMMIT
    assert after["status"]["lastWebhookTime"] == "2026-11-29T12:00:00Z"
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    api = kube.api
    assert isinstance(api, RecordingApi)
    writes = [r for r in api.sent if r.method != "GET"]
    status = {"webhookCommit": COMMIT, "lastWebhookTime": "2026-11-29T12:00:00Z"}
    assert writes == [SentRequest("PATCH", api_path("GitRepo", repos, "app", "status"),
                                  "application/merge-patch+json", {"status": status})]
    # The server's own record of the write: an update of the status subresource, of those two fields.
    [entry] = [e for e in after["metadata"]["managedFields"] if e.get("subresource") == "status"]
    assert entry["operation"] == "Update"
    assert set(entry["fieldsV1"]["f:status"]) - {"."} == {"f:webhookCommit", "f:lastWebhookTime"}


@pytest.mark.parametrize("status", [
    pytest.param(500, id="internal error"),
    pytest.param(503, id="unavailable"),
    pytest.param(429, id="too many requests"),
])
def test_a_status_patch_is_retried_through_transient_failures(
        fault_proxy: FaultProxy, objects: Objects, start_store: StartStore, controller_namespace: str,
        repos: str, status: int) -> None:
    objects.create(gitrepo("app", repos, f"https://github.com/{repos}/app"))
    kube = start_store(fault_proxy.kubeconfig, controller_namespace)
    wait_for(lambda: ready(kube), timeout=30)
    fault_proxy.fail_next("PATCH", r"/status$", status, count=2)
    kube.patch_status(the_gitrepo(kube, repos, "app"), COMMIT, WHEN)
    assert objects.must_get("GitRepo", repos, "app")["status"]["webhookCommit"] == COMMIT
    patches = [r.status for r in fault_proxy.requests if r.method == "PATCH"]
    assert patches == [status, status, 200]


def test_a_status_patch_failing_past_the_deadline_raises_unavailable(
        fault_proxy: FaultProxy, objects: Objects, start_store: StartStore, controller_namespace: str,
        repos: str) -> None:
    objects.create(gitrepo("app", repos, f"https://github.com/{repos}/app"))
    kube = start_store(fault_proxy.kubeconfig, controller_namespace, patch_deadline=0.5)
    wait_for(lambda: ready(kube), timeout=30)
    fault_proxy.fail_next("PATCH", r"/status$", 503, count=10_000)
    with pytest.raises(StoreUnavailable, match="gave up after 0.5s"):
        kube.patch_status(the_gitrepo(kube, repos, "app"), COMMIT, WHEN)
    assert "status" not in objects.must_get("GitRepo", repos, "app")


def test_a_patch_of_a_deleted_gitrepo_says_so(
        cluster: Cluster, start_store: StartStore, controller_namespace: str, repos: str) -> None:
    kube = start_store(cluster.kubeconfig, controller_namespace)
    wait_for(lambda: ready(kube), timeout=30)
    with pytest.raises(GitRepoGone):
        kube.patch_status(GitRepo(repos, "ghost", "https://x/y"), COMMIT, WHEN)


def test_identical_events_are_aggregated_into_one_with_a_count(
        cluster: Cluster, objects: Objects, start_store: StartStore, controller_namespace: str,
        repos: str) -> None:
    stored = objects.create(gitrepo("app", repos, f"https://github.com/{repos}/app"))
    kube = start_store(cluster.kubeconfig, controller_namespace)
    wait_for(lambda: ready(kube), timeout=30)
    target = the_gitrepo(kube, repos, "app")
    kube.record_event(target, "WebhookReceived", "github push to refs/heads/main at af69d162de5a")
    kube.record_event(target, "WebhookReceived", "github push to refs/heads/main at af69d162de5a")
    kube.events.flush()
    [event] = objects.list("Event", repos)
    assert (event["reason"], event["type"], event["count"]) == ("WebhookReceived", "Normal", 2)
    involved = event["involvedObject"]
    assert (involved["kind"], involved["name"]) == ("GitRepo", "app")
    assert involved["uid"] == stored["metadata"]["uid"]


def test_setting_the_polling_interval_is_guarded_by_the_resource_version(
        cluster: Cluster, objects: Objects, start_store: StartStore, controller_namespace: str,
        repos: str) -> None:
    objects.create(gitrepo("app", repos, f"https://github.com/{repos}/app"))
    kube = start_store(cluster.kubeconfig, controller_namespace)
    wait_for(lambda: ready(kube), timeout=30)
    stale = the_gitrepo(kube, repos, "app")
    kube.set_polling_interval(stale, "1h", defaulted=True)
    stored = objects.must_get("GitRepo", repos, "app")
    assert stored["spec"]["pollingInterval"] == "1h"
    assert stored["metadata"]["annotations"]["gitjob.fleet.cattle.io/polling-interval-defaulted"] == "true"
    with pytest.raises(Exception, match="409"):
        kube.set_polling_interval(stale, None, defaulted=False)


def grant_the_receiver_its_reads(cluster: Cluster, account: str, controller_namespace: str) -> None:
    """What the receiver needs besides the GitRepos' own Secrets: GitRepos everywhere, the global
    Secret in the controller namespace."""
    subject = [{"kind": "ServiceAccount", "name": account, "namespace": controller_namespace}]
    cluster.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": f"{controller_namespace}-gitrepos"},
         "rules": [{"apiGroups": ["fleet.cattle.io"], "resources": ["gitrepos"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": f"{controller_namespace}-gitrepos"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": f"{controller_namespace}-gitrepos"},
         "subjects": subject},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "global-secret", "namespace": controller_namespace},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["gitjob-webhook"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "global-secret", "namespace": controller_namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "global-secret"},
         "subjects": subject},
    ])


def test_a_gitrepo_secret_rbac_forbids_is_unknown_and_does_not_hold_readiness(
        cluster: Cluster, objects: Objects, start_store: StartStore, controller_namespace: str,
        repos: str) -> None:
    kubeconfig = cluster.service_account_kubeconfig(controller_namespace, "receiver")
    grant_the_receiver_its_reads(cluster, "receiver", controller_namespace)
    objects.create(secret("forbidden-hook", repos, github="not-for-us"))
    objects.create(gitrepo("locked", repos, f"https://github.com/{repos}/locked",
                           webhookSecret="forbidden-hook"))

    def granted() -> bool:
        can = cluster.kubectl("auth", "can-i", "list", "secrets/gitjob-webhook", "-n", controller_namespace,
                              kubeconfig=kubeconfig)
        return can.stdout.strip() == "yes"
    wait_for(granted, timeout=30, interval=0.2, message="the RoleBinding to take effect")
    kube = start_store(kubeconfig, controller_namespace)
    wait_for(lambda: ready(kube), timeout=60, message="ready despite the forbidden Secret")
    with pytest.raises(SecretUnknown):   # unknown, never absent: its deliveries wait (503)
        kube.secret(repos, "forbidden-hook")
    assert f"{repos}/forbidden-hook" in kube.readiness()[1]
    assert kube.secret(controller_namespace, "gitjob-webhook") is None   # readable, and known absent


def test_the_gitrepo_list_is_read_in_pages_of_500(
        fault_proxy: FaultProxy, objects: Objects, start_store: StartStore, controller_namespace: str,
        repos: str, request: pytest.FixtureRequest) -> None:
    request.addfinalizer(lambda: objects.delete_all("GitRepo", repos))
    objects.create_all(gitrepo(f"app-{number:04d}", repos, f"https://github.com/{repos}/app-{number}")
                       for number in range(501))
    kube = start_store(fault_proxy.kubeconfig, controller_namespace)
    wait_for(lambda: ready(kube), timeout=60, message="caches synced")
    assert len(in_namespace(kube.gitrepos(), repos)) == 501
    pages = gitrepo_lists(fault_proxy)
    expected = -(-len(objects.list("GitRepo")) // 500)
    assert [query.get("limit") for query in pages] == ["500"] * expected
    assert [bool(query.get("continue")) for query in pages] == [False] + [True] * (expected - 1)
