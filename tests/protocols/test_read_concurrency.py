"""The read's requests go out together: the price feeds' call beside the positions' calls, the
fixed chunks before the generic calls, and no call for an adapter without accounts. What a read
returns must not depend on it: the same positions and prices as one request after the other, and
an error of the price read is the read's error."""

import pytest

from keeper.chain.client import ChainClient
from keeper.chain.multicall import Multicall
from keeper.chain.oracle import OracleReader
from keeper.domain import Address as A
from keeper.errors import TemporaryError
from keeper.protocols.reader import ChainReader
from tests.protocols.devnet_reader import devnet_reader
from tests.protocols.test_price_faults import set_answer

pytestmark = pytest.mark.usefixtures("snapshot")


def _read_both(url, devnet, block):
    snaps = []
    for in_flight in (1, 2):
        r = devnet_reader(url, devnet, heartbeat=3600, in_flight=in_flight)
        try:
            snaps.append(r.read(block))
        finally:
            r.close()
    return snaps


def test_concurrent_read_equals_one_request_after_the_other(anvil, w3, devnet):
    set_answer(w3, devnet, "BTC", 0)  # BTC's positions flagged: the prices reach the decoders
    block = w3.eth.block_number
    one_by_one, together = _read_both(anvil.url, devnet, block)
    assert together.positions == one_by_one.positions
    assert together.prices == one_by_one.prices
    assert len(together.positions) == len(devnet["positions"])
    flagged = [p for p in together.positions if not p.price_ok]
    assert flagged and all("price unusable" in p.price_issue for p in flagged)
    assert any(p.price_ok for p in together.positions)


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
    """Accounts held only on Aave: the Morpho and GMX adapters have none here, and their markets'
    state is not read (it would be one more request before the positions)."""
    full = devnet_reader(anvil.url, devnet)
    aave_only = [p["account"] for p in devnet["positions"] if p["protocol"] == "aave_v3"]
    assert aave_only
    client = _Counting("devnet", [anvil.url], devnet["chain_id"])
    mc = Multicall(client, A(devnet["multicall3"]))
    accounts = sorted({A(a) for a in aave_only})
    oracle = OracleReader(mc, full.oracle.feeds)
    r = ChainReader("devnet", client, mc, full.adapters, accounts, oracle, full.asset_feeds,
                    {a: ["aave_v3"] for a in accounts})
    try:
        first = r.read()
        _Counting.calls = 0
        again = r.read(first.block)
        # one for the price feeds, one for the Aave chunk (its metadata loaded by the first read)
        assert _Counting.calls == 2
        assert again.positions == first.positions
        assert {p.protocol.value for p in again.positions} == {"aave_v3"}
        assert sorted({p.account for p in again.positions}) == accounts
    finally:
        r.close()
        full.close()


class _FailingOracle:
    def read(self, block, timestamp):
        raise TemporaryError("no RPC URL answers (the price feeds' call)")


class _Oracle:
    def __init__(self, readings):
        self.readings = readings

    def read(self, block, timestamp):
        return self.readings


@pytest.mark.parametrize("in_flight", [1, 2])
def test_a_failed_price_read_fails_the_read(in_flight):
    """No adapter decodes anything here, so nothing looks a price up: the error still comes out."""
    client = ChainClient("devnet", ["http://127.0.0.1:9"], 31337)
    r = ChainReader("devnet", client, Multicall(client, in_flight=in_flight), [], [], _FailingOracle(), {})
    try:
        with pytest.raises(TemporaryError, match="price feeds"):
            r.read(7, ("0x" + "ab" * 32, 1_700_000_000))
    finally:
        r.close()


def test_the_snapshot_holds_the_price_readings():
    client = ChainClient("devnet", ["http://127.0.0.1:9"], 31337)
    readings = {A("0x" + "11" * 20): object()}
    r = ChainReader("devnet", client, Multicall(client, in_flight=2), [], [], _Oracle(readings), {})
    try:
        snap = r.read(7, ("0x" + "ab" * 32, 1_700_000_000))
        assert snap.prices == readings and snap.positions == [] and snap.block == 7
    finally:
        r.close()
