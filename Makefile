# Set-up is part of every target: a fresh clone needs nothing but `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: install run test test-fast test-integration test-system lint ui screenshot demo-data clean

install: $(STAMP) $(DAGSTER_HOME)/dagster.yaml

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,production]"
	touch $@

# The project's Dagster home: SQLite run storage, schedules and logs, all git-ignored.
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	ln -sf ../dagster.yaml $@

run: install
	$(BIN)/indices run

# The browser test drives Debian's chromium through Playwright (whose own browser download fails
# here): install it once, with sudo when not root.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
BROWSER := /usr/bin/chromium
$(BROWSER):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

# The production storage test runs a real PostgreSQL server: install Debian's when there is no
# `initdb` on PATH or in Debian's versioned folder.
POSTGRES_SERVER := $(or $(shell command -v initdb),$(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb)))

.PHONY: postgres-server
postgres-server:
ifeq ($(POSTGRES_SERVER),)
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null
endif

# Every test (what CI runs): lint, then tests/unit, tests/integration and tests/system.
test: install $(BROWSER) postgres-server
	$(BIN)/ruff check src pipelines tests scripts benchmarks
	$(BIN)/ruff format --check src pipelines tests scripts benchmarks
	$(BIN)/pytest

# The tests to run while working: tests/unit (marker `unit`), under a minute, no Dagster run,
# server, browser or subprocess. Collecting that folder alone keeps Dagster's import out of it.
test-fast: install
	$(BIN)/pytest -m unit -n 2 tests/unit

# Layers together, in process: Dagster runs, the demo pipeline, the definitions' snapshot.
test-integration: install
	$(BIN)/pytest -m integration tests/integration

# Real servers, a browser, processes of their own, full and read-only disks.
test-system: install $(BROWSER) postgres-server
	$(BIN)/pytest -m system tests/system

lint: install
	$(BIN)/ruff check src pipelines tests scripts benchmarks
	$(BIN)/ruff format --check src pipelines tests scripts benchmarks

# The UI and the daemon (schedules, sensors, run queue) on 127.0.0.1:3000, one instance with `make run`.
# The code location is pyproject.toml's [tool.dagster]: module pipelines.definitions, named indices.
ui: install
	$(BIN)/dagster dev --host 127.0.0.1 --port 3000

# Refresh docs/asset-graph.png from a real UI run in headless Chromium (tests/system/test_ui.py).
screenshot: install
	INDICES_REFRESH_SCREENSHOT=1 $(BIN)/pytest tests/system/test_ui.py

# The committed demo extracts: small, deterministic, with faults at a low rate.
demo-data: install
	rm -rf data/raw
	$(BIN)/indices synth --persons 5000 --lads E06000001,E06000017,E06000053 \
		--date 2025-03-31 --seed 2025 --format csv.gz --faults 0.005 --out data/raw

clean:
	rm -rf data/warehouse data/published $(DAGSTER_HOME)
