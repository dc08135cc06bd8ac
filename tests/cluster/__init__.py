"""A real kube-apiserver and etcd for the tests, built from Go modules (hack/k8s-binaries.py).

Modules: `binaries` (the per-version cache), `pki` (test CA, serving certificates, ServiceAccount
key, admin token), `controlplane` (the processes), `isolation` (per-test clean-up by namespace and
UID), `faults` (a fault-injecting TLS proxy), `fixtures` (the pytest plugin).
"""
