"""The service under real gunicorn: both listeners, TLS, health, metrics, graceful shutdown."""

from __future__ import annotations

import json
import pathlib
import socket
import ssl
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict

from support.paths import EXAMPLE_GITREPOS
from support import service
from support.waiting import wait_for

GITHUB_SIGNATURE = "sha256=abcee8ae5f5c28fc2e4d2a0ffe46115bf9dc9d7c2e34592846d9361fffb864d5"


def _github_push(url: str, body: bytes, close: bool = False) -> requests.Response:
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "d-1",
        "Content-Type": "application/json",
        "X-Hub-Signature-256": GITHUB_SIGNATURE,
    }
    if close:
        headers["Connection"] = "close"
    return requests.post(url, data=body, timeout=10, headers=headers)


def test_serve_all_runs_both_listeners_and_patches_a_gitrepo(
    run_service: Callable[..., service.Service], dev_certs: pathlib.Path, payload: Callable[[str], bytes]
) -> None:
    started = run_service(
        "serve",
        "all",
        "--receiver-listen",
        "127.0.0.1:0",
        "--admission-listen",
        "127.0.0.1:0",
        "--store",
        "offline",
        "--gitrepos",
        str(EXAMPLE_GITREPOS),
        "--tls-cert",
        str(dev_certs / "tls.crt"),
        "--tls-key",
        str(dev_certs / "tls.key"),
    )
    receiver = "http://" + service.listening(started, "receiver")
    admission = "https://" + service.listening(started, "admission")
    service.wait_ready(receiver, started)
    # verify= the generated CA: the handshake only succeeds if the chain and the 127.0.0.1 SAN verify.
    service.wait_ready(admission, started, verify=str(dev_certs / "ca.crt"))

    response = _github_push(receiver, payload("github/push.json"))

    assert response.status_code == 200, response.text
    assert response.json()["gitrepos"] == [
        {
            "namespace": "fleet-default",
            "name": "sample-app",
            "result": "patched",
            "ref": "refs/heads/master",
            "commit": "fd489864e7642b48eaad6e3f155c10e46810ec72",
        }
    ]
    assert started.stop() == 0


def test_the_first_log_line_says_which_store_is_in_use(receiver: service.Service) -> None:
    first = json.loads(receiver.log().splitlines()[0])
    assert first["msg"].startswith(f"store: offline ({EXAMPLE_GITREPOS}: 10 GitRepos")


