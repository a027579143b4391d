"""The demo's verdict (pure): the comparison's numbers, and an honest failure when a protected
position is liquidated, when no twin is, or when the liquidator's claims are not on chain."""

from keeper.demo.chain import BlockRecord
from keeper.demo.collect import ChainLiquidation, KeeperAction, Liquidation
from keeper.demo.summary import render, summarise, twin_of

DEP = {"positions": [{"id": i, "holder": h} for i, h in (
    ("alice-aave", "vault"), ("alice-morpho", "vault"), ("bob-aave", "owner"),
    ("carol-aave-unprotected", "none"), ("carol-morpho-unprotected", "none"))]}


def records():
    return [BlockRecord(10, 0, 2000, 30000, {"alice-aave": 1.3, "alice-morpho": 1.2, "bob-aave": 1.3,
                                              "carol-aave-unprotected": 1.3, "carol-morpho-unprotected": 1.2}),
            BlockRecord(11, 1, 1400, 21000, {"alice-aave": 1.1, "alice-morpho": 1.05, "bob-aave": 1.2,
                                              "carol-aave-unprotected": 0.95, "carol-morpho-unprotected": None})]


def action(pid, kind, usd, gas=100_000):
    return KeeperAction(11, pid, kind, "USDC", usd, usd, f"0x{abs(hash((pid, kind))):064x}", gas, 1, 1.0, 1.2)


def liq(pid, tx, seized=5_000.0, gas=300_000):
    return Liquidation(11, pid, tx, gas, 1, 4_000.0, seized)


def test_protected_survive_twins_liquidated_is_ok():
    actions = [action("alice-aave", "repay", 1_000), action("alice-morpho", "top_up", 500),
               action("alice-aave", "withdraw_excess", 200), action("bob-aave", "repay", 300)]
    liqs = [liq("carol-aave-unprotected", "0xa"), liq("carol-aave-unprotected", "0xb"),
            liq("carol-morpho-unprotected", "0xc")]
    onchain = [ChainLiquidation(11, tx, pid, "x") for pid, tx in
               (("carol-aave-unprotected", "0xa"), ("carol-aave-unprotected", "0xb"),
                ("carol-morpho-unprotected", "0xc"))]
    s = summarise(DEP, records(), actions, liqs, onchain=onchain)
    assert s.ok and s.verdict().startswith("OK")
    assert s.protected.committed_usd == 1_500 and s.protected.released_usd == 200
    assert s.protected.keeper_gas == 300_000 and s.others.committed_usd == 300
    assert s.twins.liquidations == 3 and s.twins.per_position["carol-aave-unprotected"] == 2
    assert s.twins.seized_usd == 15_000 and s.twins.liquidator_gas == 900_000
    assert s.protected.min_health == {"alice-aave": 1.1, "alice-morpho": 1.05}
    assert s.twins.final_health["carol-morpho-unprotected"] is None
    text = render(s)
    assert "collateral committed by the keeper" in text and "$1,500" in text and "liquidated x2" in text
    assert "0.950" in text


def test_a_protected_liquidation_fails_the_demo():
    onchain = [ChainLiquidation(11, "0xa", "carol-aave-unprotected", "x"), ChainLiquidation(11, "0xd", "bob-aave", "x")]
    s = summarise(DEP, records(), [], [liq("carol-aave-unprotected", "0xa")], onchain=onchain)
    assert not s.ok and "bob-aave" in s.verdict() and s.verdict().startswith("FAIL")
    assert s.others.liquidated == ["bob-aave"]  # counted from the chain though the liquidator did not report it
    assert any("0xd" in p and "did not report" in p for p in s.problems)


def test_no_twin_liquidated_fails_the_demo():
    s = summarise(DEP, records(), [], [], onchain=[])
    assert not s.ok and "no unprotected twin" in s.verdict()


def test_a_claim_without_its_event_on_chain_is_not_counted():
    s = summarise(DEP, records(), [], [liq("carol-aave-unprotected", "0xfake")], onchain=[])
    assert s.twins.liquidations == 0 and not s.ok
    assert any("0xfake" in p for p in s.problems)


def test_a_daemon_that_did_not_stop_cleanly_fails_the_demo():
    onchain = [ChainLiquidation(11, "0xa", "carol-aave-unprotected", "x")]
    s = summarise(DEP, records(), [], [liq("carol-aave-unprotected", "0xa")], onchain=onchain)
    s.daemon_exit = 6
    assert not s.ok and "exit code 6" in s.verdict()


def test_twin_names():
    assert twin_of("alice-perp-eth-long") == "carol-perp-eth-long-unprotected" and twin_of("bob-aave") is None


def test_protection_by_method_sets_the_sales_cost_against_the_penalty():
    """A reserve repayment (capital committed) next to a deleverage (what the sale cost: the value
    sold at the feed less what it brought, plus the flash fee) and what the liquidations cost."""
    from dataclasses import replace

    from keeper.demo.collect import DeleverageCost
    from keeper.demo.summary import by_method

    sale = DeleverageCost(sold_usd=4_000.0, bought_usd=3_985.0, repaid_usd=3_950.0, flash_fee_usd=1.0,
                          penalty_at_stake_usd=550.0)
    assert sale.cost_usd == 16.0 and sale.slippage == 16.0 / 4_000
    actions = [action("alice-aave", "repay", 1_000), replace(action("bob-aave", "deleverage", 3_950), swap=sale)]
    onchain = [ChainLiquidation(11, "0xa", "carol-aave-unprotected", "x")]
    pre = Liquidation(11, "gina-morpho-preliq", "0xp", 250_000, 1, 1_000.0, 1_015.0)
    s = summarise(DEP, records(), actions, [liq("carol-aave-unprotected", "0xa")], onchain=onchain,
                  preliquidations=[pre])
    assert s.others.deleverages == [sale] and s.others.committed_usd == 0  # a sale commits no reserve
    lines = by_method(s)
    assert "1 by a third party, repaid $1,000, incentive paid $15.00 (1.50% of what was repaid)" in lines[3]
    assert s.ok  # a pre-liquidation is not a liquidation of a protected position
    assert "1 actions, $1,000 committed" in lines[1] and "paid $1,000 in liquidation penalties" in lines[1]
    assert "sold $4,000" in lines[2] and "$16.00 (0.40% of what was sold)" in lines[2]
    assert "penalty at stake $550" in lines[2]
    assert "protection by method" in render(s)
