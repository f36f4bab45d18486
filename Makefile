# Set-up is part of every target: a fresh clone needs nothing but `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: install run test lint ui demo-data clean

install: $(STAMP) $(DAGSTER_HOME)/dagster.yaml

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

# The project's Dagster home: SQLite run storage, schedules and logs, all git-ignored.
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	ln -sf ../dagster.yaml $@

run: install
	$(BIN)/indices run

test: install
	$(BIN)/ruff check src pipelines tests
	$(BIN)/ruff format --check src pipelines tests
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src pipelines tests
	$(BIN)/ruff format --check src pipelines tests

# The UI and the daemon (schedules, sensors, run queue) on 127.0.0.1:3000, one instance with `make run`.
ui: install
	$(BIN)/dagster dev --host 127.0.0.1 --port 3000 -m pipelines.definitions

# The committed demo extracts: small, deterministic, with faults at a low rate.
demo-data: install
	rm -rf data/raw
	$(BIN)/indices synth --persons 5000 --lads E06000001,E06000017,E06000053 \
		--date 2025-03-31 --seed 2025 --format csv.gz --faults 0.005 --out data/raw

clean:
	rm -rf data/warehouse data/published $(DAGSTER_HOME)