def test_the_admission_listener_refuses_tls_below_1_2(
    admission: service.Service, dev_certs: pathlib.Path
) -> None:
    port = int(admission.admission.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(dev_certs / "ca.crt"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # asking for an old TLS on purpose
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    # OpenSSL's default security level may refuse TLS 1.1 on the client side already: either way no
    # TLS 1.1 session may come up.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname="localhost")


def test_the_admission_listener_negotiates_tls_1_2_or_newer_with_the_generated_ca(
    admission: service.Service, dev_certs: pathlib.Path
) -> None:
    port = int(admission.admission.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(dev_certs / "ca.crt"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(
            raw, server_hostname="gitjob-webhook-admission.cattle-fleet-system.svc"
        ) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_routes_answer_on_both_listeners(
    receiver: service.Service, admission: service.Service, path: str
) -> None:
    assert requests.get(receiver.receiver + path, timeout=5).status_code == 200
    assert requests.get(admission.admission + path, timeout=5, verify=admission.ca_file).status_code == 200


def test_metrics_count_requests_and_deliveries(
    receiver: service.Service, payload: Callable[[str], bytes]
) -> None:
    _github_push(receiver.receiver, payload("github/push.json"))
    text = requests.get(receiver.receiver + "/metrics", timeout=5).text
    assert 'gitjob_webhook_deliveries_total{event="push",outcome="processed",provider="github"} 1.0' in text
    assert (
        'gitjob_webhook_http_requests_total{listener="receiver",method="POST",route="/",status="200"} 1.0'
        in text
    )


def _posts_counted(path: pathlib.Path) -> float:
    """The deliveries one worker's counter file holds."""
    samples = MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
    return sum(float(value) for key, value, _, _ in samples
               if key.startswith('["gitjob_webhook_http_requests"') and '"method": "POST"' in key)


def test_metrics_add_up_across_several_workers(
    start_receiver: Callable[..., service.Service], payload: Callable[[str], bytes], tmp_path: pathlib.Path
) -> None:
    started = start_receiver("--workers", "2", "--threads", "1", env={"TMPDIR": str(tmp_path)})
    url = started.receiver
    sent = 0

    def both_workers_delivered() -> bool:
        # A new connection each time (Connection: close): the kernel hands it to either worker, and
        # each worker counts in a file named after its pid.
        nonlocal sent
        assert _github_push(url, payload("github/push.json"), close=True).status_code == 200
        sent += 1
        files = tmp_path.glob("gitjob-webhook-metrics-*/counter_*.db")
        return sum(_posts_counted(path) > 0 for path in files) == 2

    wait_for(both_workers_delivered, timeout=30, interval=0, message="a delivery served by each worker")
    text = requests.get(url + "/metrics", timeout=5, headers={"Connection": "close"}).text
    assert f'gitjob_webhook_delivery_duration_seconds_count{{provider="github"}} {sent}.0' in text
    posts = 'gitjob_webhook_http_requests_total{listener="receiver",method="POST",route="/",status="200"}'
    assert f"{posts} {sent}.0" in text


def _post_log_line(receiver: service.Service) -> dict[str, Any] | None:
    """The log line of the first POST the receiver answered."""
    for line in receiver.log().splitlines():
        entry: dict[str, Any] = json.loads(line)
        if entry.get("msg") == "request" and entry.get("method") == "POST":
            return entry
    return None


def test_every_request_is_one_json_log_line_with_the_delivery_id(
    receiver: service.Service, payload: Callable[[str], bytes]
) -> None:
    _github_push(receiver.receiver, payload("github/push.json"))
    entry = wait_for(lambda: _post_log_line(receiver), message="the request log line")
    assert entry["path"] == "/" and entry["status"] == 200 and entry["delivery"] == "d-1"
    assert isinstance(entry["duration_ms"], float)


def test_the_request_line_names_the_delivery_as_the_answer_does(
    receiver: service.Service, payload: Callable[[str], bytes]
) -> None:
    """Azure DevOps: the body's notification id, not the X-Vss-ActivityId header."""
    answer = requests.post(receiver.receiver, data=payload("azuredevops/git.push.json"),
                           auth=("user", "pass123"), timeout=5,
                           headers={"Content-Type": "application/json", "X-Vss-ActivityId": "try-1"})
    assert answer.status_code == 200 and answer.json()["delivery"] == "03c164c2-8912-4d5e-8009-3707d5f83734"
    entry = wait_for(lambda: _post_log_line(receiver), message="the request log line")
    assert entry["delivery"] == answer.json()["delivery"]


def test_sigterm_lets_an_in_flight_request_finish(
    receiver: service.Service, payload: Callable[[str], bytes]
) -> None:
    body = payload("github/push.json")
    port = int(receiver.receiver.rsplit(":", 1)[1])
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        f"POST / HTTP/1.1\r\nHost: localhost\r\nX-GitHub-Event: push\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: {GITHUB_SIGNATURE}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    connection.sendall(head + body[:100])
    wait_for(lambda: "Booting worker" in receiver.log(), message="worker up")
    receiver.process.send_signal(15)
    wait_for(lambda: "Handling signal: term" in receiver.log(), message="SIGTERM handled")
    connection.sendall(body[100:])
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    connection.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b'"result":"patched"' in answer
    assert receiver.process.wait(timeout=20) == 0
