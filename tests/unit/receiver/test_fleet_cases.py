"""Fleet's own webhook tests (pkg/webhook/webhook_test.go, research report section 7.1), replayed
against the receiver core. Where we answer differently on purpose, the test says so and why.

Common to every case: Fleet writes ``spec.pollingInterval: 1h`` next to the status; we never write
the spec (an unauthenticated push must not be able to change it, and GitOps tools own it; the
admission webhook sets the interval instead), so every case also checks the spec is untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from controller.store.offline import OfflineStore
from unit.receiver.conftest import MakeReceiver
from unit.receiver.objects import (BAD_SECRET, C, GOOD_SECRET, body, github_headers, github_push, gitrepo,
                                   hmac_hex, outcome, secret)


def _stored(store: OfflineStore, namespace: str, name: str) -> dict[str, Any]:
    obj = store.object(namespace, name)
    assert obj is not None, f"{namespace}/{name} is not in the store"
    return obj


def _webhook_commit(store: OfflineStore, namespace: str, name: str) -> str:
    commit: str = (_stored(store, namespace, name).get("status") or {}).get("webhookCommit", "")
    return commit


def _spec(store: OfflineStore, namespace: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = _stored(store, namespace, name)["spec"]
    return spec


@pytest.mark.parametrize(("global_data", "gitrepo_secret", "expected", "written"), [
    pytest.param({"github": GOOD_SECRET}, None, 200, True, id="global-secret-ok-no-gitrepo-secret"),
    pytest.param({"github": BAD_SECRET}, None, 401, False, id="global-secret-wrong-no-gitrepo-secret"),
    pytest.param({"github": GOOD_SECRET}, {"github": GOOD_SECRET}, 200, True,
                 id="global-secret-ok-gitrepo-secret-ok"),
    pytest.param({"github": BAD_SECRET}, {"github": GOOD_SECRET}, 200, True,
                 id="global-secret-wrong-gitrepo-secret-ok"),
    pytest.param({"github": GOOD_SECRET}, {"github": BAD_SECRET}, 401, False,
                 id="global-secret-ok-gitrepo-secret-wrong"),
    pytest.param(None, {"github": BAD_SECRET}, 401, False, id="no-global-secret-gitrepo-secret-wrong"),
    pytest.param(None, {"github": GOOD_SECRET}, 200, True, id="no-global-secret-gitrepo-secret-ok"),
    pytest.param(None, None, 200, True, id="no-global-secret-no-gitrepo-secret"),
])
def test_github_secret_precedence_decides_whether_the_commit_is_written(
    make_receiver: MakeReceiver, global_data: dict[str, str] | None, gitrepo_secret: dict[str, str] | None,
    expected: int, written: bool,
) -> None:
    """TestGitHubSecretAndCommitUpdated: the GitRepo's webhookSecret wins over the global Secret."""
    objects = [gitrepo(namespace="gitrepoNamespace", branch="main",
                       webhook_secret="gitrepoSecret" if gitrepo_secret is not None else "")]
    if global_data is not None:
        objects.append(secret(**global_data))
    if gitrepo_secret is not None:
        objects.append(secret("gitrepoSecret", "gitrepoNamespace", **gitrepo_secret))
    receiver, store = make_receiver(objects)
    data = github_push()

    status, _ = outcome(receiver, github_headers(data), data)

    assert status == expected
    assert _webhook_commit(store, "gitrepoNamespace", "test") == (C if written else "")
    assert "pollingInterval" not in _spec(store, "gitrepoNamespace", "test")


@pytest.mark.parametrize(("global_data", "gitrepo_secret", "gitrepo_secret_exists"), [
    pytest.param({"github-bad-key": GOOD_SECRET}, None, False,
                 id="global-secret-wrong-key-no-gitrepo-secret"),
    pytest.param({"github": GOOD_SECRET}, {"github-bad-key": GOOD_SECRET}, True,
                 id="global-secret-ok-gitrepo-secret-wrong-key"),
    pytest.param(None, {}, False, id="no-global-secret-no-gitrepo-secret-secret-in-gitrepo"),
])
def test_a_secret_that_cannot_verify_is_401_not_500(
    make_receiver: MakeReceiver, global_data: dict[str, str] | None, gitrepo_secret: dict[str, str] | None,
    gitrepo_secret_exists: bool,
) -> None:
    """Fleet answers 500 when the Secret lacks the provider's key or spec.webhookSecret names a Secret
    that does not exist. We answer 401: the sender's credentials do not check out against the
    configuration, which is an authentication outcome the operator can fix, not a server fault
    (and a 500 makes providers retry and disable the hook). Nothing is written either way."""
    objects = [gitrepo(namespace="gitrepoNamespace", branch="main",
                       webhook_secret="gitrepoSecret" if gitrepo_secret is not None else "")]
    if global_data is not None:
        objects.append(secret(**global_data))
    if gitrepo_secret is not None and gitrepo_secret_exists:
        objects.append(secret("gitrepoSecret", "gitrepoNamespace", **gitrepo_secret))
    receiver, store = make_receiver(objects)
    data = github_push()

    status, answer = outcome(receiver, github_headers(data), data)

    assert (status, answer["error"]) == (401, "unauthorized")
    assert _webhook_commit(store, "gitrepoNamespace", "test") == ""


