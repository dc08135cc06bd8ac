"""The receiver and the admission server tried as an attacker would: one section per hardening rule.

Each test drives the real service (gunicorn, the serving worker, the offline store or the real API
server) from outside. Limits on memory and time are measured by ``make bench``; these tests assert
the behaviour only (deadlines in them are upper bounds for a wait, not speed targets).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import http.server
import json
import os
import pathlib
import re
import select
import signal
import socket
import ssl
import struct
import subprocess
import termios
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import yaml

from cluster.faults import FaultProxy
from cluster.isolation import Cluster
from resilience.reskit import REPO, commit_for, gitrepo, global_secret, push_body, push_headers, signature
from support import service
from support.kubeconfig import write_kubeconfig
from support.paths import EXAMPLE_GITREPOS
from support.waiting import wait_for

Start = Callable[..., service.Service]


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10) -> requests.Response:
    return requests.post(url, data=body, headers=headers, timeout=timeout)


# --- 1. A Secret that applies but has not been read is unknown, never absent ----------------------

def test_an_unread_global_secret_makes_a_delivery_wait_instead_of_passing_unsigned(
        cluster: Cluster, fault_proxy: FaultProxy, run_service: Callable[..., service.Service]) -> None:
    controller = cluster.namespace("ctl")
    apps = cluster.namespace("apps")
    repo = f"https://github.com/example/{apps}"
    cluster.apply([{**global_secret(), "metadata": {"name": "gitjob-webhook", "namespace": controller}},
                   {**gitrepo("app", repo), "metadata": {"name": "app", "namespace": apps}}])
    fault_proxy.fail_next("GET", rf"/namespaces/{controller}/secrets$", 500, count=100_000)
    receiver = run_service("serve", "receiver", "--listen", "127.0.0.1:0", "--store", "kubernetes",
                           "--kubeconfig", str(fault_proxy.kubeconfig), "--namespace", controller)
    url = "http://" + service.listening(receiver, "receiver")
    wait_for(lambda: "GitRepo" not in requests.get(url + "/readyz", timeout=5).json()["reason"]
             and "gitrepos" in str(fault_proxy.requests), timeout=30, message="the GitRepo cache")
    assert requests.get(url + "/readyz", timeout=5).status_code == 503
    body = push_body(commit_for("unsigned"), repo)

    answer = _post(url, body, push_headers(body, "d-1", secret=None))

    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert "not been read yet" in answer.json()["message"]
    stored = cluster.kubectl("get", "gitrepo", "app", "-n", apps, "-o", "json")
    assert "webhookCommit" not in json.loads(stored.stdout).get("status", {})


# --- 2. One deadline for a whole request; stalled clients hold no thread -------------------------

def _stall(port: int, data: bytes, tls: bool = False) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    if tls:
        # The start of a ClientHello, and no more: the handshake never completes.
        raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    else:
        raw.sendall(data)
    return raw


def test_eight_stalled_clients_stop_neither_probes_nor_deliveries(start_receiver: Start) -> None:
    receiver = start_receiver("--threads", "2", "--request-timeout", "3")
    port = _port(receiver.receiver)
    stalled = [_stall(port, b"POST / HTTP/1.1\r\nHost: x\r\nX-GitHub-Ev") for _ in range(4)]
    stalled += [_stall(port, b"POST / HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Length: 900\r\n"
                             b"\r\n{\"ref\":") for _ in range(4)]
    try:
        assert requests.get(receiver.receiver + "/healthz", timeout=2).status_code == 200
        body = push_body(commit_for("while-stalled"), "https://github.com/binkkatal/sample_app")
        assert _post(receiver.receiver, body, {"X-GitHub-Event": "zen"}, timeout=2).status_code in (200, 401)
        for connection in stalled:
            answer = connection.recv(4096)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:80]
    finally:
        for connection in stalled:
            connection.close()


def test_a_thousand_idle_connections_do_not_stop_the_worker_accepting(start_receiver: Start) -> None:
    """gunicorn stops accepting at worker_connections (1000): idle ones must make room for a probe
    and a push instead of holding the port shut until their deadline."""
    receiver = start_receiver("--request-timeout", "30")
    port = _port(receiver.receiver)
    idle = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        assert requests.get(receiver.receiver + "/healthz", timeout=5).status_code == 200
        body = push_body(commit_for("among-idle"), "https://github.com/binkkatal/sample_app")
        assert _post(receiver.receiver, body, {"X-GitHub-Event": "zen"}, timeout=5).status_code in (200, 401)
    finally:
        for connection in idle:
            connection.close()


def _raw_request(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode()
            + body)


_ZEN = _raw_request("POST", "/", push_body(commit_for("zen")),
                    "Content-Type: application/json\r\nX-GitHub-Event: zen\r\n")


def _answer(connection: socket.socket) -> bytes:
    """One whole answer (its headers and body may come in two pieces): a socket closed with a piece
    unread would be reset instead."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += connection.recv(65536) or b"\r\n\r\n"
    head, body = answer.split(b"\r\n\r\n", 1)
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    while length is not None and len(body) < int(length.group(1)) and (more := connection.recv(65536)):
        body += more
    return head + b"\r\n\r\n" + body


def _quiescent(worker: int) -> bool:
    """The worker's main loop waits in epoll and every other thread sleeps: nothing is in flight."""
    if pathlib.Path(f"/proc/{worker}/wchan").read_text() != "do_epoll_wait":
        return False
    return all(pathlib.Path(task, "stat").read_text().split(") ", 1)[1][0] == "S"
               for task in pathlib.Path(f"/proc/{worker}/task").iterdir())


