# The quick start: `make sandbox` runs forgehand end to end against a simulated GitHub,
# `make test` runs every check. Both create .venv and install what they need on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: sandbox dev test lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

sandbox: $(STAMP)
	$(BIN)/forgehand sandbox

dev: $(STAMP)
	$(BIN)/forgehand dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest
