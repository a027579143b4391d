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

# Demo (until the daemon's crash replay lands in stage 5): bring the devnet up and show the seeded
# positions; crash ETH and BTC through the Chainlink feeds; show what the keeper would do (plan);
# let it act on alice's Morpho position through her KeeperVault; show the health again; stop.
KEEPER := $(VENV)/bin/keeper
DEMO_KEY := 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
demo: setup
	$(KEEPER) devnet up --detach --port $${KEEPER_DEMO_PORT:-8545}
	status=0; \
	  export KEEPER_PRIVATE_KEY=$(DEMO_KEY) KEEPER__KEEPER__KEY_ENV=KEEPER_PRIVATE_KEY \
	    KEEPER__STORE__URL=sqlite:///.keeper/demo.db; \
	  $(KEEPER) devnet price ETH 1560 && $(KEEPER) devnet price BTC 24000 && $(KEEPER) status \
	  && $(KEEPER) plan && $(KEEPER) rebalance 0x4c5859:morpho --execute && $(KEEPER) status || status=$$?; \
	  $(KEEPER) devnet down; exit $$status

devnet-up: setup
	$(VENV)/bin/keeper devnet up --detach

devnet-down:
	$(VENV)/bin/keeper devnet down

bench: setup
	$(PY) bench/devnet_up.py

clean:
	rm -rf build .pytest_cache .hypothesis
