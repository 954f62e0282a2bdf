# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What is installed in the venv: the server's runtime dependencies (`make serve`), or
# those and the dev extra (`make test`). Each stamp is renewed when pyproject.toml changes.
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: install install-dev serve test lint bench bench-peers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# The dev extra includes the runtime dependencies: it renews both stamps.
$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(RUNTIME)

install: $(RUNTIME)

install-dev: $(DEV)

serve: install
	$(BIN)/gamesocket serve

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: install-dev
	$(BIN)/python -m bench

bench-peers: install-dev
	$(BIN)/python -m bench --peers
