"""The Kubernetes store against the API-server emulator: caches, resume, relist, patches, Events."""

from __future__ import annotations

import datetime

import pytest

from controller.fleet.gitrepos import GitRepo
from controller.settings import Settings
from controller.store import GitRepoGone, SecretUnknown, StoreUnavailable
from controller.store.kube import KubeStore
from controller.fleet.urls import repo_key
from support.waiting import wait_for

WHEN = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)


def gitrepo(
    name: str, repo: str = "https://github.com/example/app", namespace: str = "fleet-default", **spec: object
) -> dict:
    return {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"repo": repo, **spec},
    }


def secret(name: str, namespace: str = "cattle-fleet-system", **data: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    }


@pytest.fixture
def store(emulator, kubeconfig_path):
    """A started KubeStore on the emulator (fast resync and deadline so tests stay quick)."""
    started = []

    def make(**changes: object) -> KubeStore:
        settings = Settings(kubeconfig=kubeconfig_path, patch_deadline=2.0).replace(**changes)
        kube = KubeStore.connect(settings, kubeconfig_path)
        kube.start()
        started.append(kube)
        return kube

    yield make
    for kube in started:
        kube.stop()


def _ready(kube: KubeStore) -> bool:
    return kube.readiness()[0]


def _names(gitrepos) -> list[str]:
    return sorted(g.name for g in gitrepos)


def test_the_caches_sync_and_readiness_turns_true(emulator, store):
    emulator.create(gitrepo("app"))
    emulator.create(secret("gitjob-webhook", github="s3cret"))
    kube = store()
    wait_for(lambda: _ready(kube), message="caches synced")
    assert _names(kube.gitrepos_for(repo_key("git@github.com:example/app.git"))) == ["app"]
    assert kube.secret("cattle-fleet-system", "gitjob-webhook") == {"github": b"s3cret"}


def test_readiness_is_false_while_the_api_server_is_unreachable(emulator, store):
    emulator.fail_next("GET", r"/apis/fleet.cattle.io/v1alpha1/gitrepos$", 503, count=3)
    kube = store()
    assert not _ready(kube)
    wait_for(lambda: _ready(kube), message="recovery after the API server comes back")


def test_watch_events_keep_the_cache_current(emulator, store):
    kube = store()
    wait_for(lambda: _ready(kube))
    emulator.create(gitrepo("late", repo="https://gitlab.example.com/group/late.git"))
    wait_for(
        lambda: kube.gitrepos_for(repo_key("https://gitlab.example.com/group/late")),
        message="the new GitRepo in the cache",
    )
    emulator.delete("gitrepos", "fleet-default", "late")
    wait_for(
        lambda: not kube.gitrepos_for(repo_key("https://gitlab.example.com/group/late")),
        message="the deleted GitRepo gone",
    )


def test_a_cut_watch_resumes_without_losing_events(emulator, store):
    kube = store()
    wait_for(lambda: _ready(kube))
    lists_before = _count(emulator, "GET", "/apis/fleet.cattle.io/v1alpha1/gitrepos", watch=False)
    assert emulator.cut_watches() >= 1
    emulator.create(gitrepo("after-cut"))
    wait_for(lambda: "after-cut" in _names(kube.gitrepos()), message="the GitRepo created after the cut")
    # Resumed from the last resourceVersion: no relist was needed.
    assert _count(emulator, "GET", "/apis/fleet.cattle.io/v1alpha1/gitrepos", watch=False) == lists_before


def test_an_expired_watch_relists(emulator, store):
    kube = store()
    wait_for(lambda: _ready(kube))
    lists_before = _count(emulator, "GET", "/apis/fleet.cattle.io/v1alpha1/gitrepos", watch=False)
    emulator.cut_watches()
    emulator.create(gitrepo("while-away"))
    emulator.compact()
    wait_for(lambda: "while-away" in _names(kube.gitrepos()), message="the GitRepo after the relist")
    assert _count(emulator, "GET", "/apis/fleet.cattle.io/v1alpha1/gitrepos", watch=False) > lists_before


