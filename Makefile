# synth-twin: every target sets up .venv first (scripts/setup_venv.sh; a no-op when up to date).
SHELL := /bin/bash
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv

# The project's Dagster instance, always (an outside DAGSTER_HOME is deliberately overridden).
export DAGSTER_HOME := $(ROOT)/.synth/dagster_home
# Read-only shared data; keep the caller's value when set.
SYNTH_SHARED ?= $(abspath $(ROOT)/..)/shared
export SYNTH_SHARED
export NUMBA_CACHE_DIR := $(ROOT)/.synth/numba_cache

PYTEST_ARGS ?=
# e.g. `make bench BENCH_ARGS=--quick` (small sizes, writes nothing) or `BENCH_ARGS="--only scale_80"`;
# one benchmark by hand: `.venv/bin/python -m benchmarks.bench_wide` from the repository root
BENCH_ARGS ?=

.PHONY: setup test demo demo-sequential run ui bench bench-studies clean

setup:
	@bash scripts/setup_venv.sh

# lint first (ruff, configured in pyproject.toml): a violation fails the target before any test runs
test: setup
	cd $(ROOT) && $(VENV)/bin/ruff check .
	$(VENV)/bin/dagster definitions validate -w workspace.yaml
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/python -m synth_orchestration.demo

# The sequential graph on the embedded panel (plm's Wages: 595 workers x 7 years)
demo-sequential: setup
	$(VENV)/bin/python -m synth_orchestration.demo --kind sequential

# One dataset's graph (its kind read from the datasets file), headless, e.g. make run DATASET=diamonds.
# Mistakes are refused in one line by make itself ($(error)) before anything runs.
ifneq ($(filter run,$(MAKECMDGOALS)),)
ifeq ($(strip $(DATASET)),)
$(error run: name the dataset: make run DATASET=NAME (the names are in datasets.yaml))
endif
endif
RUN_DATASET = '$(subst ','\'',$(DATASET))'
run: setup
	$(eval RUN_PROBLEM := $(shell $(VENV)/bin/python -m synth_orchestration.demo --label run --check --dataset $(RUN_DATASET)))
	$(if $(filter-out 0,$(.SHELLSTATUS)),$(error $(or $(RUN_PROBLEM),run: cannot check dataset $(RUN_DATASET))))
	$(VENV)/bin/python -m synth_orchestration.demo --label run --dataset $(RUN_DATASET)

ui: setup
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# The regression benchmarks (each judges its targets in benchmarks/RESULTS.md), as modules of the
# benchmarks package run from the repository root; bench-studies: the one-off studies (benchmarks/studies/).
bench: setup
	cd $(ROOT) && $(VENV)/bin/python -m benchmarks.run_all $(BENCH_ARGS)

bench-studies: setup
	cd $(ROOT) && $(VENV)/bin/python -m benchmarks.run_all --studies $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(ROOT)/.synth

# Operations layer: history, retention, sensors/schedules, deploy config, UI (needs chromium).
.PHONY: test-ops history
test-ops: setup
	$(VENV)/bin/pytest tests/ops tests/orchestration/test_operations.py tests/orchestration/test_deploy.py tests/orchestration/test_ui.py $(PYTEST_ARGS)

# Trend of final accuracy and privacy per run, e.g. make history HISTORY_ARGS="--dataset census --plot trend.png"
history: setup
	$(VENV)/bin/synth history $(HISTORY_ARGS)
