# Two commands for a new user: `make demo` and `make test`. Everything else is here for
# day-to-day work. Python comes from .venv/ (created on first use).
# Python 3.11 (the version the dependency set is pinned for); python3 if that is 3.11 too
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
CDR := $(VENV)/bin/cdr
export PYSPARK_PYTHON := $(abspath $(PY))
export DAGSTER_HOME ?= $(abspath .dagster_home)

.PHONY: setup system-packages up down status demo test test-unit lint format dev stream bench screenshots clean

setup: system-packages $(VENV)/.installed  ## venv, Python packages, system packages, jars, Spark's class-data archive
	@$(CDR) stack setup

system-packages:
	@bash scripts/install_system_packages.sh

$(VENV)/.installed: pyproject.toml setup.py constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || \
		{ echo "need Python 3.11 (found: $(PYTHON)); set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $@

up: setup  ## start Kafka and PostgreSQL on 127.0.0.1 (idempotent)
	$(CDR) stack up

down:  ## stop exactly what `make up` started
	$(CDR) stack down

status:
	$(CDR) stack status

demo: up  ## the main job end to end on the local stack, with a summary per stage
	@mkdir -p $(DAGSTER_HOME)
	@$(CDR) demo

UNIT_LOG := .stack/logs/unit-tests.log
# The unit tests need no service; the integration and end-to-end tests spend half their time
# waiting on Spark, Kafka and Dagster runs (CI: 12 CPU-minutes in 22 minutes). So the unit tests,
# then the integration tests that need no shared service (marked `standalone`: their own Kamailio,
# SIPp, wheel or Spark driver), run alongside them, in pytest sessions of their own whose output
# goes to UNIT_LOG; their summary lines are printed at the end, and the whole log when one failed.
test: setup lint  ## lint, layer contracts, then the whole suite; starts the stack if needed and stops what it started
	@mkdir -p $(dir $(UNIT_LOG))
	@{ $(PY) -m pytest cdr_platform_tests/unit -p no:cacheprovider && \
	   $(PY) -m pytest cdr_platform_tests/integration -m standalone -p no:cacheprovider; } > $(UNIT_LOG) 2>&1 & unit=$$!; \
	trap 'kill $$unit 2>/dev/null' INT TERM; \
	$(PY) -m pytest --ignore=cdr_platform_tests/unit -m "not standalone"; status=$$?; \
	wait $$unit; unit_status=$$?; \
	if [ $$unit_status -ne 0 ]; then cat $(UNIT_LOG); fi; \
	echo "run alongside (log: $(UNIT_LOG)):"; grep -E '^=+ .*(passed|failed|error)' $(UNIT_LOG); \
	exit $$(( status != 0 || unit_status != 0 ))

lint: $(VENV)/.installed  ## ruff (lint and format check) and the import-linter layer contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo

format: $(VENV)/.installed  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-unit: $(VENV)/.installed  ## fast tests, no services
	$(PY) -m pytest cdr_platform_tests/unit

dev: up  ## the Dagster UI on http://127.0.0.1:3000
	@mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

stream: up  ## mediation in continuous (real-time) mode, until Ctrl-C
	$(CDR) mediate --continuous --interval "$${CDR_STREAM_INTERVAL:-1 second}"

screenshots: up  ## the README's pictures (asset graph, dashboard) into docs/screenshots/; run make demo first
	@mkdir -p $(DAGSTER_HOME)
	$(CDR) screenshots

bench: up  ## throughput, memory and latency benchmarks (not part of the tests)
	$(PY) -m benchmarks.bench_produce
	$(PY) -m benchmarks.bench_mediation
	$(PY) -m benchmarks.bench_latency
	$(PY) -m benchmarks.bench_rating
	$(PY) -m benchmarks.bench_billing
	$(PY) -m benchmarks.bench_soak

clean: down
	rm -rf .stack data .dagster_home
