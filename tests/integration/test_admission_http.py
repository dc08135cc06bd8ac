"""The admission endpoints over real HTTPS under gunicorn: answers, methods, malformed and huge reviews."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from controller.admission.wire import AdmissionReviewRequest
from support import service

REVIEW: AdmissionReviewRequest = {
    "apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
    "request": {
        "uid": "0d6c9a1e-5a0b-4a44-9b8e-2f1c7c1f0a11",
        "kind": {"group": "fleet.cattle.io", "version": "v1alpha1", "kind": "GitRepo"},
        "resource": {"group": "fleet.cattle.io", "version": "v1alpha1", "resource": "gitrepos"},
        "name": "app", "namespace": "fleet-default", "operation": "CREATE",
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
                   "metadata": {"name": "app", "namespace": "fleet-default"},
                   "spec": {"repo": "https://github.com/example/app"}},
        "oldObject": None, "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    },
}


def _post(admission: service.Service, path: str, data: str | bytes | Iterator[bytes],
          **kwargs: Any) -> requests.Response:
    return requests.post(admission.admission + path, data=data, timeout=10, verify=admission.ca_file,
                         headers={"Content-Type": "application/json"}, **kwargs)


def test_a_gitrepo_review_is_answered_with_a_patch_echoing_version_and_uid(
    admission: service.Service
) -> None:
    answer = _post(admission, "/mutate/gitrepos", json.dumps(REVIEW))
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert (body["apiVersion"], body["kind"]) == ("admission.k8s.io/v1beta1", "AdmissionReview")
    assert body["response"]["uid"] == REVIEW["request"]["uid"] and body["response"]["allowed"] is True
    assert body["response"]["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(body["response"]["patch"]))
    assert {"op": "add", "path": "/spec/pollingInterval", "value": "1h"} in patch


def test_a_review_sent_chunked_is_read_whole(admission: service.Service) -> None:
    chunks = iter([json.dumps(REVIEW)[:100].encode(), json.dumps(REVIEW)[100:].encode()])
    answer = _post(admission, "/mutate/gitrepos", chunks)
    assert answer.status_code == 200 and answer.json()["response"]["allowed"] is True


@pytest.mark.parametrize("path", ["/mutate/gitrepos", "/validate/secrets"])
def test_another_method_is_405_naming_post(admission: service.Service, path: str) -> None:
    answer = requests.get(admission.admission + path, timeout=10, verify=admission.ca_file)
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    assert answer.json()["error"] == "method-not-allowed"


@pytest.mark.parametrize("path", ["//validate/secrets", "//mutate/gitrepos"])
def test_a_route_with_a_doubled_slash_is_404_not_a_500(admission: service.Service, path: str) -> None:
    answer = _post(admission, path, json.dumps(REVIEW))
    assert answer.status_code == 404 and answer.json()["error"] == "not-found"


@pytest.mark.parametrize(("data", "reason"), [
    pytest.param(b"{not json", "JSON", id="not JSON"),
    pytest.param(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}), "request",
                 id="no request"),
])
def test_a_malformed_review_is_400_with_the_reason(
    admission: service.Service, data: str | bytes, reason: str
) -> None:
    answer = _post(admission, "/validate/secrets", data)
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad-review" and reason in answer.json()["message"]


def test_a_review_larger_than_the_api_server_sends_is_413_before_it_is_read(
    admission: service.Service
) -> None:
    """The API server never sends more than 3 MiB; the answer comes before the body is read."""
    answer = _post(admission, "/validate/secrets", b"x" * (3 * 1024 * 1024 + 1))
    assert answer.status_code == 413
    assert answer.json()["error"] == "payload-too-large" and "limit" in answer.json()["message"]


def test_each_review_is_one_request_log_line(admission: service.Service) -> None:
    _post(admission, "/validate/secrets", json.dumps(REVIEW))
    lines = [json.loads(line) for line in admission.log().splitlines() if '"msg": "request"' in line]
    assert any((entry["path"], entry["status"], entry["listener"]) == ("/validate/secrets", 200, "admission")
               for entry in lines)
