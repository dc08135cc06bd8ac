"""The configuration files of the node's components, each with the reason for its non-default values.

The machines the tests run on are VMs with cgroup v1 in a hybrid layout, no systemd and no
CAP_SYS_RESOURCE: the values below are what make containerd 2, runc and a 1.37 kubelet run there,
and keep every path inside the node's folder.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass

import yaml

from node import host

CNI_PLUGINS = pathlib.Path("/usr/lib/cni")  # Debian's containernetworking-plugins
RUNC = pathlib.Path("/usr/sbin/runc")  # Debian's runc
NODE_NAME = "gitjob-webhook-node"


@dataclass(frozen=True)
class Paths:
    """Where each component keeps its state, under the node's folder."""

    root: pathlib.Path
    short: pathlib.Path  # sockets: a unix socket path has at most 107 characters

    @property
    def containerd(self) -> pathlib.Path:
        return self.root / "containerd"

    @property
    def containerd_socket(self) -> pathlib.Path:
        return self.short / "containerd.sock"

    @property
    def cni_conf(self) -> pathlib.Path:
        return self.root / "cni" / "net.d"

    @property
    def kubelet(self) -> pathlib.Path:
        return self.root / "kubelet"

    @property
    def logs(self) -> pathlib.Path:
        return self.root / "logs"


def containerd_config(paths: Paths, pause_image: str) -> str:
    """containerd 2 (config version 3), everything under the node's folder."""
    state = paths.containerd / "state"
    return f"""\
version = 3
root = "{paths.containerd / 'root'}"
state = "{state}"
temp = "{paths.containerd / 'tmp'}"
imports = []
# NRI would open a socket in /var/run/nri; the image verifier and /opt plugins read /opt/containerd.
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt",
                    "io.containerd.image-verifier.v1.bindir"]

[grpc]
  address = "{paths.containerd_socket}"
[ttrpc]
  address = "{paths.containerd_socket}.ttrpc"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    # Built locally (hack/node-binaries.py): registry.k8s.io cannot be reached.
    sandbox = "{pause_image}"

[plugins."io.containerd.cri.v1.runtime"]
  # The sandbox's oom_score_adj of -998 needs CAP_SYS_RESOURCE, which this machine does not grant:
  # clamp it to containerd's own score instead of failing RunPodSandbox.
  restrict_oom_score_adj = true
  # Network namespace handles under the node's state, not /var/run/netns.
  netns_mounts_under_state_dir = true
  # No CDI devices: do not watch /etc/cdi and /var/run/cdi.
  cdi_spec_dirs = []
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        Root = "{state / 'runc'}"
        # No systemd here: the kubelet's cgroupDriver is cgroupfs too.
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{CNI_PLUGINS}"]
    conf_dir = "{paths.cni_conf}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "{paths.short / 's'}"
"""


def cni_conflist(paths: Paths) -> str:
    """bridge + portmap. isGateway is off because the bridge plugin would then switch on the host's
    ip_forward; the bridge and its address are made beforehand (host.create_bridge). Pods get routes
    to their subnet and the Service range only: no default route, so nothing leaves the host, and
    no masquerading is needed (ipMasq off)."""
    return json.dumps({
        "cniVersion": "1.0.0",
        "name": "gitjob-webhook-node",
        "plugins": [
            {"type": "bridge", "bridge": host.BRIDGE, "isGateway": False, "isDefaultGateway": False,
             "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(paths.root / "cni" / "ipam"),
                      "ranges": [[{"subnet": str(host.POD_CIDR), "gateway": host.NODE_IP}]],
                      "routes": [{"dst": str(host.SERVICE_CIDR), "gw": host.NODE_IP}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": False},
        ],
    }, indent=1)


def kubelet_config(paths: Paths, pki_dir: pathlib.Path, port: int, healthz_port: int) -> str:
    """The KubeletConfiguration of a 1.37 kubelet on cgroup v1 without CAP_SYS_RESOURCE."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # Kubernetes >= 1.35 refuses cgroup v1 unless told otherwise; no systemd, so cgroupfs.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{host.NAME}",
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "address": host.NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(pki_dir / "kubelet.crt"),
        "tlsPrivateKeyFile": str(pki_dir / "kubelet.key"),
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki_dir / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        # Lowering its own oom_score_adj (default -999) needs CAP_SYS_RESOURCE: keep the current 0.
        "oomScoreAdj": 0,
        # Only read the kernel tunables (the mount namespace shows the values it wants, host.py).
        "protectKernelDefaults": True,
        "failSwapOn": False,
        "podLogsDir": str(paths.kubelet / "pod-logs"),
        "resolvConf": "/etc/resolv.conf",
        "clusterDNS": [],
        "maxPods": 30,
        "serializeImagePulls": False,
        # The machine's disk is shared and often well used: evict only when nearly full, and never
        # garbage-collect the imported image (it cannot be pulled back).
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A renewed Secret reaches its volume at the pod's next sync: 10 s instead of a minute keeps
        # the certificate-rotation test short (the product must cope with either).
        "syncFrequency": "10s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "enableServer": True,
        "staticPodPath": "",
    }
    return yaml.safe_dump(config)


def kube_proxy_config(kubeconfig: pathlib.Path, healthz_port: int, metrics_port: int) -> str:
    """kube-proxy in iptables mode, touching no sysctl and no address but the node's."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": host.NODE_IP,
        "clusterCIDR": str(host.POD_CIDR),
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # NodePorts, if any, only on the node's address, never on the machine's own interfaces.
        "nodePortAddresses": [f"{host.NODE_IP}/32"],
        "oomScoreAdj": 0,
        # Zero: leave the host's conntrack sysctls alone.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s",
                      "udpTimeout": "0s", "udpStreamTimeout": "0s"},
        # localhostNodePorts would set net.ipv4.conf.all.route_localnet on the host.
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False, "syncPeriod": "30s",
                     "minSyncPeriod": "0s"},
    }
    return yaml.safe_dump(config)
