"""The sizing searches of ``whatif``: the safe side and the 1 ppm tolerance against an exact
integer bisection, whatever the position, target, model or hint; and how few P evaluations they
take on a representative position (a count, deterministic)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.domain import WAD, ActionKind, Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.plan.planner import USD_RAW, Policy, Reserve, plan
from keeper.plan.sizing import TOLERANCE_PPM, largest_withdrawal, smallest_to_target
from keeper.plan.whatif import AssetParams, held, perp_health_estimate, simulate
from keeper.risk.health import lending_health
from keeper.risk.laws import GaussLaw
from keeper.risk.model import LawRisk

WETH = AssetParams("WETH", "0xweth", 18, 1700.0, {"aave_v3": 0.83})
WBTC = AssetParams("WBTC", "0xwbtc", 8, 60000.0, {"aave_v3": 0.70})
USDC = AssetParams("USDC", "0xusdc", 6, 1.0, {"aave_v3": 0.78})
DAI = AssetParams("DAI", "0xdai", 18, 1.0, {"aave_v3": 0.77})
PERP_USDC = AssetParams("USDC", "0xusdc", 6, 1.0)


def tol(raw: int) -> int:
    return max(1, raw * TOLERANCE_PPM // 10**6)


def lending(collateral: dict, debt: dict) -> Position:
    by = {a.symbol: a for a in (WETH, WBTC, USDC, DAI)}
    legs = tuple(Leg(by[s].asset, Side.COLLATERAL, int(x * by[s].unit), by[s].price_usd, by[s].weights["aave_v3"])
                 for s, x in collateral.items() if x > 0)
    legs += tuple(Leg(by[s].asset, Side.DEBT, int(x * by[s].unit), by[s].price_usd, 1.0)
                  for s, x in debt.items() if x > 0)
    h = lending_health(legs)
    return Position("eth", Protocol.AAVE_V3, "0xpool", "0xa", "pool", legs,
                    int(h * WAD) if math.isfinite(h) else 2**256 - 1, 100)


def perp_position(collateral_usd: float, size_usd: float, mark: float = 2000.0, is_long: bool = True,
                  deposit_fee_bps: int = 0, liquidation_fee: float = 5.0) -> Position:
    terms = PerpTerms(Asset("WETH", "0xweth", 18), is_long, size_usd, collateral_usd, 2000.0, mark,
                      size_usd * 0.001, liquidation_fee, 50.0, 0, deposit_fee_bps)
    h = perp_health_estimate(collateral_usd, size_usd, 2000.0, mark, is_long, size_usd * 0.001, liquidation_fee,
                             50.0)
    legs = (Leg(Asset("USD", "usd", 30), Side.COLLATERAL, int(collateral_usd * USD_RAW), 1.0),)
    return Position("eth", Protocol.PERP, "0xvault", "0xa", "0xusdc:0xweth:long", legs, int(h * WAD), 100,
                    perp=terms)


def good_at(pos, kind, params, p_liq, target, x, floor=None) -> bool:
    after = simulate(pos, kind, params, x)
    if floor is not None and after.health < floor:
        return False
    return p_liq(after) <= target


def exact_least(pos, kind, params, p_liq, target, hi: int) -> int:
    """The least good amount in [0, hi] (hi good), by plain integer bisection."""
    if good_at(pos, kind, params, p_liq, target, 0):
        return 0
    lo = 0  # bad
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if good_at(pos, kind, params, p_liq, target, mid):
            hi = mid
        else:
            lo = mid
    return hi


def exact_largest(pos, params, p_liq, target, floor, hi: int) -> int:
    """The largest good withdrawal in [0, hi] (0 good), by plain integer bisection."""
    kind = ActionKind.WITHDRAW_EXCESS
    if good_at(pos, kind, params, p_liq, target, hi, floor):
        return hi
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if good_at(pos, kind, params, p_liq, target, mid, floor):
            lo = mid
        else:
            hi = mid
    return lo


class Counted:
    def __init__(self, p_liq):
        self.p_liq, self.n = p_liq, 0

    def __call__(self, pos):
        self.n += 1
        return self.p_liq(pos)


def check_smallest(pos, kind, params, risk, target, p_before, curve: bool = False):
    """``curve``: with the model's shifted P (``LawRisk.p_shifted``) steering the first proposal."""
    p_liq = Counted(risk.p_liq)
    shifted = risk.p_shifted(pos) if curve else None
    got = smallest_to_target(pos, kind, params, p_liq, target, p_before=p_before, shifted=shifted)
    if got is None:
        if kind is ActionKind.REPAY:  # repaying all of it does not reach the target
            assert not good_at(pos, kind, params, risk.p_liq, target, held(pos, params, Side.DEBT))
        else:  # nothing within 10,000x the position does
            big = int(1e4 * (pos.collateral_usd + pos.debt_usd) / params.price_usd * params.unit)
            assert not good_at(pos, kind, params, risk.p_liq, target, big)
        return None, p_liq.n
    assert got.p_after == risk.p_liq(got.after) and got.p_after <= target  # evaluated, and good
    assert got.after == simulate(pos, kind, params, got.raw)
    least = exact_least(pos, kind, params, risk.p_liq, target, got.raw)
    assert least <= got.raw  # never below the exact least amount
    assert got.raw - least <= tol(got.raw), (got.raw, least)  # at most 1 ppm (one unit) above it
    return got, p_liq.n


