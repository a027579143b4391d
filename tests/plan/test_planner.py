"""Planner: protect, release, choose the cheapest asset, never act on bad prices, no flapping,
share a short reserve, rebalance, perps. Synthetic positions; the analytic risk model."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.domain import WAD, ActionKind, Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.plan.planner import USD_RAW, Plan, Policy, Reserve, _Planner, plan
from keeper.plan.sizing import TOLERANCE_PPM
from keeper.plan.whatif import AssetParams, perp_health_estimate, simulate
from keeper.risk.builtin_law import BUILTIN_TAIL
from keeper.risk.health import lending_health
from keeper.risk.laws import GaussLaw
from keeper.risk.market import market_from_history
from keeper.risk.model import LawRisk, RiskModel

WETH = AssetParams("WETH", "0xweth", 18, 2000.0, {"aave_v3": 0.83, "morpho_blue": 0.86})
WBTC = AssetParams("WBTC", "0xwbtc", 8, 60000.0, {"aave_v3": 0.70}, haircut=0.03)
USDC = AssetParams("USDC", "0xusdc", 6, 1.0, {"aave_v3": 0.78})
ASSETS = (WETH, WBTC, USDC)
RISK = LawRisk.lognormal({"WETH": 0.10, "WBTC": 0.10}, 24.0)
POLICY = Policy(epsilon=0.01, target_fraction=0.5, release_fraction=0.05, min_action_usd=50, cooldown_blocks=10)
BIG = Reserve({"0xweth": 100 * 10**18, "0xwbtc": 10 * 10**8, "0xusdc": 1_000_000 * 10**6})


def aave(weth: float, usdc_debt: float, account: str = "0xa", block: int = 100, protocol=Protocol.AAVE_V3,
         market: str = "pool", **kw) -> Position:
    legs = (Leg(WETH.asset, Side.COLLATERAL, int(weth * 10**18), WETH.price_usd, 0.83),
            Leg(USDC.asset, Side.DEBT, int(usdc_debt * 10**6), 1.0, 1.0))
    h = lending_health(legs)
    return Position("eth", protocol, "0xpool", account, market, legs, int(h * WAD), block, **kw)


def perp(collateral_usd: float, size_usd: float = 50_000.0, block: int = 100, **kw) -> Position:
    terms = PerpTerms(Asset("WETH", "0xweth", 18), True, size_usd, collateral_usd, 2000.0, 2000.0,
                      size_usd * 0.001, 5.0, 50.0, 0)
    h = perp_health_estimate(collateral_usd, size_usd, 2000.0, 2000.0, True, size_usd * 0.001, 5.0, 50.0)
    legs = (Leg(Asset("USD", "usd", 30), Side.COLLATERAL, int(collateral_usd * USD_RAW), 1.0),)
    return Position("eth", Protocol.PERP, "0xvault", "0xa", "0xusdc:0xweth:long", legs, int(h * WAD), block,
                    perp=terms, **kw)


def only(result: Plan):
    assert len(result.actions) == 1, result
    return result.actions[0]


def apply(positions, result: Plan, assets=ASSETS, block: int = 101):
    """The state after the plan's actions land (as the next read would show it)."""
    by = {a.address: a for a in assets}
    out = {p.key: p for p in positions}
    for a in result.actions:
        params = by[a.asset.address]
        if a.kind is ActionKind.REBALANCE:
            out[a.position_key] = simulate(out[a.position_key], ActionKind.WITHDRAW_EXCESS, params, a.amount_raw)
            out[a.target_key] = simulate(out[a.target_key], ActionKind.TOP_UP, params, a.amount_raw)
        else:
            out[a.position_key] = simulate(out[a.position_key], a.kind, params, a.amount_raw)
    return [replace(p, block=block) for p in out.values()]


def test_risk_model_protocol_and_description():
    assert isinstance(RISK, RiskModel)
    assert "analytic" in RISK.describe()
    annual = LawRisk.from_annual(GaussLaw(), {"WETH": 0.8}, 24)
    assert annual.market.state("WETH").sigma * math.sqrt(24) == pytest.approx(0.8 / math.sqrt(365))


