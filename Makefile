# csvimport's entry point: `make help` lists the targets.

PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV = .venv
VENV_PYTHON = $(VENV)/bin/python
# Rebuilt when pyproject.toml changes, so `make install` is cheap when nothing changed.
INSTALLED = $(VENV)/.installed
PYTEST_ARGS ?=
# Test processes (pytest-xdist), each with its own sandbox. Three on 2 cores: the tests
# mostly wait (on the sandbox's jobs, on programs they start), so a third process uses
# the idle time (the whole suite: 347 s with 2, 297 s with 3). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 3

.DEFAULT_GOAL := help
.PHONY: help install test lint demo bench test-dist clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(INSTALLED) ## Create .venv and install csvimport with the sandbox and dev extras

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --quiet --upgrade pip
	$(VENV_PYTHON) -m pip install --quiet -e '.[sandbox,dev]'
	touch $@

test: install ## Run the test suite (extra pytest options: PYTEST_ARGS=...)
	$(VENV_PYTHON) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: install ## Check style, formatting and types (never rewrites files)
	$(VENV_PYTHON) -m ruff check csvimport tests
	$(VENV_PYTHON) -m ruff format --check csvimport tests
	$(VENV_PYTHON) -m mypy csvimport

demo: install ## Run a whole migration against the local sandbox
	$(VENV_PYTHON) -m csvimport.demo

bench: install ## Run the benchmarks (each beside a floor measured in the same run)
	$(VENV_PYTHON) -m csvimport.bench

test-dist: install ## Build the wheel, install it in a clean venv and run the installed command
	PYTHON=$(PYTHON) BUILD_PYTHON=$(VENV_PYTHON) bash .ci/test-dist.sh

clean: ## Remove .venv, build output and caches
	rm -rf $(VENV) dist build *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