def _server_sockets(port: int, state: str) -> int:
    """How many of the receiver's connections on ``port`` are in ``state`` (as ss names it)."""
    listing = subprocess.run(["ss", "-Htn", "state", state, f"( sport = :{port} )"], capture_output=True,
                             text=True, check=True).stdout
    return len(listing.splitlines())


@contextlib.contextmanager
def _one_batch(worker: int, port: int, closing: int) -> Iterator[None]:
    """What the body does while the worker is stopped reaches its main loop as one batch of events
    (SIGSTOP stands in for a loaded machine descheduling it): ``closing`` connections then wait
    half-closed by their client, besides whatever the body connected."""
    wait_for(lambda: _quiescent(worker), message="the worker to be idle")
    os.kill(worker, signal.SIGSTOP)
    try:
        yield
        wait_for(lambda: _server_sockets(port, "close-wait") >= closing, message="the clients' FINs")
    finally:
        os.kill(worker, signal.SIGCONT)


def _crowd(port: int, count: int, sending: bool) -> list[socket.socket]:
    crowd = []
    for _ in range(count):
        crowd.append(socket.create_connection(("127.0.0.1", port), timeout=60))
        if sending:   # a request that has started to arrive
            crowd[-1].sendall(b"P")
    return crowd


def _worker(receiver: service.Service) -> int:
    return wait_for(lambda: next(iter(service.child_pids(receiver.process.pid)), None), message="the worker")


@pytest.mark.parametrize("sending", [False, True], ids=["silent-crowd", "sending-crowd"])
def test_a_connection_closed_to_make_room_while_its_event_waits_costs_no_other(
        start_receiver: Start, sending: bool) -> None:
    """At the connection cap a new connection closes the idlest one. When that one's own event (its
    client leaving) was in the same batch, the stale event crashed the worker (a kept-alive connection:
    every connection it held was reset, the push among them) or counted the connection out twice (one
    still arriving: the cap then crept up by one each time)."""
    receiver = start_receiver("--request-timeout", "60")
    port = _port(receiver.receiver)
    worker = _worker(receiver)
    kept = socket.create_connection(("127.0.0.1", port), timeout=10)
    crowded = [kept]
    try:
        kept.sendall(_raw_request("GET", "/healthz"))
        assert _answer(kept).startswith(b"HTTP/1.1 200")
        wait_for(lambda: _quiescent(worker), message="the answered connection to be kept alive")
        crowded += _crowd(port, 899, sending)   # with `kept`, the 900 a worker holds before making room
        # Each push closes the idlest connection: `kept` first (answered before the crowd came), then
        # the crowd in the order it came; that one's client leaves in the same batch.
        for round in range(5):
            leaving = kept if round == 0 else crowded[round]
            with _one_batch(worker, port, closing=1):
                push = socket.create_connection(("127.0.0.1", port), timeout=10)
                push.sendall(_ZEN)
                leaving.close()
            crowded.append(push)
            answer = _answer(push)
            assert answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 401")), \
                (round, answer, receiver.log()[-3000:])
        # A connection counted out twice would let one more stay open for good: twenty more arrive.
        crowded += _crowd(port, 20, sending=False)
        wait_for(lambda: _quiescent(worker), message="the worker to be idle")
        assert receiver.log().count("Booting worker") == 1, receiver.log()[-3000:]
        assert "event failed" not in receiver.log(), receiver.log()[-3000:]   # skipped, not caught
        assert _server_sockets(port, "established") <= 900
    finally:
        for connection in crowded:
            connection.close()


@pytest.mark.parametrize("tls", [False, True], ids=["receiver", "admission"])
def test_a_newcomer_is_not_the_first_to_make_room(start_receiver: Start, start_admission: Start,
                                                  tls: bool) -> None:
    """900 connections that sent a byte long ago, and more arriving: a connection accepted an instant
    before the next one (its request not read yet, or its TLS handshake under way) was the one closed,
    and a push among an attacker's connections was reset."""
    server = start_admission("--request-timeout", "60") if tls else start_receiver("--request-timeout", "60")
    url = server.admission if tls else server.receiver
    port, worker = _port(url), _worker(server)
    context = ssl.create_default_context(cafile=server.ca_file) if tls else None
    crowded = _crowd(port, 900, sending=True)
    try:
        for round in range(3):
            with _one_batch(worker, port, closing=0):
                push = socket.create_connection(("127.0.0.1", port), timeout=10)
                crowded += _crowd(port, 3, sending=True)   # the attacker's next ones, behind it
            crowded.append(push)
            if context is not None:
                push = context.wrap_socket(push, server_hostname="localhost")
                crowded.append(push)
            push.sendall(_ZEN if context is None else _raw_request("GET", "/healthz"))
            assert _answer(push).startswith((b"HTTP/1.1 200", b"HTTP/1.1 401")), round
    finally:
        for connection in crowded:
            connection.close()


def test_a_whole_request_followed_by_a_half_close_is_answered(start_receiver: Start) -> None:
    """RFC 9112 lets a client close its side once it has sent the request: the push is still answered
    (it was dropped, unlogged, when its end arrived in the same read as the request)."""
    receiver = start_receiver()
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", _port(receiver.receiver)), timeout=10) as client:
            client.sendall(_ZEN)
            client.shutdown(socket.SHUT_WR)
            assert client.recv(4096).startswith((b"HTTP/1.1 200", b"HTTP/1.1 401"))


