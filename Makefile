# keeper: set-up, tests, demo. `make setup` is idempotent and is a prerequisite of test and demo.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test demo contracts clean devnet-up devnet-down bench

setup: $(VENV)/.installed node_modules/.installed build/third_party/STAMP

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Third-party Solidity (Morpho Blue, MockV3Aggregator) into the git-ignored build/ cache.
build/third_party/STAMP: node_modules/.installed contracts/scripts/compile.mjs
	node contracts/scripts/compile.mjs --third-party

# Our contracts into abi/ (committed; tests/contracts/test_artifacts.py fails when it is stale).
contracts: node_modules/.installed
	node contracts/scripts/compile.mjs --ours

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Stage 1 demo: bring the devnet up, show the seeded positions and their health, stop it.
demo: setup
	$(VENV)/bin/keeper devnet up --detach --port $${KEEPER_DEMO_PORT:-8545}
	$(VENV)/bin/keeper status; status=$$?; $(VENV)/bin/keeper devnet down; exit $$status

devnet-up: setup
	$(VENV)/bin/keeper devnet up --detach

devnet-down:
	$(VENV)/bin/keeper devnet down

bench: setup
	$(PY) bench/devnet_up.py

clean:
	rm -rf build .pytest_cache .hypothesis
