# The two README commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.glimpse-proxy-installed
OPERATOR_STAMP := $(VENV)/.glimpse-operator-installed
TEST_STAMP := $(VENV)/.glimpse-test-installed
# checkov in a venv of its own: it pins versions (boto3, packaging, …) the proxy's environment must not take
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

FRONTEND_DEPS := frontend/node_modules/.glimpse-installed
# the Gateway API's schemas (npm: @kubernetes-models/gateway-api), which the delivery tests hold every HTTPRoute to
GATEWAY_API_DIR := tests/delivery/gateway_api
GATEWAY_API_DEPS := $(GATEWAY_API_DIR)/node_modules/.glimpse-installed
# the Prometheus Operator's schemas (npm: @kubernetes-models/prometheus-operator): the monitors and PrometheusRule
PROMETHEUS_OPERATOR_DIR := tests/delivery/prometheus_operator
PROMETHEUS_OPERATOR_DEPS := $(PROMETHEUS_OPERATOR_DIR)/node_modules/.glimpse-installed
FRONTEND_BUILD := frontend/dist/index.html
# React's development build, where StrictMode really mounts twice: the browser test runs the loop on it too
FRONTEND_DEV_BUILD := frontend/dist-dev/index.html
FRONTEND_SOURCES := $(shell find frontend/src -type f 2>/dev/null) frontend/index.html frontend/vite.config.ts \
	frontend/tsconfig.json frontend/package.json

.PHONY: run run-operator test lint lock test-proxy test-operator test-delivery frontend frontend-test e2e manifests soak bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Each venv installs from its lock file (requirements/, `make lock`), every file checked against its hash and a wheel
# (no sdist is built, with build requirements of its own that no lock pins), then Glimpse itself, editable and with no
# dependencies of its own: the locks pin the build backend too (--no-build-isolation).
define install_locked
	$(BIN)/pip install --quiet --require-hashes --no-deps --only-binary=:all: -r requirements/$(1).lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@
endef

$(STAMP): pyproject.toml requirements/proxy.lock | $(BIN)/python
	$(call install_locked,proxy)

$(OPERATOR_STAMP): pyproject.toml requirements/operator.lock | $(BIN)/python
	$(call install_locked,operator)

$(TEST_STAMP): pyproject.toml requirements/test.lock | $(BIN)/python
	$(call install_locked,test)

# The lock files, for Linux and CPython 3.11 (the images' python:3.11 and CI), with every file's sha256: test.lock
# holds all the extras (what CI installs), proxy.lock and operator.lock each image's, at test.lock's versions. Each
# holds pyproject's build-system requirements too. UPGRADE=1 takes the newest releases pyproject.toml allows;
# without it the versions already locked are kept where they still fit.
BUILD_REQUIRES = $(BIN)/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires'], sep='\n')"
LOCK_HEADER = \# Linux, CPython 3.11 only (the images and CI). Generated from pyproject.toml by `make lock`: do not edit.
UV_COMPILE = $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform linux \
	--only-binary :all: --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)
define compile_lock
	$(BUILD_REQUIRES) | $(UV_COMPILE) pyproject.toml - $(2) -o requirements/$(1).lock
	sed -i '1i $(LOCK_HEADER)' requirements/$(1).lock
endef

$(CHECKOV_STAMP): requirements/checkov.lock
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --require-hashes --no-deps --only-binary=:all: -r requirements/checkov.lock
	touch $@

$(FRONTEND_DEPS): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(GATEWAY_API_DEPS): $(GATEWAY_API_DIR)/package.json $(GATEWAY_API_DIR)/package-lock.json
	cd $(GATEWAY_API_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(PROMETHEUS_OPERATOR_DEPS): $(PROMETHEUS_OPERATOR_DIR)/package.json $(PROMETHEUS_OPERATOR_DIR)/package-lock.json
	cd $(PROMETHEUS_OPERATOR_DIR) && npm ci --no-audit --no-fund --loglevel=error
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

## run-operator: run the operator locally against the current kubeconfig, serving NAMESPACE (default: the context's)
run-operator: $(OPERATOR_STAMP)
	GLIMPSE_METRICS_PORT=$${GLIMPSE_METRICS_PORT:-9091} $(BIN)/glimpse-operator $(if $(NAMESPACE),--namespace=$(NAMESPACE))

## test: install the test dependencies, lint, type-check, check the import contracts, build the page, run Vitest and the whole pytest suite
test: $(TEST_STAMP) $(CHECKOV_STAMP) $(GATEWAY_API_DEPS) $(PROMETHEUS_OPERATOR_DEPS) $(FRONTEND_BUILD) $(FRONTEND_DEV_BUILD)
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

## lock: regenerate requirements/*.lock from pyproject.toml with uv (UPGRADE=1: the newest releases it allows)
lock: $(TEST_STAMP)
	$(call compile_lock,test,--extra proxy --extra operator --extra otlp --extra test)
	$(call compile_lock,proxy,--extra proxy --extra otlp -c requirements/test.lock)
	$(call compile_lock,operator,--extra operator -c requirements/test.lock)
	$(UV_COMPILE) requirements/checkov.in -o requirements/checkov.lock
	sed -i '1i $(LOCK_HEADER)' requirements/checkov.lock

## test-proxy, test-operator, test-delivery: the pytest tests of one program (tests/proxy/, tests/operator/, tests/delivery/)
test-proxy: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/proxy

test-operator: $(TEST_STAMP) $(GATEWAY_API_DEPS)
	$(BIN)/python -m pytest tests/operator

test-delivery: $(TEST_STAMP) $(CHECKOV_STAMP) $(GATEWAY_API_DEPS) $(PROMETHEUS_OPERATOR_DEPS)
	$(BIN)/python -m pytest tests/delivery

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build *.egg-info .pytest_cache .ruff_cache frontend/node_modules frontend/dist frontend/dist-dev \
		$(GATEWAY_API_DIR)/node_modules $(PROMETHEUS_OPERATOR_DIR)/node_modules
