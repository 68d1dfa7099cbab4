# Two commands matter on a fresh machine with Python 3.11 and make:
#   make run    installs, generates the bundled sample extract and runs the whole study on it
#   make test   installs and runs the test suite (the end-to-end runs marked `slow` excepted: `make test-slow`)
# Everything is installed into .venv from requirements.lock; nothing is installed at run time.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The bundled sample: a small synthetic extract generated deterministically (seed 42) on first use, with the
# negative-control outcomes' records (the generator's default) and no planted bias on them (docs/synthetic_data.md).
SAMPLE_DIR := data/sample
SAMPLE_PATIENTS ?= 5000
SAMPLE_SEED ?= 42
EXTRACT ?= $(SAMPLE_DIR)
DB ?= build/leg_cramps.duckdb
# The site (Dagster partition) `make run` builds; empty = the extract folder's name (data/sample -> sample).
SITE ?=
# The engine of the ingest (canonical CSV extracts) and the phenotype, cohort and statistics stages: empty = DuckDB,
# `spark` = a local Spark session (Java 17 and pyspark; publishing stays on DuckDB: docs/scaling.md).
ENGINE ?=
N ?= 1000000

# A project-local Dagster instance that uses the repository's dagster.yaml.
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export GX_ANALYTICS_ENABLED := false
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: install run network test test-slow test-spark test-all ui results screenshots bench sample generate docs lock clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# Regenerated when the generator changes, so `make run` never analyses a sample an older generator wrote.
$(SAMPLE_DIR)/_truth/ground_truth.json: $(wildcard pipelines/synthetic/*.py) | $(STAMP)
	$(BIN)/legcramp-generate --patients $(SAMPLE_PATIENTS) --seed $(SAMPLE_SEED) --out $(SAMPLE_DIR)

sample: $(SAMPLE_DIR)/_truth/ground_truth.json

run: $(STAMP) $(DAGSTER_HOME)/dagster.yaml $(if $(filter $(SAMPLE_DIR),$(EXTRACT)),sample)
	$(BIN)/legcramp-run --extract $(EXTRACT) --db $(DB) $(if $(SITE),--site $(SITE)) $(if $(ENGINE),--engine $(ENGINE))

# Pool every site's published estimates into build/network.duckdb (docs/operations.md, "The pooled estimate").
network: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster job execute -m pipelines.definitions -j leg_cramp_network

# `make test` leaves out the tests marked `slow` (whole study runs through Dagster, large generated extracts) and
# those marked `spark` (one local Spark session, needs Java 17); `make test-slow` and `make test-spark` run only
# those, `make test-all` everything. CI (.ci/run) runs all three.
# `make test` spreads the test modules over one pytest-xdist worker per core (at most TEST_WORKERS; 1 runs them in
# this process): a module's tests and its module-scoped fixtures stay on one worker (--dist loadscope), and the
# session fixtures of tests/conftest.py build each generated extract once for all workers.
TEST_WORKERS ?= 4
test: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m pytest -m "not slow and not spark" $(if $(filter 1,$(TEST_WORKERS)),,-n auto --maxprocesses $(TEST_WORKERS) --dist loadscope)

test-slow: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m pytest -m "slow and not spark"

# The same study on DuckDB and on Apache Spark local mode, compared by table fingerprints (docs/scaling.md). Only
# tests/spark is collected (collecting the whole tree for its 44 tests cost about 5 more CPU seconds);
# tests/spark/test_spark_group_setup.py fails when a test elsewhere is marked spark.
test-spark: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m pytest -m spark tests/spark

test-all: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m pytest

ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev --host 127.0.0.1 --port 3000 -m pipelines.definitions

# The results browser over the published database (read-only), on 127.0.0.1 (docs/reporting.md).
results: $(STAMP)
	$(BIN)/python -m pipelines.results_browser --db $(DB)

# The README's forest plot and report summary, from the published outputs of `make run` (docs/images/).
screenshots: $(STAMP)
	$(BIN)/python -m pipelines.results_browser.screenshots --outputs $(basename $(DB))_outputs --images docs/images

bench: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python bench/run_benchmark.py --patients $(N)

# Rewrite every generated file (docs pages, data-quality suites, the asset-graph snapshot): pipelines/generate.py.
# tests/core/test_generated_files.py fails when one is stale.
generate: $(STAMP)
	$(BIN)/python -m pipelines.generate

docs: generate

# Re-resolve the pinned set after changing pyproject.toml's dependencies.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet --upgrade pip && .lockvenv/bin/pip install --quiet ".[spark,test]"
	(echo "# Exact, tested versions of every package the pipeline installs (pip freeze on Python 3.11)."; \
	 echo "# Regenerate with: make lock"; .lockvenv/bin/pip freeze --exclude-editable | grep -v -i '^leg-cramp-cohorts') > requirements.lock
	rm -rf .lockvenv

clean:
	rm -rf build $(SAMPLE_DIR) $(DAGSTER_HOME)