def test_a_wrong_global_secret_is_401(make_receiver: MakeReceiver) -> None:
    """TestGitHubWrongSecret."""
    receiver, store = make_receiver([gitrepo(branch="main"), secret(github="badsecret")])
    data = github_push()
    status, _ = outcome(receiver, github_headers(data), data)
    assert status == 401
    assert _webhook_commit(store, "default", "test") == ""


_SUFFIX_REPO = gitrepo("gitrepo-which-should-be-ignored", "my-namespace",
                       "https://github.com/example/repo-with-suffix", branch="main",
                       webhook_commit="12345abcdef")


@pytest.mark.parametrize(("headers", "payload", "intended"), [
    pytest.param({"X-Github-Event": "push"},
                 {"ref": "refs/heads/main", "after": C,
                  "repository": {"html_url": "https://github.com/example/repo"}},
                 {"repo": "https://github.com/example/repo", "branch": "main"},
                 id="web URL matches https repo"),
    pytest.param({"X-Github-Event": "push"},
                 {"ref": "refs/heads/main", "after": C, "repository": {
                     "html_url": "https://github.example.com/example/repo",
                     "ssh_url": "git@github-ssh.example.com:example/repo.git"}},
                 {"repo": "git@github-ssh.example.com:example/repo.git", "branch": "main"},
                 id="ssh URL matches scp-style repo on a different github host"),
    pytest.param({"X-Github-Event": "push"},
                 {"ref": "refs/heads/main", "after": C, "repository": {
                     "html_url": "https://github.com/example/repo",
                     "ssh_url": "git@github.com:example/repo.git"}},
                 {"repo": "https://github.com/example/repo", "branch": "main"},
                 id="web and SSH URLs on the same host match once"),
    pytest.param({"X-Gitlab-Event": "Push Hook"},
                 {"ref": "refs/heads/main", "checkout_sha": C, "project": {
                     "web_url": "https://gitlab.example.com/example/repo",
                     "git_ssh_url": "git@gitlab-ssh.example.com:example/repo.git"}},
                 {"repo": "git@gitlab-ssh.example.com:example/repo.git", "branch": "main"},
                 id="ssh URL matches scp-style repo on a different gitlab host"),
    pytest.param({"X-Gitlab-Event": "Tag Push Hook"},
                 {"ref": "refs/tags/v1.0.0", "checkout_sha": C, "project": {
                     "web_url": "https://gitlab.example.com/example/repo",
                     "git_ssh_url": "git@gitlab-ssh.example.com:example/repo.git"}},
                 {"repo": "git@gitlab-ssh.example.com:example/repo.git", "revision": "v1.0.0"},
                 id="ssh URL matches scp-style repo on a gitlab tag push"),
    pytest.param({"X-Gogs-Event": "push"},
                 {"ref": "refs/heads/main", "after": C, "repository": {
                     "html_url": "https://gogs.example.com/example/repo",
                     "ssh_url": "git@gogs-ssh.example.com:example/repo.git"}},
                 {"repo": "git@gogs-ssh.example.com:example/repo.git", "branch": "main"},
                 id="ssh URL matches scp-style repo on a different gogs host"),
])
def test_the_intended_gitrepo_is_patched_once_and_the_suffixed_one_not(
    make_receiver: MakeReceiver, headers: dict[str, str], payload: dict[str, Any], intended: dict[str, str]
) -> None:
    """TestGitRepoURLMatch. Fleet's intended GitRepo has no branch and is matched by any branch or
    tag; ours follow Fleet's reconciler instead (no branch means master, a tag push concerns the
    GitRepo whose spec.revision is that tag), so the intended GitRepo here names what it tracks."""
    receiver, store = make_receiver([
        gitrepo("intended-gitrepo", "my-namespace", intended["repo"], branch=intended.get("branch", ""),
                revision=intended.get("revision", ""), webhook_commit="12345abcdef"),
        _SUFFIX_REPO])
    data = body(payload)

    status, answer = outcome(receiver, headers, data)

    assert status == 200
    assert answer["summary"]["patched"] == 1
    assert [event["gitrepo"] for event in store.events] == ["my-namespace/intended-gitrepo"]
    assert _webhook_commit(store, "my-namespace", "intended-gitrepo") == C
    assert _webhook_commit(store, "my-namespace", "gitrepo-which-should-be-ignored") == "12345abcdef"
    assert "pollingInterval" not in _spec(store, "my-namespace", "intended-gitrepo")


