"""Chainlink reads with safety checks, on anvil with Chainlink's MockV3Aggregator, and the pure
checks for the cases a mock cannot produce."""

import pytest

from keeper.chain import contracts as C
from keeper.chain.client import ChainClient
from keeper.chain.multicall import Multicall
from keeper.chain.oracle import FeedSpec, OracleReader, Round, SequencerSpec, check_round, check_sequencer
from keeper.devnet.deployer import Deployer

pytestmark = pytest.mark.usefixtures("snapshot")


@pytest.fixture
def env(anvil, w3, devnet):
    client = ChainClient("devnet", [anvil.url], 31337)
    mc = Multicall(client, devnet["multicall3"])
    d = Deployer(w3, devnet["roles"]["admin"])
    yield client, mc, d
    mc.close()


def head(w3):
    b = w3.eth.get_block("latest")
    return b["number"], b["timestamp"]


def spec(devnet, sym="ETH", **kw):
    return FeedSpec(sym, devnet["feeds"][sym]["address"], heartbeat=kw.pop("heartbeat", 3600), **kw)


def test_healthy_feeds(env, w3, devnet):
    _c, mc, _d = env
    reader = OracleReader(mc, [spec(devnet, s) for s in ("ETH", "BTC", "USDC")])
    readings = reader.read(*head(w3))
    prices = {r.name: r.price for r in readings.values()}
    assert prices == {"ETH": 2000.0, "BTC": 30000.0, "USDC": 1.0}
    assert all(r.ok for r in readings.values())


def test_zero_and_negative_answers_are_unusable(env, w3, devnet):
    _c, mc, d = env
    feed = d.at(devnet["feeds"]["ETH"]["address"], C.third_party("MockV3Aggregator"))
    for bad in (0, -5):
        d.send(feed.functions.updateAnswer(bad))
        (r,) = OracleReader(mc, [spec(devnet)]).read(*head(w3)).values()
        assert not r.ok and "non-positive" in r.issue


def test_stale_answer_is_unusable(env, w3, devnet):
    _c, mc, _d = env
    w3.provider.make_request("evm_increaseTime", [3601])
    w3.provider.make_request("evm_mine", [])
    (r,) = OracleReader(mc, [spec(devnet, heartbeat=3600)]).read(*head(w3)).values()
    assert not r.ok and r.issue.startswith("stale")


def test_deviation_from_a_second_source(env, w3, devnet):
    _c, mc, d = env
    second = d.deploy(C.third_party("MockV3Aggregator"), 8, 2_300 * 10**8)  # 15% above the primary
    s = spec(devnet, second_source=second.address, max_deviation=0.05)
    (r,) = OracleReader(mc, [s]).read(*head(w3)).values()
    assert not r.ok and "deviates" in r.issue
    d.send(second.functions.updateAnswer(2_010 * 10**8))
    (r,) = OracleReader(mc, [s]).read(*head(w3)).values()
    assert r.ok


def test_sequencer_down_makes_every_price_unusable(env, w3, devnet):
    _c, mc, d = env
    uptime = d.deploy(C.third_party("MockV3Aggregator"), 0, 1)  # 1 = sequencer down
    reader = OracleReader(mc, [spec(devnet)], SequencerSpec(uptime.address, grace_period=600))
    (r,) = reader.read(*head(w3)).values()
    assert not r.ok and "down" in r.issue
    d.send(uptime.functions.updateAnswer(0))  # back up, but inside the grace period
    (r,) = reader.read(*head(w3)).values()
    assert not r.ok and "grace period" in r.issue
    w3.provider.make_request("evm_increaseTime", [601])
    w3.provider.make_request("evm_mine", [])
    # Prices must still be fresh after the grace period for this check.
    feed = d.at(devnet["feeds"]["ETH"]["address"], C.third_party("MockV3Aggregator"))
    d.send(feed.functions.updateAnswer(2_000 * 10**8))
    (r,) = reader.read(*head(w3)).values()
    assert r.ok


def test_backfill_round_history(env, w3, devnet):
    _c, mc, d = env
    feed = d.at(devnet["feeds"]["BTC"]["address"], C.third_party("MockV3Aggregator"))
    for p in (31_000, 32_000, 29_500):
        d.send(feed.functions.updateAnswer(p * 10**8))
    block, _ts = head(w3)
    rounds = OracleReader(mc, []).backfill(feed.address, block, count=10)
    assert [r.answer // 10**8 for r in rounds] == [29_500, 32_000, 31_000, 30_000]
    assert [r.round_id for r in rounds] == [4, 3, 2, 1]
    newer = OracleReader(mc, []).backfill(feed.address, block, stop_at_round=2)
    assert [r.round_id for r in newer] == [4, 3]


def test_pure_checks():
    s = FeedSpec("ETH", "0xfeed", heartbeat=100)
    ok = Round(5, 2000 * 10**8, 1000, 1000, 5)
    assert check_round(s, ok, 8, 1050).ok
    assert "answeredInRound" in check_round(s, Round(5, 1, 1000, 1000, 4), 8, 1050).issue
    assert "not complete" in check_round(s, Round(5, 1, 0, 0, 5), 8, 1050).issue
    assert check_round(s, None, 8, 1050).issue == "feed call failed"
    # an answer from the future (updatedAt after the block) is never trusted
    assert "future" in check_round(s, Round(5, 2000 * 10**8, 1100, 1100, 5), 8, 1050).issue


def test_second_source_is_checked_like_the_primary():
    """A frozen or future second source fails the reading (fail closed): its price is not compared
    as if it were current."""
    s = FeedSpec("ETH", "0xfeed", heartbeat=100, second_source="0xsecond", max_deviation=0.02)
    ok = Round(5, 2000 * 10**8, 1000, 1000, 5)
    same = Round(9, 2010 * 10**18, 1040, 1040, 9)
    assert check_round(s, ok, 8, 1050, second_round=same, second_decimals=18).ok
    frozen = Round(9, 2000 * 10**18, 900, 900, 9)  # 150 s old, heartbeat 100: stale, though it agrees
    r = check_round(s, ok, 8, 1050, second_round=frozen, second_decimals=18)
    assert not r.ok and r.issue.startswith("second source stale")
    future = Round(9, 2000 * 10**18, 1060, 1060, 9)
    assert "second source updated in the future" in check_round(s, ok, 8, 1050, second_round=future,
                                                                 second_decimals=18).issue
    assert "second source feed call failed" in check_round(s, ok, 8, 1050, second_round=None,
                                                           second_decimals=18).issue
    assert "decimals() unreadable" in check_round(s, ok, 8, 1050, second_round=same).issue
    far = Round(9, 2100 * 10**18, 1040, 1040, 9)
    assert "deviates" in check_round(s, ok, 8, 1050, second_round=far, second_decimals=18).issue
    assert check_sequencer(Round(1, 0, 0, 0, 1), 3600, 4000) is None