def test_a_request_followed_by_a_tcp_close_without_close_notify_is_answered(start_admission: Start) -> None:
    """The TLS peer of a half-close: OpenSSL 3 took the missing close_notify as an error and the client
    got an alert instead of its answer."""
    admission = start_admission()
    context = ssl.create_default_context(cafile=admission.ca_file)
    for _ in range(10):
        raw = socket.create_connection(("127.0.0.1", _port(admission.admission)), timeout=10)
        with context.wrap_socket(raw, server_hostname="localhost") as client:
            client.sendall(_raw_request("GET", "/healthz"))
            with socket.socket(fileno=os.dup(client.fileno())) as tcp:
                tcp.shutdown(socket.SHUT_WR)   # the TCP FIN, with no TLS close_notify before it
            assert _answer(client).startswith(b"HTTP/1.1 200")


def test_a_pipelined_request_is_told_the_connection_closes(start_receiver: Start) -> None:
    """The request behind the first in the same write is not kept: the first answer must not promise
    keep-alive, or the client waits for an answer that never comes."""
    receiver = start_receiver()
    with socket.create_connection(("127.0.0.1", _port(receiver.receiver)), timeout=10) as client:
        client.sendall(_ZEN + _ZEN)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith((b"http/1.1 200", b"http/1.1 401")) and b"connection: close" in head, answer


def test_stalled_tls_handshakes_stop_neither_probes_nor_reviews(start_admission: Start) -> None:
    admission = start_admission("--threads", "2", "--request-timeout", "3")
    stalled = [_stall(_port(admission.admission), b"", tls=True) for _ in range(8)]
    try:
        assert requests.get(admission.admission + "/healthz", timeout=2,
                            verify=admission.ca_file).status_code == 200
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u", "operation": "DELETE", "kind": {"group": "", "version": "v1", "kind": "Secret"},
            "resource": {"group": "", "version": "v1", "resource": "secrets"}, "name": "x", "namespace": "y"}}
        answer = requests.post(admission.admission + "/validate/secrets", json=review, timeout=2,
                               verify=admission.ca_file)
        assert answer.json()["response"]["allowed"] is True
        for connection in stalled:
            assert connection.recv(4096) == b""
    finally:
        for connection in stalled:
            connection.close()


# --- 3. Work before authentication is bounded --------------------------------------------------

@pytest.fixture
def signed_receiver(offline_receiver: Callable[..., service.Service]) -> service.Service:
    """The global Secret exists: every delivery must verify, and can be checked before parsing."""
    return offline_receiver([global_secret(), gitrepo("main")])


@pytest.fixture
def open_receiver(offline_receiver: Callable[..., service.Service]) -> service.Service:
    """No Secret at all: unsigned deliveries are accepted, so they must be parsed within a budget."""
    return offline_receiver([gitrepo("main")])


def test_a_large_body_with_a_bad_signature_is_refused_unparsed(signed_receiver: service.Service) -> None:
    body = b'{"a": [' + b'{"b": 1},' * (2 * 1024 * 1024) + b'{}]}'
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push",
               "X-Hub-Signature-256": signature(body, "wrong")}
    answer = _post(signed_receiver.receiver, body, headers, timeout=30)
    assert answer.status_code == 401


def test_a_large_unsigned_body_beyond_the_parse_budget_is_413(open_receiver: service.Service) -> None:
    body = b'{"a": [' + b'{"b": 1},' * (2 * 1024 * 1024) + b'{}]}'
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    answer = _post(open_receiver.receiver, body, headers, timeout=30)
    assert answer.status_code == 413
    assert "the global webhook Secret has not verified" in answer.json()["message"]


def test_a_body_signed_with_a_gitrepos_own_secret_is_parsed_within_the_budget_too(
        offline_receiver: Callable[..., service.Service]) -> None:
    """A team's own Secret is the team's: what it signs must not exhaust the worker either."""
    receiver = offline_receiver(tenants(1))
    body = b'{"a": [' + b'[],' * (7 * 1024 * 1024) + b'[]]}'
    answer = _post(receiver.receiver, body, push_headers(body, "bomb", "team-0-key"), timeout=30)
    assert answer.status_code == 413
    assert "the global webhook Secret has not verified" in answer.json()["message"]


def test_a_delivery_moving_more_refs_than_are_read_is_413(open_receiver: service.Service) -> None:
    changes = [{"new": {"type": "branch", "name": f"b{n}", "target": {"hash": "a" * 40}}}
               for n in range(2000)]
    body = json.dumps({"push": {"changes": changes},
                       "repository": {"links": {"html": {"href": REPO}}}}).encode()
    headers = {"Content-Type": "application/json", "X-Event-Key": "repo:push", "X-Hook-UUID": "x"}
    answer = _post(open_receiver.receiver, body, headers, timeout=30)
    assert answer.status_code == 413
    assert "at most 1000" in answer.json()["message"]


# --- 4. Admission budgets -------------------------------------------------------------------------

def _review(obj: dict[str, Any], resource: str = "secrets", group: str = "") -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "operation": "CREATE", "kind": {"group": group, "version": "v1", "kind": "X"},
        "resource": {"group": group, "version": "v1" if not group else "v1alpha1", "resource": resource},
        "name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"], "object": obj,
        "userInfo": {"username": "u"}}}


def test_a_secret_of_thousands_of_keys_is_judged_in_part_with_a_short_message(start_admission: Start) -> None:
    admission = start_admission()
    data = {f"k{n:05d}": base64.b64encode(b"v").decode() for n in range(20_000)}
    secret = {"apiVersion": "v1", "kind": "Secret", "data": data,
              "metadata": {"name": "gitjob-webhook", "namespace": "cattle-fleet-system"}}
    answer = requests.post(admission.admission + "/validate/secrets", json=_review(secret), timeout=10,
                           verify=admission.ca_file).json()["response"]
    assert answer["allowed"] is False
    assert "more keys not checked" in answer["status"]["message"]
    assert len(answer["status"]["message"]) <= 2000