targets = st.floats(1e-6, 0.3).map(lambda t: float(t))
hints = st.sampled_from(["true", "none", "wrong-high", "wrong-low"])


def hint_value(kind: str, true_p: float, target: float) -> float | None:
    return {"true": true_p, "none": None, "wrong-high": min(1.0, max(true_p, target) * 3 + 0.01),
            "wrong-low": target * 0.5}[kind]


@settings(max_examples=150, deadline=None)
@given(st.floats(1, 50), st.floats(0, 3), st.floats(1.0, 1.6), st.floats(0.0, 0.5), st.floats(0.1, 1.5), targets,
       st.sampled_from([(ActionKind.REPAY, "USDC"), (ActionKind.REPAY, "DAI"), (ActionKind.TOP_UP, "WETH"),
                        (ActionKind.TOP_UP, "USDC"), (ActionKind.TOP_UP, "WBTC")]),
       st.booleans(), st.floats(1.0, 3.0), st.floats(-0.05, 0.05), hints, st.booleans())
def test_smallest_is_on_the_safe_side_and_within_tolerance(weth, wbtc, health, dai_share, vol, target, way, comove,
                                                          tail, drift, hint, curve):
    weighted = weth * 1700 * 0.83 + wbtc * 60000 * 0.70
    debt = weighted / health
    pos = lending({"WETH": weth, "WBTC": wbtc}, {"USDC": debt * (1 - dai_share), "DAI": debt * dai_share})
    # comove: correlation unmeasured (the riskier end); else a measured 0 (diversification credited)
    risk = LawRisk.lognormal({"WETH": vol / math.sqrt(365), "WBTC": vol / math.sqrt(365)}, 24.0, margin=tail,
                             corr=None if comove else {("WBTC", "WETH"): 0.0})
    kind, symbol = way
    params = {"WETH": WETH, "WBTC": WBTC, "USDC": USDC, "DAI": DAI}[symbol]
    if kind is ActionKind.REPAY and held(pos, params, Side.DEBT) == 0:
        return
    p = risk.p_liq(pos)
    check_smallest(pos, kind, params, risk, target, hint_value(hint, p, target), curve)


@settings(max_examples=60, deadline=None)
@given(st.floats(300, 20_000), st.floats(5_000, 200_000), st.floats(1800, 2200), st.floats(0.1, 1.5), targets,
       hints, st.booleans(), st.sampled_from([0, 30]), st.booleans())
def test_perp_top_up_is_on_the_safe_side_and_within_tolerance(collateral, size, mark, vol, target, hint, is_long,
                                                              deposit_fee_bps, curve):
    pos = perp_position(collateral, size, mark, is_long, deposit_fee_bps)
    risk = LawRisk.lognormal({"WETH": vol / math.sqrt(365)}, 24.0)
    p = risk.p_liq(pos)
    check_smallest(pos, ActionKind.TOP_UP, PERP_USDC, risk, target, hint_value(hint, p, target), curve)


@settings(max_examples=300)
@given(st.floats(10, 40_000), st.floats(100, 200_000), st.floats(1800, 2200), st.booleans(),
       st.sampled_from([0.0, 5.0]), st.floats(0.3, 5.0),
       st.sampled_from([ActionKind.TOP_UP, ActionKind.WITHDRAW_EXCESS]))