@pytest.mark.parametrize("html_url", [
    pytest.param("https://.*/example/repo", id="wildcard host"),
    pytest.param("https://github.com/.*/.*", id="wildcard owner and name"),
    pytest.param("https://.*/.*", id="wildcard everything"),
])
def test_a_wildcard_payload_url_matches_no_gitrepo(make_receiver: MakeReceiver, html_url: str) -> None:
    """TestGitHubWildcardURLDoesNotMatchUnintendedRepo. Fleet answers ``succeeded``; we answer
    ``processed`` with an empty summary and say that no GitRepo tracks the repository."""
    receiver, store = make_receiver([gitrepo(branch="main")])
    data = github_push(html_url)

    status, answer = outcome(receiver, {"X-Github-Event": "push"}, data)

    assert (status, answer["outcome"]) == (200, "processed")
    assert answer["summary"]["patched"] == 0
    assert "no GitRepo tracks this repository" in answer["message"]
    assert _webhook_commit(store, "default", "test") == ""


AZURE_COMMIT = "f00c3a181697bb3829a6462e931c7456bbed557b"


def _azure_push(remote_url: str) -> bytes:
    return body({
        "id": "03c164c2-8912-4d5e-8009-3707d5f83734", "eventType": "git.push",
        "createdDate": "2024-01-18T15:40:33.0428751Z",
        "resource": {
            "refUpdates": [{"name": "refs/heads/main",
                            "oldObjectId": "135f8a827edae980466f72eef385881bb4e158d8",
                            "newObjectId": AZURE_COMMIT}],
            "repository": {"remoteUrl": remote_url}}})


@pytest.mark.parametrize(("repo", "remote_url"), [
    pytest.param("https://dev.azure.com/fleet/git-test/_git/git-test",
                 "https://dev.azure.com/fleet/git-test/_git/git-test", id="TestAzureDevopsWebhook"),
    pytest.param("https://visualstudio.com/fleet/git%20test/_git/git%20test",
                 "https://visualstudio.com/fleet/git%20test/_git/git%20test",
                 id="spaces, bare visualstudio.com"),
    pytest.param("https://dev.azure.com/fleet/git%20test/_git/git%20test",
                 "https://dev.azure.com/fleet/git%20test/_git/git%20test", id="spaces, dev.azure.com"),
    pytest.param("https://dev.azure.com/fleet/git-test/_git/git-test",
                 "https://fleet.visualstudio.com/git-test/_git/git-test", id="visualstudio.com payload"),
    pytest.param("git@ssh.dev.azure.com:v3/fleet/git-test/git-test",
                 "https://dev.azure.com/fleet/git-test/_git/git-test", id="SSH v3 GitRepo"),
    pytest.param("https://fleet.visualstudio.com/git%20test/_git/git%20test",
                 "https://dev.azure.com/fleet/git test/_git/git test",
                 id="legacy visualstudio.com GitRepo with spaces (better than Fleet, issue 4507)"),
])
def test_an_azure_devops_push_reaches_the_gitrepo_in_any_url_form(
    make_receiver: MakeReceiver, repo: str, remote_url: str
) -> None:
    """The Azure DevOps end-to-end tests, plus the legacy ``*.visualstudio.com`` GitRepo URL that Fleet
    never matches (only its payload side is rewritten); we normalise both sides to one key."""
    receiver, store = make_receiver([gitrepo(repo=repo, branch="main")])

    status, _ = outcome(receiver, {"X-Vss-Activityid": "xxx"}, _azure_push(remote_url))

    assert status == 200
    assert _webhook_commit(store, "default", "test") == AZURE_COMMIT


def test_a_github_ping_is_answered_200(make_receiver: MakeReceiver, payload: Callable[[str], bytes]) -> None:
    """TestGitHubPingWebhook. Fleet answers the text ``Webhook received successfully`` before looking
    at anything; we answer JSON ``ping`` after parsing (and, when a secret applies, verifying) it."""
    receiver, _ = make_receiver([gitrepo(branch="main")])
    status, answer = outcome(receiver, {"X-Github-Event": "ping"}, payload("github/ping.json"))
    assert (status, answer["outcome"]) == (200, "ping")


