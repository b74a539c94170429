# SwarmHub: `make up` runs the embedded local cluster, `make test` runs the whole suite.
# Both create or reuse the virtual environment in $(VENV) and install pinned versions.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
RUN_STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: up test lint typecheck install system-deps load bench clean

# `make up` installs what running needs (the embedded server, OTLP export, the load generator);
# `make test` adds the dev tools. Both reinstall when pyproject.toml or constraints.txt change.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { \
	  echo "python venv is missing; installing Debian's python3-venv"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q python3-venv && \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --disable-pip-version-check 'pip==26.3'

$(RUN_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[server,otlp,load]'
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

install: $(STAMP)

up: $(RUN_STAMP)
	$(BIN)/swarmhub up $(ARGS)

# Debian packages the tests need: promtool (alert-rule tests), docker-compose (static check)
# and openssl (the development CA of `swarmhub tls init`).
system-deps:
	@if ! command -v promtool >/dev/null || ! command -v docker-compose >/dev/null \
	    || ! command -v openssl >/dev/null; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends \
	    prometheus docker-compose openssl; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy libs

test: $(STAMP) system-deps lint typecheck
	$(BIN)/pytest

load: $(RUN_STAMP)
	$(BIN)/swarmhub load $(ARGS)

bench: $(RUN_STAMP)
	$(BIN)/swarmhub bench $(ARGS)

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
