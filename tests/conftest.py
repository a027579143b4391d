"""Shared fixtures: one anvil per test session, snapshot/revert around each chain test.

The anvil process is started by ``keeper.devnet.anvil.Anvil`` (random free port, polled until it
answers, killed with the test process). Tests that change chain state use the ``snapshot`` fixture
(or ``pytestmark = pytest.mark.usefixtures("snapshot")``) so each test starts from the same state.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings
from web3 import Web3

from keeper.devnet.anvil import Anvil
from keeper.devnet.deployer import Deployer


# CI runs the same examples every time (a red CI then means a real regression, reproducible
# locally with HYPOTHESIS_PROFILE=ci); developers' runs explore new examples.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def anvil():
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def w3(anvil) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 60}))


@pytest.fixture(scope="session")
def accounts(w3) -> list[str]:
    return list(w3.eth.accounts)


@pytest.fixture(scope="session")
def deployer(w3, accounts) -> Deployer:
    return Deployer(w3, accounts[0])


def evm_snapshot(w3: Web3) -> str:
    return w3.provider.make_request("evm_snapshot", [])["result"]


def evm_revert(w3: Web3, snap: str) -> None:
    ok = w3.provider.make_request("evm_revert", [snap])["result"]
    assert ok, f"evm_revert({snap}) failed"


@pytest.fixture
def snapshot(w3):
    snap = evm_snapshot(w3)
    yield
    evm_revert(w3, snap)


@pytest.fixture(scope="session")
def devnet(w3) -> dict:
    """The full devnet on the session's anvil: real Aave v3 and Morpho Blue, feeds, tokens,
    PerpVault, Multicall3, KeeperVaults and seeded positions (the deployment dict that
    ``keeper devnet up`` writes to .keeper/devnet.json)."""
    from keeper.devnet.deploy import deploy_devnet

    return deploy_devnet(w3)
