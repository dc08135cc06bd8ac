"""A real single-node Kubernetes from parts for the tests: kubelet, containerd 2, runc, a bridge CNI,
kube-proxy (iptables), the controllers and tests/cluster's control plane, running the project's image.

Modules: `artifacts` (the cached binaries and images), `host` (what the node changes on the machine,
and undoing it), `configs` (the components' configuration), `node` (the processes), `conftest`
(the fixtures).
"""
