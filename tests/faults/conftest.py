"""Fault-injection fixtures around the devnet fault lab (``keeper.demo.faultlab``: the keeper as
operators run it, a webhook receiver, a killable RPC proxy, a miner, on-chain counting of the
vaults' ``KeeperAction`` events; every byte a keeper process prints is scanned for the private key)."""

from __future__ import annotations

import pytest

from keeper.demo.faultlab import (  # noqa: F401 (the fault tests import these from here)
    KEEPER_KEY,
    KEY_FORMS,
    VOLS,
    Daemon,
    Env,
    Miner,
    Receiver,
    RpcProxy,
    head,
    idle,
    keeper_actions,
    per_position,
    planned_at,
    planned_positions,
    protective_needed,
)
from tests.daemon.helpers import wait_for  # noqa: F401 (used by the fault tests)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def env(tmp_path, anvil, devnet, receiver, snapshot, w3, position_keeper):
    """The keeper's subprocess environment, with GMX v1's position keeper executing PositionRouter
    requests (the devnet's GMX is gated, as in production)."""
    e = Env(tmp_path, anvil.url, devnet, receiver)
    try:
        yield e
    finally:
        e.close()
        w3.provider.make_request("evm_setAutomine", [True])


@pytest.fixture
def miner(w3):
    m = Miner(w3)
    yield m
    m.stop()
    assert not m.gave_up, m.report()  # a chain that stopped producing blocks is the test's fault
    w3.provider.make_request("evm_setAutomine", [True])
