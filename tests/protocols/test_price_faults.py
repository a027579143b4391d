"""A stale, zero or negative feed: the positions it prices are flagged "price unusable" (and so
never acted on), the read does not fail, and nothing disappears from view."""

import pytest

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from keeper.domain import Protocol
from tests.protocols.devnet_reader import devnet_reader

pytestmark = pytest.mark.usefixtures("snapshot")


@pytest.fixture
def reader(anvil, devnet):
    r = devnet_reader(anvil.url, devnet, heartbeat=3600)
    yield r
    r.mc.close()


def set_answer(w3, devnet, sym, answer):
    feed = w3.eth.contract(address=devnet["feeds"][sym]["address"], abi=C.third_party("MockV3Aggregator").abi)
    Deployer(w3, devnet["roles"]["admin"]).send(feed.functions.updateAnswer(answer))


def by_kind(snap):
    out = {}
    for p in snap.positions:
        out.setdefault(p.protocol, []).append(p)
    return out


@pytest.mark.parametrize("answer", [0, -1])
def test_zero_or_negative_eth_price_flags_every_eth_position(reader, w3, devnet, answer):
    set_answer(w3, devnet, "ETH", answer)
    snap = reader.read()
    kinds = by_kind(snap)
    assert len(snap.positions) == len(devnet["positions"])  # nothing vanished
    for p in kinds[Protocol.AAVE_V3] + kinds[Protocol.MORPHO_BLUE]:
        assert not p.price_ok and "price unusable" in p.price_issue
    eth_perp = [p for p in kinds[Protocol.PERP] if p.perp.index.symbol == "WETH"]
    assert eth_perp and all(not p.price_ok for p in eth_perp)
    btc_perp = [p for p in kinds[Protocol.PERP] if p.perp.index.symbol == "WBTC"]
    assert btc_perp and all(p.price_ok for p in btc_perp)  # the BTC short does not touch ETH


def test_stale_feed_flags_positions(reader, w3, devnet):
    w3.provider.make_request("evm_increaseTime", [3601])
    w3.provider.make_request("evm_mine", [])
    set_answer(w3, devnet, "BTC", 30_000 * 10**8)  # BTC fresh again, ETH and USDC stale
    snap = reader.read()
    for p in snap.positions:
        assert not p.price_ok, p
        assert "stale" in p.price_issue
