# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# The stack (Prefect server + served deployments) is chosen by WEBTEXT_HOST / WEBTEXT_PORT / WEBTEXT_PREFECT_HOME
# (defaults 127.0.0.1, 4200, .prefect/); see infra/env.py.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Everything the tests and their tools write stays inside the checkout.
LOCAL_DIRS := TMPDIR=$(CURDIR)/.tmp XDG_CACHE_HOME=$(CURDIR)/.cache XDG_CONFIG_HOME=$(CURDIR)/.cache/config \
	PIP_CACHE_DIR=$(CURDIR)/.cache/pip

.PHONY: venv up down status demo test lint format run deploy dask mutants

# pip is upgraded first (pip 23 cannot resolve newspaper4k with trafilatura); torch comes before the rest so the
# pinned CPU build is used (install your CUDA build of torch into .venv first on a GPU machine).
$(STAMP): pyproject.toml
	@mkdir -p .tmp .cache
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(LOCAL_DIRS) $(PY) -m pip install -q -U pip
	$(LOCAL_DIRS) $(PY) -m pip install -q torch==2.13.0
	$(LOCAL_DIRS) $(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(STAMP)

up: $(STAMP)
	@$(PY) -m infra.services up

down:
	@if [ -x $(PY) ]; then $(PY) -m infra.services down; else echo "no $(VENV): nothing was started"; fi

status: $(STAMP)
	@$(PY) -m infra.services status

# Starts the stack (if it is not up yet), then runs the pipeline on the demo's embedded data; the UI stays up.
demo: up
	@$(PY) -m infra.demo

# make run DEPLOYMENT=webtext/build-corpus ARGS='-p out_dir=data/webtext'
run: $(STAMP)
	@$(PY) -m infra.run $(DEPLOYMENT) $(ARGS)

# A standing local Dask cluster for the corpus stages (make down stops it with the rest); make dask WORKERS=4
dask: $(STAMP)
	@$(PY) -m infra.dask up $(if $(WORKERS),--workers $(WORKERS))

# make deploy POOL=my-pool   (production path: register the deployments to a process work pool)
deploy: $(STAMP)
	@$(PY) -m infra.deploy --work-pool $(POOL) --create-pool

# make test PYTEST_ARGS='-k infra -x'   (lint and format are checked first: `make format` fixes both)
test: lint
	@mkdir -p .tmp .cache/config
	$(LOCAL_DIRS) $(VENV)/bin/pytest $(PYTEST_ARGS)

# Mutation testing of the decision modules (dedup, extractor choice, retry/robots in fetch, netsafety, urls, links),
# each mutant against the focused tests that reach it ([tool.mutmut] in pyproject.toml); not part of `make test`.
# make mutants MUTANTS='corpus.dedup*'  (default: every configured module; hours on 2 cores). Survivors:
# `.venv/bin/mutmut results`, one mutant's diff: `.venv/bin/mutmut show NAME`.
# The tests run from the mutants/ copy, whose parent has no shared/ folder: point them at the checkout's, or every
# test that needs the shared data would be skipped (and kill nothing).
mutants: $(STAMP)
	@mkdir -p .tmp .cache/config
	$(LOCAL_DIRS) WEBTEXT_SHARED_DIR=$${WEBTEXT_SHARED_DIR:-$(abspath $(CURDIR)/..)/shared} $(VENV)/bin/mutmut run --max-children $(or $(JOBS),2) $(MUTANTS)
	@$(VENV)/bin/mutmut results

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
