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

.PHONY: serve bench-serving

# Serve the Production model on 127.0.0.1:8000 (DP_SERVING_PORT) over the stores that
# `make run` wrote, with the S3 and MLflow servers of `make ui`; stop `make ui` first.
serve: install install-lifecycle
	$(BIN)/python -m dp_serving.embedded

# Measure this server and `mlflow models serve` on the Production model of .local and
# write the table into docs/serving.md.
bench-serving: install install-lifecycle
	$(BIN)/python benchmarks/serving/run.py

.PHONY: bench-privacy

# Benchmark our DP-SGD against Opacus on the Adult files (accuracy, attack AUC, time per
# epsilon) and rewrite docs/benchmarks/privacy.md. Creates its own environments under
# .local/bench-privacy. Settings such as BENCH_DATA_DIR and BENCH_SEEDS: see run.sh.
bench-privacy:
	PYTHON=$(PYTHON) benchmarks/privacy/run.sh

.PHONY: test-services bench-dag

# The Compose services as local processes (tests/services): REST and UI triggers, the
# schedule, CeleryExecutor with two workers and the MLflow links plugin. `make test`
# runs them too; this target runs only them. Needs PostgreSQL, Redis and Chromium.
test-services: install
	$(BIN)/pytest tests/services $(PYTEST_ARGS)

# Time a warm and a cold run of the default DAG on those local services and print the
# time per task (docs/benchmarks/dag-runtime.md). BENCH_ARGS=--skip-cold skips the cold run.
BENCH_ARGS ?=
bench-dag: install
	$(BIN)/python benchmarks/dag_runtime/bench.py $(BENCH_ARGS)
