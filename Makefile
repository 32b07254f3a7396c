# The quick start: `make sandbox` runs forgehand end to end against a simulated GitHub,
# `make test` runs every check. Both create .venv and install what they need on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Where `make test-agents` keeps the real agent CLIs it installs (about 2 GB, reused).
AGENTS_DIR ?= $(HOME)/.cache/forgehand/agents

.PHONY: sandbox dev test lint test-agents image test-image

$(STAMP): pyproject.toml
	@echo "Installing forgehand and its tools into $(VENV) (a minute or two the first time)..."
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

# The agent conformance suite: the five agent CLIs at the versions the presets were proven
# with, each run through forgehand's sandbox and presets against a scripted model server; four
# workers, not six: each runs a real CLI (node, minutes of CPU), the tests' idle limits hold.
test-agents: $(STAMP)
	bash tests/agents/install.sh $(AGENTS_DIR)
	FORGEHAND_AGENTS_DIR=$(AGENTS_DIR) $(BIN)/pytest -n 4 tests/agents tests/jobs/agents/test_presets.py

# forgehand's image (Containerfile), built with podman (ENGINE=docker for Docker);
# AGENTS="claude codex" adds those agent CLIs.
IMAGE ?= localhost/forgehand:latest
AGENTS ?=
image:
	IMAGE=$(IMAGE) AGENTS="$(AGENTS)" bash deploy/build-image.sh

# The image tested here: built (layers cached by podman between runs), then, inside it, the
# real sandbox (`forgehand sandbox`) and compose.yaml's Redis, web and worker taking one
# labelled issue of the simulator to a pull request. Installs podman and what it needs first.
TEST_IMAGE := localhost/forgehand:test
COMPOSE_DIR ?= $(HOME)/.cache/forgehand/podman-compose
test-image: $(STAMP)
	bash tests/image/prepare.sh $(COMPOSE_DIR)
	CONTAINERS_CONF=$(CURDIR)/tests/image/containers.conf IMAGE=$(TEST_IMAGE) BASE_FROM_DEBIAN=1 \
		bash deploy/build-image.sh
	CONTAINERS_CONF=$(CURDIR)/tests/image/containers.conf FORGEHAND_IMAGE=$(TEST_IMAGE) \
		PODMAN_COMPOSE=$(COMPOSE_DIR)/bin/podman-compose $(BIN)/pytest tests/image
