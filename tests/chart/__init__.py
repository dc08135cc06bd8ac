"""The Helm chart (charts/gitjob-webhook): rendered against kustomize's objects, and installed, upgraded,
rolled back and removed on the real kube-apiserver with the helm tools/helm builds.

Modules: `helm` (the cached binary, run in a home of its own), `equivalence` (what may differ from
kustomize's rendering), `watching` (the order of writes, from the API server's watch events).
"""