def test_a_polling_interval_longer_than_any_duration_is_never_a_500(start_admission: Start) -> None:
    admission = start_admission()
    gitrepo_obj = {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
                   "metadata": {"name": "g", "namespace": "fleet-default"},
                   "spec": {"repo": REPO, "pollingInterval": "9" * 5000 + "h", "webhookSecret": "s"}}
    answer = requests.post(admission.admission + "/mutate/gitrepos",
                           json=_review(gitrepo_obj, "gitrepos", "fleet.cattle.io"), timeout=10,
                           verify=admission.ca_file)
    assert answer.status_code == 200
    assert "invalid-polling-interval" in answer.json()["response"]["auditAnnotations"]["reasons"]


# --- 5. Rate limiting never costs a verified delivery --------------------------------------------

def test_a_flood_of_bad_signatures_behind_one_ingress_does_not_starve_verified_deliveries(
        offline_receiver: Callable[..., service.Service]) -> None:
    receiver = offline_receiver([global_secret(), gitrepo("main")], "--rate-limit", "0.01",
                                "--rate-burst", "3", "--trust-forwarded-for")
    ingress = {"X-Forwarded-For": "203.0.113.9"}   # every request comes from the same address
    bad = push_body(commit_for("bad"))
    refused = [_post(receiver.receiver, bad, {**push_headers(bad, f"b{n}", "wrong"), **ingress}).status_code
               for n in range(10)]
    good = push_body(commit_for("good"))
    verified = _post(receiver.receiver, good, {**push_headers(good, "g"), **ingress})
    assert refused[:3] == [401, 401, 401] and set(refused[3:]) == {429}
    assert verified.status_code == 200 and verified.json()["summary"]["patched"] == 1


def test_slow_large_uploads_filling_the_buffer_do_not_lock_out_a_push(
        offline_receiver: Callable[..., service.Service]) -> None:
    """Three uploads announce 24 MB, send 22 MB each and stall, leaving the worker's 64 MiB buffer
    budget 50 bytes short of full: a signed push of a few hundred bytes is still served."""
    receiver = offline_receiver([global_secret(), gitrepo("main")], "--request-timeout", "30")
    port = _port(receiver.receiver)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Length: 24000000\r\n\r\n"
    each = (64 * 1024 * 1024 - 50) // 3 - len(head)
    stalled = [_stall(port, head + b"x" * each) for _ in range(3)]
    try:
        # All of it with the server (none left in our send queues), so the budget is full for the push.
        wait_for(lambda: not any(_unsent(connection) for connection in stalled), timeout=30,
                 message="the server to take the three uploads")
        good = push_body(commit_for("small"))
        answer = _post(receiver.receiver, good, push_headers(good, "small"))
        assert answer.status_code == 200 and answer.json()["summary"]["patched"] == 1
        stalled.append(_stall(port, head + b"x" * 2_000_000))   # another large one: one upload is refused
        wait_for(lambda: select.select(stalled, [], [], 0)[0], timeout=30, message="an upload to be refused")
        (refused,) = select.select(stalled, [], [], 0)[0]
        assert refused.recv(4096).startswith(b"HTTP/1.1 503")
    finally:
        for connection in stalled:
            connection.close()


def _unsent(connection: socket.socket) -> int:
    """Bytes in the socket's send queue the peer has not yet acknowledged (Linux SIOCOUTQ)."""
    unsent: int = struct.unpack("i", fcntl.ioctl(connection.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
    return unsent


def tenants(count: int) -> list[dict[str, Any]]:
    """``count`` teams, each with a GitRepo on its own repository and its own Secret."""
    objects: list[dict[str, Any]] = []
    for n in range(count):
        objects.append({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "hook", "namespace": f"team-{n}"},
                        "stringData": {"github": f"team-{n}-key"}})
        objects.append(gitrepo("app", f"https://github.com/team-{n}/app", f"team-{n}", webhookSecret="hook"))
    return objects


def test_a_throttled_source_still_gets_its_verified_delivery_through_among_many_secrets(
        offline_receiver: Callable[..., service.Service]) -> None:
    """Behind one Ingress, bad deliveries spent the budget; a push signed with the 20th team's own
    Secret still verifies before parsing and is served."""
    receiver = offline_receiver(tenants(20), "--rate-limit", "0.01", "--rate-burst", "2")
    bad = push_body(commit_for("bad"), "https://github.com/team-0/app")
    assert [_post(receiver.receiver, bad, push_headers(bad, f"b{n}", "wrong")).status_code
            for n in range(3)] == [401, 401, 429]
    good = push_body(commit_for("good"), "https://github.com/team-19/app")
    verified = _post(receiver.receiver, good, push_headers(good, "g", "team-19-key"))
    assert verified.status_code == 200 and verified.json()["summary"]["patched"] == 1


def test_a_forged_forwarded_for_does_not_escape_the_budget(
        offline_receiver: Callable[..., service.Service]) -> None:
    receiver = offline_receiver([global_secret(), gitrepo("main")], "--rate-limit", "0.01",
                                "--rate-burst", "2", "--trust-forwarded-for")
    bad = push_body(commit_for("forged"))
    statuses = [_post(receiver.receiver, bad, {**push_headers(bad, f"f{n}", "wrong"),
                                               "X-Forwarded-For": f"10.0.0.{n}, 198.51.100.7"}).status_code
                for n in range(5)]
    assert statuses == [401, 401, 429, 429, 429]


def _receiver_with_slow_patches(cluster: Cluster, fault_proxy: FaultProxy,
                                run_service: Callable[..., service.Service], seconds: float,
                                *flags: str) -> str:
    """A ready receiver (URL) behind the fault proxy, whose status patches take ``seconds`` each; the
    global Secret and a GitRepo "app" in namespaces of the test."""
    controller, apps = cluster.namespace("ctl"), cluster.namespace("apps")
    cluster.apply([{**global_secret(), "metadata": {"name": "gitjob-webhook", "namespace": controller}},
                   {**gitrepo("app"), "metadata": {"name": "app", "namespace": apps}}])
    fault_proxy.delay("PATCH", r"/status$", seconds)
    receiver = run_service("serve", "receiver", "--listen", "127.0.0.1:0", "--store", "kubernetes",
                           "--kubeconfig", str(fault_proxy.kubeconfig), "--namespace", controller, *flags)
    url = "http://" + service.listening(receiver, "receiver")
    service.wait_ready(url, receiver)
    return url


def test_a_burst_beyond_the_threads_waits_its_turn_while_probes_are_answered(
        cluster: Cluster, fault_proxy: FaultProxy, run_service: Callable[..., service.Service]) -> None:
    """Two threads, eight deliveries at once, each status patch taking a second: all are served."""
    url = _receiver_with_slow_patches(cluster, fault_proxy, run_service, 1.0, "--threads", "2")

    def send(number: int) -> requests.Response:
        body = push_body(commit_for("burst", number))
        return _post(url, body, push_headers(body, str(number)), timeout=60)
    with ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(send, number) for number in range(8)]
        wait_for(lambda: sum(1 for r in fault_proxy.requests if r.method == "PATCH") >= 2, timeout=30,
                 message="the first two patches (six deliveries still waiting)")
        for path in ("/healthz", "/readyz", "/metrics"):
            assert requests.get(url + path, timeout=2).status_code == 200
        statuses = [answer.result().status_code for answer in answers]
    assert statuses == [200] * 8