def test_perp_health_line_is_the_estimate_and_inverts(collateral, size, mark, is_long, liq_fee, h_goal, kind):
    """The releases' health-floor model (``_health_line`` for perps) is ``perp_health_estimate`` of
    the simulated position, on both pieces of its min (leverage term, liquidation-fee term), and
    ``x(t)`` is the least move that reaches a health (``t(x(t)) = t`` where health can get there)."""
    from keeper.plan.sizing import _health_line

    pos = perp_position(collateral, size, mark, is_long, liquidation_fee=liq_fee)
    line = _health_line(pos, kind, PERP_USDC)
    raw = 10**9 if kind is ActionKind.TOP_UP else int(collateral / 3 * USD_RAW)
    after = simulate(pos, kind, PERP_USDC, raw)
    if 0 < after.health < math.inf and after.perp.collateral_usd > 0:
        assert line.t(raw) == pytest.approx(math.log(after.health), rel=1e-9, abs=1e-12)
    x = line.x(math.log(h_goal))
    if x >= 0:  # reached by moving collateral the way ``kind`` moves it
        amount = round(x)
        if kind is ActionKind.WITHDRAW_EXCESS and amount > collateral * USD_RAW:
            return
        reached = simulate(pos, kind, PERP_USDC, amount).health
        assert reached == pytest.approx(h_goal, rel=1e-6)


def check_largest(pos, params, risk, target, floor, p_before):
    p_liq = Counted(risk.p_liq)
    got = largest_withdrawal(pos, params, p_liq, target, floor, p_before=p_before)
    kind = ActionKind.WITHDRAW_EXCESS
    hi = int(pos.perp.collateral_usd * USD_RAW) if pos.perp else held(pos, params, Side.COLLATERAL)
    if got is None:  # nothing (or at most less than one tolerance) can leave
        assert not good_at(pos, kind, params, risk.p_liq, target, min(hi, tol(hi) + 1), floor) or hi <= 1
        return None, p_liq.n
    assert got.raw > 0 and got.p_after == risk.p_liq(got.after) and got.p_after <= target
    assert got.after.health >= floor
    largest = exact_largest(pos, params, risk.p_liq, target, floor, hi)
    assert got.raw <= largest  # never above the exact largest amount
    assert largest - got.raw <= tol(got.raw), (got.raw, largest)
    return got, p_liq.n


@settings(max_examples=120, deadline=None)
@given(st.floats(1, 50), st.floats(0, 20_000), st.floats(1.05, 4.0), st.floats(0.1, 1.5), targets,
       st.floats(1.0, 2.5), st.sampled_from(["WETH", "USDC"]), st.booleans(), hints)
def test_largest_withdrawal_is_on_the_safe_side_and_within_tolerance(weth, usdc, health, vol, target, floor, symbol,
                                                                    comove, hint):
    weighted = weth * 1700 * 0.83 + usdc * 0.78
    pos = lending({"WETH": weth, "USDC": usdc}, {"USDC" if symbol == "WETH" else "DAI": weighted / health})
    risk = LawRisk.lognormal({"WETH": vol / math.sqrt(365)}, 24.0)
    params = WETH if symbol == "WETH" else USDC
    if held(pos, params, Side.COLLATERAL) == 0:
        return
    p = risk.p_liq(pos)
    h = {"true": p, "none": None, "wrong-high": min(1.0, 3 * p + target), "wrong-low": p * 0.1}[hint]
    check_largest(pos, params, risk, target, floor, h)


@settings(max_examples=40, deadline=None)
@given(st.floats(2_000, 40_000), st.floats(5_000, 100_000), st.floats(0.1, 1.5), targets, st.floats(1.0, 3.0),
       st.booleans())
def test_perp_release_is_on_the_safe_side_and_within_tolerance(collateral, size, vol, target, floor, hinted):
    pos = perp_position(collateral, size)
    risk = LawRisk.lognormal({"WETH": vol / math.sqrt(365)}, 24.0)
    check_largest(pos, PERP_USDC, risk, target, floor, risk.p_liq(pos) if hinted else None)


