# The project's gates. `make run` and `make test` need nothing but Python 3.11: they create the
# virtualenv and install what they need.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
CERTS  ?= certs
GITREPOS ?= manifests/examples/gitrepos.yaml
IMAGE  ?= gitjob-webhook:dev
RECEIVER_LISTEN  ?= 127.0.0.1:8080
ADMISSION_LISTEN ?= 127.0.0.1:8443

.PHONY: run test lint bench certs image manifests deploy clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

certs: $(VENV)/.installed
	$(BIN)/gitjob-webhook certs --out $(CERTS)

run: certs
	$(BIN)/gitjob-webhook serve all --receiver-listen $(RECEIVER_LISTEN) \
		--admission-listen $(ADMISSION_LISTEN) --tls-cert $(CERTS)/tls.crt --tls-key $(CERTS)/tls.key \
		--gitrepos $(GITREPOS) --log-format text

test: $(VENV)/.installed-test k8s-binaries test-deps
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/flake8 controller tests hack
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

bench: $(VENV)/.installed-test
	$(BIN)/python -m pytest tests/bench -p no:cacheprovider -s -o testpaths=tests/bench

# Also tagged with the package version: the tag manifests/base/kustomization.yaml deploys.
image:
	$${CONTAINER_ENGINE:-docker} build -t $(IMAGE) \
		-t gitjob-webhook:$$(sed -n 's/^__version__ = "\(.*\)"/\1/p' controller/__init__.py) .

manifests: $(VENV)/.installed-test
	$(BIN)/kubectl kustomize manifests/

# Into the cluster of the current kubeconfig context, next to Fleet (README "Deploy"). The TLS
# Secret is made from certs/ here, not by kustomize (which cannot read outside manifests/, and a
# key does not belong in rendered output). Server-side apply replaces the selector of Fleet's
# Service gitjob instead of merging into it; the webhook configurations come last (kustomize order)
# and `certs inject` then gives them the CA.
deploy: certs $(VENV)/.installed-test
	$(BIN)/kubectl create secret tls gitjob-webhook-admission-tls --namespace cattle-fleet-system \
		--cert $(CERTS)/tls.crt --key $(CERTS)/tls.key --dry-run=client -o yaml \
		| $(BIN)/kubectl apply --server-side --field-manager=gitjob-webhook -f -
	$(BIN)/kubectl apply --server-side --force-conflicts --field-manager=gitjob-webhook -k manifests/
	$(BIN)/gitjob-webhook certs inject --ca $(CERTS)/ca.crt

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find $(CERTS) -mindepth 1 ! -name README.md -delete 2>/dev/null || true

# The real kube-apiserver, etcd and kubectl the tests run against, built from tools/k8s (needs Go)
# once per Kubernetes version into ~/.cache/gitjob-webhook/k8s/<version>/. Other components:
# `make k8s-binaries K8S_COMPONENTS="kubelet kube-proxy"`.
.PHONY: k8s-binaries
k8s-binaries:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) hack/k8s-binaries.py $(K8S_COMPONENTS)

# Debian packages the pod sandbox (tests/deploy/sandbox.py) runs with: bwrap (bubblewrap), setpriv and
# nsenter (util-linux), ip (iproute2). Installed when missing, without questions; the sandbox needs
# root anyway (its tests are skipped otherwise), so a user who is not root only gets a note.
SANDBOX_PACKAGES := bwrap:bubblewrap setpriv:util-linux nsenter:util-linux ip:iproute2
.PHONY: test-deps
test-deps:
	@missing=$$(for pair in $(SANDBOX_PACKAGES); do command -v $${pair%%:*} >/dev/null || echo $${pair#*:}; \
		done | sort -u | tr '\n' ' '); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "test-deps: not root, not installing: $$missing"; exit 0; fi; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing
