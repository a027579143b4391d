"""Fixtures shared by the protocol tests."""

import pytest

from keeper.chain.client import ChainClient
from keeper.chain.multicall import Multicall


@pytest.fixture
def mc(anvil, devnet):
    """A Multicall3 client on the session devnet."""
    m = Multicall(ChainClient("devnet", [anvil.url], devnet["chain_id"]), devnet["multicall3"])
    yield m
    m.close()