@settings(max_examples=40, deadline=None)
@given(st.floats(1, 50), st.floats(1.0, 1.5), st.floats(1.01, 3.0),
       st.sampled_from([(ActionKind.REPAY, USDC), (ActionKind.TOP_UP, WETH), (ActionKind.TOP_UP, USDC)]))
def test_a_step_function_p_still_sizes_exactly(weth, health, goal, way):
    """The operator's "to health X" (daemon.manual): P is 0 or 1, nothing to interpolate."""
    pos = lending({"WETH": weth}, {"USDC": weth * 1700 * 0.83 / health})
    step = type("Step", (), {"p_liq": staticmethod(lambda q: 0.0 if q.health >= goal else 1.0)})()
    kind, params = way
    _got, n = check_smallest(pos, kind, params, step, 0.5, None)
    assert n <= 90


def test_hints_are_only_hints():
    """A wrong P of the untouched position never changes the answer's guarantees: amount 0 is still
    evaluated when the answer comes down to it."""
    risk = LawRisk.from_annual(GaussLaw(), {"WETH": 0.8})
    safe = lending({"WETH": 10}, {"USDC": 5_000})
    assert risk.p_liq(safe) <= 0.005
    got = smallest_to_target(safe, ActionKind.TOP_UP, WETH, risk.p_liq, 0.005, p_before=0.9)  # says risky
    assert got is not None and got.raw == 0 and got.p_after == risk.p_liq(got.after)
    got = smallest_to_target(safe, ActionKind.REPAY, USDC, risk.p_liq, 0.005, p_before=0.9)
    assert got is not None and got.raw == 0
    # Repaying all of one debt cannot reach the target while another remains: None, not a guess.
    two = lending({"WETH": 10}, {"USDC": 1_000, "DAI": 13_000})
    assert smallest_to_target(two, ActionKind.REPAY, USDC, risk.p_liq, 0.005, p_before=risk.p_liq(two)) is None
    # Everything can leave (a collateral the position does not need): exactly all of it.
    spare = lending({"WETH": 10, "USDC": 500}, {"DAI": 3_000})
    got = largest_withdrawal(spare, USDC, risk.p_liq, 0.005, 1.1, p_before=risk.p_liq(spare))
    assert got is not None and got.raw == held(spare, USDC, Side.COLLATERAL)
    # Below its floor already: nothing, whatever the hint says.
    assert largest_withdrawal(spare, WETH, risk.p_liq, 0.005, 10.0, p_before=0.0) is None
    # Said safe but is not: nothing.
    risky = lending({"WETH": 10}, {"USDC": 13_000})
    assert largest_withdrawal(risky, WETH, risk.p_liq, 0.005, 1.0, p_before=0.0) is None


# ------------------------------------------------------------------ how many P evaluations
REPRESENTATIVE_RISK = LawRisk.from_annual(GaussLaw(), {"WETH": 0.8}, 24.0)


def searches_of_a_plan(pos: Position, *, prune: bool = True) -> tuple[list[int], int]:
    """P evaluations of each sizing search when planning ``pos`` (reserve: WETH and USDC), and of
    the whole plan (the planner's own P of the position included). ``prune=False``: every way is
    sized (no estimate leaves one out), to count the searches themselves."""
    import keeper.plan.planner as planner

    counts: list[int] = []
    real = planner.smallest_to_target

    def counted(pos, kind, params, p_liq, target, **kw):
        c = Counted(p_liq)
        out = real(pos, kind, params, c, target, **kw)
        counts.append(c.n)
        return out

    total = Counted(REPRESENTATIVE_RISK.p_liq)
    risk = type("R", (), {"p_liq": staticmethod(total), "describe": REPRESENTATIVE_RISK.describe,
                          "horizon_hours": 24.0})()
    planner.smallest_to_target = counted
    margin = planner.PRUNE_MARGIN
    planner.PRUNE_MARGIN = margin if prune else math.inf
    try:
        plan([pos], risk, Reserve({"0xweth": 10**20, "0xusdc": 10**12}), (WETH, USDC), Policy(), block=200)
    finally:
        planner.smallest_to_target = real
        planner.PRUNE_MARGIN = margin
    return counts, total.n


