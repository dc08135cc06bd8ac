"""``gitjob-webhook trigger`` as a CI job runs it: what it sends passes the npm Standard Webhooks
verifier, it exits 0 only for a 2xx, and every mistake is one line."""

from __future__ import annotations

import base64
import json
import pathlib
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support.interop import npm_verdict
from support.service import Service, command

SECRET = "whsec_" + base64.b64encode(b"trigger-test-key-of-32-bytes-xyz").decode()
COMMIT = "af69d162de5a276abc86e0686b2b44033cd3f442"
PUSH = ("--repository", "https://git.example.com/org/app.git", "--ref", "refs/heads/main", "--commit", COMMIT)


@dataclass
class Capture:
    """A stand-in receiver: records each request and answers ``status`` with ``answer``."""

    url: str
    status: int = 202
    answer: bytes = b'{"outcome": "processed"}'
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def capture() -> Iterator[Capture]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    captured = Capture(f"http://127.0.0.1:{server.server_address[1]}/")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            captured.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(captured.status)
            self.send_header("Content-Length", str(len(captured.answer)))
            self.end_headers()
            self.wfile.write(captured.answer)

        def log_message(self, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield captured
    server.shutdown()
    server.server_close()


def _trigger(*arguments: str, secret: str | None = SECRET, secret_file: pathlib.Path | None = None,
             ) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"}
    if secret is not None and secret_file is None:
        env["GITJOB_WEBHOOK_TRIGGER_SECRET"] = secret
    extra = ("--secret-file", str(secret_file)) if secret_file else ()
    return subprocess.run(command("trigger", *arguments, *extra), capture_output=True, text=True, timeout=60,
                          env=env)


def test_a_push_is_signed_so_the_npm_verifier_accepts_it(capture: Capture) -> None:
    result = _trigger("--url", capture.url, *PUSH)
    assert result.returncode == 0, result.stderr
    assert result.stdout == '202 {"outcome": "processed"}\n'
    (headers, body), = capture.requests
    assert json.loads(body) == {"repository": "https://git.example.com/org/app.git", "ref": "refs/heads/main",
                                "commit": COMMIT}
    assert npm_verdict(SECRET, headers, body) == "ok"
    assert npm_verdict("whsec_" + base64.b64encode(b"another-key-of-32-bytes-abcdefgh").decode(),
                       headers, body) != "ok"


def test_each_delivery_has_its_own_id_and_a_ping_is_a_ping(capture: Capture, tmp_path: pathlib.Path) -> None:
    key = tmp_path / "secret"
    key.write_text(SECRET + "\n")   # as `kubectl get secret -o jsonpath | base64 -d > file` may leave it
    assert _trigger("--url", capture.url, *PUSH, secret_file=key).returncode == 0
    assert _trigger("--url", capture.url, "--event", "ping", secret_file=key).returncode == 0
    (first, _), (second, ping) = capture.requests
    assert first["webhook-id"] != second["webhook-id"]
    assert json.loads(ping) == {"event": "ping"} and npm_verdict(SECRET, second, ping) == "ok"


@pytest.mark.parametrize("status", [401, 503])
def test_anything_but_2xx_exits_1_with_the_answer(capture: Capture, status: int) -> None:
    capture.status, capture.answer = status, b'{"error": "nope"}'
    result = _trigger("--url", capture.url, *PUSH)
    assert result.returncode == 1 and result.stdout == f'{status} {{"error": "nope"}}\n'


@pytest.mark.parametrize(("arguments", "secret", "status", "expected"), [
    pytest.param(PUSH, None, 2, "no secret: pass --secret-file FILE or set GITJOB_WEBHOOK_TRIGGER_SECRET",
                 id="no-secret"),
    pytest.param(PUSH, "hunter2", 2, "not a Standard Webhooks secret", id="secret-not-whsec"),
    pytest.param(PUSH[:4], SECRET, 2, "a push names --commit", id="no-commit"),
    pytest.param((*PUSH[:3], "main", *PUSH[4:]), SECRET, 2, "--ref 'main': a full ref", id="short-ref"),
    pytest.param((*PUSH[:5], "abc123"), SECRET, 2, "--commit 'abc123'", id="short-commit"),
])
def test_mistakes_are_one_line_and_nothing_is_sent(capture: Capture, arguments: tuple[str, ...],
                                                   secret: str | None, status: int, expected: str) -> None:
    result = _trigger("--url", capture.url, *arguments, secret=secret)
    assert result.returncode == status and capture.requests == []
    assert result.stderr.count("\n") == 1 and expected in result.stderr and "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr


def test_a_redirect_is_not_followed(capture: Capture) -> None:
    """Following it would send the signed delivery elsewhere and exit 0 for that server's answer."""
    capture.status, capture.answer = 302, b""
    result = _trigger("--url", capture.url, *PUSH)
    assert result.returncode == 1 and result.stdout.startswith("302")
    assert len(capture.requests) == 1


@pytest.mark.parametrize(("arguments", "expected"), [
    pytest.param(("--url", "http://[::1"), "--url 'http://[::1'", id="bad-host"),
    pytest.param(("--url", "nourl"), "--url 'nourl'", id="no-scheme"),
    pytest.param(("--url", "http://h:abc/"), "--url 'http://h:abc/'", id="port-not-a-number"),
    pytest.param(("--url", "http://h/a b"), "must be percent-encoded", id="space-in-path"),
    pytest.param(("--url", "http://h/", "--timeout", "-3"), "--timeout: '-3'", id="negative-timeout"),
    pytest.param(("--url", "http://h/", "--timeout", "nan"), "--timeout: 'nan'", id="nan-timeout"),
    pytest.param(("--url", "http://h/", "--timeout", "0"), "'0': more than 0 and at most 3600 seconds",
                 id="zero-timeout"),
    pytest.param(("--url", "https://127.0.0.1:9/", "--cacert", "/nonexistent/ca.crt"),
                 "--cacert /nonexistent/ca.crt: cannot read", id="missing-cacert"),
])
def test_a_bad_url_or_ca_file_is_one_line(arguments: tuple[str, ...], expected: str) -> None:
    result = _trigger(*arguments, *PUSH)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_receiver_is_one_line(capture: Capture) -> None:
    result = _trigger("--url", "http://127.0.0.1:9/", *PUSH)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "http://127.0.0.1:9/: cannot deliver" in result.stderr


def test_a_certificate_from_a_private_ca_suggests_cacert(start_admission: Callable[..., Service]) -> None:
    """The admission listener's dev certificate stands in for a receiver behind a private CA."""
    admission = start_admission()
    result = _trigger("--url", admission.admission + "/", *PUSH)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr and "pass it with --cacert" in result.stderr


def test_https_to_a_plain_http_receiver_says_so(capture: Capture) -> None:
    """Not OpenSSL's "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"."""
    result = _trigger("--url", capture.url.replace("http://", "https://"), *PUSH)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "the server does not speak TLS on this port (plain HTTP: use an http:// URL)" in result.stderr


def test_an_answer_is_cut_at_64_kib_and_its_escape_sequences_shown_escaped(capture: Capture) -> None:
    capture.answer = b"\x1b]0;owned\x07" + b"x" * 1_000_000
    result = _trigger("--url", capture.url, *PUSH)
    assert result.returncode == 0 and "\x1b" not in result.stdout and "\\x1b]0;owned\\x07" in result.stdout
    assert len(result.stdout) < 70_000 and result.stdout.endswith("(answer cut at 64 KiB)\n")


def test_a_receiver_answering_a_byte_at_a_time_is_given_up_at_the_timeout() -> None:
    """Each byte within the per-read timeout, the whole never: --timeout bounds the exchange."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        client, _ = listener.accept()
        with client:
            for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"s" * 10_000:
                if stop.wait(0.2):
                    return
                client.sendall(bytes([byte]))
    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        result = _trigger("--url", f"http://127.0.0.1:{listener.getsockname()[1]}/", "--timeout", "1", *PUSH)
    finally:
        stop.set()
        listener.close()
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "no whole answer within 1 s (--timeout)" in result.stderr


@pytest.mark.parametrize(("answer", "expected"), [
    pytest.param(b"HTTP/9 \x1b[31m abc\r\n\r\n", "not an HTTP answer", id="bad-status-line"),
    pytest.param(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % n for n in range(150)) + b"\r\n",
                 "not an HTTP answer", id="150-headers"),
])
def test_an_answer_that_is_not_http_is_one_line_without_its_escapes(answer: bytes, expected: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_once() -> None:
        client, _ = listener.accept()
        with client:
            client.recv(65536)
            client.sendall(answer)
    threading.Thread(target=answer_once, daemon=True).start()
    try:
        result = _trigger("--url", f"http://127.0.0.1:{listener.getsockname()[1]}/", *PUSH)
    finally:
        listener.close()
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr and "\x1b" not in result.stderr and "Traceback" not in result.stderr


def test_line_breaks_and_bidi_overrides_in_an_answer_are_shown_escaped(capture: Capture) -> None:
    capture.answer = "ok\r\nFAKE LINE \u202egnp.exe\u2028SECOND".encode()
    result = _trigger("--url", capture.url, *PUSH)
    assert result.stdout == "202 ok\\x0d\\x0aFAKE LINE \\u202egnp.exe\\u2028SECOND\n"
