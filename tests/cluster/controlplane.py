"""A real etcd and kube-apiserver on loopback ports, started and stopped as processes.

No controller manager runs: nothing creates ServiceAccount tokens, finalises namespaces or collects
garbage. Admission webhooks, RBAC, CRDs with the status subresource and TokenRequest are the real
server's own.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import pathlib
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests

from cluster import pki
from cluster.binaries import Binaries
from support.kubeconfig import write_kubeconfig
from support.waiting import free_port, wait_for

APISERVER_READY_SECONDS = 90.0  # measured 3.5 to 5 s on 2 cores; CI shares them with the tests
ETCD_READY_SECONDS = 30.0
STOP_SECONDS = 15.0
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork: the child only calls it


def die_with_parent() -> None:
    # A pytest killed with SIGKILL must not leave etcd and kube-apiserver running for ever. The signal
    # follows the thread that started the process, which for fixtures is pytest's main thread.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ControlPlaneError(Exception):
    """A process did not start or become ready; the message carries its log's last lines."""


class Process:
    """One binary, its command line and its log file (the control plane's, and the node's)."""

    def __init__(self, name: str, log_file: pathlib.Path) -> None:
        self.name = name
        self.log_file = log_file
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, command: Sequence[str], env: Mapping[str, str] | None = None,
              preexec: Callable[[], None] = die_with_parent) -> None:
        """Start it, logging to its file; ``preexec`` runs in the child before the binary."""
        with open(self.log_file, "ab") as log:
            self.popen = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=dict(env or os.environ),
                                          preexec_fn=preexec)

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM, a bounded wait, then SIGKILL."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.popen = None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ControlPlane:
    """etcd and kube-apiserver with a test PKI; the admin authenticates with a bearer token.

    ``start()`` brings both up; ``stop_apiserver()``/``start_apiserver()``/``restart_apiserver()``
    keep the port, certificates and etcd data, as an API server restarted under running clients.
    """

    def __init__(self, workdir: pathlib.Path, binaries: Binaries, apiserver_args: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.binaries = binaries
        self.apiserver_args = tuple(apiserver_args)
        workdir.mkdir(parents=True, exist_ok=True)
        self.pki = pki.create(workdir / "pki")
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.port = 0
        self.etcd_port = 0
        self.timings: dict[str, float] = {}
        self._etcd = Process("etcd", workdir / "etcd.log")
        self._apiserver = Process("kube-apiserver", workdir / "kube-apiserver.log")
        self._session = requests.Session()
        self._session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the test CA
        self._session.verify = str(self.pki.ca_file)
        self._session.headers["Authorization"] = f"Bearer {self.pki.admin_token}"
        self._etcd_session = requests.Session()
        self._etcd_session.trust_env = False

    @property
    def url(self) -> str:
        """The API server's base URL."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def etcd_url(self) -> str:
        """etcd's client URL (plain HTTP on loopback; its JSON gateway serves /v3/...)."""
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def ca_file(self) -> pathlib.Path:
        """The CA that signed the API server's serving certificate."""
        return self.pki.ca_file

    @property
    def token(self) -> str:
        """The admin's bearer token (group system:masters)."""
        return self.pki.admin_token

    def start(self) -> None:
        """Start etcd, then the API server; return once both serve (the ``default`` namespace exists)."""
        started = time.monotonic()
        self._start_etcd()
        self.timings["etcd"] = time.monotonic() - started
        self.start_apiserver()
        self.write_kubeconfig(self.kubeconfig)

    def stop(self) -> None:
        """Stop the API server, then etcd, and release the HTTP session."""
        self._apiserver.stop()
        self._etcd.stop()
        self._session.close()
        self._etcd_session.close()

    def _start_etcd(self) -> None:
        for _ in range(5):
            self.etcd_port = free_port()
            self._etcd.start([
                str(self.binaries.path("etcd")), "--name", "test", "--data-dir", str(self.workdir / "etcd"),
                "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
                "--listen-peer-urls", "http://localhost:0", "--unsafe-no-fsync", "--log-level", "warn",
            ])
            if self._wait_ready(self._etcd, self._etcd_healthy, ETCD_READY_SECONDS):
                return
        raise ControlPlaneError(f"etcd found no free port\n{self._etcd.tail()}")

    def _etcd_healthy(self) -> bool:
        health = self._etcd_session.get(f"{self.etcd_url}/health", timeout=2).json()
        return bool(health.get("health") == "true")

    def start_apiserver(self) -> None:
        """Start kube-apiserver (on the port it had before, if any) and wait until it is ready."""
        started = time.monotonic()
        for _ in range(5 if self.port == 0 else 1):
            port = self.port or free_port()
            self._apiserver.start([str(self.binaries.path("kube-apiserver")), *self._apiserver_flags(port)])
            self.port = port
            if self._wait_ready(self._apiserver, self._apiserver_ready, APISERVER_READY_SECONDS):
                self.timings["kube-apiserver"] = time.monotonic() - started
                return
            self.port = 0
        raise ControlPlaneError(f"kube-apiserver found no free port\n{self._apiserver.tail()}")

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver (SIGTERM, then SIGKILL after a while); etcd keeps running."""
        self._apiserver.stop()

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port, with the same certificates and data."""
        self.stop_apiserver()
        self.start_apiserver()

    def _apiserver_flags(self, port: int) -> list[str]:
        files = self.pki
        return [
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            f"--tls-cert-file={files.serving_cert}", f"--tls-private-key-file={files.serving_key}",
            f"--client-ca-file={files.ca_file}", f"--token-auth-file={files.token_file}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer=https://127.0.0.1:{port}/",
            f"--service-account-key-file={files.service_account_public_key}",
            f"--service-account-signing-key-file={files.service_account_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            # The kubernetes Service's endpoints would be 127.0.0.1, which the reconciler refuses.
            "--endpoint-reconciler-type=none",
            # No controller manager creates ServiceAccount tokens, so the plugin would refuse Pods.
            "--disable-admission-plugins=ServiceAccount",
            # Priority and fairness only queue requests here; off, the server is ready seconds sooner.
            "--enable-priority-and-fairness=false",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            *self.apiserver_args,
        ]

    def _apiserver_ready(self) -> bool:
        if self.request("GET", "/readyz", timeout=5).status_code != 200:
            return False
        return self.request("GET", "/api/v1/namespaces/default", timeout=5).status_code == 200

    def _wait_ready(self, process: Process, ready: Callable[[], bool], timeout: float) -> bool:
        """True once ``ready()``; False if the process exited because its port was taken."""
        exited = False

        def up() -> bool:
            nonlocal exited
            exited = not process.running()
            return exited or ready()
        try:
            wait_for(up, timeout=timeout, interval=0.1, message=f"{process.name} to become ready")
        except AssertionError as error:
            process.stop()
            raise ControlPlaneError(f"{error}\n{process.tail()}") from None
        if not exited:
            return True
        log = process.tail()
        process.stop()
        if "address already in use" in log:
            return False
        raise ControlPlaneError(f"{process.name} exited while starting:\n{log}")

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                content_type: str = "application/json", timeout: float = 10.0,
                headers: Mapping[str, str] | None = None) -> requests.Response:
        """One API request as the admin; the caller checks the status."""
        data = None if body is None else json.dumps(body)
        return self._session.request(method, self.url + path, data=data, timeout=timeout,
                                     headers={"Content-Type": content_type, **(headers or {})})

    def compact(self) -> int:
        """Compact etcd up to its current revision, so older resourceVersions are gone (410 Gone)
        for reads and watches that reach etcd; returns that revision."""
        status = self._etcd_session.post(f"{self.etcd_url}/v3/maintenance/status", json={}, timeout=10)
        status.raise_for_status()
        revision = int(status.json()["header"]["revision"])
        compaction = self._etcd_session.post(f"{self.etcd_url}/v3/kv/compaction",
                                             json={"revision": revision, "physical": True}, timeout=30)
        compaction.raise_for_status()
        return revision

    def apiserver_version(self) -> str:
        """The running API server's gitVersion, from /version."""
        return str(self.request("GET", "/version").json()["gitVersion"])

    def etcd_version(self) -> str:
        """The running etcd's server version, from its /version."""
        return str(self._etcd_session.get(f"{self.etcd_url}/version", timeout=5).json()["etcdserver"])

    def log_tail(self, component: str, lines: int = 40) -> str:
        """The last lines of ``etcd`` or ``kube-apiserver``'s log."""
        process = self._etcd if component == "etcd" else self._apiserver
        return process.tail(lines)

    def write_kubeconfig(self, path: pathlib.Path, token: str | None = None, server: str | None = None,
                         user: str = pki.ADMIN_USER) -> pathlib.Path:
        """A kubeconfig for ``server`` (default: this API server) with ``token`` (default: the admin's)."""
        ca_data = base64.b64encode(self.pki.ca_file.read_bytes()).decode()
        return write_kubeconfig(path, server or self.url, cluster={"certificate-authority-data": ca_data},
                                user={"token": token or self.token}, user_name=user, context="test")
