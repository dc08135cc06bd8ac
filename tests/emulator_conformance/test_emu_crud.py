"""Create/get/list/replace/delete semantics, metadata and error bodies (spec 6.3-6.7, 6.10)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubernetes import client

from kubeapi import Emulator

from .helpers import GROUP, PLURAL, VERSION, api_error, gitrepo, raw_request


@pytest.fixture
def crd(kube_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_client)


@pytest.fixture
def core(kube_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client)


def create_repo(crd: client.CustomObjectsApi, body: dict[str, Any]) -> dict[str, Any]:
    return crd.create_namespaced_custom_object(GROUP, VERSION, body["metadata"]["namespace"], PLURAL, body)


def test_create_returns_201_and_the_stored_object_with_server_metadata(crd: client.CustomObjectsApi) -> None:
    body = gitrepo("a")
    body["metadata"].update(uid="client-uid", resourceVersion="999", generation=7)
    body["status"] = {"display": {"readyBundleDeployments": "1/1"}}
    data, status, _ = crd.create_namespaced_custom_object_with_http_info(
        GROUP, VERSION, "fleet-local", PLURAL, body
    )
    assert status == 201
    meta = data["metadata"]
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"]) and meta["uid"] != "client-uid"
    assert meta["resourceVersion"] != "999" and meta["resourceVersion"].isdigit()
    assert meta["generation"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert "status" not in data, "create drops .status when the status subresource is on"
    assert crd.get_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, "a") == data


def test_list_is_sorted_by_namespace_and_name_and_carries_the_current_resource_version(
    emulator: Emulator, crd: client.CustomObjectsApi
) -> None:
    for ns, name in [("fleet-local", "b"), ("fleet-default", "z"), ("fleet-local", "a")]:
        create_repo(crd, gitrepo(name, ns))
    listing = crd.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    assert listing["kind"] == "GitRepoList" and listing["apiVersion"] == "fleet.cattle.io/v1alpha1"
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listing["items"]] == [
        ("fleet-default", "z"),
        ("fleet-local", "a"),
        ("fleet-local", "b"),
    ]
    assert listing["metadata"]["resourceVersion"] == str(emulator.resource_version)
    local = crd.list_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL)
    assert [i["metadata"]["name"] for i in local["items"]] == ["a", "b"]


def test_resource_versions_come_from_one_global_increasing_counter(
    core: client.CoreV1Api, crd: client.CustomObjectsApi
) -> None:
    first = int(
        core.create_namespaced_config_map("default", {"metadata": {"name": "c"}}).metadata.resource_version
    )
    second = int(create_repo(crd, gitrepo("r"))["metadata"]["resourceVersion"])
    third = int(
        core.patch_namespaced_config_map("c", "default", {"data": {"k": "v"}}).metadata.resource_version
    )
    assert first < second < third


@pytest.mark.parametrize(
    "call, code, reason, message, details",
    [
        pytest.param(
            lambda c: c.get_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, "x"),
            404,
            "NotFound",
            'gitrepos.fleet.cattle.io "x" not found',
            {"name": "x", "group": "fleet.cattle.io", "kind": "gitrepos"},
            id="get-missing-gitrepo",
        ),
        pytest.param(
            lambda c: c.create_namespaced_custom_object(GROUP, VERSION, "nope", PLURAL, gitrepo("x", "nope")),
            404,
            "NotFound",
            'namespaces "nope" not found',
            {"name": "nope", "kind": "namespaces"},
            id="create-in-missing-namespace",
        ),
        pytest.param(
            lambda c: c.delete_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, "x"),
            404,
            "NotFound",
            'gitrepos.fleet.cattle.io "x" not found',
            {"name": "x", "group": "fleet.cattle.io", "kind": "gitrepos"},
            id="delete-missing-gitrepo",
        ),
    ],
)
def test_missing_objects_and_namespaces_give_404_status_bodies(
    crd: client.CustomObjectsApi, call: Any, code: int, reason: str, message: str, details: dict[str, Any]
) -> None:
    status, body = api_error(lambda: call(crd))
    assert status == code
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


def test_missing_secret_message_has_no_group(core: client.CoreV1Api) -> None:
    status, body = api_error(lambda: core.read_namespaced_secret("gitjob-webhook", "cattle-fleet-system"))
    assert (status, body["message"], body["details"]) == (
        404,
        'secrets "gitjob-webhook" not found',
        {"name": "gitjob-webhook", "kind": "secrets"},
    )


def test_creating_an_existing_name_gives_409_already_exists(crd: client.CustomObjectsApi) -> None:
    create_repo(crd, gitrepo("dup"))
    status, body = api_error(lambda: create_repo(crd, gitrepo("dup")))
    assert (status, body["reason"], body["message"]) == (
        409,
        "AlreadyExists",
        'gitrepos.fleet.cattle.io "dup" already exists',
    )


def test_replace_with_a_stale_resource_version_gives_409_conflict(crd: client.CustomObjectsApi) -> None:
    obj = create_repo(crd, gitrepo("c"))
    obj["spec"]["branch"] = "main"
    crd.replace_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, "c", obj)
    obj["spec"]["branch"] = "dev"
    status, body = api_error(
        lambda: crd.replace_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, "c", obj)
    )
    assert (status, body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on gitrepos.fleet.cattle.io "c": the object has '
        "been modified; please apply your changes to the latest version and try again"
    )


def test_replace_of_a_custom_resource_without_resource_version_gives_422(
    crd: client.CustomObjectsApi,
) -> None:
    obj = create_repo(crd, gitrepo("norv"))
    del obj["metadata"]["resourceVersion"]
    status, body = api_error(
        lambda: crd.replace_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, "norv", obj)
    )
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["message"] == (
        'GitRepo.fleet.cattle.io "norv" is invalid: metadata.resourceVersion: '
        "Invalid value: 0x0: must be specified for an update"
    )


def test_secret_accepts_an_unconditional_replace(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "data": {"a": "Yg=="}})
    out = core.replace_namespaced_secret("s", "default", {"metadata": {"name": "s"}, "data": {"a": "Yw=="}})
    assert out.data == {"a": "Yw=="}


def test_replace_returns_200_keeps_status_immutables_and_bumps_generation(
    crd: client.CustomObjectsApi,
) -> None:
    obj = create_repo(crd, gitrepo("g"))
    obj = crd.patch_namespaced_custom_object_status(
        GROUP, VERSION, "fleet-local", PLURAL, "g", {"status": {"commit": "abc"}}
    )
    new = dict(obj, spec=dict(obj["spec"], pollingInterval="1h0m0s"), status={"commit": "forged"})
    new["metadata"] = dict(obj["metadata"], uid="other", creationTimestamp="2000-01-01T00:00:00Z")
    out, code, _ = crd.replace_namespaced_custom_object_with_http_info(
        GROUP, VERSION, "fleet-local", PLURAL, "g", new
    )
    assert code == 200
    assert out["status"] == {"commit": "abc"}
    assert out["metadata"]["uid"] == obj["metadata"]["uid"]
    assert out["metadata"]["creationTimestamp"] == obj["metadata"]["creationTimestamp"]
    assert out["metadata"]["generation"] == 2


@pytest.mark.parametrize(
    "interval, ok",
    [
        pytest.param("0", True, id="zero"),
        pytest.param("15s", True, id="seconds"),
        pytest.param("1h0m0s", True, id="hms"),
        pytest.param("1.5h", True, id="fraction"),
        pytest.param("500ms", True, id="millis"),
        pytest.param("10µs", True, id="micro-sign"),
        pytest.param("", False, id="empty"),
        pytest.param("15", False, id="no-unit"),
        pytest.param("1d", False, id="days"),
        pytest.param("soon", False, id="word"),
        pytest.param(15, False, id="integer"),
    ],
)
def test_gitrepo_polling_interval_must_be_zero_or_a_go_duration(
    crd: client.CustomObjectsApi, interval: Any, ok: bool
) -> None:
    body = gitrepo("p", pollingInterval=interval)
    if ok:
        assert create_repo(crd, body)["spec"]["pollingInterval"] == interval
        return
    status, err = api_error(lambda: create_repo(crd, body))
    assert (status, err["reason"]) == (422, "Invalid")
    assert err["message"].startswith(
        'GitRepo.fleet.cattle.io "p" is invalid: spec.pollingInterval: Invalid value'
    )
    assert err["details"]["causes"][0]["field"] == "spec.pollingInterval"


@pytest.mark.parametrize("spec", [pytest.param({}, id="missing"), pytest.param({"repo": ""}, id="empty")])
def test_gitrepo_create_requires_spec_repo(crd: client.CustomObjectsApi, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": {"name": "r", "namespace": "fleet-local"},
        "spec": spec,
    }
    status, err = api_error(lambda: create_repo(crd, body))
    assert (status, err["message"]) == (
        422,
        'GitRepo.fleet.cattle.io "r" is invalid: spec.repo: Required value',
    )


def test_create_without_name_or_generate_name_gives_422(core: client.CoreV1Api) -> None:
    status, err = api_error(lambda: core.create_namespaced_config_map("default", {"metadata": {}}))
    assert (status, err["message"]) == (
        422,
        'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required',
    )


def test_generate_name_gets_a_random_suffix(core: client.CoreV1Api) -> None:
    out = core.create_namespaced_config_map("default", {"metadata": {"generateName": "cm-"}})
    assert re.fullmatch(r"cm-[a-z0-9]{5}", out.metadata.name)


@pytest.mark.parametrize(
    "mutate, message",
    [
        pytest.param(
            lambda b: b.update(apiVersion="v1"),
            "the API version in the data (v1) does not match the "
            "expected API version (fleet.cattle.io/v1alpha1)",
            id="apiVersion",
        ),
        pytest.param(
            lambda b: b.update(kind="Bundle"),
            "the kind in the data (Bundle) does not match the " "expected kind (GitRepo)",
            id="kind",
        ),
        pytest.param(
            lambda b: b["metadata"].update(namespace="default"),
            "the namespace of the provided object " "does not match the namespace sent on the request",
            id="namespace",
        ),
    ],
)
def test_body_that_disagrees_with_the_url_gives_400(
    crd: client.CustomObjectsApi, mutate: Any, message: str
) -> None:
    body = gitrepo("b")
    mutate(body)
    status, err = api_error(
        lambda: crd.create_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, body)
    )
    assert (status, err["reason"], err["message"]) == (400, "BadRequest", message)


def test_replace_with_a_name_other_than_the_url_gives_400(crd: client.CustomObjectsApi) -> None:
    obj = create_repo(crd, gitrepo("n1"))
    obj["metadata"]["name"] = "n2"
    status, err = api_error(
        lambda: crd.replace_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, "n1", obj)
    )
    assert (status, err["message"]) == (
        400,
        "the name of the object (n2) does not match the name on the URL (n1)",
    )


def test_malformed_json_body_gives_400(emulator: Emulator) -> None:
    status, err = raw_request(emulator, "POST", "/api/v1/namespaces/default/configmaps", b"{not json")
    assert (status, err["reason"]) == (400, "BadRequest")


@pytest.mark.parametrize(
    "method, path",
    [
        pytest.param(
            "GET", "/apis/fleet.cattle.io/v1alpha1/namespaces/fleet-local/bundles", id="unknown-resource"
        ),
        pytest.param(
            "GET",
            "/apis/fleet.cattle.io/v1alpha1/namespaces/fleet-local/gitrepos/x/scale",
            id="unknown-subresource",
        ),
        pytest.param("GET", "/api/v1/namespaces/default/secrets/x/status", id="secret-has-no-status"),
        pytest.param("GET", "/apis/example.com/v1", id="unknown-group"),
        pytest.param("GET", "/nothing/here", id="unknown-path"),
    ],
)
def test_unknown_paths_give_404_could_not_find_the_requested_resource(
    emulator: Emulator, method: str, path: str
) -> None:
    status, err = raw_request(emulator, method, path)
    assert (status, err["reason"], err["message"]) == (
        404,
        "NotFound",
        "the server could not find the requested resource",
    )


@pytest.mark.parametrize(
    "method, path",
    [
        pytest.param(
            "POST", "/apis/fleet.cattle.io/v1alpha1/namespaces/fleet-local/gitrepos/x", id="post-item"
        ),
        pytest.param(
            "DELETE",
            "/apis/fleet.cattle.io/v1alpha1/namespaces/fleet-local/gitrepos/x/status",
            id="delete-status",
        ),
        pytest.param("POST", "/apis/fleet.cattle.io/v1alpha1/gitrepos", id="post-cluster-wide"),
        pytest.param("PUT", "/api/v1/namespaces/default/secrets", id="put-collection"),
    ],
)
def test_wrong_method_gives_405(emulator: Emulator, method: str, path: str) -> None:
    status, err = raw_request(emulator, method, path, b"{}")
    assert (status, err["reason"]) == (405, "MethodNotAllowed")


def test_delete_returns_a_success_status_with_details(
    crd: client.CustomObjectsApi, emulator: Emulator
) -> None:
    uid = create_repo(crd, gitrepo("d"))["metadata"]["uid"]
    out = crd.delete_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, "d")
    assert out == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "d", "group": "fleet.cattle.io", "kind": "gitrepos", "uid": uid},
    }
    assert emulator.get("gitrepos", "fleet-local", "d") is None


def test_delete_with_finalizers_sets_deletion_timestamp_until_they_are_removed(
    crd: client.CustomObjectsApi, emulator: Emulator
) -> None:
    body = gitrepo("f")
    body["metadata"]["finalizers"] = ["fleet.cattle.io/gitrepo-finalizer"]
    create_repo(crd, body)
    out = crd.delete_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, "f")
    assert out["kind"] == "GitRepo" and out["metadata"]["deletionTimestamp"]
    crd.patch_namespaced_custom_object(
        GROUP, VERSION, "fleet-local", PLURAL, "f", {"metadata": {"finalizers": None}}
    )
    assert emulator.get("gitrepos", "fleet-local", "f") is None


def test_delete_preconditions_are_checked(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "pc"}})
    status, err = api_error(
        lambda: core.delete_namespaced_config_map(
            "pc",
            "default",
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version="1")),
        )
    )
    assert (status, err["reason"]) == (409, "Conflict")


def test_secret_string_data_is_merged_into_data_and_never_stored(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret(
        "cattle-fleet-system",
        {"metadata": {"name": "gitjob-webhook"}, "data": {"github": "b2xk"}, "stringData": {"gitlab": "tok"}},
    )
    s = core.patch_namespaced_secret(
        "gitjob-webhook", "cattle-fleet-system", {"stringData": {"github": "new"}}
    )
    assert s.data == {"github": "bmV3", "gitlab": "dG9r"}
    assert s.string_data is None and s.type == "Opaque"
    assert core.read_namespaced_secret("gitjob-webhook", "cattle-fleet-system").string_data is None


def test_namespaces_carry_the_metadata_name_label_and_deleting_one_removes_its_objects(
    core: client.CoreV1Api, emulator: Emulator
) -> None:
    ns = core.create_namespace({"metadata": {"name": "team-a", "labels": {"x": "y"}}})
    assert ns.metadata.labels == {"x": "y", "kubernetes.io/metadata.name": "team-a"}
    assert ns.status.phase == "Active"
    core.create_namespaced_config_map("team-a", {"metadata": {"name": "c"}})
    core.delete_namespace("team-a")
    assert emulator.get("namespaces", None, "team-a") is None
    assert emulator.list("configmaps", "team-a") == []


def test_leases_events_and_webhook_configurations_are_ordinary_objects(kube_client: client.ApiClient) -> None:
    coord = client.CoordinationV1Api(kube_client)
    lease = coord.create_namespaced_lease(
        "cattle-fleet-system",
        {
            "metadata": {"name": "gitjob-webhook"},
            "spec": {"holderIdentity": "pod-1", "leaseDurationSeconds": 15},
        },
    )
    lease.spec.holder_identity = "pod-2"
    assert (
        coord.replace_namespaced_lease("gitjob-webhook", "cattle-fleet-system", lease).spec.holder_identity
        == "pod-2"
    )
    events = client.EventsV1Api(kube_client)
    ev = events.create_namespaced_event(
        "fleet-local",
        {
            "metadata": {"name": "e1"},
            "reason": "WebhookReceived",
            "action": "Push",
            "type": "Normal",
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "gitjob-webhook",
            "reportingInstance": "pod-1",
            "regarding": {"kind": "GitRepo", "name": "r"},
        },
    )
    assert ev.reason == "WebhookReceived"
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_event(
        "fleet-local",
        {
            "metadata": {"name": "e2"},
            "reason": "X",
            "message": "m",
            "involvedObject": {"kind": "GitRepo", "name": "r"},
        },
    )
    assert [e.metadata.name for e in core.list_namespaced_event("fleet-local").items] == ["e2"]
    adm = client.AdmissionregistrationV1Api(kube_client)
    cfg = adm.create_validating_webhook_configuration({"metadata": {"name": "v"}, "webhooks": []})
    assert cfg.metadata.generation == 1
    assert [c.metadata.name for c in adm.list_validating_webhook_configuration().items] == ["v"]


def test_a_list_with_limit_is_served_in_pages_that_continue(emulator: Emulator, kube_client) -> None:
    api = client.CustomObjectsApi(kube_client)
    for number in range(5):
        emulator.create(
            {
                "apiVersion": "fleet.cattle.io/v1alpha1",
                "kind": "GitRepo",
                "metadata": {"name": f"page-{number}", "namespace": "default"},
                "spec": {"repo": f"https://github.com/example/{number}"},
            }
        )
    names, token, pages = [], None, 0
    while True:
        page = api.list_cluster_custom_object(
            "fleet.cattle.io", "v1alpha1", "gitrepos", limit=2, _continue=token
        )
        names += [item["metadata"]["name"] for item in page["items"]]
        pages += 1
        token = page["metadata"].get("continue")
        if not token:
            break
    assert names == [f"page-{number}" for number in range(5)]
    assert pages == 3