def test_only_referenced_secrets_are_watched_never_all_secrets(emulator, store):
    emulator.create(secret("team-a-hook", namespace="fleet-default", github="a"))
    emulator.create(secret("unrelated", namespace="fleet-default", password="do-not-read"))
    kube = store()
    wait_for(lambda: _ready(kube))
    with pytest.raises(SecretUnknown):   # named by no GitRepo: never read, so not known
        kube.secret("fleet-default", "team-a-hook")
    emulator.create(gitrepo("team-a", webhookSecret="team-a-hook"))
    wait_for(
        lambda: kube.secret("fleet-default", "team-a-hook") == {"github": b"a"},
        message="the referenced Secret in the cache",
    )
    secret_requests = [r for r in emulator.requests if "/secrets" in r.path]
    assert secret_requests
    assert all(r.query.get("fieldSelector", "").startswith("metadata.name=") for r in secret_requests)
    with pytest.raises(SecretUnknown):
        kube.secret("fleet-default", "unrelated")


def test_the_admission_store_watches_only_the_global_secret(emulator, kubeconfig_path):
    emulator.create(gitrepo("team-a", webhookSecret="team-a-hook"))
    kube = KubeStore.connect(Settings(kubeconfig=kubeconfig_path), kubeconfig_path, per_gitrepo_secrets=False)
    kube.start()
    try:
        wait_for(lambda: _ready(kube))
        paths = {r.path for r in emulator.requests if "/secrets" in r.path}
        assert paths == {"/api/v1/namespaces/cattle-fleet-system/secrets"}
    finally:
        kube.stop()


def test_a_status_patch_writes_only_status_on_the_status_subresource(emulator, store):
    emulator.create(gitrepo("app", branch="main"))
    kube = store()
    wait_for(lambda: _ready(kube))
    before = emulator.get("gitrepos", "fleet-default", "app")
    updated = kube.patch_status(kube.gitrepos()[0], "af69d162de5a276abc86e0686b2b44033cd3f442", WHEN)
    after = emulator.get("gitrepos", "fleet-default", "app")
    assert after["status"]["webhookCommit"] == "af69d162de5a276abc86e0686b2b44033cd3f442"
    assert after["status"]["lastWebhookTime"] == "2026-11-29T12:00:00Z"
    assert (
        after["spec"] == before["spec"]
        and after["metadata"]["generation"] == before["metadata"]["generation"]
    )
    assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    assert updated.webhook_commit == "af69d162de5a276abc86e0686b2b44033cd3f442"
    patch = [r for r in emulator.requests if r.method == "PATCH"][-1]
    assert patch.path == "/apis/fleet.cattle.io/v1alpha1/namespaces/fleet-default/gitrepos/app/status"
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {
        "status": {
            "webhookCommit": "af69d162de5a276abc86e0686b2b44033cd3f442",
            "lastWebhookTime": "2026-11-29T12:00:00Z",
        }
    }


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_status_patch_is_retried_through_transient_failures(emulator, store, status):
    emulator.create(gitrepo("app"))
    kube = store()
    wait_for(lambda: _ready(kube))
    emulator.fail_next("PATCH", r"/status$", status, count=2)
    kube.patch_status(kube.gitrepos()[0], "abc", WHEN)
    assert emulator.get("gitrepos", "fleet-default", "app")["status"]["webhookCommit"] == "abc"
    assert (
        _count(
            emulator, "PATCH", "/apis/fleet.cattle.io/v1alpha1/namespaces/fleet-default/gitrepos/app/status"
        )
        >= 3
    )


def test_a_status_patch_failing_past_the_deadline_raises_unavailable(emulator, store):
    emulator.create(gitrepo("app"))
    kube = store(patch_deadline=0.5)
    wait_for(lambda: _ready(kube))
    emulator.fail_next("PATCH", r"/status$", 503, count=1000)
    with pytest.raises(StoreUnavailable, match="gave up after 0.5s"):
        kube.patch_status(kube.gitrepos()[0], "abc", WHEN)
    assert "status" not in emulator.get("gitrepos", "fleet-default", "app")


