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


def test_future_timestamp_flags_positions(reader, w3, devnet):
    """A feed whose updatedAt is after the block (a broken or hostile feed) is never trusted."""
    feed = w3.eth.contract(address=devnet["feeds"]["ETH"]["address"], abi=C.third_party("MockV3Aggregator").abi)
    now = w3.eth.get_block("latest")["timestamp"]
    Deployer(w3, devnet["roles"]["admin"]).send(feed.functions.updateRoundData(99, 2_000 * 10**8, now + 3_600, now))
    kinds = by_kind(reader.read())
    for p in kinds[Protocol.AAVE_V3] + kinds[Protocol.MORPHO_BLUE]:
        assert not p.price_ok and "updated in the future" in p.price_issue


def test_an_asset_without_a_feed_is_never_usable(anvil, devnet):
    """The README's promise: a position holding an asset with no configured feed is flagged (and so
    never acted on) — here WBTC's feed is left out of the configuration."""
    r = devnet_reader(anvil.url, devnet, heartbeat=3600)
    try:
        wbtc = devnet["tokens"]["WBTC"]["address"].lower()
        r.asset_feeds = {a: f for a, f in r.asset_feeds.items() if a != wbtc}
        snap = r.read()
        held = [p for p in snap.positions
                if any(leg.asset.address.lower() == wbtc for leg in p.legs)
                or (p.perp is not None and p.perp.index.address.lower() == wbtc)]
        assert held and all(not p.price_ok and "no price feed configured for WBTC" in p.price_issue for p in held)
        others = [p for p in snap.positions if p not in held]
        assert others and all(p.price_ok for p in others)
    finally:
        r.mc.close()
