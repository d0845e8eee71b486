# The two commands the README promises: `make dev` and `make test`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export GOTOOLCHAIN := local
export CGO_ENABLED := 0

.PHONY: dev test test-suite lint bench crds clean kind kind-test kind-delete

## Both distributions, editable: the operator (certsmith, with the test tools) and certsmith-devtools.
$(BIN)/.installed: pyproject.toml devtools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]' -e ./devtools
	touch $@

## Run a local control plane with the CRDs installed, until Ctrl-C.
dev: $(BIN)/.installed
	$(BIN)/certsmith dev

## A kind cluster "certsmith" running the operator from its image (installed with deploy/) and the demo
## chain; reused if it exists. Needs Docker. Without a reachable registry, add OFFLINE=1 (the node and
## operator images are then built here; this is also the fallback when pulling fails).
kind: $(BIN)/.installed
	$(BIN)/python -m certsmith_devtools.kind up $(if $(OFFLINE),--offline)

## The Pod-level tests against the cluster `make kind` made (it stays).
kind-test: $(BIN)/.installed
	CERTSMITH_KIND_CLUSTER=certsmith $(BIN)/pytest tests/kind

kind-delete: $(BIN)/.installed
	$(BIN)/python -m certsmith_devtools.kind down

## Lint, type-check, install the system packages the tests need, build the control plane, the
## operator image, helm and kube-score if not cached, run every test with Docker's daemon up, check
## nothing was left running.
test: lint
	hack/test-deps.sh
	hack/with-dockerd.sh $(MAKE) --no-print-directory test-suite

## Each group at once (hack/in-parallel.sh): the control plane's Go build beside the operator image
## (a debootstrap and a docker build: mostly downloads), then the tools that need neither. Cold, the
## overlap saves minutes; warm, each step finds its cache.
test-suite: $(BIN)/.installed
	hack/in-parallel.sh "$(BIN)/python -m certsmith_devtools.image" \
		"$(BIN)/python -c 'from certsmith_devtools.build import ensure_binaries; ensure_binaries()'"
	hack/in-parallel.sh "$(BIN)/python -m certsmith_devtools.kindnode" "$(BIN)/python -m certsmith_devtools.zlint" \
		"$(BIN)/python -m certsmith_devtools.pebble" "$(BIN)/python -m certsmith_devtools.stepca" \
		"$(BIN)/python -m certsmith_devtools.charttools"
	$(BIN)/pytest
	$(BIN)/python hack/check-no-orphans.py

lint: $(BIN)/.installed
	$(BIN)/ruff check operator devtools tests hack bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint Dockerfile

## Benchmarks on a fresh local control plane; results belong in docs/benchmarks.md.
bench: $(BIN)/.installed
	$(BIN)/python bench/burst.py --count 100 --count 1000 --key ecdsa --key rsa
	$(BIN)/python bench/ratio.py --count 1000
	$(BIN)/python bench/scale.py mixed
	$(BIN)/python bench/loop_lag.py
	$(BIN)/python bench/scale.py storm
	$(BIN)/python bench/scale.py idle-restart
	$(BIN)/python bench/scale.py bystanders
	$(BIN)/python bench/metrics.py
	$(BIN)/python bench/acme_orders.py --count 100

## Regenerate crds/clusterissuer.yaml after editing crds/issuer.yaml, and the chart's copies.
crds:
	$(PYTHON) hack/render-clusterissuer-crd.py
	$(PYTHON) hack/sync-chart.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
