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

# `npm install` from the committed lock, not `npm ci`: the npm registry reachable here serves only
# anvil's linux-amd64 platform package, so the lock cannot list the other platforms' optional
# packages and `npm ci` refuses such a lock ("Missing: @foundry-rs/anvil-darwin-amd64 from lock
# file"). Every version is pinned exactly in package.json and the lock; --no-save leaves both as
# they are.
node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --no-save
	touch $@

# Third-party Solidity (Morpho Blue, MockV3Aggregator) into the git-ignored build/ cache.
build/third_party/STAMP: node_modules/.installed contracts/scripts/compile.mjs
	node contracts/scripts/compile.mjs --third-party

# Our contracts into abi/ (committed; tests/contracts/test_artifacts.py fails when it is stale).
contracts: node_modules/.installed
	node contracts/scripts/compile.mjs --ours

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Stage 1 demo: bring the devnet up, show the seeded positions and their health, crash ETH and BTC
# by 30% through the Chainlink feeds, show them again (now liquidatable), stop everything.
KEEPER := $(VENV)/bin/keeper
demo: setup
	$(KEEPER) devnet up --detach --port $${KEEPER_DEMO_PORT:-8545}
	status=0; \
	  $(KEEPER) devnet price ETH 1400 && $(KEEPER) devnet price BTC 21000 && $(KEEPER) status || status=$$?; \
	  $(KEEPER) devnet down; exit $$status

devnet-up: setup
	$(VENV)/bin/keeper devnet up --detach

devnet-down:
	$(VENV)/bin/keeper devnet down

bench: setup
	$(PY) bench/devnet_up.py

clean:
	rm -rf build .pytest_cache .hypothesis
