"""A single-node Kubernetes from parts: etcd and kube-apiserver (tests/cluster's ControlPlane, on the
node's address), containerd 2 with runc and a bridge CNI, the kubelet, kube-proxy (iptables),
kube-controller-manager and kube-scheduler, all at one Kubernetes version.

Every component keeps its state and log in the node's folder; what it changes on the host is made
and unmade by ``host`` (and undone at the next start if this run crashed).
"""

from __future__ import annotations

import datetime
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cluster.binaries import Binaries
from cluster.controlplane import ControlPlane, Process, die_with_parent
from cluster.fixtures import prepare
from cluster.pki import Authority
from node import configs, host
from node.artifacts import Artifacts
from support.waiting import free_port, wait_for


def _in_cgroup(cgroup: str) -> Callable[[], None]:
    def prepare_child() -> None:
        # A pytest killed with SIGKILL must not leave the node running; the cgroup lets teardown (or
        # the next run) find everything the component started, shims and containers included.
        die_with_parent()
        host.join_cgroup(cgroup)
    return prepare_child


def _client_certificate(authority: Authority, directory: pathlib.Path, stem: str, common_name: str,
                        organisation: str) -> tuple[pathlib.Path, pathlib.Path]:
    """A client certificate (the API server's, to call kubelets) signed by the control plane's CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = x509.load_pem_x509_certificate(authority.cert_pem)
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(authority.key, hashes.SHA256()))
    cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


class NodeControlPlane(ControlPlane):
    """tests/cluster's etcd and kube-apiserver, with the API server on the node's address (pods reach
    it through the `kubernetes` Service), ServiceAccount admission on, and kubelet client
    credentials. These flags replace the control plane's own of the same name."""

    def __init__(self, workdir: pathlib.Path, kubernetes: Binaries) -> None:
        super().__init__(workdir, kubernetes)
        files = self.pki
        files.authority.write(files.serving_cert.parent, "apiserver", [
            "localhost", "127.0.0.1", host.NODE_IP, host.KUBERNETES_SERVICE_IP, "kubernetes",
            "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"])
        client_cert, client_key = _client_certificate(files.authority, files.serving_cert.parent,
                                                      "apiserver-kubelet-client", "kube-apiserver",
                                                      "system:masters")
        self.apiserver_args = (
            f"--bind-address={host.NODE_IP}", f"--advertise-address={host.NODE_IP}",
            f"--service-cluster-ip-range={host.SERVICE_CIDR}",
            # The kubernetes Service's endpoint is the node's address, which the reconciler accepts.
            "--endpoint-reconciler-type=lease",
            # The controller manager runs here: Pods get their ServiceAccount token volumes (a list
            # flag given twice is appended to, so the control plane's value is dropped, not overridden).
            "--disable-admission-plugins=",
            f"--kubelet-client-certificate={client_cert}", f"--kubelet-client-key={client_key}",
            f"--kubelet-certificate-authority={files.ca_file}",
            "--kubelet-preferred-address-types=InternalIP",
        )

    @property
    def url(self) -> str:
        return f"https://{host.NODE_IP}:{self.port}"

    def _apiserver_flags(self, port: int) -> list[str]:
        replaced = {flag.split("=", 1)[0] for flag in self.apiserver_args}
        return [flag for flag in super()._apiserver_flags(port)[:-len(self.apiserver_args)]
                if flag.split("=", 1)[0] not in replaced] + list(self.apiserver_args)


