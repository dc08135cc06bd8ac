# The project's gates. `make run` needs nothing but Python 3.11; `make test` also Go 1.26 (it builds
# the real kube-apiserver the tests run against, once). Both create the virtualenv they need.
# `make` alone lists the targets.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
CERTS  ?= certs
GITREPOS ?= manifests/examples/gitrepos.yaml
IMAGE  ?= gitjob-webhook:dev
RECEIVER_LISTEN  ?= 127.0.0.1:8080
ADMISSION_LISTEN ?= 127.0.0.1:8443
# `make run` serves the example file, never a cluster, unless asked: `make run STORE=kubernetes`.
STORE  ?= offline
# Your kubectl (it matches your cluster); else the one the test extras install (1.37: clusters 1.36-1.38).
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo $(BIN)/kubectl)

.DEFAULT_GOAL := help
.PHONY: help run test lint bench certs image manifests deploy chart clean distclean

help:
	@echo "make run        both servers on the example offline store (STORE=kubernetes: your cluster)"
	@echo "make test       the whole suite (builds kube-apiserver and etcd once; needs Go >= 1.26)"
	@echo "make lint       flake8, mypy --strict, hadolint"
	@echo "make bench      the benchmarks; writes BENCHMARKS.md"
	@echo "make certs      a development CA and serving certificate in certs/"
	@echo "make image      the container image (docker, or CONTAINER_ENGINE=podman)"
	@echo "make manifests  the kustomize output, what make deploy applies"
	@echo "make deploy     into the cluster of your current kubeconfig context (README: Deploy)"
	@echo "make chart      helm lint --strict and helm package of charts/gitjob-webhook into dist/"
	@echo "make helm       build helm once into ~/.cache/gitjob-webhook/helm/ (make helm prints where)"
	@echo "make test-node  the node tests alone (a single-node cluster from parts; root)"
	@echo "make k8s-binaries  build kube-apiserver, etcd and kubectl once into ~/.cache/gitjob-webhook/k8s/"
	@echo "make clean      the virtualenv, caches and node_modules (certs/ is kept); make distclean: certs/ too"

# The installs say what they do on stderr, quietly: stdout is the targets' own (`make manifests >
# all.yaml` on a fresh clone). -qq: pip's errors only (setuptools prints a notice on every editable
# install). A Python older than 3.11 is refused before it makes a virtualenv every later run reuses.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { echo "make: \
	$(PYTHON) is not Python 3.11 or newer: install python3.11, or name one with PYTHON=..." >&2; exit 2; }
	@echo "make: creating the virtualenv $(VENV) with $(PYTHON)" >&2
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -qq --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	@echo "make: installing gitjob-webhook into $(VENV)" >&2
	@$(BIN)/python -m pip install -qq -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@echo "make: installing the test extras into $(VENV)" >&2
	@$(BIN)/python -m pip install -qq -e '.[test]'
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-test
	@echo "make: installing the lint tools into $(VENV)" >&2
	@$(BIN)/python -m pip install -qq -e '.[test,dev]'
	@touch $@

certs: $(VENV)/.installed
	$(BIN)/gitjob-webhook certs --out $(CERTS)

run: certs
	$(BIN)/gitjob-webhook serve all --receiver-listen $(RECEIVER_LISTEN) \
		--admission-listen $(ADMISSION_LISTEN) --tls-cert $(CERTS)/tls.crt --tls-key $(CERTS)/tls.key \
		--store $(STORE) $(if $(filter offline,$(STORE)),--gitrepos $(GITREPOS)) --log-format text

# Three processes (most tests wait on servers, not the CPU), each taking whole files: a file's
# fixtures, and the node tests' single node, stay in one process.
test: $(VENV)/.installed-test k8s-binaries helm test-deps node-deps tests/interop/node_modules
	$(BIN)/python -m pytest -n 3 --dist loadfile

lint: $(VENV)/.installed-dev
	$(BIN)/flake8 controller tests hack
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

bench: $(VENV)/.installed-test k8s-binaries
	$(BIN)/python -m pytest tests/bench -p no:cacheprovider -s -o testpaths=tests/bench

# Also tagged with the package version: the tag manifests/base/kustomization.yaml deploys.
image:
	$${CONTAINER_ENGINE:-docker} build -t $(IMAGE) \
		-t gitjob-webhook:$$(sed -n 's/^__version__ = "\(.*\)"/\1/p' controller/__init__.py) .

# Only the YAML on stdout (make's own echo off), so that `make manifests > all.yaml` works.
manifests: $(VENV)/.installed-test
	@$(KUBECTL) kustomize manifests/

