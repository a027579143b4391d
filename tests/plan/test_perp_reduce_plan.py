"""A perp deleveraged by size in the planner (``keeper.plan.perp_reduce``): GMX v1's decrease rule as
the estimate has it (loss share out of the collateral, profit out to the vault, the fee from whichever
pays it), the sizing to the target, the choice against a reserve top-up by cost, and the vault's caps
cutting a reduction short with an alert. Synthetic positions; the analytic risk model. (The estimate
against GMX itself: tests/app/test_deleverage_act.py.)"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from keeper.domain import ActionKind, Address
from keeper.plan.perp_reduce import PerpReduceAxis, PerpReduceRoute, reduced_terms, simulate_reduce
from keeper.plan.planner import USD_RAW, Policy, Reserve, plan
from keeper.plan.whatif import AssetParams, perp_health_estimate
from tests.plan.test_planner import POLICY, RISK, USDC, WETH, perp

GMX = Address("0x" + "cc" * 20)
ASSETS = (WETH, USDC)


def route(cap_usd: float = 1e9, fee_bps: int = 10, execution_fee_usd: float = 0.2, gated: bool = True
          ) -> PerpReduceRoute:
    return PerpReduceRoute(USDC, GMX, fee_bps, int(cap_usd * USD_RAW), execution_fee_usd, 1.0, gated)


def moved(pos, mark: float):
    """``pos`` at another mark price (its health recomputed as the adapter would)."""
    p = replace(pos.perp, mark_price=mark)
    h = perp_health_estimate(p.collateral_usd, p.size_usd, p.average_price, mark, p.is_long, p.margin_fees_usd,
                             p.liquidation_fee_usd, p.max_leverage)
    return replace(pos, perp=p, health_wad=int(h * 10**18))


def test_a_loss_share_and_the_fee_come_out_of_the_collateral():
    pos = moved(perp(5_000, 50_000), 1_900)  # 10x long, -5 %: a $2,500 loss on the books
    funding = pos.perp.margin_fees_usd - 50_000 * 0.001
    size, coll, fees = reduced_terms(pos, 10, 20_000 * USD_RAW)
    assert size == 30_000
    assert coll == pytest.approx(5_000 - 2_500 * 0.4 - 20_000 * 0.001 - funding)
    assert fees == pytest.approx(30_000 * 0.001)
    after = simulate_reduce(pos, route(), 20_000 * USD_RAW)
    assert after.perp.size_usd == 30_000 and after.health > 1.5 * pos.health
    assert after.health == pytest.approx(perp_health_estimate(coll, size, 2000.0, 1900.0, True, fees, 5.0, 50.0))


def test_a_profit_share_goes_out_and_pays_the_fee_the_collateral_stays():
    pos = moved(perp(5_000, 50_000), 2_100)  # +5 %: $2,500 of profit
    size, coll, _ = reduced_terms(pos, 10, 20_000 * USD_RAW)
    assert (size, coll) == (30_000, 5_000)  # $1,000 realised, the $20 fee paid from it
    size, coll, _ = reduced_terms(moved(pos, 2_000.2), 10, 20_000 * USD_RAW)  # profit $2: under the fee
    assert coll == pytest.approx(5_000 - 20_000 * 0.001)


def test_a_full_close_leaves_nothing_at_risk():
    pos = perp(5_000, 50_000)
    after = simulate_reduce(pos, route(), 50_000 * USD_RAW)
    assert after.perp.size_usd == 0 and math.isinf(after.health)


def test_axis_inverts_and_rises_with_the_reduction():
    pos = moved(perp(5_000, 50_000), 1_900)
    axis = PerpReduceAxis(pos, 10, 49_000 * USD_RAW)
    ts = [axis.t(x * USD_RAW) for x in (0, 10_000, 20_000, 40_000)]
    assert ts == sorted(ts) and ts[0] > 0
    x = axis.x(ts[2])
    assert x == pytest.approx(20_000 * USD_RAW, rel=1e-9)
    assert math.isnan(axis.x(ts[0] - 1))  # not reachable by reducing


def test_without_a_reserve_the_perp_is_reduced_to_its_target():
    pos = moved(perp(5_000, 50_000), 1_880)
    result = plan([pos], RISK, Reserve(), ASSETS, POLICY, block=100, routes={pos.key: route()})
    (a,) = result.actions
    assert a.kind is ActionKind.DELEVERAGE and a.swap is None and a.asset.symbol == "USDC"
    assert a.reason.p_after <= POLICY.target < a.reason.p_before
    assert 0 < a.amount_raw < 50_000 * USD_RAW and a.amount == a.amount_raw / USD_RAW
    assert "reduce size" in a.reason.note and "PositionRouter request" in a.reason.note
    after = simulate_reduce(pos, route(), a.amount_raw)
    assert after.health == pytest.approx(a.reason.health_after)


def test_caps_cut_it_short_with_an_alert():
    pos = moved(perp(5_000, 50_000), 1_880)
    full = plan([pos], RISK, Reserve(), ASSETS, POLICY, block=100, routes={pos.key: route()}).actions[0]
    cap = full.amount_raw / USD_RAW / 2
    result = plan([pos], RISK, Reserve(), ASSETS, POLICY, block=100, routes={pos.key: route(cap_usd=cap)})
    (a,) = result.actions
    assert a.amount_raw == int(cap * USD_RAW) and POLICY.target < a.reason.p_after < a.reason.p_before
    assert [al.kind for al in result.alerts] == ["deleverage_partial"]


def test_the_reserve_or_the_reduction_whichever_costs_less():
    pos = moved(perp(5_000, 50_000), 1_880)
    reserve = Reserve({USDC.address: 1_000_000 * 10**6})
    # Tying up USDC at 0.2 % a top-up vs GMX's 0.1 % fee on the size taken off (several times the top-up):
    # the top-up is cheaper.
    a = only_action(plan([pos], RISK, reserve, ASSETS, POLICY, block=100, routes={pos.key: route()}))
    assert a.kind is ActionKind.TOP_UP
    # At a reserve cost of 10 % of what it commits, the reduction wins.
    dear = Policy(**{**POLICY.__dict__, "reserve_cost": 0.10})
    a = only_action(plan([pos], RISK, reserve, ASSETS, dear, block=100, routes={pos.key: route()}))
    assert a.kind is ActionKind.DELEVERAGE
    # A lending route never applies to a perp, nor a perp route to a lending position.
    assert plan([pos], RISK, Reserve(), ASSETS, POLICY, block=100, routes={}).actions == ()


def only_action(result):
    assert len(result.actions) == 1, result
    return result.actions[0]


def test_asset_params_of_the_route_are_the_collaterals():
    r = route()
    assert r.params is USDC and isinstance(r.params, AssetParams)
    assert r.cap_use(7) == (GMX, 7)
    assert r.loss_usd(10_000 * USD_RAW) == pytest.approx(10.0 + 0.2)
