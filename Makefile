# The two README commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.glimpse-proxy-installed
OPERATOR_STAMP := $(VENV)/.glimpse-operator-installed
TEST_STAMP := $(VENV)/.glimpse-test-installed
# checkov in a venv of its own: it pins versions (boto3, packaging, …) the proxy's environment must not take
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

FRONTEND_DEPS := frontend/node_modules/.glimpse-installed
FRONTEND_BUILD := frontend/dist/index.html
# React's development build, where StrictMode really mounts twice: the browser test runs the loop on it too
FRONTEND_DEV_BUILD := frontend/dist-dev/index.html
FRONTEND_SOURCES := $(shell find frontend/src -type f 2>/dev/null) frontend/index.html frontend/vite.config.ts \
	frontend/tsconfig.json frontend/package.json

.PHONY: run run-operator test lint test-proxy test-operator test-delivery frontend frontend-test e2e manifests soak bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[proxy]'
	touch $@

$(OPERATOR_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[operator]'
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(CHECKOV_STAMP):
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $@

$(FRONTEND_DEPS): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(FRONTEND_BUILD): $(FRONTEND_DEPS) $(FRONTEND_SOURCES)
	cd frontend && npm run build

$(FRONTEND_DEV_BUILD): $(FRONTEND_DEPS) $(FRONTEND_SOURCES)
	cd frontend && npm run build:dev

## frontend: build the page into frontend/dist (the proxy serves it at /)
frontend: $(FRONTEND_BUILD)

## run: install into .venv, build the page if npm is here, start the proxy on 127.0.0.1:8080 (local disk, in-memory store)
run: $(STAMP)
	@command -v npm >/dev/null && $(MAKE) --no-print-directory $(FRONTEND_BUILD) \
		|| echo "The page was not built (needs Node.js and npm): serving the API only."
	$(BIN)/glimpse serve

## run-operator: run the operator locally against the current kubeconfig
run-operator: $(OPERATOR_STAMP)
	$(BIN)/glimpse-operator

## test: install the test dependencies, lint, type-check, check the import contracts, build the page, run Vitest and the whole pytest suite
test: $(TEST_STAMP) $(CHECKOV_STAMP) $(FRONTEND_BUILD) $(FRONTEND_DEV_BUILD)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	cd frontend && npm test
	$(BIN)/python -m pytest

## frontend-test: the page's Vitest suite only
frontend-test: $(FRONTEND_DEPS)
	cd frontend && npm test

## e2e: the full-loop browser test only (Chromium at /usr/bin/chromium)
e2e: $(TEST_STAMP) $(FRONTEND_BUILD) $(FRONTEND_DEV_BUILD)
	$(BIN)/python -m pytest tests/e2e

## manifests: regenerate manifests/install.yaml from the chart
manifests: $(TEST_STAMP)
	$(BIN)/python tools/render_install.py

## bench: TTFT overhead and CPU per stream vs direct, the aiohttp and transport floors, LiteLLM and nginx at C=1,50,200,500; uploads (bench/README.md)
bench: $(TEST_STAMP)
	command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx-light) || true
	$(BIN)/python bench/run.py

## soak: 1,000 streams over 5 minutes with faults, figures into docs/reliability.md (not in CI)
soak: $(TEST_STAMP)
	$(BIN)/python -m tests.proxy.reliability.soak

## lint: ruff, mypy (strict) on service/ and operator/, and the import contracts (pyproject.toml)
lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## test-proxy, test-operator, test-delivery: the pytest tests of one program (tests/proxy/, tests/operator/, tests/delivery/)
test-proxy: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/proxy

test-operator: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/operator

test-delivery: $(TEST_STAMP) $(CHECKOV_STAMP)
	$(BIN)/python -m pytest tests/delivery

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build *.egg-info .pytest_cache .ruff_cache frontend/node_modules frontend/dist frontend/dist-dev
