"""The planner within the vault's release window (``KeeperVault.setReleaseCap``): releases are cut to
what the window still allows, share it across positions, stop when it is used up, and a rebalance
never takes a source past it. Synthetic positions; the analytic risk model."""

from __future__ import annotations

from keeper.domain import ActionKind
from keeper.plan.planner import USD_RAW, Reserve, plan
from keeper.plan.whatif import simulate
from tests.plan.test_planner import ASSETS, BIG, POLICY, RISK, WETH, aave, only, perp

E18 = 10**18


def test_a_release_is_cut_to_the_window():
    pos = aave(20, 8_000)
    free = only(plan([pos], RISK, BIG, ASSETS, POLICY, block=200))
    assert free.kind is ActionKind.WITHDRAW_EXCESS and free.amount_raw > 2 * E18
    cut = only(plan([pos], RISK, BIG, ASSETS, POLICY, block=200, release_left={WETH.address: 2 * E18}))
    assert cut.kind is ActionKind.WITHDRAW_EXCESS and cut.amount_raw == 2 * E18
    assert "cut to the vault's release window: WETH" in cut.reason.note
    after = simulate(pos, ActionKind.WITHDRAW_EXCESS, WETH, cut.amount_raw)
    assert cut.reason.p_after == RISK.p_liq(after) < free.reason.p_after  # less out: safer
    # a window with room for all of it changes nothing
    same = only(plan([pos], RISK, BIG, ASSETS, POLICY, block=200, release_left={"0xweth": 100 * E18}))
    assert same.amount_raw == free.amount_raw and "cut" not in same.reason.note


def test_a_used_window_stops_releases_and_is_said():
    pos = aave(20, 8_000)
    result = plan([pos], RISK, BIG, ASSETS, POLICY, block=200, release_left={"0xweth": 0})
    assert result.actions == ()
    assert result.skipped == ((pos.key, result.skipped[0][1]),)
    assert "release window for WETH is used up" in result.skipped[0][1]


def test_positions_share_one_window():
    a, b = aave(20, 8_000, account="0xa"), aave(20, 8_000, account="0xb")
    result = plan([a, b], RISK, BIG, ASSETS, POLICY, block=200, release_left={"0xweth": 3 * E18})
    amounts = [x.amount_raw for x in result.actions]
    assert all(x.kind is ActionKind.WITHDRAW_EXCESS for x in result.actions)
    assert sum(amounts) <= 3 * E18 and amounts[0] == 3 * E18  # the first takes it all, the second none
    assert any("used up" in why for _, why in result.skipped)


def test_a_perp_release_is_cut_in_usd_toward_safety():
    pos = perp(20_000.0)
    free = only(plan([pos], RISK, BIG, ASSETS, POLICY, block=200))
    assert free.kind is ActionKind.WITHDRAW_EXCESS
    # 1,000 USDC (the collateral) left: 990 USD of collateral, 1% kept back for the price GMX pays out at
    cut = only(plan([pos], RISK, BIG, ASSETS, POLICY, block=200, release_left={"0xusdc": 1_000 * 10**6}))
    assert 989.99 * USD_RAW <= cut.amount_raw <= 990 * USD_RAW < free.amount_raw


def test_a_rebalance_source_stays_within_the_window():
    risky, rich = aave(10, 13_000, market="a"), aave(40, 8_000, market="b")
    no_reserve = Reserve({})
    moved = only(plan([risky, rich], RISK, no_reserve, ASSETS, POLICY, block=200))
    assert moved.kind is ActionKind.REBALANCE and moved.position_key == rich.key
    none = plan([risky, rich], RISK, no_reserve, ASSETS, POLICY, block=200,
                release_left={"0xweth": moved.amount_raw - 1})
    assert all(x.kind is not ActionKind.REBALANCE for x in none.actions)
    ok = only(plan([risky, rich], RISK, no_reserve, ASSETS, POLICY, block=200,
                   release_left={"0xweth": moved.amount_raw}))
    assert ok.kind is ActionKind.REBALANCE and ok.amount_raw == moved.amount_raw
