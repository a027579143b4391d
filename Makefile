# keeper: set-up, tests, demo. `make setup` is idempotent and is a prerequisite of test and demo.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

# Set-up steps print one line each ("setup: npm packages ... ok (12 s)", or "... up to date" when
# the step's only output says so). A step's whole output goes to build/logs/<step>.log; when the
# step fails, that log is printed and make stops with the step's exit status. V=1 (`make setup V=1`)
# runs the steps as plain recipes instead, every command and all of its output on the terminal.
# $(call step,NAME,LABEL,COMMANDS): COMMANDS is one shell line run under `set -e`.
V ?= 0
SETUP_LOGS := build/logs
ifeq ($(V),1)
step = set -e; $(3)
else
step = @mkdir -p $(SETUP_LOGS); log=$(SETUP_LOGS)/$(1).log; t=$$SECONDS; \
	printf 'setup: %s ... ' '$(2)'; \
	( set -e; $(3) ) >"$$log" 2>&1; rc=$$?; \
	if [ $$rc -ne 0 ]; then \
	  echo "FAILED (exit $$rc after $$((SECONDS - t)) s); its output, also in $$log:"; \
	  sed 's/^/    /' "$$log"; exit $$rc; \
	elif grep -q . "$$log" && ! grep -v 'up to date' "$$log" | grep -q .; then echo 'up to date'; \
	else echo "ok ($$((SECONDS - t)) s)"; fi
endif

.PHONY: setup test test-pure lint demo contracts clean devnet-up devnet-down bench protocols postgres

setup: $(VENV)/.installed node_modules/.installed build/third_party/STAMP protocols postgres

# PostgreSQL's server binaries for the store's and the replicas' tests (tests/store/postgres.py runs
# a throwaway server with them): Debian's package when they are missing and apt can install it (as
# root); otherwise those tests skip, and the step says why.
postgres:
	$(call step,postgres,PostgreSQL server binaries,\
	  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then echo 'up to date'; \
	  elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
	    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; }; \
	  else echo 'no initdb and no apt-get as root: the PostgreSQL tests will skip'; fi)

$(VENV)/.installed: pyproject.toml
	$(call step,venv,python venv and packages,\
	  test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	  $(PY) -m pip install --quiet --upgrade pip; \
	  $(PY) -m pip install --quiet -e '.[dev]'; \
	  touch $@)

# `npm install` from the committed lock, not `npm ci`: the npm registry reachable here serves only
# anvil's linux-amd64 platform package, so the lock cannot list the other platforms' optional
# packages and `npm ci` refuses such a lock ("Missing: @foundry-rs/anvil-darwin-amd64 from lock
# file"). Every version is pinned exactly in package.json and the lock; --no-save leaves both as
# they are.
node_modules/.installed: package.json package-lock.json
	$(call step,npm,npm packages,npm install --no-audit --no-fund --no-save; touch $@)

# Third-party Solidity (Morpho Blue, MockV3Aggregator) into the git-ignored build/ cache.
build/third_party/STAMP: node_modules/.installed contracts/scripts/compile.mjs
	$(call step,third-party,third-party Solidity,node contracts/scripts/compile.mjs --third-party)

# Protocols npm does not ship, from pinned upstream commits: Aave v3.7 (aave-dao/aave-v3-origin,
# solc 0.8.28) into build/aave-v3-origin/, GMX v1 (gmx-io/gmx-contracts, solc 0.6.12) into
# build/gmx-v1/ and Morpho's pre-liquidation (morpho-org/pre-liquidation, solc 0.8.27) into
# build/morpho-preliq/ (contracts/scripts/pinned.mjs). Their sources live outside the repository
# (KEEPER_PROTOCOL_SOURCES, else ../shared/protocols, else a shallow fetch into build/sources/), where
# make cannot see them: the script always runs and compares each build's STAMP (compiler, settings,
# entries, commits, the SHA-256 of every source file it read), so a re-run with nothing changed
# compiles nothing (about 0.5 s; a full compile about 14 s + 5 s) and prints "... up to date".
comma := ,
protocols: node_modules/.installed
	$(call step,protocols,pinned protocols (Aave v3.7$(comma) GMX v1$(comma) Morpho pre-liquidation),\
	  node contracts/scripts/compile.mjs --aave-origin --gmx --preliq)

# Our contracts into keeper/abi/ (committed package data; tests/contracts/test_artifacts.py fails when it is stale).
contracts: node_modules/.installed
	node contracts/scripts/compile.mjs --ours

test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The pure tests alone (no anvil, no chain): seconds. Tests that need a chain carry the `chain`
# marker (tests/conftest.py marks every test using the anvil fixtures; a pure test that starts
# anvil fails).
test-pure: setup
	$(PY) -m pytest -q -m "not chain" $(PYTEST_ARGS)

# Imports run one way (DESIGN.md; the contracts in pyproject.toml's [tool.importlinter]); ruff on
# the code, the tests and the benchmarks; mypy on the package (strict on risk/, plan/ and domain).
# `make test` runs it first.
lint: setup
	@$(VENV)/bin/lint-imports --no-cache | tail -1
	@$(VENV)/bin/ruff check keeper tests bench
	@$(VENV)/bin/mypy

# Demo (stage 5): on a fresh devnet (anvil on a free port, or $KEEPER_DEMO_PORT), seed the positions,
# start the keeper daemon and a separate liquidator process, replay a generated crash (a volatility
# build-up, about -40% in a few hours, a partial rebound) through the Chainlink feeds, one step per
# 1 s block; print the protected positions against their unprotected twins (liquidations, collateral
# committed, actions, gas), write .keeper/demo/timeline.png, stop everything. Exit 0 only when every
# protected position survived. The keeper's key is anvil's public account 1 (devnet only).
KEEPER := $(VENV)/bin/keeper
DEMO_KEY := 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
demo: setup
	KEEPER_DEMO_KEY=$(DEMO_KEY) $(KEEPER) demo $${KEEPER_DEMO_PORT:+--port $$KEEPER_DEMO_PORT}

devnet-up: setup
	$(VENV)/bin/keeper devnet up --detach

devnet-down:
	$(VENV)/bin/keeper devnet down

bench: setup
	$(PY) bench/devnet_up.py

clean:
	rm -rf build .pytest_cache .hypothesis
