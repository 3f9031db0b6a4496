# driftline: two commands do everything on a fresh machine.
#   make demo   install what is missing, start Kafka + Redis, run the whole monitoring loop
#   make test   install what is missing, start Kafka + Redis, run unit + integration tests
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
DRIFTLINE_CACHE ?= $(HOME)/.cache/driftline
export DRIFTLINE_CACHE
# The virtualenv (torch included, several GB) lives outside the checkout, keyed by the lock's hash,
# so CI runs and later sessions reuse it and a changed lock builds a fresh one.
LOCK_HASH := $(shell sha256sum requirements.lock | cut -c1-16)
VENV ?= $(DRIFTLINE_CACHE)/venv-$(LOCK_HASH)
PY := $(VENV)/bin/python
STACK := deploy/stack.sh
STACK_ENV = eval "$$($(STACK) env)"

.PHONY: help venv install browser stack stop demo test unit lint bench lock clean-venv

help:
	@echo "make demo    run the whole loop: events -> drift -> alarm -> learner -> hot swap"
	@echo "make test    unit + integration tests against a real Kafka and Redis"
	@echo "make lint    ruff"
	@echo "make bench   benchmarks (bench/): detectors, monitor, hot swaps, learners, Elec2"
	@echo "make stack / make stop   start / stop the local Kafka + Redis"

# Order-only: the venv path already carries the lock's hash, and a fresh clone's files are all
# newer than a cached .ready, which would rebuild a good venv on every CI run.
$(VENV)/.ready: | requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (3.11+)"; exit 1; }
	@echo "[make] building virtualenv $(VENV) from requirements.lock (first time: torch is large, several minutes)"
	rm -rf "$(VENV)"
	$(PYTHON) -m venv "$(VENV)"
	"$(PY)" -m pip install --quiet --upgrade "pip>=24"
	"$(PY)" -m pip install --quiet --progress-bar off -r requirements.lock
	touch "$@"

venv: $(VENV)/.ready

# The project itself is installed editable into the cached venv each time (seconds), so the venv
# always points at this checkout and the `driftline` command exists.
install: venv
	@"$(PY)" -m pip install --quiet --no-deps --no-build-isolation -e . >/dev/null

# Debian packages the tests use: chromium for the dashboard's browser test (Playwright drives it
# through its executable_path; Playwright's own browser download cannot reach our machines) and
# systemd's `systemd-analyze verify` for deploy/systemd; kcat, a librdkafka producer, for the join test.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TEST_PACKAGES := $(if $(shell command -v chromium),,chromium) $(if $(shell command -v systemd-analyze),,systemd) $(if $(shell command -v kcat),,kcat)
browser:
	@if [ -n "$(strip $(TEST_PACKAGES))" ]; then echo "[make] installing Debian packages for the tests:$(TEST_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(TEST_PACKAGES) >/dev/null; fi

stack:
	$(STACK) start

stop:
	$(STACK) stop

# make demo DEMO_ARGS=--keep-open keeps the dashboard up after the scenes (Ctrl-C ends it)
demo: install stack
	@$(STACK_ENV); "$(VENV)/bin/driftline" demo $(DEMO_ARGS)

test: install browser stack
	@$(STACK_ENV); "$(PY)" -m ruff check . && "$(PY)" -m pytest

unit: install
	"$(PY)" -m pytest -m "not integration"

lint: install
	"$(PY)" -m ruff check .
	"$(PY)" -m ruff format --check .

bench: install stack
	"$(PY)" bench/detectors_speed.py --out docs/speed-benchmark.md
	"$(PY)" bench/detection.py --runs 30 --out docs/detection-benchmark.md
	"$(PY)" bench/multivariate.py --runs 10 --out docs/multivariate-benchmark.md
	"$(PY)" bench/monitor_throughput.py
	@$(STACK_ENV); "$(PY)" bench/pipeline.py --out docs/pipeline-benchmark.md
	"$(PY)" bench/hot_swap.py --out docs/hot-swap-benchmark.md
	@$(STACK_ENV); "$(PY)" bench/learner_updates.py --out docs/learners-benchmark.md
	@$(STACK_ENV); "$(PY)" bench/elec2.py --out docs/elec2-benchmark.md

lock:
	$(PYTHON) -m venv /tmp/driftline-lock && /tmp/driftline-lock/bin/pip install -q -e ".[torch,dev]" \
	  && /tmp/driftline-lock/bin/pip freeze --exclude-editable > requirements.lock.new \
	  && echo "review requirements.lock.new, then move it over requirements.lock"

clean-venv:
	rm -rf "$(VENV)"
