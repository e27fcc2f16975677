# Quick start: `make demo` then `make test`. Everything runs from .venv, created on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SAMPLE ?= data/sample
WAREHOUSE ?= warehouse/engagement.duckdb
RUNS   ?= runs
EVENTS ?= 100000
CUSTOMERS ?= 2000
DAYS ?= 7
# The sample's last day is yesterday, so the freshness check sees recent data.
START ?= $(shell $(PYTHON) -c 'import datetime as d; print(d.date.today() - d.timedelta(days=$(DAYS)))')

# make bench BENCH_ARGS="--sizes 1000000 --skip-pandas --work /tmp/my-bench" narrows a run
BENCH_ARGS ?=

.PHONY: setup demo dashboard test test-live bench bench-dashboard clean help

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(BIN)/engagement: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; run make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/engagement notebooks kernel
	@touch $@

setup: $(BIN)/engagement  ## Create .venv, install the package with its test extras, register its Jupyter kernel

$(SAMPLE)/manifest.json: | $(BIN)/engagement
	$(BIN)/engagement generate --out $(SAMPLE) --customers $(CUSTOMERS) --events $(EVENTS) --days $(DAYS) --start-date $(START)

demo: setup $(SAMPLE)/manifest.json  ## Generate sample data and run the pipeline notebooks on the embedded DuckDB engine
	$(BIN)/engagement notebooks run --source $(SAMPLE) --warehouse $(WAREHOUSE) --output-dir $(RUNS)
	@echo "Executed notebooks: $$(ls -d $(abspath $(RUNS))/*/* | tail -n 1)/"
	@echo "Warehouse: $(abspath $(WAREHOUSE)). Past runs: $(BIN)/engagement status --warehouse $(WAREHOUSE)"

dashboard: setup  ## Serve the monitoring dashboard on http://127.0.0.1:8501 (after make demo)
	$(BIN)/engagement dashboard --warehouse $(WAREHOUSE)

test: setup  ## Run the test suite
	$(BIN)/python -m pytest -n auto

# The engine contract tests, for make test-live (serial: one session, one pair of throwaway schemas).
LIVE_TESTS ?= tests/test_rules_customers.py tests/test_rules_clickstream.py tests/test_merge.py \
	tests/test_incremental.py tests/test_check_types.py tests/test_check_history_types.py tests/test_live_snowflake.py
ifneq ($(filter test-live,$(MAKECMDGOALS)),)
ifeq ($(strip $(ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION)),)
$(error make test-live: set ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION to a connection name in connections.toml (README, Live tests))
endif
endif

test-live: setup  ## The contract tests on your Snowflake account: ENGAGEMENT_TEST_SNOWFLAKE_CONNECTION=<name> make test-live
	ENGAGEMENT_TEST_ENGINES=snowflake $(BIN)/python -m pytest $(LIVE_TESTS)

$(VENV)/.bench-extra: pyproject.toml | $(BIN)/engagement
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	@touch $@

bench: setup $(VENV)/.bench-extra  ## Pipeline vs bare DuckDB vs pandas at 1M and 10M events (bench/results/compare.md)
	$(BIN)/python bench/bench_compare.py $(BENCH_ARGS)

bench-dashboard: setup  ## Benchmark each dashboard page on a 10M-event warehouse (built once in /tmp/engagement-bench)
	$(BIN)/python bench/bench_dashboard.py

clean:  ## Remove generated data, the warehouse, logs and run outputs (not .venv)
	rm -rf $(SAMPLE) warehouse logs runs bench/results
