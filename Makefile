# Two entry points for a fresh machine (see README.md):
#   make demo   set up, then run the pool on an embedded simulated chain with a real chia farmer
#   make test   set up (the virtualenv, Debian's chromium for the browser tests and Debian's prometheus for the
#               monitoring tests), then run every test
#   make test-fast  the tests that need no simulated chain
#   make bench  measure the pool on a cached corpus of real partials (BENCH_ARGS="--help" lists the options)
#   make bench-scale  measure the pool against stores of 1 000 and 10 000 farmers (BENCH_SCALE_ARGS="--help")
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_ARGS ?=
BENCH_ARGS ?=

.PHONY: demo bench bench-scale test test-fast lint check setup browser prometheus clean

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

# The browser tests drive Debian's chromium through Playwright (Playwright's own browser downloads are not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The monitoring tests start a real Prometheus server and run promtool on deploy/prometheus (both from this package).
prometheus:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
		echo "installing Debian's prometheus for the monitoring tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; }

demo: $(VENV)/.installed
	$(PY) -m pool.devnet $(DEMO_ARGS)

bench: $(VENV)/.installed
	$(PY) -m pool.bench $(BENCH_ARGS)

bench-scale: $(VENV)/.installed
	$(PY) -m pool.bench.scale $(BENCH_SCALE_ARGS)

# Two processes, each running whole modules (their module-scoped chains stay in one process); -n 0 runs in one.
PYTEST_WORKERS ?= 2

test: $(VENV)/.installed browser prometheus
	$(PY) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile -m "not chain"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff format --check pool tests
	$(VENV)/bin/ruff check pool tests
	$(VENV)/bin/mypy

check: lint test

clean:
	rm -rf $(VENV) build *.egg-info
