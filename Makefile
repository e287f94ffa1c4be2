# The two set-up commands: `make demo` and `make test`. Everything else is optional.
# AIRFLOW_VERSION picks the Airflow line; each line gets its own virtualenv (.venv for the newest).
AIRFLOW_VERSION ?= 3.3.2
PYTHON ?= python3
VENV ?= $(if $(filter 3.3.2,$(AIRFLOW_VERSION)),.venv,.venv-$(AIRFLOW_VERSION))
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)
UV := $(PYTHON) -m uv
# Airflow 3.0 predates FastAPI 0.132's strict content-type default, which breaks its task runner, and
# universal-pathlib 0.3, which its ObjectStoragePath rejects ("detected protocol ... incompatible").
# Each pin is quoted here: the recipe passes them on as they are.
PINS_3.0 := "fastapi<0.132" "universal-pathlib<0.3"
EXTRA_PINS ?= $(PINS_$(basename $(AIRFLOW_VERSION)))
PYTEST_ARGS ?=

.PHONY: venv test lint typecheck pytest demo e2e bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q uv
	@[ -x "$(PY)" ] || $(UV) venv -q --python $(PYTHON) $(VENV)
	$(UV) pip install -q --python $(PY) "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test]" $(EXTRA_PINS)
	@touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check airflow_provider_datamasque tests example_dags benchmarks scripts
	$(VENV)/bin/ruff format --check airflow_provider_datamasque tests example_dags benchmarks scripts

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv
	$(PY) -m pytest -q $(PYTEST_ARGS)

## make test: lint, type-check and the whole test suite (AIRFLOW_VERSION=2.11.2 for another line).
test: lint typecheck pytest

## make demo: the mask-before-refresh example DAG against the local emulator.
demo: venv
	$(PY) scripts/demo.py

## make e2e: a real Airflow (scheduler, triggerer, ...) running the deferrable nightly example.
e2e: venv
	$(PY) scripts/e2e.py

## make bench: every benchmark; rewrites benchmarks/RESULTS.md (installs the `bench` extra first).
bench: venv
	$(UV) pip install -q --python $(PY) -e ".[test,bench]" "apache-airflow==$(AIRFLOW_VERSION)" $(EXTRA_PINS)
	$(PY) -m benchmarks.run

clean:
	rm -rf .venv .venv-* .demo .mypy_cache .ruff_cache .pytest_cache