def test_clients_that_ask_to_close_but_keep_their_socket_open_stall_nothing(
        open_receiver: service.Service) -> None:
    """After its answer a closing connection lingers for the client's FIN; gunicorn did that in a
    blocking read of 2 s on the main loop, so thirty such clients held every other one for a minute."""
    port = _port(open_receiver.receiver)
    clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(30)]
    try:
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for _ in range(3):
            assert requests.get(open_receiver.receiver + "/healthz", timeout=10).status_code == 200
        body = push_body(commit_for("linger", 1))
        assert _post(open_receiver.receiver, body, push_headers(body, "linger")).status_code == 200
    finally:
        for client in clients:
            client.close()


def test_a_flood_of_scrapes_is_partly_refused_and_leaves_the_probes_a_thread(
        open_receiver: service.Service) -> None:
    """All sent before any is answered: two are rendered at a time, the others refused at once."""
    port = _port(open_receiver.receiver)
    clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(200)]
    try:
        for client in clients:
            client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert requests.get(open_receiver.receiver + "/healthz", timeout=10).status_code == 200
        answers = []
        for client in clients:
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
            answers.append(answer)
    finally:
        for client in clients:
            client.close()
    statuses = [answer.split(b" ", 2)[1] for answer in answers]
    assert set(statuses) == {b"200", b"503"}
    refused = next(answer for answer in answers if answer.split(b" ", 2)[1] == b"503")
    assert b"metrics scrapes are being answered" in refused and b"Retry-After" in refused


def test_overload_of_the_process_is_503_not_429(cluster: Cluster, fault_proxy: FaultProxy,
                                                run_service: Callable[..., service.Service]) -> None:
    """One delivery in flight at a time, and the API server slow to take its status patch."""
    url = _receiver_with_slow_patches(cluster, fault_proxy, run_service, 2.0,
                                      "--threads", "4", "--max-in-flight", "1")

    def send(number: int) -> requests.Response:
        body = push_body(commit_for("overload", number))
        return _post(url, body, push_headers(body, str(number)), timeout=30)
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(send, range(3)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses[0] == 200 and set(statuses) <= {200, 503} and 503 in statuses, statuses
    assert all(answer.headers["Retry-After"] for answer in answers if answer.status_code == 503)


# --- 7. A credential speaks only for its provider's repositories ---------------------------------

def test_a_gitlab_token_never_reaches_a_repository_on_github_com(
        offline_receiver: Callable[..., service.Service]) -> None:
    receiver = offline_receiver([global_secret(gitlab="token-1"), gitrepo("main")])
    forged = json.dumps({"object_kind": "push", "ref": "refs/heads/main", "after": "b" * 40,
                         "checkout_sha": "b" * 40, "project": {"web_url": REPO}}).encode()
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "token-1"}
    answer = _post(receiver.receiver, forged, headers)
    assert answer.status_code == 200
    assert answer.json()["summary"]["patched"] == 0
    assert "no GitRepo tracks this repository" in answer.json()["message"]


# --- 8. Replays are recognised by the signed body; commits are SHAs ------------------------------

def test_a_replay_with_a_new_delivery_id_is_a_duplicate(signed_receiver: service.Service) -> None:
    body = push_body(commit_for("replayed"))
    first = _post(signed_receiver.receiver, body, push_headers(body, "original"))
    replay = _post(signed_receiver.receiver, body, push_headers(body, "a-new-id"))
    assert first.json()["summary"]["patched"] == 1
    assert replay.json()["outcome"] == "duplicate"


@pytest.mark.parametrize("commit", [
    pytest.param("abc1234", id="short"),
    pytest.param("z" * 40, id="not-hex"),
    pytest.param("a" * 41, id="41-characters"),
    pytest.param("\ud800" + "a" * 39, id="lone-surrogate"),
])
def test_a_commit_that_is_not_a_sha_is_400_and_never_written(signed_receiver: service.Service,
                                                             commit: str) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": commit, "repository": {"html_url": REPO}}).encode()
    answer = _post(signed_receiver.receiver, body, push_headers(body, "c"))
    assert answer.status_code == 400
    assert "not a commit SHA" in answer.json()["message"]


