# Two commands do all set-up on a fresh machine: `make test` and (with the daily DAG) `make demo`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

FEEDBACK_DB_URL ?= sqlite:///$(CURDIR)/.demo/feedback.db

.PHONY: install system-deps test lint bench lock clean migrate demo

# --compile-bytecode: every Airflow task, CLI call and scheduler process imports Airflow, pandas and
# scikit-learn; from source (no .pyc, and none written where PYTHONDONTWRITEBYTECODE is set) that
# took 9.3 s of CPU per process, from bytecode 3.3 s.
$(STAMP): requirements.txt requirements-test.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --compile-bytecode --python $(BIN)/python -r requirements.txt -r requirements-test.txt
	touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check .

# Debian packages the tests use: PostgreSQL server binaries (the throwaway test server), Chromium
# (headless page tests) and docker-compose 1.29 (validates docker-compose.yaml offline; no Docker
# engine needed). Installed with apt-get when missing and running as root.
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (install them, or run make test as root)"; exit 1; fi; \
	fi

# Starts its own throwaway PostgreSQL and Airflow metadata DB per worker (tests/conftest.py). Two
# pytest-xdist workers, each test module on one worker (module fixtures are built once); a third
# worker on two cores gained nothing (whole suite, idle machine: 7:53 with two, 7:56 with three).
# PYTEST_ARGS= runs in one process, PYTEST_WORKERS=4 on a bigger machine.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?= -n $(PYTEST_WORKERS) --dist loadfile --durations=15
test: system-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Create or upgrade the feedback-store schema (idempotent): make migrate FEEDBACK_DB_URL=postgresql://...
migrate: install
	mkdir -p .demo
	PYTHONPATH=plugins $(BIN)/python -m self_learning migrate --db '$(FEEDBACK_DB_URL)'

# The daily loop on the embedded default: SQLite store + SQLite Airflow under .demo/, synthetic data,
# the daily DAG run for the last days with `airflow dags test`, and a summary of what it found.
demo: install
	PYTHONPATH=plugins $(BIN)/python -m self_learning.demo $(DEMO_ARGS)

bench: install
	$(BIN)/python bench/drift_bench.py
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/daily_bench.py

# Re-pin the full dependency set after editing requirements*.in.
lock: install
	$(BIN)/uv pip compile requirements.in -o requirements.txt --python-version 3.11 --no-header
	$(BIN)/uv pip compile requirements-test.in -o requirements-test.txt --python-version 3.11 --no-header

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
