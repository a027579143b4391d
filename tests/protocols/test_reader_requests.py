"""The read asks the node only for what it decodes: an adapter without accounts in a reader (the
daemon's acting reader holds only the vaults' accounts) reads nothing, not even its markets' state,
which would be one more request before the positions at every block."""

import pytest

from keeper.chain.client import ChainClient
from keeper.chain.multicall import Multicall
from keeper.chain.oracle import OracleReader
from keeper.domain import Address as A
from keeper.protocols.reader import ChainReader
from tests.protocols.devnet_reader import devnet_reader

pytestmark = pytest.mark.usefixtures("snapshot")


class _Counting(ChainClient):
    """A real client that counts its eth_calls."""
    calls = 0

    def call_hex(self, *args, **kwargs):
        type(self).calls += 1
        return super().call_hex(*args, **kwargs)

    def eth_call(self, *args, **kwargs):
        type(self).calls += 1
        return super().eth_call(*args, **kwargs)


def test_an_adapter_without_accounts_reads_nothing(anvil, devnet):
    """Accounts held only on Aave: the Morpho and GMX adapters have none here."""
    full = devnet_reader(anvil.url, devnet)
    aave_only = sorted({A(p["account"]) for p in devnet["positions"] if p["protocol"] == "aave_v3"})
    assert aave_only
    client = _Counting("devnet", [anvil.url], devnet["chain_id"])
    mc = Multicall(client, A(devnet["multicall3"]))
    r = ChainReader("devnet", client, mc, full.adapters, aave_only, OracleReader(mc, full.oracle.feeds),
                    full.asset_feeds, {a: ["aave_v3"] for a in aave_only})
    try:
        first = r.read()
        _Counting.calls = 0
        again = r.read(first.block)
        # one for the price feeds, one for the Aave chunk (its metadata loaded by the first read)
        assert _Counting.calls == 2
        assert again.positions == first.positions
        assert {p.protocol.value for p in again.positions} == {"aave_v3"}
        assert sorted({p.account for p in again.positions}) == aave_only
        # the same positions as the full reader gives these accounts
        assert again.positions == [p for p in full.read(first.block).positions if p.account in aave_only
                                   and p.protocol.value == "aave_v3"]
    finally:
        mc.close()
        full.mc.close()