# --- 10. Metrics an attacker cannot inflate ---------------------------------------------------------

def _series(url: str) -> int:
    text = requests.get(url + "/metrics", timeout=10).text
    return sum(1 for line in text.splitlines() if line.startswith("gitjob_webhook_") and "{" in line)


def test_odd_event_names_and_methods_do_not_grow_the_metrics(open_receiver: service.Service) -> None:
    url = open_receiver.receiver
    for number in range(5):   # every label value a request can set, once (and one scrape)
        requests.request("PROPFIND", url, timeout=10)
        _post(url, b"{}", {"X-GitHub-Event": f"event-{number}"})
    _series(url)
    before = _series(url)
    for number in range(50):
        requests.request(f"M{number}", url, timeout=10)
        _post(url, b"{}", {"X-GitHub-Event": f"event-{number}-{'x' * 200}"})
    assert _series(url) == before


# --- 12. Never 500 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("framing", [
    pytest.param(b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", id="chunk-size-not-hex"),
    pytest.param(b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", id="chunk-without-crlf"),
    pytest.param(b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n", id="both"),
    pytest.param(b"Transfer-Encoding: gzip\r\n\r\n{}", id="other-coding"),
    pytest.param(b"Content-Length: 2, 3\r\n\r\n{}", id="two-lengths"),
    pytest.param(b"Transfer-Encoding: chunked\r\n\r\n 2\r\n{}\r\n0\r\n\r\n", id="space-before-size"),
    pytest.param(b"Transfer-Encoding: chunked\r\n\r\n2\x0b\r\n{}\r\n0\r\n\r\n", id="vertical-tab-after-size"),
    pytest.param(b"Transfer-Encoding: chunked\r\n\r\n2;a\nb\r\n{}\r\n0\r\n\r\n", id="bare-lf-in-extension"),
    pytest.param(b"Transfer-Encoding: chunked\r\n\r\n2;\x01\r\n{}\r\n0\r\n\r\n", id="control-in-extension"),
    pytest.param(b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nContent-Length: 5\r\n\r\n",
                 id="forbidden-trailer"),
    pytest.param(b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nBad Name: x\r\n\r\n",
                 id="trailer-name-not-a-token"),
    pytest.param(b"Content-Length: 2\n\n{}", id="bare-lf-line-ends"),
])
def test_malformed_framing_is_400(open_receiver: service.Service, framing: bytes) -> None:
    with socket.create_connection(("127.0.0.1", _port(open_receiver.receiver)), timeout=10) as connection:
        connection.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n" + framing)
        assert connection.recv(4096).startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize(("request_bytes", "status", "error"), [
    pytest.param(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414", b"uri-too-long",
                 id="request-line-too-long"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % n for n in range(101))
                 + b"Content-Length: 0\r\n\r\n", b"431", b"headers-too-large", id="101-headers"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nX-" + b"\x01" * 3000 + b": v\r\nContent-Length: 0\r\n\r\n",
                 b"400", b"malformed", id="header-name-of-control-characters"),
])
def test_what_gunicorn_refuses_is_answered_in_json_and_cut_short(open_receiver: service.Service,
                                                                 request_bytes: bytes, status: bytes,
                                                                 error: bytes) -> None:
    with socket.create_connection(("127.0.0.1", _port(open_receiver.receiver)), timeout=10) as connection:
        connection.sendall(request_bytes)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status) and b"Content-Type: application/json" in head
    assert json.loads(body)["error"] == error.decode() and len(body) < 400
    assert not [line for line in open_receiver.log().splitlines() if len(line) > 1000]


def test_what_a_refused_request_sent_is_logged_in_a_field_not_in_the_message(
        open_receiver: service.Service) -> None:
    """Fields are quoted in the text log (tests/unit/test_logs.py); the message is not."""
    with socket.create_connection(("127.0.0.1", _port(open_receiver.receiver)), timeout=10) as connection:
        connection.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nlevel=error status=200 remote=10.6.6.6 x: y\r\n"
                           b"Content-Length: 0\r\n\r\n")
        assert connection.recv(4096).startswith(b"HTTP/1.1 400")
    entry = wait_for(lambda: next((json.loads(line) for line in open_receiver.log().splitlines()
                                   if "refused a malformed request" in line), None),
                     message="the refusal logged")
    assert entry["msg"] == "refused a malformed request"
    assert (entry["remote"], entry["status"]) == ("127.0.0.1", 400)
    assert "remote=10.6.6.6" in entry["problem"]


def test_chunk_extensions_and_trailers_as_the_rfc_allows_are_served(open_receiver: service.Service) -> None:
    with socket.create_connection(("127.0.0.1", _port(open_receiver.receiver)), timeout=10) as connection:
        connection.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\nConnection: close\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n2 ;name=value;q=\"a b\"\r\n{}\r\n"
                           b"0\r\nX-Checksum: abc\r\n\r\n")
        assert connection.recv(4096).startswith(b"HTTP/1.1 200")


def test_a_stall_right_at_the_body_limit_is_408(offline_receiver: Callable[..., service.Service]) -> None:
    receiver = offline_receiver([gitrepo("main")], "--max-body-size", "1KiB", "--request-timeout", "1")
    with socket.create_connection(("127.0.0.1", _port(receiver.receiver)), timeout=10) as connection:
        connection.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
                           b"Content-Length: 1024\r\n\r\n" + b"x" * 1023)
        assert connection.recv(4096).startswith(b"HTTP/1.1 408")