class Node:
    """The whole node. ``start()`` brings it up (Node Ready, kube-proxy serving, ServiceAccounts made);
    ``stop()`` takes it down and returns what it could not remove from the host."""

    def __init__(self, workdir: pathlib.Path, artifacts: Artifacts) -> None:
        self.workdir = workdir
        self.artifacts = artifacts
        short = pathlib.Path(tempfile.mkdtemp(prefix="gjw-", dir="/tmp"))
        self.paths = configs.Paths(workdir, short)
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        self.lease = host.HostLease()
        self.timings: dict[str, float] = {}
        self.components = {name: Process(name, self.paths.logs / f"{name}.log") for name in (
            "containerd", "kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler")}
        self.plane: NodeControlPlane | None = None
        self.namespace: host.MountNamespace | None = None
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.recovered: list[str] = []
        self.image_digest = ""

    # lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Bring the node up step by step, timing each; on failure the caller calls ``stop()``."""
        self._timed("host", self._prepare_host)
        self._timed("control plane", self._start_control_plane)
        self._timed("containerd", self._start_containerd)
        self._timed("images", self._import_images)
        self._timed("kubelet", self._start_kubelet)
        self._timed("controllers", self._start_controllers)

    def stop(self) -> list[str]:
        """Stop everything, remove the node's host changes and bulky state; what is left, if anything."""
        for name in ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "containerd"):
            self.components[name].stop()
        left: list[str] = []
        try:
            host.kill_cgroup(host.NAME)  # shims and containers: containerd does not take them along
        except AssertionError as error:
            left.append(str(error))
        if self.namespace is not None:
            self.namespace.stop()
        if self.plane is not None:
            self.plane.stop()
        left += self.lease.release()
        # Logs and configuration stay for the report; image layers and snapshots (hundreds of MB
        # per session) do not.
        for bulky in (self.paths.containerd / "root", self.paths.kubelet / "pods", self.paths.short):
            shutil.rmtree(bulky, ignore_errors=True)
        return left

    def _timed(self, step: str, action: Callable[[], None]) -> None:
        started = time.monotonic()
        action()
        self.timings[step] = time.monotonic() - started

    def _prepare_host(self) -> None:
        self.lease.acquire()
        self.recovered = self.lease.recovered
        clashes = host.routes_overlapping()
        if clashes:
            raise RuntimeError(f"the node's ranges {host.POD_CIDR} and {host.SERVICE_CIDR} are routed "
                               f"already: {clashes}")
        self.lease.begin(self.workdir, self.paths.short)
        host.create_cgroup(f"{host.NAME}/runtime")
        host.create_bridge()
        self.namespace = host.MountNamespace(self.workdir / "namespace", die_with_parent)
        self.namespace.start()

    def _start_control_plane(self) -> None:
        self.plane = NodeControlPlane(self.workdir / "control-plane", self.artifacts.kubernetes)
        self.plane.start()
        self.plane.write_kubeconfig(self.kubeconfig)
        prepare(self.plane)  # the GitRepo CRD and Fleet's namespaces, as the other suites have them

    def _environment(self) -> dict[str, str]:
        # containerd finds its shim on PATH; runc, iptables and nft are in /usr/sbin.
        return {"PATH": f"{self.artifacts.containerd_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                        f"/usr/bin:/sbin:/bin", "HOME": str(self.workdir), "LANG": "C.UTF-8"}

    def _in_namespace(self, command: Sequence[str]) -> list[str]:
        assert self.namespace is not None
        return self.namespace.command(command)

    def _start_containerd(self) -> None:
        self.paths.cni_conf.mkdir(parents=True, exist_ok=True)
        (self.paths.cni_conf / "10-gitjob-webhook-node.conflist").write_text(configs.cni_conflist(self.paths))
        config = self.paths.containerd / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(configs.containerd_config(self.paths, self.artifacts.pause_image))
        self.components["containerd"].start(
            self._in_namespace([str(self.artifacts.containerd("containerd")), "--config", str(config)]),
            env=self._environment(), preexec=_in_cgroup(f"{host.NAME}/runtime"))
        self._wait_running("containerd", lambda: self.ctr("version").returncode == 0, 60)

    def _import_images(self) -> None:
        for archive in (self.artifacts.pause_archive, self.artifacts.image_archive):
            imported = self.ctr("images", "import", "--local", str(archive), timeout=300)
            if imported.returncode != 0:
                raise RuntimeError(f"ctr images import {archive}: {imported.stderr.strip()}")
        listing = self.ctr("images", "list").stdout.splitlines()
        name = self.artifacts.image["name"]
        row = next((line.split() for line in listing if line.startswith(name + " ")), None)
        if row is None:
            raise RuntimeError(f"{name} is not in containerd after the import: {listing}")
        self.image_digest = row[2]

    def _start_kubelet(self) -> None:
        assert self.plane is not None
        kubelet_pki = self.paths.kubelet / "pki"
        kubelet_pki.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.plane.ca_file, kubelet_pki / "ca.crt")
        self.plane.pki.authority.write(kubelet_pki, "kubelet", [configs.NODE_NAME, host.NODE_IP])
        config = self.paths.kubelet / "config.yaml"
        config.write_text(configs.kubelet_config(self.paths, kubelet_pki, free_port(), free_port()))
        self.components["kubelet"].start(self._in_namespace([
            str(self.artifacts.kubernetes.path("kubelet")), f"--config={config}",
            f"--kubeconfig={self.kubeconfig}", f"--root-dir={self.paths.kubelet / 'root'}",
            f"--hostname-override={configs.NODE_NAME}", f"--node-ip={host.NODE_IP}", "--v=1",
        ]), env=self._environment())
        self._wait_running("kubelet", self._node_ready, 120)
        proxy_config = self.paths.root / "kube-proxy.yaml"
        proxy_config.write_text(configs.kube_proxy_config(self.kubeconfig, free_port(), free_port()))
        self.components["kube-proxy"].start(self._in_namespace([
            str(self.artifacts.kubernetes.path("kube-proxy")), f"--config={proxy_config}", "--v=1",
        ]), env=self._environment())
        self._wait_running("kube-proxy", lambda: bool(host.kube_chains()) and self._service_programmed(), 60)

    def _start_controllers(self) -> None:
        assert self.plane is not None
        files = self.plane.pki
        self.components["kube-controller-manager"].start([
            str(self.artifacts.kubernetes.path("kube-controller-manager")), f"--kubeconfig={self.kubeconfig}",
            "--secure-port=0", "--leader-elect=false", f"--root-ca-file={files.ca_file}",
            f"--service-account-private-key-file={files.service_account_key}",
            f"--service-cluster-ip-range={host.SERVICE_CIDR}", "--v=1",
        ], env=self._environment())
        self.components["kube-scheduler"].start([
            str(self.artifacts.kubernetes.path("kube-scheduler")), f"--kubeconfig={self.kubeconfig}",
            "--secure-port=0", "--leader-elect=false", "--v=1",
        ], env=self._environment())
        # The ServiceAccount controller made `default` and the root CA was published: Pods can start.
        self._wait_running("kube-controller-manager", lambda: self.api(
            "GET", "/api/v1/namespaces/cattle-fleet-system/configmaps/kube-root-ca.crt").status_code == 200
            and self.api("GET", "/api/v1/namespaces/cattle-fleet-system/serviceaccounts/default"
                         ).status_code == 200, 60)

    def _wait_running(self, name: str, ready: Callable[[], bool], timeout: float) -> None:
        component = self.components[name]

        def up() -> bool:
            if not component.running():
                raise RuntimeError(f"{name} exited while starting:\n{component.tail()}")
            return ready()
        try:
            wait_for(lambda: up(), timeout=timeout, interval=0.25, message=f"{name} to become ready")
        except AssertionError as error:
            raise RuntimeError(f"{error}\n{component.tail()}") from None

    def _node_ready(self) -> bool:
        node = self.api("GET", f"/api/v1/nodes/{configs.NODE_NAME}")
        if node.status_code != 200:
            return False
        conditions = node.json().get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _service_programmed(self) -> bool:
        listing = subprocess.run(["iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES"], capture_output=True,
                                 text=True)
        return f"-d {host.KUBERNETES_SERVICE_IP}/32" in listing.stdout

    # access ---------------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Mapping[str, Any] | None = None,
            content_type: str = "application/json", timeout: float = 10.0) -> requests.Response:
        """One request to the API server as the admin."""
        assert self.plane is not None
        return self.plane.request(method, path, body, content_type=content_type, timeout=timeout)

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """containerd's ctr in the k8s.io namespace (the kubelet's), from the node's mount namespace."""
        command = [str(self.artifacts.containerd("ctr")), "--address", str(self.paths.containerd_socket),
                   "--namespace", "k8s.io", *args]
        return subprocess.run(self._in_namespace(command), capture_output=True, text=True, timeout=timeout,
                              env=self._environment())

    def kubectl_env(self, home: pathlib.Path) -> dict[str, str]:
        """The environment of a kubectl (or `make deploy`) against the node, as the admin."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(home)}

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 60,
                cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
        """The cached kubectl against the node as the admin; never raises on failure."""
        command = [str(self.artifacts.kubernetes.path("kubectl")), *args]
        return subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout,
                              env=self.kubectl_env(self._home()), cwd=cwd)

    def shell(self, command: str, path: pathlib.Path,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A shell command line (a README's) against the node, with ``path`` first on PATH."""
        env = self.kubectl_env(self._home())
        env["PATH"] = f"{path}:{env.get('PATH', '')}"
        return subprocess.run(["bash", "-euo", "pipefail", "-c", command], capture_output=True, text=True,
                              timeout=timeout, env=env)

    def _home(self) -> pathlib.Path:
        home = self.workdir / "kubectl-home"
        home.mkdir(exist_ok=True)
        return home

    # reporting ------------------------------------------------------------------------------------

    def versions(self) -> str:
        """One line: the versions the node runs and the image it runs."""
        assert self.plane is not None
        runc = subprocess.run([str(configs.RUNC), "--version"], capture_output=True, text=True).stdout.split()
        containerd = self.ctr("version").stdout
        server = containerd.split("Server:", 1)[-1].split()
        containerd_version = server[server.index("Version:") + 1] if "Version:" in server else "?"
        kubelet = self.api("GET", f"/api/v1/nodes/{configs.NODE_NAME}").json()["status"]["nodeInfo"]
        return (f"Kubernetes {self.plane.apiserver_version()} (kubelet {kubelet['kubeletVersion']}, "
                f"kube-proxy iptables, etcd {self.plane.etcd_version()}), containerd {containerd_version}, "
                f"runc {runc[2] if len(runc) > 2 else '?'}, cgroup v1 ({kubelet['kernelVersion']}), "
                f"image {self.artifacts.image['name']} {self.image_digest}")

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        """The last lines of every component's log."""
        tails = {name: component.tail(lines) for name, component in self.components.items()}
        if self.plane is not None:
            for name in ("etcd", "kube-apiserver"):
                tails[name] = self.plane.log_tail(name, lines)
        return tails
