# Commands of the embedded stack and the tests. Every target installs what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The pinned TensorFlow Privacy environment, for the tests that need TensorFlow.
LIFECYCLE_VENV := .venv-lifecycle
export PYTHONPATH := $(CURDIR)/include
export DP_PIPELINE_LIFECYCLE_PYTHON := $(CURDIR)/$(LIFECYCLE_VENV)/bin/python
# Where ingest reads the Adult files; offline, point it at a local copy of them.
DATA_SOURCE ?=
# DAG params of `make run` as a JSON object, for example CONF='{"epochs": 5}'.
CONF ?= {}
PYTEST_ARGS ?=

.PHONY: install install-lifecycle run ui test lint format clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

install-lifecycle: $(LIFECYCLE_VENV)/.installed

$(LIFECYCLE_VENV)/.installed: include/requirements-lifecycle.txt tests/requirements-lifecycle-tests.txt
	$(PYTHON) -m venv $(LIFECYCLE_VENV)
	$(LIFECYCLE_VENV)/bin/pip install --quiet -r tests/requirements-lifecycle-tests.txt
	touch $@

# Run the whole DAG once on the embedded stack and print its outcome.
run: install
	DP_PIPELINE_DATA_SOURCE=$${DP_PIPELINE_DATA_SOURCE:-$(DATA_SOURCE)} \
		$(BIN)/python -m dp_stack run --conf '$(CONF)'

# Serve the MLflow UI over the stores that `make run` wrote.
ui: install
	$(BIN)/python -m dp_stack ui

# Lint, then the Airflow-side suites (DAG integrity, unit, deployment, end to end),
# then the suites that run inside the TensorFlow Privacy environment.
test: lint install-lifecycle
	$(BIN)/pytest $(PYTEST_ARGS)
	$(LIFECYCLE_VENV)/bin/pytest -p no:cacheprovider tests/lifecycle $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .local