# Into the cluster of the current kubeconfig context, next to Fleet (README "Deploy"). The TLS
# Secret is made from certs/ here, not by kustomize (which cannot read outside manifests/, and a
# key does not belong in rendered output). Server-side apply replaces the selector of Fleet's
# Service gitjob instead of merging into it; the webhook configurations come last (kustomize order)
# and `certs inject` then gives them the CA.
deploy: certs $(VENV)/.installed-test
	@context=$$($(KUBECTL) config current-context 2>/dev/null) || { echo "deploy: kubectl has no current \
	context (set KUBECONFIG, or kubectl config use-context NAME)" >&2; exit 2; }; \
	echo "deploy: into kubectl context $$context"; \
	versions=$$($(KUBECTL) version -o json 2>/dev/null) || { echo "deploy: the cluster of context \
	$$context does not answer (kubectl version failed; kubectl cluster-info says why)" >&2; exit 1; }; \
	echo "$$versions" | $(BIN)/python hack/kubectl-skew.py | sed 's/^/deploy: /'
	$(KUBECTL) create secret tls gitjob-webhook-admission-tls --namespace cattle-fleet-system \
		--cert $(CERTS)/tls.crt --key $(CERTS)/tls.key --dry-run=client -o yaml \
		| $(KUBECTL) apply --server-side --field-manager=gitjob-webhook -f -
	$(KUBECTL) apply --server-side --force-conflicts --field-manager=gitjob-webhook -k manifests/
	$(BIN)/gitjob-webhook certs inject --ca $(CERTS)/ca.crt

# certs/ stays: its CA is in the clusters you deployed to (README: Rotating certificates).
clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .hypothesis tests/interop/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	@echo "distclean: removing $(CERTS)/: a cluster that trusts its CA needs 'make deploy' again"
	find $(CERTS) -mindepth 1 ! -name README.md -delete 2>/dev/null || true

# The real kube-apiserver, etcd and kubectl the tests run against, built from tools/k8s (needs Go)
# once per Kubernetes version into ~/.cache/gitjob-webhook/k8s/<version>/. Other components:
# `make k8s-binaries K8S_COMPONENTS="kubelet kube-proxy"`.
.PHONY: k8s-binaries
k8s-binaries:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) hack/k8s-binaries.py $(K8S_COMPONENTS)

# helm, built from tools/helm (needs Go) once per version into ~/.cache/gitjob-webhook/helm/<version>/.
HELM = $(shell $(if $(wildcard $(BIN)/python),$(BIN)/python,python3) hack/helm-binary.py --path)
.PHONY: helm
helm:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) hack/helm-binary.py

# The chart, linted as strictly as helm can, then packaged into dist/ (git-ignored).
chart: helm
	$(HELM) lint --strict charts/gitjob-webhook --namespace cattle-fleet-system
	$(HELM) package charts/gitjob-webhook --destination dist

# Debian packages the pod sandbox (tests/deploy/sandbox.py) runs with: bwrap (bubblewrap), setpriv and
# nsenter (util-linux), ip (iproute2); and promtool (prometheus) for the monitoring rules' tests
# (tests/monitoring). Installed when missing, without questions; the sandbox needs root anyway (its
# tests are skipped otherwise, as are promtool's), so a user who is not root only gets a note.
SANDBOX_PACKAGES := bwrap:bubblewrap setpriv:util-linux nsenter:util-linux ip:iproute2 promtool:prometheus
.PHONY: test-deps
test-deps:
	@missing=$$(for pair in $(SANDBOX_PACKAGES); do command -v $${pair%%:*} >/dev/null || echo $${pair#*:}; \
		done | sort -u | tr '\n' ' '); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "test-deps: not root, not installing: $$missing"; exit 0; fi; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing

# The node tests (tests/node, README "Testing on a real node"): a single-node Kubernetes from parts
# (kubelet, containerd 2, runc, bridge CNI, kube-proxy) running the image podman builds from the
# Dockerfile. `make test` runs them too; `make test-node` runs them alone. What they run is built once
# into ~/.cache/gitjob-webhook/ (`make node-artifacts`, or by the first test session). They need root
# and these Debian packages, installed like test-deps' (skipped when not root).
NODE_PACKAGES := podman:podman runc:runc debootstrap:debootstrap iptables:iptables nft:nftables \
	unshare:util-linux /usr/lib/cni/bridge:containernetworking-plugins
NODE_COMPONENTS := kube-apiserver etcd kubectl kubelet kube-controller-manager kube-scheduler kube-proxy
.PHONY: node-deps node-artifacts test-node
node-deps:
	@missing=$$(for pair in $(NODE_PACKAGES); do command -v $${pair%%:*} >/dev/null || echo $${pair#*:}; \
		done | sort -u | tr '\n' ' '); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "node-deps: not root, not installing: $$missing"; exit 0; fi; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing

node-artifacts: node-deps
	$(MAKE) --no-print-directory k8s-binaries K8S_COMPONENTS="$(NODE_COMPONENTS)"
	$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) hack/node-binaries.py
	$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) hack/node-image.py

test-node: $(VENV)/.installed-test node-artifacts
	$(BIN)/python -m pytest tests/node -o testpaths=tests/node

# The npm standardwebhooks package, an independent implementation the signature tests compare with
# (versions pinned by tests/interop/package-lock.json).
tests/interop/node_modules: tests/interop/package.json tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error
	touch $@
