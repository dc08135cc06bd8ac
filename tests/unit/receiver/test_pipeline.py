"""The receiver core beyond Fleet's tests: where we differ on purpose, and what Fleet lacks
(delivery de-duplication, ``--require-signature``, 503 on an unavailable API server)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from controller.fleet.gitrepos import GitRepo
from controller.store import StoreUnavailable
from controller.store.offline import OfflineStore
from unit.receiver.conftest import MakeReceiver
from unit.receiver.objects import (C, GOOD_SECRET, body, github_headers, github_push, gitrepo, hmac_hex,
                                   outcome, secret)

D = "0123456789abcdef0123456789abcdef01234567"


def _stored(store: OfflineStore, namespace: str = "default", name: str = "test") -> dict[str, Any]:
    obj = store.object(namespace, name)
    assert obj is not None, f"{namespace}/{name} is not in the store"
    return obj


def _webhook_commit(store: OfflineStore, namespace: str = "default", name: str = "test") -> str:
    commit: str = (_stored(store, namespace, name).get("status") or {}).get("webhookCommit", "")
    return commit


def test_an_unknown_sender_is_400_naming_the_headers_looked_for(make_receiver: MakeReceiver) -> None:
    """Fleet answers an empty 200, so a misconfigured sender looks like success; we say what is missing."""
    receiver, _ = make_receiver([gitrepo(branch="main")])
    status, answer = outcome(receiver, {"Content-Type": "application/json"}, github_push())
    assert (status, answer["error"]) == (400, "unknown-sender")
    assert "X-GitHub-Event" in answer["message"]


def test_a_missing_signature_header_is_401_when_a_secret_applies(make_receiver: MakeReceiver) -> None:
    """Fleet answers 500 for a GitHub, Gogs or Bitbucket Server delivery without its signature header;
    an unsigned delivery to a secured GitRepo is an authentication failure, so we answer 401."""
    receiver, store = make_receiver([gitrepo(branch="main"), secret(github=GOOD_SECRET)])
    data = github_push()
    status, answer = outcome(receiver, github_headers(data, key=None), data)
    assert status == 401
    assert "carries no signature" in answer["message"]
    assert _webhook_commit(store) == ""


@pytest.mark.parametrize(("headers", "keys", "named"), [
    pytest.param({"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64},
                 {"github": GOOD_SECRET}, "the delivery's signature does not match the 'github' key",
                 id="github"),
    pytest.param({"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong"}, {"gitlab": GOOD_SECRET},
                 "the delivery's signature or token does not match the 'gitlab' or 'gitlab-signing' key",
                 id="gitlab"),
    pytest.param({"X-Vss-ActivityId": "a-1", "Authorization": "Basic d3Jvbmc6d3Jvbmc="},
                 {"azure-username": "user", "azure-password": GOOD_SECRET},
                 "the delivery's Basic authentication does not match", id="azure-devops"),
])
def test_a_401_names_what_the_provider_sends(
        make_receiver: MakeReceiver, headers: dict[str, str], keys: dict[str, str], named: str) -> None:
    """A GitLab token is not a signature: the operator looks for the right setting."""
    receiver, _ = make_receiver([gitrepo(branch="main"), secret(**keys)])
    status, answer = outcome(receiver, {"Content-Type": "application/json", **headers}, b"{}")
    assert status == 401 and named in answer["message"], answer


def test_the_401_message_never_contains_the_secret_value(make_receiver: MakeReceiver) -> None:
    receiver, _ = make_receiver([gitrepo(branch="main"), secret(github=GOOD_SECRET)])
    data = github_push()
    _, answer = outcome(receiver, github_headers(data, key="wrong"), data)
    assert GOOD_SECRET not in str(answer)


@pytest.mark.parametrize(("tracked", "pushed", "patched"), [
    pytest.param({}, "refs/heads/master", True, id="no branch follows master"),
    pytest.param({}, "refs/heads/main", False, id="no branch ignores other branches"),
    pytest.param({}, "refs/tags/v1.0.0", False, id="no branch ignores tags"),
    pytest.param({"branch": "main"}, "refs/tags/main", False,
                 id="a tag named like the branch is not the branch"),
    pytest.param({"revision": "v1.0.0"}, "refs/tags/v1.0.0", True, id="a tag push reaches spec.revision"),
    pytest.param({"revision": "refs/tags/v1.0.0"}, "refs/tags/v1.0.0", True,
                 id="spec.revision as a full ref"),
    pytest.param({"revision": "v1.0.0"}, "refs/tags/v1.0.1", False, id="another tag"),
    pytest.param({"revision": "v1.0.0"}, "refs/heads/v1.0.0", False, id="a branch named like the tag"),
    pytest.param({"revision": C}, "refs/heads/master", False, id="pinned to a commit"),
])
def test_which_refs_concern_a_gitrepo(
    make_receiver: MakeReceiver, tracked: dict[str, str], pushed: str, patched: bool
) -> None:
    """Fleet lets a GitRepo without spec.branch be triggered by any branch or tag push, although its
    reconciler follows master (the push then only costs a futile ls-remote and a warning event), and
    never triggers GitRepos with spec.revision (issue 3474). We match what the GitRepo deploys."""
    receiver, store = make_receiver([gitrepo(**tracked)])
    data = github_push(ref=pushed)
    status, _ = outcome(receiver, {"X-GitHub-Event": "push"}, data)
    assert status == 200
    assert _webhook_commit(store) == (C if patched else "")


def test_every_ref_of_a_multi_ref_push_counts(make_receiver: MakeReceiver) -> None:
    """Fleet looks at the first change only; a push of two branches must reach both GitRepos."""
    receiver, store = make_receiver([
        gitrepo("main", repo="https://bitbucket.org/example/repo", branch="main"),
        gitrepo("release", repo="https://bitbucket.org/example/repo", branch="release")])
    data = body({"push": {"changes": [
        {"new": {"type": "branch", "name": "main", "target": {"hash": C}}},
        {"new": {"type": "branch", "name": "release", "target": {"hash": D}}}]},
        "repository": {"links": {"html": {"href": "https://bitbucket.org/example/repo"}}}})

    status, answer = outcome(receiver, {"X-Event-Key": "repo:push", "X-Hook-UUID": "u"}, data)

    assert (status, answer["summary"]["patched"]) == (200, 2)
    assert (_webhook_commit(store, name="main"), _webhook_commit(store, name="release")) == (C, D)


@pytest.mark.parametrize(("headers", "payload"), [
    pytest.param({"X-GitHub-Event": "push"},
                 {"ref": "refs/heads/main", "after": "0" * 40, "deleted": True,
                  "repository": {"html_url": "https://github.com/example/repo"}}, id="github all-zero after"),
    pytest.param({"X-Gitlab-Event": "Push Hook"},
                 {"ref": "refs/heads/main", "checkout_sha": None, "after": "0" * 40,
                  "project": {"web_url": "https://github.com/example/repo"}}, id="gitlab null checkout_sha"),
    pytest.param({"X-Event-Key": "repo:push", "X-Hook-UUID": "u"},
                 {"push": {"changes": [{"new": None, "old": {"type": "branch", "name": "main"}}]},
                  "repository": {"links": {"html": {"href": "https://github.com/example/repo"}}}},
                 id="bitbucket null new"),
])
def test_a_deletion_writes_nothing(
    make_receiver: MakeReceiver, headers: dict[str, str], payload: dict[str, Any]
) -> None:
    """Fleet writes forty zeros into status.webhookCommit for a deleted branch; we write nothing."""
    receiver, store = make_receiver([gitrepo(branch="main")])
    status, answer = outcome(receiver, headers, body(payload))
    assert (status, answer["summary"]["patched"]) == (200, 0)
    assert answer["message"] == "the push only deletes refs: there is no commit for Fleet to fetch"
    assert _webhook_commit(store) == ""
    assert store.events == []


def test_a_push_never_writes_the_spec(make_receiver: MakeReceiver) -> None:
    """Fleet sets spec.pollingInterval on the first webhook of a GitRepo without one; we write the
    status subresource only (the admission webhook owns the interval)."""
    receiver, store = make_receiver([gitrepo(branch="main")])
    before = _stored(store)["spec"]
    outcome(receiver, {"X-GitHub-Event": "push"}, github_push())
    assert _stored(store)["spec"] == before
    assert _webhook_commit(store) == C


def test_a_patched_gitrepo_gets_a_webhook_received_event(make_receiver: MakeReceiver) -> None:
    receiver, store = make_receiver([gitrepo(branch="main")])
    outcome(receiver, {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"}, github_push())
    assert [(e["gitrepo"], e["reason"]) for e in store.events] == [("default/test", "WebhookReceived")]
    assert store.events[0]["message"] == f"github push to refs/heads/main at {C[:12]}"


def test_a_gitrepo_already_at_the_commit_is_current_and_not_written(make_receiver: MakeReceiver) -> None:
    receiver, store = make_receiver([gitrepo(branch="main", webhook_commit=C)])
    status, answer = outcome(receiver, {"X-GitHub-Event": "push"}, github_push())
    assert (status, answer["summary"]["current"], answer["summary"]["patched"]) == (200, 1, 0)
    assert answer["gitrepos"][0]["result"] == "current"
    assert store.events == []


def test_a_body_resent_as_another_provider_of_the_same_key_is_a_duplicate(
        make_receiver: MakeReceiver) -> None:
    """Gogs, Gitea and Forgejo share the key `gogs`: a Gitea push resent with Forgejo's headers is
    the same delivery, not a second one that could move the status back."""
    receiver, store = make_receiver([secret(gogs=GOOD_SECRET),
                                     gitrepo(branch="main", repo="https://git.example.com/org/app")])
    data = body({"ref": "refs/heads/main", "after": C,
                 "repository": {"html_url": "https://git.example.com/org/app"}})
    signature = hmac_hex(GOOD_SECRET, data)
    first = outcome(receiver, {"X-Gitea-Event": "push", "X-Gitea-Signature": signature}, data)
    store.patch_status(store.gitrepos()[0], "0" * 40, datetime.datetime.now(datetime.timezone.utc))
    again = outcome(receiver, {"X-Forgejo-Event": "push", "X-Forgejo-Signature": signature}, data)
    assert (first[1]["outcome"], again[1]["outcome"]) == ("processed", "duplicate")
    assert store.gitrepos()[0].webhook_commit == "0" * 40


def test_a_redelivery_of_the_same_body_is_a_duplicate_and_writes_nothing(make_receiver: MakeReceiver) -> None:
    receiver, store = make_receiver([gitrepo(branch="main")])
    data = github_push()
    headers = github_headers(data, key=None, delivery="d-1")
    outcome(receiver, headers, data)
    # Someone else moved the status since: a duplicate must not move it back.
    store.patch_status(store.gitrepos()[0], "reset", datetime.datetime.now(datetime.timezone.utc))

    status, answer = outcome(receiver, headers, data)

    assert (status, answer["outcome"]) == (200, "duplicate")
    assert _webhook_commit(store) == "reset"


def test_the_same_delivery_id_with_another_body_is_processed(make_receiver: MakeReceiver) -> None:
    receiver, store = make_receiver([gitrepo(branch="main")])
    first, second = github_push(after=C), github_push(after=D)
    outcome(receiver, github_headers(first, key=None, delivery="d-1"), first)

    status, answer = outcome(receiver, github_headers(second, key=None, delivery="d-1"), second)

    assert (status, answer["outcome"], answer["summary"]["patched"]) == (200, "processed", 1)
    assert _webhook_commit(store) == D


def test_require_signature_refuses_a_delivery_no_secret_applies_to(make_receiver: MakeReceiver) -> None:
    receiver, store = make_receiver([gitrepo(branch="main")], require_signature=True)
    status, answer = outcome(receiver, {"X-GitHub-Event": "push"}, github_push())
    assert status == 401
    assert "--require-signature" in answer["message"]
    assert _webhook_commit(store) == ""


def test_require_signature_accepts_a_verified_delivery(make_receiver: MakeReceiver) -> None:
    receiver, store = make_receiver([gitrepo(branch="main"), secret(github=GOOD_SECRET)],
                                    require_signature=True)
    data = github_push()
    status, _ = outcome(receiver, github_headers(data), data)
    assert status == 200
    assert _webhook_commit(store) == C


def test_an_unauthenticated_delivery_is_accepted_and_counted_when_no_secret_applies(
    make_receiver: MakeReceiver
) -> None:
    receiver, store = make_receiver([gitrepo(branch="main")])
    before = _unauthenticated("github")

    status, answer = outcome(receiver, {"X-GitHub-Event": "push"}, github_push())

    assert (status, answer["authenticated"]) == (200, False)
    assert _webhook_commit(store) == C
    assert _unauthenticated("github") == before + 1


def test_a_delivery_signed_for_one_gitrepo_does_not_patch_another_with_its_own_secret(
    make_receiver: MakeReceiver
) -> None:
    """Two GitRepos of one repository with different secrets: only the one whose secret verifies moves."""
    receiver, store = make_receiver([
        gitrepo("a", branch="main", webhook_secret="a-secret"), secret("a-secret", "default", github="key-a"),
        gitrepo("b", branch="main", webhook_secret="b-secret"),
        secret("b-secret", "default", github="key-b")])
    data = github_push()

    status, answer = outcome(receiver, github_headers(data, key="key-a"), data)

    assert (status, answer["summary"]["patched"], answer["summary"]["unauthorized"]) == (200, 1, 1)
    assert (_webhook_commit(store, name="a"), _webhook_commit(store, name="b")) == (C, "")


class _ClusterStore(OfflineStore):
    """An in-memory store that says it is a cluster: GitRepo names are then not for everyone."""

    @property
    def offline(self) -> bool:
        return False


@pytest.mark.parametrize(("store_class", "signed", "names_shown"), [
    pytest.param(_ClusterStore, False, False, id="cluster, unauthenticated: hidden"),
    pytest.param(_ClusterStore, True, True, id="cluster, authenticated: shown"),
    pytest.param(OfflineStore, False, True, id="offline, unauthenticated: shown"),
])
def test_gitrepo_names_are_only_shown_to_an_authenticated_caller_or_offline(
    make_receiver: MakeReceiver, store_class: type[OfflineStore], signed: bool, names_shown: bool
) -> None:
    objects = [gitrepo(branch="main")] + ([secret(github=GOOD_SECRET)] if signed else [])
    receiver, _ = make_receiver(objects, store_class=store_class)
    data = github_push()

    status, answer = outcome(receiver, github_headers(data, key=GOOD_SECRET if signed else None), data)

    assert (status, answer["summary"]["patched"]) == (200, 1)
    assert ("gitrepos" in answer) is names_shown
    assert ("test" in str(answer)) is names_shown


class _FlakyStore(OfflineStore):
    """Kubernetes refuses the first ``failures`` status patches."""

    failures = 1

    def patch_status(self, gitrepo: GitRepo, commit: str, when: datetime.datetime) -> GitRepo:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("the API server did not answer within 8s")
        return super().patch_status(gitrepo, commit, when)


def test_an_unavailable_api_server_is_503_with_retry_after_and_a_redelivery_retries(
    make_receiver: MakeReceiver
) -> None:
    receiver, store = make_receiver([gitrepo(branch="main")], store_class=_FlakyStore)
    data = github_push()
    headers = github_headers(data, key=None, delivery="d-1")

    status, answer = outcome(receiver, headers, data)
    assert status == 503
    assert answer["headers"]["Retry-After"].isdigit()
    assert answer["summary"]["failed"] == 1 and answer["outcome"] == "unavailable"
    assert _webhook_commit(store) == ""

    status, answer = outcome(receiver, headers, data)
    assert (status, answer["outcome"], answer["summary"]["patched"]) == (200, "processed", 1)
    assert _webhook_commit(store) == C


def _unauthenticated(provider: str) -> float:
    return REGISTRY.get_sample_value("gitjob_webhook_unauthenticated_deliveries_total",
                                     {"provider": provider}) or 0.0
