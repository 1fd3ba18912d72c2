# Two entry points for a fresh machine (see README.md):
#   make demo   set up, then run the pool on an embedded simulated chain with a real chia farmer
#   make test   set up, then run the test suite (every test; make test-fast skips those that need a simulated chain)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_ARGS ?=

.PHONY: demo test test-fast lint check setup clean

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m pool.devnet $(DEMO_ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider -m "not chain"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff format --check pool tests
	$(VENV)/bin/ruff check pool tests
	$(VENV)/bin/mypy

check: lint test

clean:
	rm -rf $(VENV) build *.egg-info