_GOGS = body({"ref": "refs/heads/main", "after": C,
              "repository": {"html_url": "https://gogs.example.com/example/repo"}})
_GITLAB = body({"ref": "refs/heads/main", "checkout_sha": C,
                "project": {"web_url": "https://gitlab.example.com/example/repo"}})
_BITBUCKET = body({"push": {"changes": [{"new": {"type": "branch", "name": "main", "target": {"hash": C}}}]},
                   "repository": {"links": {"html": {"href": "https://bitbucket.org/example/repo"}}}})
_BITBUCKET_SERVER = body({"eventKey": "repo:refs_changed", "changes": [
    {"refId": "refs/heads/main", "toHash": C, "type": "UPDATE"}], "repository": {"links": {"clone": [
        {"name": "http", "href": "https://bitbucket.example.com/scm/example/repo.git"}]}}})
_AZURE = _azure_push("https://dev.azure.com/example/repo/_git/repo")
_SECRETS = secret(gogs="gogssecret", github="githubsecret", gitlab="gitlabsecret", bitbucket="some-uuid",
                  bitbucket_server="secret", azure_username="Aladdin", azure_password="open sesame")


@pytest.mark.parametrize(("method", "headers", "data", "expected"), [
    pytest.param("POST", {"X-Gogs-Event": "push", "X-Gogs-Signature": hmac_hex("wrong", _GOGS)}, _GOGS, 401,
                 id="gogs HMAC failed"),
    pytest.param("GET", {"X-Gogs-Event": "push"}, _GOGS, 405, id="gogs invalid method"),
    pytest.param("POST", {"X-GitHub-Event": "push",
                          "X-Hub-Signature-256": "sha256=" + hmac_hex("wrong", _GOGS)},
                 _GOGS, 401, id="github HMAC failed"),
    pytest.param("POST", {"X-GitHub-Event": "pull_request",
                          "X-Hub-Signature-256": "sha256=" + hmac_hex("githubsecret", _GOGS)}, _GOGS, 200,
                 id="github event not subscribed: 200 ignored, not 500"),
    pytest.param("POST", {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong"}, _GITLAB, 401,
                 id="gitlab token failed"),
    pytest.param("POST", {"X-Gitlab-Token": "gitlabsecret"}, _GITLAB, 400,
                 id="gitlab missing event header: 400 unknown sender, not 500"),
    pytest.param("POST", {"X-Hook-UUID": "wrong-uuid", "X-Event-Key": "repo:push"}, _BITBUCKET, 401,
                 id="bitbucket UUID failed"),
    pytest.param("POST", {"X-Hook-UUID": "some-uuid", "X-Event-Key": "issue:created"}, _BITBUCKET, 200,
                 id="bitbucket event not subscribed: 200 ignored, not 500"),
    pytest.param("POST", {"X-Event-Key": "repo:refs_changed",
                          "X-Hub-Signature": "sha256=" + hmac_hex("x", b"")},
                 _BITBUCKET_SERVER, 401, id="bitbucket server HMAC failed"),
    pytest.param("POST", {"X-Event-Key": "pr:opened", "X-Hub-Signature": "sha256="
                          + hmac_hex("secret", _BITBUCKET_SERVER)}, _BITBUCKET_SERVER, 200,
                 id="bitbucket server event not subscribed: 200 ignored, not 500"),
    pytest.param("POST", {"X-Vss-Activityid": "xxx", "Authorization": "Basic d3Jvbmc6d3Jvbmc="}, _AZURE, 401,
                 id="azure basic auth failed"),
    pytest.param("PUT", {"X-Vss-Activityid": "xxx"}, _AZURE, 405, id="azure invalid method"),
])
def test_status_codes_of_authentication_and_protocol_errors(
    headers: dict[str, str], method: str, data: bytes, expected: int
) -> None:
    """TestAuthErrorCodes, through the Flask app. Fleet answers 500 for an event the library was not
    told to parse and for a provider header that is missing; we answer 200 ``ignored`` for the first
    (providers disable hooks that keep failing) and 400 for the second (no provider recognised).
    The 405 comes with ``Allow: POST`` (Fleet sends none)."""
    from controller.receiver.app import create_app
    from controller.settings import Settings
    from controller.store.offline import OfflineStore

    app = create_app(Settings(namespace="default"), OfflineStore([_SECRETS], "test"))
    response = app.test_client().open("/", method=method, data=data,
                                      headers={"Content-Type": "application/json", **headers})

    assert response.status_code == expected, response.get_json()
    assert response.is_json
    if expected == 405:
        assert response.headers["Allow"] == "POST"
