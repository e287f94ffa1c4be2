# Two set-up commands: `make demo` and `make test`. Everything else is optional.
# AIRFLOW_VERSION picks the Airflow line; each line gets its own virtualenv.
AIRFLOW_VERSION ?= 3.3.2
PYTHON ?= python3
VENV ?= $(if $(filter 3.3.2,$(AIRFLOW_VERSION)),.venv,.venv-$(AIRFLOW_VERSION))
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)
UV := $(shell command -v uv 2>/dev/null)

export AIRFLOW_HOME ?= $(CURDIR)/.airflow_home/$(AIRFLOW_VERSION)
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := True

.PHONY: venv test lint typecheck pytest demo e2e bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(UV)" ]; then $(PYTHON) -m pip install -q --user uv || $(PYTHON) -m pip install -q uv; fi
	@UV_BIN=$$(command -v uv || echo $$($(PYTHON) -m site --user-base)/bin/uv); \
	  [ -x "$(PY)" ] || $$UV_BIN venv -q --python $(PYTHON) $(VENV); \
	  VIRTUAL_ENV=$(CURDIR)/$(VENV) $$UV_BIN pip install -q "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test]" $(EXTRA_PINS)
	@touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check airflow_provider_datamasque tests example_dags benchmarks
	$(VENV)/bin/ruff format --check airflow_provider_datamasque tests example_dags benchmarks

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv
	$(PY) -m pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

demo: venv
	$(PY) -m airflow_provider_datamasque.emulator.demo

e2e: venv
	bash scripts/e2e.sh $(VENV)

bench: venv
	$(PY) -m benchmarks.run

clean:
	rm -rf .venv .venv-* .airflow_home .demo .mypy_cache .ruff_cache .pytest_cache
