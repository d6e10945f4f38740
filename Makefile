# Commands of the embedded stack and the tests. Every target installs what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PYTHONPATH := $(CURDIR)/include
# Where ingest reads the Adult files; offline, point it at a local copy of them.
DATA_SOURCE ?=
CONF ?= {}

.PHONY: install run ui test lint format clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# Run the whole DAG once on the embedded stack and print its outcome.
run: install
	DP_PIPELINE_DATA_SOURCE=$${DP_PIPELINE_DATA_SOURCE:-$(DATA_SOURCE)} \
		$(BIN)/python -m dp_stack run --conf '$(CONF)'

# Serve the MLflow UI over the stores that `make run` wrote.
ui: install
	$(BIN)/python -m dp_stack ui

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .local