def tol(raw: int) -> int:
    """The sizing search's tolerance at this amount (1 ppm, at least one base unit)."""
    return max(1, raw * TOLERANCE_PPM // 10**6)


def test_risky_position_is_topped_up_to_the_target_rounded_up():
    pos = aave(10, 13_000)
    p0 = RISK.p_liq(pos)
    assert p0 > POLICY.epsilon
    a = only(plan([pos], RISK, Reserve({"0xweth": 100 * 10**18}), (WETH,), POLICY, block=200))
    assert a.kind is ActionKind.TOP_UP and a.asset.symbol == "WETH"
    assert a.reason.p_before == pytest.approx(p0) and a.reason.p_after <= POLICY.target
    assert a.reason.health_after > a.reason.health_before
    after = simulate(pos, ActionKind.TOP_UP, WETH, a.amount_raw)
    assert RISK.p_liq(after) <= POLICY.target
    # Rounded up, not padded: less by the search's tolerance (1 ppm) misses the target.
    short = simulate(pos, ActionKind.TOP_UP, WETH, a.amount_raw - tol(a.amount_raw))
    assert RISK.p_liq(short) > POLICY.target
    assert a.usd == pytest.approx(a.amount * 2000.0) and a.reason.model == RISK.describe()


def test_safe_position_gets_nothing():
    pos = aave(10, 12_300)
    p = RISK.p_liq(pos)
    assert POLICY.release < p < POLICY.epsilon
    result = plan([pos], RISK, BIG, ASSETS, POLICY, block=200)
    assert result.actions == () and result.skipped == () and result.p_liq[pos.key] == pytest.approx(p)


def test_very_safe_position_releases_to_target_but_not_below_the_floor():
    pos = aave(20, 8_000)
    assert RISK.p_liq(pos) < POLICY.release
    a = only(plan([pos], RISK, BIG, ASSETS, POLICY, block=200))
    assert a.kind is ActionKind.WITHDRAW_EXCESS and a.asset.symbol == "WETH"
    after = simulate(pos, a.kind, WETH, a.amount_raw)
    assert RISK.p_liq(after) <= POLICY.target
    more = a.amount_raw + tol(a.amount_raw) + 1
    assert RISK.p_liq(simulate(pos, a.kind, WETH, more)) > POLICY.target  # as much as allowed, to 1 ppm
    # A high floor binds instead of the risk target.
    floor = 1.5
    b = only(plan([pos], RISK, BIG, ASSETS, POLICY, block=200, floors={pos.key: floor}))
    assert b.amount_raw < a.amount_raw
    assert simulate(pos, b.kind, WETH, b.amount_raw).health >= floor * (1 + POLICY.floor_margin)
    assert b.reason.health_after >= floor
    # A floor above the current health: nothing to release, and said so.
    none = plan([pos], RISK, BIG, ASSETS, POLICY, block=200, floors={pos.key: 5.0})
    assert none.actions == () and "floor" in none.skipped[0][1]


def test_cheapest_asset_wins_and_the_note_compares():
    pos = aave(10, 13_000)
    a = only(plan([pos], RISK, BIG, ASSETS, POLICY, block=200))
    assert a.kind is ActionKind.REPAY and a.asset.symbol == "USDC"
    for word in ("repay USDC", "add WETH", "add WBTC", "haircut", "chose repay USDC"):
        assert word in a.reason.note
    # Without USDC in the reserve, WETH (weight 0.83, no haircut) beats WBTC (0.70, 3% haircut).
    b = only(plan([pos], RISK, Reserve({"0xweth": 10**20, "0xwbtc": 10**9}), ASSETS, POLICY, block=200))
    assert b.asset.symbol == "WETH" and "add WBTC" in b.reason.note


class CountingRisk:
    """RISK, counting its P evaluations."""

    def __init__(self) -> None:
        self.calls = 0

    def __getattr__(self, name):
        return getattr(RISK, name)

    def p_liq(self, pos):
        self.calls += 1
        return RISK.p_liq(pos)


def test_only_ways_the_reserve_can_pay_are_sized_and_the_choice_is_the_same():
    pos = aave(10, 13_000)
    weth_only = Reserve({"0xweth": 10**20})
    counted = CountingRisk()
    a = only(plan([pos], counted, weth_only, ASSETS, POLICY, block=200))
    assert a.kind is ActionKind.TOP_UP and a.asset.symbol == "WETH"
    assert ("not sized: repay USDC (the reserve holds none), add WBTC (the reserve holds none), "
            "add USDC (the reserve holds none); chose add WETH") in a.reason.note
    # The amount is the one a full sizing gives WETH (the cheapest way that fits either way) ...
    full = _Planner(RISK, BIG, ASSETS, POLICY, 200, {}, {}).options(pos, RISK.p_liq(pos))
    assert [o.raw for o in full if o.params.symbol == "WETH" and o.kind is ActionKind.TOP_UP] == [a.amount_raw]
    # ... for fewer P evaluations than sizing all four ways
    every = CountingRisk()
    _Planner(every, BIG, ASSETS, POLICY, 200, {}, {}).options(pos, RISK.p_liq(pos))
    assert counted.calls * 2 < every.calls


TAIL = LawRisk(BUILTIN_TAIL, market_from_history(BUILTIN_TAIL, ["WETH", "WBTC", "USDC"], {}, default_annual=0.8,
                                                  min_returns=100, overrides={"WETH": 0.8, "WBTC": 0.7}), 24.0)


@pytest.mark.parametrize("risk", [RISK, TAIL], ids=["gauss", "tail"])
def test_ways_left_unsized_by_their_estimate_were_never_the_cheapest(risk):
    """The first pass sizes the way likely cheapest and skips one whose estimated cost (same
    distance to liquidation) is over PRUNE_MARGIN above: across positions with and without a stable
    collateral, and reserves with and without the cheapest asset, the choice is the one a full
    sizing makes (the cheapest way that fits), to the raw unit."""
    reserves = [BIG, Reserve({"0xweth": 10**20, "0xwbtc": 10**9}), Reserve({"0xusdc": 10**12, "0xwbtc": 10**9}),
                Reserve({"0xweth": 10**20, "0xusdc": 10**12})]
    pruned = 0
    for weth, usdc_coll, debt in [(10, 0, 13_000), (10, 0, 14_000), (3, 4_000, 8_000), (10, 5_000, 17_000),
                                  (40, 0, 54_000), (1, 20_000, 17_000)]:
        legs = (Leg(WETH.asset, Side.COLLATERAL, int(weth * 10**18), WETH.price_usd, 0.83),
                Leg(USDC.asset, Side.COLLATERAL, int(usdc_coll * 10**6), 1.0, 0.78),
                Leg(USDC.asset, Side.DEBT, int(debt * 10**6), 1.0, 1.0))
        pos = Position("eth", Protocol.AAVE_V3, "0xpool", "0xa", "pool", legs, int(lending_health(legs) * WAD), 100)
        p = risk.p_liq(pos)
        if not p > POLICY.epsilon:
            continue
        for reserve in reserves:
            a = only(plan([pos], risk, reserve, ASSETS, POLICY, block=200))
            pruned += "(estimated" in a.reason.note
            full = _Planner(risk, reserve, ASSETS, POLICY, 200, {}, {}).options(pos, p)
            cheapest = next(o for o in full if o.raw <= reserve.get(o.params.address))
            assert (a.kind, a.asset.symbol, a.amount_raw) == (cheapest.kind, cheapest.params.symbol, cheapest.raw)
    assert pruned >= 3  # the estimate did leave ways out (18 of the 24 plans with the Gauss law, 3 with the tail law)


def test_a_short_reserve_still_sizes_every_way_for_a_rebalance():
    # A reserve of 1 raw USDC (its ways are sized first and do not fit): the risky position is
    # protected by moving WETH from a safe one of the same account, which needs the WETH top-up
    # sized although the reserve holds no WETH.
    risky, safe = aave(10, 13_000, market="m1"), aave(100, 1_000, market="m2")
    got = plan([risky, safe], RISK, Reserve({"0xusdc": 1}), ASSETS, POLICY, block=200)
    moves = [x for x in got.actions if x.kind is ActionKind.REBALANCE]
    assert len(moves) == 1 and moves[0].target_key == risky.key and moves[0].asset.symbol == "WETH"
    assert "not sized" not in moves[0].reason.note


def test_repay_is_rounded_up_and_leaves_the_target():
    pos = aave(10, 13_000)
    a = only(plan([pos], RISK, BIG, ASSETS, POLICY, block=200))
    assert RISK.p_liq(simulate(pos, ActionKind.REPAY, USDC, a.amount_raw)) <= POLICY.target
    assert RISK.p_liq(simulate(pos, ActionKind.REPAY, USDC, a.amount_raw - tol(a.amount_raw))) > POLICY.target


def test_bad_prices_are_never_acted_on():
    risky = aave(10, 14_000, price_ok=False, price_issue="stale WETH feed")
    safe = aave(30, 5_000, account="0xb", price_ok=False)
    result = plan([risky, safe], RISK, BIG, ASSETS, POLICY, block=200)
    assert result.actions == ()
    assert {k for k, _ in result.skipped} == {risky.key, safe.key}
    assert "stale WETH feed" in dict(result.skipped)[risky.key]


def test_no_flapping_plan_twice_with_state_updated():
    positions = [aave(10, 13_000), aave(20, 8_000, account="0xb")]
    first = plan(positions, RISK, BIG, ASSETS, POLICY, block=200)
    assert {a.kind for a in first.actions} == {ActionKind.REPAY, ActionKind.WITHDRAW_EXCESS}
    last = {a.position_key: 200 for a in first.actions}
    state = apply(positions, first, block=201)
    for blk in (201, 205, 215, 400):  # inside the cooldown and long after it
        again = plan(state, RISK, BIG, ASSETS, POLICY, block=blk, last_action_block=last)
        assert again.actions == (), (blk, again)


def test_cooldown_holds_a_release_but_not_an_urgent_top_up():
    pos = aave(20, 8_000, block=204)
    held = plan([pos], RISK, BIG, ASSETS, POLICY, block=205, last_action_block={pos.key: 200})
    assert held.actions == () and "no release until block 500" in held.skipped[0][1]
    # Past the plain cooldown a release still waits for the (longer) release cooldown, then goes.
    later = replace(pos, block=260)
    assert plan([later], RISK, BIG, ASSETS, POLICY, block=261, last_action_block={pos.key: 200}).actions == ()
    free = replace(pos, block=500)
    assert only(plan([free], RISK, BIG, ASSETS, POLICY, block=500, last_action_block={pos.key: 200})).kind \
        is ActionKind.WITHDRAW_EXCESS
    risky = aave(10, 13_000, block=204)
    urgent = plan([risky], RISK, BIG, ASSETS, POLICY, block=205, last_action_block={risky.key: 200})
    assert len(urgent.actions) == 1
    # A read that does not yet show our action (read at or before it) is never acted on again.
    stale = plan([replace(risky, block=200)], RISK, BIG, ASSETS, POLICY, block=205,
                 last_action_block={risky.key: 200})
    assert stale.actions == () and "not after our action" in stale.skipped[0][1]


def test_min_action_size():
    pos = aave(10, 12_900)  # just above the budget: a tiny repayment would do
    assert RISK.p_liq(pos) > POLICY.epsilon
    result = plan([pos], RISK, BIG, ASSETS, replace(POLICY, min_action_usd=10_000), block=200)
    assert result.actions == () and "minimum" in result.skipped[0][1]
    # a protection left undone is never silent
    assert result.alerts[0].kind == "unprotected" and "above budget" in result.alerts[0].text


def test_reserve_short_allocates_by_expected_loss_avoided_and_alerts():
    # Same health, same P, same size: a Morpho liquidation costs more (incentive 1/(1-0.3(1-LLTV))
    # on the whole debt vs Aave's 5% bonus on half), so each USD avoids more loss there.
    aave_pos = aave(10, 13_200, account="0xa")
    morpho = aave(10, 13_200, account="0xb", protocol=Protocol.MORPHO_BLUE, market="0xmarket")
    assert RISK.p_liq(aave_pos) == pytest.approx(RISK.p_liq(morpho))
    full = plan([aave_pos, morpho], RISK, Reserve({"0xusdc": 10**15}), ASSETS, POLICY, block=200)
    assert full.allocation is None and full.alerts == ()
    need = {a.position_key: a.usd for a in full.actions}
    reserve = Reserve({"0xusdc": int(need[morpho.key] * 1.5 * 10**6)})  # not enough for both
    short = plan([aave_pos, morpho], RISK, reserve, ASSETS, POLICY, block=200)
    alloc = short.allocation
    assert alloc is not None and alloc.reserve_short and any("reserve short" in x.text for x in short.alerts)
    assert aave_pos.key in alloc.uncovered and morpho.key not in alloc.uncovered
    assert aave_pos.key in short.alerts[0].text and short.alerts[0].kind == "reserve_short"
    got = {a.position_key: a for a in short.actions}
    assert got[morpho.key].reason.p_after <= POLICY.target  # the better use of a USD is served in full
    assert "partial" in got[aave_pos.key].reason.note and got[aave_pos.key].reason.p_after > POLICY.target
    assert got[aave_pos.key].reason.p_after < got[aave_pos.key].reason.p_before
    assert sum(a.amount_raw for a in short.actions) <= reserve.get("0xusdc")


def test_rebalance_from_a_safe_position_to_a_risky_one():
    risky, safe = aave(10, 13_500, account="0xa", market="m1"), aave(40, 8_000, account="0xa", market="m2")
    other = aave(40, 8_000, account="0xother", market="m3")
    result = plan([risky, safe, other], RISK, Reserve({}), ASSETS, POLICY, block=200)
    reb = [a for a in result.actions if a.kind is ActionKind.REBALANCE]
    assert len(reb) == 1
    a = reb[0]
    assert a.position_key == safe.key and a.target_key == risky.key and a.asset.symbol == "WETH"
    assert a.reason.p_after <= POLICY.target
    src_after = simulate(safe, ActionKind.WITHDRAW_EXCESS, WETH, a.amount_raw)
    assert RISK.p_liq(src_after) <= POLICY.target and src_after.health >= POLICY.default_health_floor
    # The other owner's position releases to the reserve, it never funds someone else.
    assert all(x.position_key != other.key or x.kind is ActionKind.WITHDRAW_EXCESS for x in result.actions)
    state = apply([risky, safe, other], result, block=201)
    last = {x.position_key: 200 for x in result.actions} | {risky.key: 200}
    # Next tick: the target is at its target level; the source, still far below its release level,
    # releases what is left to the reserve (it was only drawn as far as the target needed), then calm.
    # (after the release cooldown).
    state = [replace(p, block=530) for p in state]
    nxt = plan(state, RISK, Reserve({}), ASSETS, POLICY, block=530, last_action_block=last)
    assert [(x.kind, x.position_key) for x in nxt.actions] == [(ActionKind.WITHDRAW_EXCESS, safe.key)]
    state = apply(state, nxt, block=531)
    assert plan(state, RISK, Reserve({}), ASSETS, POLICY, block=560,
                last_action_block=last | {safe.key: 530}).actions == ()


def test_perp_top_up_and_release():
    usdc = replace(USDC, weights={})
    weak = perp(2_000.0)  # 25x: a 4% move liquidates
    a = only(plan([weak], RISK, BIG, (usdc,), POLICY, block=200))
    assert a.kind is ActionKind.TOP_UP and a.asset.symbol == "USDC"
    assert RISK.p_liq(simulate(weak, a.kind, usdc, a.amount_raw)) <= POLICY.target
    assert RISK.p_liq(simulate(weak, a.kind, usdc, a.amount_raw - tol(a.amount_raw))) > POLICY.target
    strong = perp(40_000.0)
    b = only(plan([strong], RISK, BIG, (usdc,), POLICY, block=200))
    assert b.kind is ActionKind.WITHDRAW_EXCESS and b.asset.symbol == "USDC"
    assert b.amount == pytest.approx(b.amount_raw / USD_RAW) and b.usd == pytest.approx(b.amount)
    after = simulate(strong, b.kind, usdc, b.amount_raw)
    assert RISK.p_liq(after) <= POLICY.target and after.health >= 1.1
    assert after.perp.collateral_usd == pytest.approx(40_000.0 - b.usd)


def test_max_actions_per_tick_defers_the_rest():
    positions = [aave(10, 13_000 + 50 * i, account=f"0x{i}") for i in range(4)]
    result = plan(positions, RISK, BIG, ASSETS, replace(POLICY, max_actions_per_tick=2), block=200)
    assert len(result.actions) == 2 and sum("deferred" in why for _, why in result.skipped) == 2
    top = sorted(positions, key=RISK.p_liq, reverse=True)[:2]
    assert {a.position_key for a in result.actions} == {p.key for p in top}  # most urgent first


@settings(max_examples=25, deadline=None)
@given(st.floats(5, 30), st.floats(3_000, 16_000), st.floats(0.03, 0.2))
def test_actions_always_land_in_the_band(weth, debt, vol):
    risk = LawRisk.lognormal({"WETH": vol, "WBTC": vol}, 24.0)
    pos = aave(weth, debt)
    result = plan([pos], risk, BIG, ASSETS, POLICY, block=200)
    p = risk.p_liq(pos)
    for a in result.actions:
        assert a.reason.p_after <= POLICY.target + 1e-12
        if a.kind is ActionKind.WITHDRAW_EXCESS:
            assert p < POLICY.release and a.reason.health_after >= POLICY.default_health_floor
        else:
            assert p > POLICY.epsilon
    if POLICY.release <= p <= POLICY.epsilon:
        assert result.actions == ()


def test_whatif_legs_and_health():
    pos = aave(10, 13_000)
    added = simulate(pos, ActionKind.TOP_UP, WBTC, 10**8)  # a new leg, weight from AssetParams
    leg = added.legs[-1]
    assert leg.asset.symbol == "WBTC" and leg.liquidation_weight == 0.70 and leg.amount == 1.0
    assert added.health == pytest.approx((20_000 * 0.83 + 60_000 * 0.70) / 13_000, rel=1e-9)
    repaid = simulate(pos, ActionKind.REPAY, USDC, 3_000 * 10**6)
    assert repaid.health == pytest.approx(16_600 / 10_000, rel=1e-9)
    assert simulate(pos, ActionKind.REPAY, USDC, 13_000 * 10**6).health == math.inf
    with pytest.raises(ValueError):
        simulate(pos, ActionKind.WITHDRAW_EXCESS, WBTC, 1)  # holds no WBTC
    with pytest.raises(ValueError):
        simulate(pos, ActionKind.REBALANCE, WETH, 1)
    morpho = aave(10, 13_000, protocol=Protocol.MORPHO_BLUE, market="0xm")
    with pytest.raises(ValueError):
        simulate(morpho, ActionKind.TOP_UP, WBTC, 1)  # a Morpho market takes only its own collateral


@given(st.floats(100, 50_000), st.floats(1_000, 200_000), st.floats(1_000, 3_000), st.booleans())
def test_perp_health_estimate_matches_the_integer_rule(collateral, size, mark, is_long):
    from keeper.risk.perp_math import get_delta, perp_health

    usd = 10**30
    d = get_delta(int(size * usd), 2000 * usd, int(mark * usd), is_long)
    exact = perp_health(int(collateral * usd), int(size * usd), d.has_profit, d.delta, int(size * 0.001 * usd),
                        5 * usd, 500_000) / WAD
    est = perp_health_estimate(collateral, size, 2000.0, int(mark * usd) / usd, is_long, size * 0.001, 5.0, 50.0)
    assert est == pytest.approx(exact, rel=1e-6, abs=1e-6)


@given(st.floats(100, 50_000), st.floats(1_000, 200_000), st.floats(1_000, 3_000), st.booleans(),
       st.sampled_from([0, 5 * 10**30]))
def test_perp_health_estimate_is_below_one_iff_the_integer_rule_liquidates(collateral, size, mark, is_long, liq):
    """Profitable positions and a zero liquidation fee included, away from float noise at the boundary."""
    from keeper.risk.perp_math import get_delta, validate_liquidation

    usd = 10**30
    c, n, fees = int(collateral * usd), int(size * usd), int(size * 0.001 * usd)
    d = get_delta(n, 2000 * usd, int(mark * usd), is_long)
    remaining = c + d.delta if d.has_profit else c - d.delta
    if abs(remaining - max(fees + liq, n // 50)) < n // 10**9:
        return
    state = validate_liquidation(c, n, d.has_profit, d.delta, fees, liq, 500_000).state
    est = perp_health_estimate(c / usd, n / usd, 2000.0, int(mark * usd) / usd, is_long, fees / usd, liq / usd, 50.0)
    assert (est < 1.0) == (state != 0)


@pytest.mark.parametrize("is_long", [True, False])
def test_perp_top_up_pays_the_deposit_fee_on_longs_only(is_long):
    """GMX's PositionRouter keeps depositFee bps of collateral added to a long (sizeDelta 0)."""
    usdc = replace(USDC, weights={})
    base = perp(2_000.0)
    pos = replace(base, perp=replace(base.perp, is_long=is_long, deposit_fee_bps=30))
    p = pos.perp
    amount = 1_234_567_890  # 1234.56789 USDC
    after = simulate(pos, ActionKind.TOP_UP, usdc, amount)
    credited = 1_234.56789 * (0.997 if is_long else 1.0)
    assert after.perp.collateral_usd == pytest.approx(2_000.0 + credited, rel=1e-12)
    h = perp_health_estimate(2_000.0 + credited, p.size_usd, p.average_price, p.mark_price, is_long,
                             p.margin_fees_usd, p.liquidation_fee_usd, p.max_leverage)
    assert after.health == pytest.approx(h, rel=1e-12)
    no_fee = simulate(replace(pos, perp=replace(p, deposit_fee_bps=0)), ActionKind.TOP_UP, usdc, amount)
    assert (after.health < no_fee.health) == is_long
    # withdrawals pay nothing
    out = simulate(pos, ActionKind.WITHDRAW_EXCESS, usdc, 100 * USD_RAW)
    assert out.perp.collateral_usd == pytest.approx(1_900.0, rel=1e-12)


@settings(max_examples=100)
@given(st.floats(300, 20_000), st.floats(5_000, 200_000), st.floats(1_800, 2_200), st.booleans(),
       st.integers(0, 100), st.integers(1, 10**10))
def test_long_top_up_raises_health_by_the_fee_reduced_amount(collateral, size, mark, is_long, fee_bps, raw):
    """The estimate after a top-up is the estimate at collateral + amount * price * (1 - fee) for a
    long, + amount * price for a short; the searches' axes use the same credit."""
    from keeper.plan.sizing import _axis, _health_line
    from keeper.risk.health import perp_liquidation_price

    usdc = replace(USDC, weights={})
    base = perp(collateral, size)
    pos = replace(base, perp=replace(base.perp, is_long=is_long, mark_price=mark, deposit_fee_bps=fee_bps))
    p = pos.perp
    after = simulate(pos, ActionKind.TOP_UP, usdc, raw)
    credited = raw / 10**6 * (1 - fee_bps / 10_000 if is_long else 1.0)
    expected = perp_health_estimate(collateral + credited, size, 2000.0, mark, is_long, p.margin_fees_usd,
                                    p.liquidation_fee_usd, p.max_leverage)
    assert after.perp.collateral_usd == pytest.approx(collateral + credited, rel=1e-12)
    assert after.health == pytest.approx(expected, rel=1e-9)
    # the sizing search's distance axis and health line agree with the simulated position
    liq = perp_liquidation_price(is_long, size, after.perp.collateral_usd, 2000.0, p.margin_fees_usd,
                                 p.liquidation_fee_usd, p.max_leverage)
    if liq > 0:
        t = math.log(mark / liq) if is_long else math.log(liq / mark)
        assert _axis(pos, ActionKind.TOP_UP, usdc).t(raw) == pytest.approx(t, rel=1e-6, abs=1e-9)
    if 0 < after.health < math.inf:
        assert _health_line(pos, ActionKind.TOP_UP, usdc).t(raw) == pytest.approx(math.log(after.health),
                                                                               rel=1e-6, abs=1e-9)


def test_unprotectable_position_raises_an_alert():
    pos = aave(10, 13_000)
    result = plan([pos], RISK, BIG, (replace(WBTC, weights={}),), POLICY, block=200)
    assert result.actions == () and result.alerts and "no asset" in result.alerts[0].text


def test_correlation_check_stops_false_diversification():
    # Measured independent, adding WBTC diversifies and wins. Unmeasured, the model must not credit
    # diversification: the two move as one and WETH's higher weight wins, as it should.
    reserve = Reserve({"0xweth": 10**20, "0xwbtc": 10**9})
    wbtc = replace(WBTC, haircut=0.0)
    pos = aave(10, 13_000)
    alone = LawRisk.lognormal({"WETH": 0.10, "WBTC": 0.10}, 24.0, corr={("WBTC", "WETH"): 0.0})
    assert only(plan([pos], alone, reserve, (WETH, wbtc), POLICY, block=200)).asset.symbol == "WBTC"
    assert only(plan([pos], RISK, reserve, (WETH, wbtc), POLICY, block=200)).asset.symbol == "WETH"


def test_policy_and_model_must_agree():
    from keeper.errors import ConfigError

    with pytest.raises(ConfigError):
        plan([], LawRisk.lognormal({}, 8.0), BIG, ASSETS, POLICY, block=1)
    with pytest.raises(ValueError):
        Policy(release_fraction=0.6, target_fraction=0.5)


@st.composite
def books(draw):
    out = []
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["aave", "morpho", "perp"]))
        ok = draw(st.booleans()) or draw(st.booleans())
        account = draw(st.sampled_from(["0xa", "0xb"]))
        if kind == "perp":
            pos = replace(perp(draw(st.floats(1_200, 30_000))), account=account, price_ok=ok,
                          protocol_address=f"0xvault{i}")
        else:
            pos = aave(draw(st.floats(2, 30)), draw(st.floats(2_000, 15_000)), account=account, market=f"m{i}",
                       protocol=Protocol.AAVE_V3 if kind == "aave" else Protocol.MORPHO_BLUE, price_ok=ok)
        out.append(pos)
    return out


@settings(max_examples=30, deadline=None)
@given(books(), st.integers(0, 20_000), st.integers(0, 5))
def test_plans_on_random_books_keep_the_invariants(positions, usdc, weth):
    assets = (WETH, WBTC, replace(USDC, weights={}))
    reserve = Reserve({"0xusdc": usdc * 10**6, "0xweth": weth * 10**18})
    result = plan(positions, RISK, reserve, assets, POLICY, block=200)
    by_key = {p.key: p for p in positions}
    touched = [k for a in result.actions for k in (a.position_key, a.target_key) if k]
    assert len(touched) == len(set(touched))  # at most one action per position per tick
    spent: dict[str, int] = {}
    for a in result.actions:
        assert all(by_key[k].price_ok for k in (a.position_key, a.target_key) if k)
        assert a.amount_raw > 0 and a.usd >= POLICY.min_action_usd
        if a.kind in (ActionKind.TOP_UP, ActionKind.REPAY):
            spent[a.asset.address] = spent.get(a.asset.address, 0) + a.amount_raw
            assert a.reason.p_after < a.reason.p_before
            assert a.reason.p_after <= POLICY.target or "partial" in a.reason.note
        if a.kind is ActionKind.WITHDRAW_EXCESS:
            assert a.reason.p_before < POLICY.release and a.reason.p_after <= POLICY.target
            assert a.reason.health_after >= POLICY.default_health_floor
        if a.kind is ActionKind.REBALANCE:
            src = by_key[a.position_key]
            assert src.account == by_key[a.target_key].account and src.perp is None
    for address, raw in spent.items():
        assert raw <= reserve.get(address)


def test_a_late_landing_top_up_is_sized_over_the_horizon_plus_its_delay():
    """Gated GMX v1: the margin lands a PositionRouter request later (``extra["lead_hours"]``): the
    planner forecasts over horizon + delay, so it asks for more, and sooner."""
    usdc = replace(USDC, weights={})
    now = perp(2_000.0)
    late = perp(2_000.0, extra={"lead_hours": 6.0})
    assert RISK.with_lead(6.0).horizon_hours == 30.0 and RISK.with_lead(0.0) is RISK
    assert RISK.with_lead(6.0).p_liq(now) > RISK.p_liq(now)
    a = only(plan([now], RISK, BIG, (usdc,), POLICY, block=200))
    b = only(plan([late], RISK, BIG, (usdc,), POLICY, block=200))
    assert b.amount_raw > a.amount_raw
    assert RISK.with_lead(6.0).p_liq(simulate(late, b.kind, usdc, b.amount_raw)) <= POLICY.target
    # A position safe over 24 h but not over 24 h + the delay is acted on only when it lands late.
    edge = next(c for c in range(2_000, 40_000, 250) if RISK.p_liq(perp(float(c))) <= POLICY.epsilon
                and RISK.with_lead(48.0).p_liq(perp(float(c))) > POLICY.epsilon)
    assert not plan([perp(float(edge))], RISK, BIG, (usdc,), POLICY, block=200).actions
    assert plan([perp(float(edge), extra={"lead_hours": 48.0})], RISK, BIG, (usdc,), POLICY, block=200).actions


def test_a_perp_release_stays_within_what_gmx_lets_leave():
    """Gated GMX v1 validates what stays after a collateral withdrawal at the Vault's at-rest fee
    (``release_cap_usd`` from the adapter): the planner never plans more than 99% of it."""
    usdc = replace(USDC, weights={})
    strong = perp(40_000.0)
    free = only(plan([strong], RISK, BIG, (usdc,), POLICY, block=200))
    assert free.kind is ActionKind.WITHDRAW_EXCESS and free.usd > 10_000
    capped = replace(strong, perp=replace(strong.perp, release_cap_usd=5_000.0))
    a = only(plan([capped], RISK, BIG, (usdc,), POLICY, block=200))
    assert a.kind is ActionKind.WITHDRAW_EXCESS and 0 < a.usd <= 5_000.0 * 0.99
    none_left = replace(strong, perp=replace(strong.perp, release_cap_usd=0.0))
    assert not [x for x in plan([none_left], RISK, BIG, (usdc,), POLICY, block=200).actions
                if x.kind is ActionKind.WITHDRAW_EXCESS]