def test_a_lone_surrogate_in_string_data_is_a_denial_not_a_500(start_admission: Start) -> None:
    admission = start_admission()
    secret = {"apiVersion": "v1", "kind": "Secret", "stringData": {"github": "\ud800"},
              "metadata": {"name": "gitjob-webhook", "namespace": "cattle-fleet-system"}}
    answer = requests.post(admission.admission + "/validate/secrets", data=json.dumps(_review(secret)),
                           headers={"Content-Type": "application/json"}, timeout=10, verify=admission.ca_file)
    assert answer.status_code == 200
    assert answer.json()["response"]["allowed"] is False


# --- 13. make run is a sandbox; the store that serves is the one asked for -------------------------

def _gitjob_webhook(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    from support.service import command
    environment = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home", **(env or {})}
    return subprocess.run(command(*arguments), capture_output=True, text=True, timeout=30, env=environment)


def test_a_kubeconfig_named_but_missing_is_an_error_not_a_fallback() -> None:
    result = _gitjob_webhook("serve", "receiver", "--listen", "127.0.0.1:1",
                             env={"KUBECONFIG": "/nonexistent"})
    assert result.returncode == 2
    assert "$KUBECONFIG names /nonexistent, which does not exist" in result.stderr


@pytest.mark.parametrize("text", ["# Title\n\nkey: value: more\n", "- a\n- b\n", "just words\n",
                                  "a: " + "[" * 5000 + "]" * 5000 + "\n"])
@pytest.mark.parametrize("command", [("status",), ("certs", "inject", "--ca", "{ca}"), ("secret", "status")])
def test_a_file_that_is_not_a_kubeconfig_is_one_line(tmp_path: pathlib.Path, text: str,
                                                     command: tuple[str, ...]) -> None:
    assert _gitjob_webhook("certs", "--out", str(tmp_path / "certs")).returncode == 0
    not_a_kubeconfig = tmp_path / "README.md"
    not_a_kubeconfig.write_text(text)
    arguments = [argument.format(ca=tmp_path / "certs" / "ca.crt") for argument in command]
    result = _gitjob_webhook(*arguments, env={"KUBECONFIG": str(not_a_kubeconfig)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and str(not_a_kubeconfig) in result.stderr, result.stderr


def _plugin(script: str) -> dict[str, Any]:
    """A kubeconfig user whose credentials come from an ``exec`` plugin running ``script``."""
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "sh", "args": ["-c", script],
                     "interactiveMode": "Never"}}


@pytest.mark.parametrize(("credentials", "named"), [
    ({"cluster": {"certificate-authority-data": "bm90IGEgY2VydA=="}},
     "its certificate-authority cannot be used"),
    ({"user": {"client-certificate-data": "bm90IGEgY2VydA==", "client-key-data": "bm90IGEga2V5"}},
     "its client-certificate/client-key cannot be used"),
    ({"user": _plugin("printf 'error: not logged in,\\n\\033[31mrun: sso login\\n' >&2; exit 1")},
     "its credential plugin failed (exec: process returned 1. error: not logged in, ?[31mrun: sso login)"),
    ({"user": _plugin("echo '{not json'")}, "its credential plugin failed (exec: failed to decode"),
])
@pytest.mark.parametrize("command", [("status",), ("secret", "status")])
def test_a_kubeconfig_whose_credentials_cannot_be_used_is_named_as_such(
        tmp_path: pathlib.Path, credentials: dict[str, dict[str, str]], named: str,
        command: tuple[str, ...]) -> None:
    """Not "the API server cannot be reached: [X509] PEM lib", which sends one to debug the network, nor
    the kubernetes client's own lines about a failed credential plugin before an unrelated error."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:1",
                                  cluster=credentials.get("cluster"), user=credentials.get("user"))
    result = _gitjob_webhook(*command, "--kubeconfig", str(kubeconfig))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"--kubeconfig {kubeconfig}: {named}" in result.stderr


@dataclass(frozen=True)
class Answer:
    """What the impostor answers every GET with; ``drip``: the body one byte every 0.2 s."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    drip: bool = False


class _Impostor(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the server's ``answer``: what a broken proxy or an impostor might send."""

    def do_GET(self) -> None:
        answer: Answer = self.server.answer  # type: ignore[attr-defined]
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        try:
            for start in range(0, len(answer.body), 1 if answer.drip else len(answer.body) or 1):
                self.wfile.write(answer.body[start:start + (1 if answer.drip else len(answer.body))])
                self.wfile.flush()
                if answer.drip and self.server.stopping.wait(0.2):  # type: ignore[attr-defined]
                    return
        except OSError:
            pass   # the client gave up

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _status_body(message: str, code: int = 401) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                       "reason": "Unauthorized", "code": code}).encode()


_PROXY_PAGE = (b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>"
               b"<center>nginx</center></body></html>")


