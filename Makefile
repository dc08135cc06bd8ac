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

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/flake8 controller tests
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

bench: $(VENV)/.installed-test
	$(BIN)/python -m pytest tests/bench -p no:cacheprovider -s -o testpaths=tests/bench

image:
	docker build -t $(IMAGE) .

manifests: $(VENV)/.installed-test
	$(BIN)/kubectl kustomize manifests/

deploy: $(VENV)/.installed-test
	$(BIN)/kubectl apply -k manifests/

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find $(CERTS) -mindepth 1 ! -name README.md -delete 2>/dev/null || true
