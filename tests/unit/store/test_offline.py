"""The offline store loads GitRepos and Secrets from YAML, refuses anything else, writes in memory."""

from __future__ import annotations

import datetime
import pathlib
from typing import Any

import pytest
import yaml

from controller.fleet.gitrepos import DEFAULTED_ANNOTATION
from controller.store import StoreError
from controller.store.offline import OfflineStore
from controller.fleet.urls import repo_key
from support.paths import EXAMPLE_GITREPOS

GITREPO = """
apiVersion: fleet.cattle.io/v1alpha1
kind: GitRepo
metadata: {name: app, namespace: fleet-default}
spec: {repo: "https://github.com/example/app.git", branch: main}
"""


def _write(tmp_path: pathlib.Path, text: str) -> str:
    path = tmp_path / "gitrepos.yaml"
    path.write_text(text)
    return str(path)


def _object(store: OfflineStore, namespace: str, name: str) -> dict[str, Any]:
    obj = store.object(namespace, name)
    assert obj is not None, f"{namespace}/{name} is not in the store"
    return obj


def test_the_example_file_loads(tmp_path: pathlib.Path) -> None:
    store = OfflineStore.from_file(str(EXAMPLE_GITREPOS))
    assert store.description.startswith(f"offline ({EXAMPLE_GITREPOS}: 10 GitRepos, 2 Secrets")
    secret = store.secret("cattle-fleet-system", "gitjob-webhook")
    assert secret is not None and secret["github"] == b"IsWishesWereHorsesWedAllBeEatingSteak!"


def test_gitrepos_are_found_by_their_normalised_url(tmp_path: pathlib.Path) -> None:
    store = OfflineStore.from_file(_write(tmp_path, GITREPO))
    key = repo_key("git@github.com:example/app")
    assert key is not None
    found = store.gitrepos_for(key)
    assert [gitrepo.ref for gitrepo in found] == ["fleet-default/app"]


def test_a_list_document_is_unpacked(tmp_path: pathlib.Path) -> None:
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [yaml.safe_load(GITREPO)]})
    store = OfflineStore.from_file(_write(tmp_path, text))
    assert [gitrepo.name for gitrepo in store.gitrepos()] == ["app"]


def test_secret_data_and_string_data_are_merged(tmp_path: pathlib.Path) -> None:
    store = OfflineStore.from_file(_write(tmp_path, """
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: ns}
data: {github: Zm9v}
stringData: {gitlab: bar}
"""))
    secret = store.secret("ns", "s")
    assert secret is not None and dict(secret) == {"github": b"foo", "gitlab": b"bar"}


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("a: [b", "not valid YAML", id="not YAML"),
    pytest.param("- just\n- a list\n", "document 1 is not a Kubernetes object", id="not an object"),
    pytest.param("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
                 "document 1: v1/ConfigMap c is not a GitRepo (fleet.cattle.io/v1alpha1) or a Secret (v1)",
                 id="another kind"),
    pytest.param("apiVersion: fleet.cattle.io/v1alpha1\nkind: GitRepo\nmetadata: {name: g}\nspec: {}\n",
                 "GitRepo default/g has no spec.repo", id="GitRepo without repo"),
    pytest.param("apiVersion: fleet.cattle.io/v1alpha1\nkind: GitRepo\nspec: {repo: x}\n",
                 "GitRepo has no metadata.name", id="no name"),
    pytest.param("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {github: '%%%'}\n",
                 "data.github is not valid base64", id="bad base64"),
])
def test_a_bad_file_is_refused_with_the_file_document_and_problem(
    tmp_path: pathlib.Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(StoreError) as raised:
        OfflineStore.from_file(path)
    assert path in str(raised.value) and message in str(raised.value)


def test_a_missing_file_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StoreError, match="cannot read"):
        OfflineStore.from_file(str(tmp_path / "absent.yaml"))


def test_a_status_patch_changes_only_the_status_in_memory(tmp_path: pathlib.Path) -> None:
    store = OfflineStore.from_file(_write(tmp_path, GITREPO))
    gitrepo = store.gitrepos()[0]
    when = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)
    updated = store.patch_status(gitrepo, "abc123", when)
    assert updated.webhook_commit == "abc123"
    obj = _object(store, "fleet-default", "app")
    assert obj["status"] == {"webhookCommit": "abc123", "lastWebhookTime": "2026-11-29T12:00:00Z"}
    assert obj["spec"] == {"repo": "https://github.com/example/app.git", "branch": "main"}


def test_setting_and_reverting_the_polling_interval(tmp_path: pathlib.Path) -> None:
    store = OfflineStore.from_file(_write(tmp_path, GITREPO))
    gitrepo = store.set_polling_interval(store.gitrepos()[0], "1h", defaulted=True)
    assert gitrepo.polling_interval == "1h" and gitrepo.polling_defaulted
    assert _object(store, "fleet-default", "app")["metadata"]["annotations"][DEFAULTED_ANNOTATION] == "true"
    gitrepo = store.set_polling_interval(gitrepo, None, defaulted=False)
    assert gitrepo.polling_interval is None and not gitrepo.polling_defaulted
    assert DEFAULTED_ANNOTATION not in _object(store, "fleet-default", "app")["metadata"]["annotations"]