def test_a_patch_of_a_deleted_gitrepo_says_so(emulator, store):
    kube = store()
    wait_for(lambda: _ready(kube))
    with pytest.raises(GitRepoGone):
        kube.patch_status(GitRepo("fleet-default", "ghost", "https://x/y"), "abc", WHEN)


def test_an_event_is_recorded_and_identical_ones_are_aggregated(emulator, store):
    emulator.create(gitrepo("app"))
    kube = store()
    wait_for(lambda: _ready(kube))
    target = kube.gitrepos()[0]
    kube.record_event(target, "WebhookReceived", "github push to refs/heads/main at abc")
    kube.record_event(target, "WebhookReceived", "github push to refs/heads/main at abc")
    kube.events.flush()
    events = emulator.list("events", "fleet-default")
    assert len(events) == 1
    event = events[0]
    assert (event["reason"], event["type"], event["count"]) == ("WebhookReceived", "Normal", 2)
    assert event["involvedObject"]["kind"] == "GitRepo" and event["involvedObject"]["name"] == "app"
    assert (
        event["involvedObject"]["uid"] == emulator.get("gitrepos", "fleet-default", "app")["metadata"]["uid"]
    )


def test_setting_the_polling_interval_is_guarded_by_the_resource_version(emulator, store):
    emulator.create(gitrepo("app"))
    kube = store()
    wait_for(lambda: _ready(kube))
    stale = kube.gitrepos()[0]
    kube.set_polling_interval(stale, "1h", defaulted=True)
    stored = emulator.get("gitrepos", "fleet-default", "app")
    assert stored["spec"]["pollingInterval"] == "1h"
    assert stored["metadata"]["annotations"]["gitjob.fleet.cattle.io/polling-interval-defaulted"] == "true"
    with pytest.raises(Exception, match="409"):
        kube.set_polling_interval(stale, None, defaulted=False)


def _count(emulator, method: str, path: str, watch: bool | None = None) -> int:
    return sum(
        1
        for r in emulator.requests
        if r.method == method
        and r.path == path
        and (watch is None or (r.query.get("watch") in ("true", "1")) == watch)
    )


def test_a_gitrepo_secret_the_service_cannot_read_is_unknown_and_does_not_hold_readiness(emulator, store):
    emulator.create(gitrepo("locked", webhookSecret="forbidden-hook"))
    emulator.fail_next("GET", r"/api/v1/namespaces/fleet-default/secrets$", 403, count=10_000)
    kube = store()
    wait_for(lambda: _ready(kube), message="ready despite the forbidden Secret")
    with pytest.raises(SecretUnknown):   # unknown, never absent: its deliveries wait (503)
        kube.secret("fleet-default", "forbidden-hook")
    assert "fleet-default/forbidden-hook" in kube.readiness()[1]


def test_readiness_waits_for_the_global_secret(emulator, store):
    emulator.fail_next("GET", r"/api/v1/namespaces/cattle-fleet-system/secrets$", 503, count=3)
    kube = store()
    assert not _ready(kube)
    wait_for(lambda: _ready(kube), message="ready once the global Secret listed")


def test_the_gitrepo_list_is_read_in_pages(emulator, store):
    for number in range(1001):
        emulator.create(gitrepo(f"app-{number:04d}", repo=f"https://github.com/example/app-{number}"))
    kube = store()
    wait_for(lambda: _ready(kube), message="caches synced")
    assert len(kube.gitrepos()) == 1001
    pages = [
        r
        for r in emulator.requests
        if r.path == "/apis/fleet.cattle.io/v1alpha1/gitrepos" and "watch" not in r.query
    ]
    assert [r.query.get("limit") for r in pages] == ["500", "500", "500"]
    assert [bool(r.query.get("continue")) for r in pages] == [False, True, True]