def test_representative_position_takes_few_p_evaluations():
    pos = lending({"WETH": 10}, {"USDC": 13_000})
    counts, total = searches_of_a_plan(pos, prune=False)
    assert len(counts) == 3  # repay USDC, add WETH, add USDC
    assert max(counts) <= 5 and total <= 10, (counts, total)  # was 26, 18, 22 (67 in all)
    # Add WETH and add USDC are dearer than repaying by more than the margin: estimated, not sized.
    counts, total = searches_of_a_plan(pos)
    assert len(counts) == 1 and total <= 4, (counts, total)


def test_few_p_evaluations_across_risky_positions():
    rng = random.Random(7)
    counts = []
    for _ in range(60):
        weth, health = rng.uniform(3, 40), rng.uniform(1.01, 1.09)  # all above the budget
        counts += searches_of_a_plan(lending({"WETH": weth}, {"USDC": weth * 1700 * 0.83 / health}), prune=False)[0]
    assert len(counts) == 180
    assert sum(counts) / len(counts) <= 3.5 and max(counts) <= 6, counts  # was ~23 on average


def test_with_the_models_curve_two_evaluations_settle_a_one_factor_position():
    """Repaying the stable debt, or adding the one collateral, keeps the factor's mix: the shifted curve
    is the model's own P there, so its root is right and two evaluations (it, and one tolerance below)
    close the search; a stable collateral changes the mix (the curve is a proposal only) and still
    sizes exactly."""
    risk = REPRESENTATIVE_RISK
    for weth, health in ((10, 1.05), (3, 1.01), (40, 1.09)):
        pos = lending({"WETH": weth}, {"USDC": weth * 1700 * 0.83 / health})
        p = risk.p_liq(pos)
        for kind, params in ((ActionKind.REPAY, USDC), (ActionKind.TOP_UP, WETH)):
            got, n = check_smallest(pos, kind, params, risk, 0.005, p, curve=True)
            assert got is not None and n == 2, (weth, health, kind, n)
        got, n = check_smallest(pos, ActionKind.TOP_UP, USDC, risk, 0.005, p, curve=True)
        assert got is not None and n <= 6, n


def test_release_takes_few_p_evaluations():
    pos = lending({"WETH": 20}, {"USDC": 8_000})
    risk = REPRESENTATIVE_RISK
    c = Counted(risk.p_liq)
    got = largest_withdrawal(pos, WETH, c, 0.005, 1.1 * 1.005, p_before=risk.p_liq(pos))
    assert got is not None and c.n <= 4, c.n


def test_planner_passes_what_it_knows():
    """The planner hands the searches the P it already has; the plan is the same as without it."""
    pos = lending({"WETH": 10}, {"USDC": 13_000})
    a = plan([pos], REPRESENTATIVE_RISK, Reserve({"0xusdc": 10**12}), (WETH, USDC), Policy(), block=200)
    (act,) = a.actions
    p_liq = REPRESENTATIVE_RISK.p_liq
    direct = smallest_to_target(pos, ActionKind.REPAY, USDC, p_liq, Policy().target)
    assert act.amount_raw - tol(act.amount_raw) < direct.raw <= act.amount_raw + tol(act.amount_raw)
    assert p_liq(simulate(pos, ActionKind.REPAY, USDC, act.amount_raw)) <= Policy().target
    assert p_liq(simulate(pos, ActionKind.REPAY, USDC, act.amount_raw - tol(act.amount_raw))) > Policy().target


@pytest.mark.parametrize("target", [1e-9, 1e-4, 0.3])
def test_extreme_targets(target):
    pos = lending({"WETH": 10}, {"USDC": 13_000})
    for kind, params in [(ActionKind.REPAY, USDC), (ActionKind.TOP_UP, WETH), (ActionKind.TOP_UP, USDC)]:
        check_smallest(pos, kind, params, REPRESENTATIVE_RISK, target, REPRESENTATIVE_RISK.p_liq(pos))


def test_a_target_no_amount_reaches_gives_none():
    risk = REPRESENTATIVE_RISK
    pos = lending({"WETH": 10}, {"USDC": 13_000})
    floored = Counted(lambda q: max(risk.p_liq(q), 0.01))  # e.g. a model with a floor on P
    for kind, params in [(ActionKind.TOP_UP, WETH), (ActionKind.TOP_UP, USDC), (ActionKind.REPAY, USDC)]:
        floored.n = 0
        assert smallest_to_target(pos, kind, params, floored, 0.005, p_before=floored(pos)) is None
        assert floored.n <= 12, (kind, params.symbol, floored.n)