@pytest.mark.parametrize(("answer", "named"), [
    pytest.param(Answer(401, _status_body("Unauthorized \x1b[31m red\nsecond line")),
                 "401 Unauthorized ?[31m red?second", id="control-characters"),
    pytest.param(Answer(401, _status_body("A" * 2_000_000)), "401 " + "A" * 300 + "…", id="two-megabytes"),
    pytest.param(Answer(200, b'{"kind": "GitRepoList", "items": ' + b"[" * 100_000),
                 "200 the answer is not JSON", id="nested-too-deep"),
    pytest.param(Answer(200, b"[1, 2]"), "200 the answer is not a JSON object", id="not-an-object"),
    pytest.param(Answer(502, _PROXY_PAGE), "(last failure: 502 Bad Gateway)", id="a-proxy-page"),
    pytest.param(Answer(503, b"upstream connect error or disconnect/reset before headers. reset reason: x"),
                 "503 upstream connect error or disconnect/reset before headers.", id="a-proxy-text"),
    pytest.param(Answer(500, b""), "500 Internal Server Error", id="no-body"),
    pytest.param(Answer(200, b'{"kind": "Status"}'), "is not a list", id="not-a-list"),
    pytest.param(Answer(200, b'{"kind": "GitRepoList", "metadata": {}, "items": [{"metadata": "nope"}]}'),
                 "last failure: unexpected ", id="items-that-are-not-gitrepos"),
    pytest.param(Answer(429, _status_body("slow down", 429), (("Retry-After", "1000"),)),
                 "last failure: 429 slow down", id="retry-after-1000-seconds"),
    pytest.param(Answer(302, b"{}", (("Location", "http://127.0.0.1:9/elsewhere"),)),
                 "the API server answered with a redirect, which is not followed", id="redirect"),
    pytest.param(Answer(200, b'{"major": "1", "minor": "37"}' + b" " * 1000, drip=True),
                 "the API server did not answer within 5s", id="a-byte-at-a-time"),
])
def test_what_an_api_server_answers_never_breaks_the_one_line_error(
        tmp_path: pathlib.Path, answer: Answer, named: str) -> None:
    """The server's words are printable, cut short and on the error's one line; an answer that is not
    a list is a failure (exit 1), not an empty cluster; no answer holds the command past its deadlines
    (the run's own 30 s timeout would fail the test)."""
    impostor = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    impostor.answer = answer  # type: ignore[attr-defined]
    impostor.stopping = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    try:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{impostor.server_port}")
        result = _gitjob_webhook("status", "--kubeconfig", str(kubeconfig))
    finally:
        impostor.stopping.set()  # type: ignore[attr-defined]
        impostor.shutdown()
        impostor.server_close()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and len(result.stderr) < 1000, result.stderr[-2000:]
    assert named in result.stderr and "\x1b" not in result.stderr, result.stderr


def test_the_offline_file_cannot_go_with_the_kubernetes_store() -> None:
    result = _gitjob_webhook("serve", "receiver", "--store", "kubernetes",
                             "--gitrepos", str(EXAMPLE_GITREPOS))
    assert result.returncode == 2 and "--gitrepos" in result.stderr


@pytest.mark.parametrize("named_by", ["--kubeconfig", "$KUBECONFIG"])
def test_an_explicit_offline_file_wins_over_a_kubeconfig_and_says_so(start_receiver: Start,
                                                                     tmp_path: Any, named_by: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [],
                                          "contexts": []}))
    flags = ("--kubeconfig", str(kubeconfig)) if named_by == "--kubeconfig" else ()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)} if named_by == "$KUBECONFIG" else None
    receiver = start_receiver("--store", "auto", "--gitrepos", str(EXAMPLE_GITREPOS), *flags, env=env)
    assert "store: offline" in receiver.log()
    assert "serving the offline store, not the configured cluster" in receiver.log()
    assert str(kubeconfig) in receiver.log()


def test_an_empty_offline_store_says_so(start_receiver: Start) -> None:
    receiver = start_receiver("--store", "offline")
    assert "the offline store is empty" in receiver.log()


# --- 15. Ctrl-C stops the servers at once ------------------------------------------------------------

def _serve_all(dev_certs: Any, log: pathlib.Path) -> subprocess.Popen[bytes]:
    """`serve all` on ports the kernel picks, in a session of its own (as a terminal would run it)."""
    from support.service import command
    with open(log, "wb") as output:
        return subprocess.Popen(command("serve", "all", "--receiver-listen", "127.0.0.1:0",
                                        "--admission-listen", "127.0.0.1:0", "--store", "offline",
                                        "--tls-cert", str(dev_certs / "tls.crt"),
                                        "--tls-key", str(dev_certs / "tls.key")),
                                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def test_ctrl_c_stops_serve_all_every_time(dev_certs: Any, tmp_path: Any) -> None:
    for attempt in range(5):
        log = tmp_path / f"serve-{attempt}.log"
        process = _serve_all(dev_certs, log)
        try:
            wait_for(lambda: log.read_text().count("Booting worker") == 2, timeout=30, message="both workers")
            os.killpg(process.pid, signal.SIGINT)   # what a terminal sends the whole group on Ctrl-C
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"attempt {attempt} still running 5 s after Ctrl-C:\n"
                                     f"{log.read_text()[-3000:]}") from None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _alive(pid: int) -> bool:
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.parametrize(("stop", "group"), [
    pytest.param(signal.SIGINT, True, id="ctrl-c"),
    pytest.param(signal.SIGHUP, True, id="terminal-closed"),
    pytest.param(signal.SIGTERM, False, id="terminated"),
    pytest.param(signal.SIGKILL, False, id="killed"),
])
def test_serve_all_leaves_nothing_running_however_it_is_stopped(
        dev_certs: Any, tmp_path: Any, stop: signal.Signals, group: bool) -> None:
    """A closed terminal (SIGHUP: gunicorn's "reload") or a killed parent used to leave both servers
    running on their ports, and the next `make run` found them in use."""
    log = tmp_path / "serve.log"
    process = _serve_all(dev_certs, log)
    running: set[int] = set()
    try:
        wait_for(lambda: log.read_text().count("Booting worker") == 2, timeout=30, message="both workers")
        running = service.descendant_pids(process.pid)
        assert len(running) == 4, running   # two gunicorn arbiters, one worker each
        if group:
            os.killpg(process.pid, stop)
        else:
            process.send_signal(stop)
        process.wait(timeout=30)
        wait_for(lambda: not any(_alive(pid) for pid in running), timeout=30,
                 message=f"every process of serve all to stop:\n{log.read_text()[-3000:]}")
    finally:
        for pid in [process.pid, *running]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        process.wait()
