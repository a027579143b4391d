"""Shared fixtures: one anvil per test session, snapshot/revert around each chain test.

The anvil process is started by ``keeper.devnet.anvil.Anvil`` (random free port, polled until it
answers, killed with the test process). Tests that change chain state use the ``snapshot`` fixture
(or ``pytestmark = pytest.mark.usefixtures("snapshot")``) so each test starts from the same state.

``devnet`` (on ``w3``) deploys the default Aave v3.7. A second anvil with Aave v3.0 (``anvil_v30``,
``w3_v30``, ``devnet_v30``) starts only when a test asks for it; ``aave_net`` runs a test on both
(ids ``aave3.0`` and ``aave3.7``), reverting that chain after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

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

# The `chain` marker: every test that needs an anvil (through these fixtures, or by starting one
# itself: mark it by hand) is a chain test; the rest are pure and run alone in seconds
# (`make test-pure`, `pytest -m "not chain"`). A pure test that starts anvil fails (see below).
CHAIN_FIXTURES = frozenset({"anvil", "anvil_v37", "anvil_v30", "anvil_direct", "w3", "w3_v37", "w3_v30",
                            "w3_direct", "devnet", "devnet_v37", "devnet_v30", "devnet_direct"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if CHAIN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.chain)


def pytest_configure(config):
    """In a pure run (``-m "not chain"``) nothing may start anvil: a test that does is missing its
    marker, and fails saying so."""
    if config.getoption("markexpr", "").strip() == "not chain":
        def refuse(self, *args, **kwargs):
            raise RuntimeError("a test of the pure run starts anvil: mark it `chain`")

        Anvil.start = refuse


@pytest.fixture(scope="session")
def anvil_v37():
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def anvil(anvil_v37):
    """The session's anvil (the default Aave v3.7 devnet). ``anvil``, ``w3`` and ``devnet`` are
    aliases of the ``*_v37`` fixtures, so a test module can override them (for instance with
    ``aave_net``'s chain, to run on both versions) without a recursion."""
    return anvil_v37


def _web3(node: Anvil) -> Web3:
    return Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))


@pytest.fixture(scope="session")
def w3_v37(anvil_v37) -> Web3:
    return _web3(anvil_v37)


@pytest.fixture(scope="session")
def w3(w3_v37) -> Web3:
    return w3_v37


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
def devnet(devnet_v37) -> dict:
    return devnet_v37


@pytest.fixture(scope="session")
def devnet_v37(w3_v37) -> dict:
    """The full devnet on the session's anvil: real Aave v3 (v3.7, the default), Morpho Blue and
    GMX v1 (gated, the default), feeds, tokens, Multicall3, KeeperVaults and seeded positions (the
    deployment dict that ``keeper devnet up`` writes to .keeper/devnet.json)."""
    from keeper.devnet.deploy import deploy_devnet

    return deploy_devnet(w3_v37)


@pytest.fixture(scope="session")
def anvil_v30():
    """A second anvil, for the Aave v3.0 devnet; started only by tests that ask for it."""
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def w3_v30(anvil_v30) -> Web3:
    return _web3(anvil_v30)


@pytest.fixture(scope="session")
def devnet_v30(w3_v30) -> dict:
    """The same devnet as ``devnet`` with Aave v3.0.2 (``@aave/core-v3``, pool revision 1)."""
    from keeper.devnet.deploy import deploy_devnet

    return deploy_devnet(w3_v30, aave="3.0")


@pytest.fixture
def position_keeper(w3, devnet):
    """GMX v1's position keeper on the default (gated) devnet for one test: executes PositionRouter
    requests at every new block, as GMX's keepers do (``keeper.devnet.position_keeper``)."""
    from keeper.devnet.position_keeper import start_thread

    thread, stop = start_thread(w3, devnet["perp"])
    yield thread
    stop.set()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def anvil_direct():
    """A third anvil, for the devnet with GMX v1 in direct mode; started only by tests that ask."""
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def w3_direct(anvil_direct) -> Web3:
    return _web3(anvil_direct)


@pytest.fixture(scope="session")
def devnet_direct(w3_direct) -> dict:
    """The default devnet (Aave v3.7) with GMX v1 in direct mode (leverage enabled, public
    liquidations, one margin fee)."""
    from keeper.devnet.deploy import deploy_devnet

    return deploy_devnet(w3_direct, gmx="direct")


@dataclass(frozen=True)
class GmxNet:
    """One seeded devnet of a GMX v1 mode: ``mode`` "gated" or "direct", its web3, RPC URL and
    deployment dict."""

    mode: str
    w3: Web3
    url: str
    dep: dict


@pytest.fixture(params=["gated", "direct"])
def gmx_net(request, anvil_v37, w3_v37, devnet_v37) -> Iterator[GmxNet]:
    """The test runs once per GMX v1 mode, reverted afterwards (as ``aave_net``: the default
    devnet, gated, is a static dependency; the direct one starts lazily)."""
    if request.param == "direct":
        node, w3, dep = (request.getfixturevalue(n) for n in ("anvil_direct", "w3_direct", "devnet_direct"))
    else:
        node, w3, dep = anvil_v37, w3_v37, devnet_v37
    snap = evm_snapshot(w3)
    yield GmxNet(request.param, w3, node.url, dep)
    evm_revert(w3, snap)


@dataclass(frozen=True)
class AaveNet:
    """One seeded devnet of an Aave version: ``version`` "3.0" or "3.7", its web3, RPC URL and
    deployment dict."""

    version: str
    w3: Web3
    url: str
    dep: dict


@pytest.fixture(params=["3.0", "3.7"], ids=["aave3.0", "aave3.7"])
def aave_net(request, anvil_v37, w3_v37, devnet_v37) -> Iterator[AaveNet]:
    """The test runs once per Aave version, on that version's devnet, reverted afterwards.

    The v3.7 devnet is a static dependency: session fixtures are set up before function ones, so it
    is deployed before a module's ``snapshot`` of the default chain (a deployment made after that
    snapshot would be reverted with it, leaving the cached ``devnet`` dict pointing at nothing).
    The v3.0 chain only ever gets aave_net's own snapshots, so it is started lazily."""
    if request.param == "3.0":
        node, w3, dep = (request.getfixturevalue(n) for n in ("anvil_v30", "w3_v30", "devnet_v30"))
    else:
        node, w3, dep = anvil_v37, w3_v37, devnet_v37
    snap = evm_snapshot(w3)
    yield AaveNet(request.param, w3, node.url, dep)
    evm_revert(w3, snap)
