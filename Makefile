# The two README commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.glimpse-installed
TEST_STAMP := $(VENV)/.glimpse-test-installed

.PHONY: run run-operator test lint unit integration manifests soak bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## run: install into .venv and start the proxy on 127.0.0.1:8080 (local disk, in-memory store)
run: $(STAMP)
	$(BIN)/glimpse serve

## run-operator: run the operator locally against the current kubeconfig
run-operator: $(STAMP)
	$(BIN)/glimpse-operator

## test: install the test dependencies, lint, and run the whole suite
test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

## manifests: regenerate manifests/install.yaml from the chart
manifests: $(TEST_STAMP)
	$(BIN)/python tools/render_install.py

## bench: TTFT overhead vs direct, LiteLLM and nginx at C=1,50,200,500; uploads (bench/README.md)
bench: $(TEST_STAMP)
	command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx-light) || true
	$(BIN)/python bench/run.py

## soak: 1,000 streams over 5 minutes with faults, figures into docs/reliability.md (not in CI)
soak: $(TEST_STAMP)
	$(BIN)/python -m tests.reliability.soak

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

unit: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/integration

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
