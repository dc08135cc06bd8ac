"""Watch streams: initial ADDED, live events, resume, 410 Expired, timeouts, cuts, selectors (6.11-6.12)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterator

import pytest
import requests
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from kubeapi import Emulator

from .helpers import GROUP, PLURAL, VERSION, gitrepo


@pytest.fixture
def crd(kube_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_client)


def create(crd: client.CustomObjectsApi, name: str, ns: str = "fleet-local", **kw: Any) -> dict[str, Any]:
    return crd.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, gitrepo(name, ns, **kw))


def events(crd: client.CustomObjectsApi, **kwargs: Any) -> Iterator[dict[str, Any]]:
    kwargs.setdefault("timeout_seconds", 10)
    return watch.Watch().stream(crd.list_cluster_custom_object, GROUP, VERSION, PLURAL, **kwargs)


def brief(ev: dict[str, Any]) -> tuple[str, str]:
    return ev["type"], ev["object"]["metadata"]["name"]


def test_watch_from_resource_version_0_sends_added_for_existing_objects_then_live_events(
    crd: client.CustomObjectsApi,
) -> None:
    create(crd, "a")
    create(crd, "b", "fleet-default")
    stream = events(crd, resource_version="0")
    try:
        assert sorted([brief(next(stream)), brief(next(stream))]) == [("ADDED", "a"), ("ADDED", "b")]
        create(crd, "c")
        assert brief(next(stream)) == ("ADDED", "c")
        crd.patch_namespaced_custom_object(
            GROUP, VERSION, "fleet-local", PLURAL, "c", {"spec": {"branch": "x"}}
        )
        modified = next(stream)
        assert brief(modified) == ("MODIFIED", "c") and modified["object"]["spec"]["branch"] == "x"
        crd.delete_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, "c")
        deleted = next(stream)
        assert brief(deleted) == ("DELETED", "c")
        assert int(deleted["object"]["metadata"]["resourceVersion"]) > int(
            modified["object"]["metadata"]["resourceVersion"]
        ), "DELETED carries a new resourceVersion"
    finally:
        stream.close()


def test_watch_without_resource_version_also_lists_existing_objects(crd: client.CustomObjectsApi) -> None:
    create(crd, "a")
    stream = events(crd)
    try:
        assert brief(next(stream)) == ("ADDED", "a")
    finally:
        stream.close()


def test_watch_resumes_after_a_resource_version_without_replaying_older_events(
    crd: client.CustomObjectsApi,
) -> None:
    rv = create(crd, "a")["metadata"]["resourceVersion"]
    create(crd, "b")
    crd.patch_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, "a", {"spec": {"branch": "y"}})
    stream = events(crd, resource_version=rv)
    try:
        assert [brief(next(stream)), brief(next(stream))] == [("ADDED", "b"), ("MODIFIED", "a")]
    finally:
        stream.close()


def test_watch_from_a_compacted_resource_version_gets_410_expired(
    emulator: Emulator, crd: client.CustomObjectsApi
) -> None:
    rv = create(crd, "a")["metadata"]["resourceVersion"]
    create(crd, "b")
    emulator.compact()
    with pytest.raises(ApiException) as info:
        list(events(crd, resource_version=rv))
    assert info.value.status == 410
    assert info.value.reason == f"Expired: too old resource version: {rv} ({emulator.resource_version})"


def test_expired_watch_sends_one_error_event_then_ends_the_stream(emulator: Emulator) -> None:
    emulator.create(gitrepo("a"))
    emulator.compact()
    with requests.get(
        f"{emulator.url}/apis/fleet.cattle.io/v1alpha1/gitrepos",
        params={"watch": "true", "resourceVersion": "1"},
        verify=emulator.ca_file,
        headers={"Authorization": f"Bearer {emulator.token}"},
        stream=True,
        timeout=5,
    ) as resp:
        assert resp.status_code == 200 and resp.headers["Transfer-Encoding"] == "chunked"
        lines = [json.loads(line) for line in resp.iter_lines() if line]
    rv = emulator.resource_version
    assert lines == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: 1 ({rv})",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]


def test_bounded_history_expires_old_resource_versions() -> None:
    with Emulator(tls=False, token=None, history_size=3) as emu:
        first = int(emu.create(gitrepo("a"))["metadata"]["resourceVersion"])
        for name in "bcde":
            emu.create(gitrepo(name))
        with requests.get(
            f"{emu.url}/apis/fleet.cattle.io/v1alpha1/gitrepos",
            params={"watch": "1", "resourceVersion": str(first), "timeoutSeconds": "1"},
            stream=True,
            timeout=5,
        ) as resp:
            lines = [json.loads(line) for line in resp.iter_lines() if line]
        assert [ev["type"] for ev in lines] == ["ERROR"] and lines[0]["object"]["code"] == 410


def test_timeout_seconds_ends_the_stream_cleanly_at_the_deadline(crd: client.CustomObjectsApi) -> None:
    start = time.monotonic()
    assert list(events(crd, resource_version="0", timeout_seconds=1)) == []
    assert 0.9 <= time.monotonic() - start < 3


def test_cut_watches_closes_streams_abruptly(emulator: Emulator) -> None:
    outcome: dict[str, Any] = {}

    def consume() -> None:
        try:
            with requests.get(
                f"{emulator.url}/apis/fleet.cattle.io/v1alpha1/gitrepos",
                params={"watch": "true"},
                verify=emulator.ca_file,
                stream=True,
                timeout=10,
                headers={"Authorization": f"Bearer {emulator.token}"},
            ) as resp:
                for _ in resp.iter_lines():
                    pass
            outcome["clean"] = True
        except requests.exceptions.RequestException as exc:
            outcome["error"] = exc

    reader = threading.Thread(target=consume)
    reader.start()
    # The request is logged before its stream is registered: wait until there is a stream to cut.
    assert emulator.wait_for(lambda: emulator.cut_watches() == 1)
    reader.join(5)
    assert "clean" not in outcome and isinstance(
        outcome.get("error"), requests.exceptions.ChunkedEncodingError
    )
    assert emulator.cut_watches() == 0


def test_stop_ends_open_watches_cleanly() -> None:
    emu = Emulator(tls=False, token=None)
    emu.start()
    lines: list[bytes] = []
    with requests.get(
        f"{emu.url}/api/v1/namespaces", params={"watch": "true"}, stream=True, timeout=10
    ) as resp:
        it = resp.iter_lines()
        lines.append(next(it))
        emu.stop()
        lines.extend(it)  # ends without a ChunkedEncodingError
    assert len([x for x in lines if x]) == len(emu.namespaces)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        pytest.param(
            {"label_selector": "team=a"},
            [("ADDED", "a1"), ("DELETED", "a1"), ("ADDED", "b1")],
            id="label-selector-moves-in-and-out",
        ),
        pytest.param(
            {"field_selector": "metadata.name=b1"},
            [("ADDED", "b1"), ("MODIFIED", "b1")],
            id="field-selector-name",
        ),
        pytest.param(
            {"field_selector": "metadata.namespace!=fleet-local"},
            [("ADDED", "c1")],
            id="field-selector-namespace",
        ),
    ],
)
def test_selectors_filter_watch_events(
    crd: client.CustomObjectsApi, kwargs: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    rv = crd.list_cluster_custom_object(GROUP, VERSION, PLURAL)["metadata"]["resourceVersion"]
    create(crd, "a1", labels={"team": "a"})
    crd.patch_namespaced_custom_object(
        GROUP, VERSION, "fleet-local", PLURAL, "a1", {"metadata": {"labels": {"team": "b"}}}
    )
    create(crd, "b1", labels={"team": "b"})
    crd.patch_namespaced_custom_object(
        GROUP, VERSION, "fleet-local", PLURAL, "b1", {"metadata": {"labels": {"team": "a"}}}
    )
    create(crd, "c1", "fleet-default")
    stream = events(crd, resource_version=rv, timeout_seconds=2, **kwargs)
    got = []
    try:
        while len(got) < len(expected):
            got.append(brief(next(stream)))
    finally:
        stream.close()
    assert got == expected


@pytest.mark.parametrize(
    "selector, names",
    [
        pytest.param({"label_selector": "team=a"}, ["a"], id="equals"),
        pytest.param({"label_selector": "team==a"}, ["a"], id="double-equals"),
        pytest.param({"label_selector": "team!=a"}, ["b", "none"], id="not-equals"),
        pytest.param({"label_selector": "team in (a,b)"}, ["a", "b"], id="in"),
        pytest.param({"label_selector": "team notin (a)"}, ["b", "none"], id="notin"),
        pytest.param({"label_selector": "team"}, ["a", "b"], id="exists"),
        pytest.param({"label_selector": "!team"}, ["none"], id="not-exists"),
        pytest.param({"label_selector": "team=a,env=prod"}, [], id="and"),
        pytest.param({"field_selector": "metadata.name=b"}, ["b"], id="field-name"),
        pytest.param(
            {"field_selector": "metadata.name!=b,metadata.namespace=fleet-local"},
            ["a", "none"],
            id="field-and",
        ),
    ],
)
def test_selectors_filter_lists(
    crd: client.CustomObjectsApi, selector: dict[str, str], names: list[str]
) -> None:
    create(crd, "a", labels={"team": "a"})
    create(crd, "b", labels={"team": "b"})
    create(crd, "none")
    listing = crd.list_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, **selector)
    assert [i["metadata"]["name"] for i in listing["items"]] == names


def test_unknown_field_selector_gives_400(crd: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as info:
        crd.list_namespaced_custom_object(GROUP, VERSION, "fleet-local", PLURAL, field_selector="spec.repo=x")
    assert info.value.status == 400


def test_namespaced_watch_sees_only_its_namespace(crd: client.CustomObjectsApi) -> None:
    stream = watch.Watch().stream(
        crd.list_namespaced_custom_object, GROUP, VERSION, "fleet-default", PLURAL, timeout_seconds=5
    )
    try:
        create(crd, "x", "fleet-local")
        create(crd, "y", "fleet-default")
        assert brief(next(stream)) == ("ADDED", "y")
    finally:
        stream.close()
