"""The pod sandbox's network: its own namespace, a relay to the API server, and the kubelet's HTTP probe.

The container gets a network namespace of its own (bubblewrap's ``--unshare-net``), as a pod does, so
it binds the manifest's ports (``0.0.0.0:8443``) without touching the host's. The test reaches into
that namespace with sockets made there by a helper thread (``setns`` moves one thread only, and a
socket keeps the namespace it was made in), which is how the probes below are sent to the pod's
address and how :class:`Relay` gives the pod a route to the real API server on the host's loopback.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
PROBE_USER_AGENT = "kube-probe/1.37"  # what the kubelet sends: kube-probe/<major>.<minor>


class NetworkNamespace:
    """A network namespace, held open by a descriptor so it outlives the process that made it."""

    def __init__(self, pid: int) -> None:
        self._fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def socket(self) -> socket.socket:
        """A TCP socket inside the namespace; the rest of the test process stays on the host's network."""
        made: list[socket.socket] = []
        failed: list[OSError] = []

        def enter_and_make() -> None:
            if _libc.setns(self._fd, _CLONE_NEWNET) != 0:
                failed.append(OSError(ctypes.get_errno(), "setns into the pod's network namespace"))
                return
            made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))

        helper = threading.Thread(target=enter_and_make, name="pod-netns-socket")
        helper.start()
        helper.join()
        if failed:
            raise failed[0]
        return made[0]

    def run(self, *command: str) -> None:
        """Run a host command (``ip ...``) inside the namespace; raise with its output if it fails."""
        done = subprocess.run(["nsenter", f"--net=/proc/self/fd/{self._fd}", *command], capture_output=True,
                              text=True, timeout=10, pass_fds=(self._fd,))
        if done.returncode != 0:
            raise OSError(f"{' '.join(command)} in the pod's network namespace: {done.stderr.strip()}")

    def close(self) -> None:
        """Let the namespace go (it disappears with its last process)."""
        os.close(self._fd)


class Relay:
    """TCP from an address inside the namespace to one on the host: the pod's route to the API server.

    In a cluster the pod reaches the API server through the ``kubernetes`` Service; here the address
    the pod is told (``KUBERNETES_SERVICE_HOST``/``PORT``) is served inside its namespace and relayed,
    byte for byte (TLS stays end to end), to the real server on the host's loopback.
    """

    def __init__(self, namespace: NetworkNamespace, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self._target = target
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._listener = namespace.socket()
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(listen)
            self._listener.listen(16)
        except OSError:
            self._listener.close()
            raise
        self._start(self._accept, "pod-api-relay")

    def _start(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                inside, _ = self._listener.accept()
            except OSError:  # closed by close()
                return
            try:
                outside = socket.create_connection(self._target, timeout=5)
            except OSError:
                inside.close()  # the pod sees a reset, as it would from a server that is down
                continue
            outside.settimeout(None)
            with self._lock:
                self._sockets.update((inside, outside))
            remaining = [2]
            self._start(self._pump, "pod-api-relay-in", inside, outside, remaining)
            self._start(self._pump, "pod-api-relay-out", outside, inside, remaining)

    def _pump(self, source: socket.socket, sink: socket.socket, remaining: list[int]) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_WR)  # pass the half-close on: TLS and HTTP see the real end
        except OSError:
            pass
        with self._lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                for end in (source, sink):
                    self._sockets.discard(end)
                    end.close()

    def close(self) -> None:
        """Stop accepting, cut every relayed connection, and wait for the threads."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone would not
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for end in self._sockets:
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            for end in self._sockets:
                end.close()
            self._sockets.clear()


@dataclass(frozen=True)
class ProbeResult:
    """One probe as the kubelet judges it: success is a status from 200 to 399."""

    ok: bool
    detail: str


class _NamespacedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection whose socket is made inside the pod's network namespace."""

    def __init__(self, namespace: NetworkNamespace, host: str, port: int, timeout: float, tls: bool) -> None:
        super().__init__(host, port, timeout=timeout)
        self._namespace = namespace
        self._tls = tls

    def connect(self) -> None:
        raw = self._namespace.socket()
        try:
            raw.settimeout(self.timeout)
            raw.connect((self.host, self.port))
            if self._tls:
                # The kubelet's HTTPS probe does not verify the certificate (InsecureSkipVerify).
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                self.sock = context.wrap_socket(raw)
            else:
                self.sock = raw
        except BaseException:
            raw.close()
            raise


def http_get(namespace: NetworkNamespace, host: str, port: int, path: str, scheme: str,
             headers: dict[str, str], timeout: float) -> ProbeResult:
    """The kubelet's httpGet probe: one GET, no keep-alive, the probe's timeout, 2xx/3xx is success."""
    connection = _NamespacedConnection(namespace, host, port, timeout, scheme == "HTTPS")
    try:
        connection.request("GET", path, headers={"User-Agent": PROBE_USER_AGENT, "Accept": "*/*",
                                                 "Connection": "close", **headers})
        response = connection.getresponse()
        body = response.read(1024).decode(errors="replace").strip()
    except (OSError, http.client.HTTPException) as error:
        return ProbeResult(False, f"{scheme} GET {host}:{port}{path}: {error!r}")
    finally:
        connection.close()
    detail = f"{scheme} GET {host}:{port}{path}: {response.status} {body}"
    return ProbeResult(200 <= response.status < 400, detail)
