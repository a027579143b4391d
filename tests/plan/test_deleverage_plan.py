"""Deleverage in the planner (``keeper.plan.deleverage``, ``planner.plan(routes=...)``): the route's
amounts against the vault's on-chain bound, the position it leaves, the choice between the reserve
and a deleverage by cost, the reserve going first to positions with no other way, and a thin pool
or the vault's caps cutting a deleverage short, never past the slippage bound. Synthetic positions;
the analytic risk model."""

from __future__ import annotations

import math
import random

import pytest

from keeper.domain import ActionKind, Address, Side
from keeper.plan.deleverage import IMPACT_MARGIN, DeleverageRoute, simulate_deleverage
from keeper.plan.planner import Policy, Reserve, plan
from keeper.plan.whatif import held
from keeper.risk.health import lending_health
from tests.plan.test_planner import ASSETS, POLICY, RISK, USDC, WETH, aave

POOL, MORPHO = Address("0x" + "aa" * 20), Address("0x" + "bb" * 20)


def route(depth_usd: float = 20e6, *, slip: float = 0.01, pool_fee: float = 0.003, flash_fee: float = 0.0,
          cap_weth: float = 1_000.0, gas_usd: float = 1.0) -> DeleverageRoute:
    return DeleverageRoute(WETH, USDC, POOL, MORPHO, flash_fee, pool_fee, slip, depth_usd, int(cap_weth * 10**18),
                           gas_usd)


def chain_bound(sell_raw: int, p_in: int, p_out: int, d_in: int, d_out: int, slip_bps: int) -> int:
    """DeleverageModule._swapBound, in integers as the contract has it (prices 1e18-scaled)."""
    num, den = sell_raw * 10**d_out * p_in * (10_000 - slip_bps), p_out * 10**d_in * 10_000
    return -(-num // den)


def test_the_sale_pays_the_flash_loan_at_the_vaults_bound_and_min_out_never_undercuts_it():
    rng = random.Random(7)
    for _ in range(500):
        price = rng.uniform(50, 50_000)
        slip_bps, flash_bps = rng.randint(1, 1_000), rng.choice([0, 5, 9])
        w = WETH.__class__("WETH", WETH.address, 18, price, WETH.weights)
        r = DeleverageRoute(w, USDC, POOL, MORPHO, flash_bps / 1e4, 0.003, slip_bps / 1e4, 1e6, 10**30)
        repay = rng.randint(1, 10**12)
        sell = r.sell_raw(repay)
        p_in = round(price * 10**18)
        bound = chain_bound(sell, p_in, 10**18, 18, 6, slip_bps)
        owed = repay + repay * flash_bps // 10_000
        assert bound >= owed - 1  # selling that much covers the loan at the vault's own bound
        assert r.min_out_raw(sell, repay) >= max(bound, owed)  # never below what the contract requires
        assert r.min_out_raw(sell, repay) <= max(bound, owed) * (1 + 2e-6) + 2


def test_simulated_position_repays_and_sells_and_health_follows_the_legs():
    pos = aave(10, 15_000)  # health 10 * 2000 * 0.83 / 15,000 = 1.107
    r = route()
    after = simulate_deleverage(pos, r, 3_000 * 10**6)
    sell = r.sell_raw(3_000 * 10**6)
    assert sell == math.ceil(3_000 / 2_000 / 0.99 * 10**18)
    assert held(after, USDC, Side.DEBT) == 12_000 * 10**6
    assert held(after, WETH, Side.COLLATERAL) == 10 * 10**18 - sell
    assert after.health == pytest.approx(lending_health(after.legs))
    assert after.health > pos.health


def test_largest_sale_keeps_fee_and_impact_inside_the_slippage():
    r = route(depth_usd=1e6)
    v = r.largest_sale_usd()
    assert r.pool_fee + r.impact(v) == pytest.approx(r.max_slippage - IMPACT_MARGIN)
    assert route(slip=0.003).largest_sale_usd() == 0.0  # the pool's fee alone uses the whole slippage


def test_without_a_reserve_the_position_is_deleveraged_to_its_target():
    pos = aave(10, 15_000)
    result = plan([pos], RISK, Reserve(), ASSETS, POLICY, block=100, routes={pos.key: route()})
    (a,) = result.actions
    assert a.kind is ActionKind.DELEVERAGE and a.asset.symbol == "USDC"
    assert a.reason.p_after <= POLICY.target < a.reason.p_before
    assert a.swap is not None and a.swap.collateral.symbol == "WETH" and a.swap.pool == POOL
    assert a.swap.sell_raw == route().sell_raw(a.amount_raw)
    assert a.swap.loss_usd == pytest.approx(route().loss_usd(a.amount_raw))
    assert "deleverage WETH -> USDC" in a.reason.note and "no reserve" in a.reason.note
    # the smallest: a tenth of a per mille less does not reach the target
    less = simulate_deleverage(pos, route(), a.amount_raw * 9_999 // 10_000)
    assert RISK.p_liq(less) > POLICY.target


def test_the_reserve_is_used_when_it_is_cheaper_and_deleverage_when_that_is():
    pos = aave(10, 15_000)
    routes = {pos.key: route()}
    funded = plan([pos], RISK, Reserve({USDC.address: 100_000 * 10**6}), ASSETS, POLICY, block=100, routes=routes)
    (a,) = funded.actions
    assert a.kind is ActionKind.REPAY  # committing 0.2 % of the repayment costs less than a 0.3 % pool fee
    dear_reserve = Policy(**{**POLICY.__dict__, "reserve_cost": 0.02})
    (b,) = plan([pos], RISK, Reserve({USDC.address: 100_000 * 10**6}), ASSETS, dear_reserve, block=100,
                routes=routes).actions
    assert b.kind is ActionKind.DELEVERAGE


def test_a_short_reserve_goes_to_the_position_that_has_no_other_way():
    """Reserve for one repayment, two endangered positions, one of them deleverageable: the other
    gets the reserve even though it is less urgent, and both are protected."""
    urgent = aave(10, 16_000, account="0xa")
    other = aave(10, 15_000, account="0xb")
    assert RISK.p_liq(urgent) > RISK.p_liq(other) > POLICY.epsilon
    alone = plan([other], RISK, Reserve(), ASSETS, POLICY, block=100)
    assert not alone.actions
    need = 5_000 * 10**6
    result = plan([urgent, other], RISK, Reserve({USDC.address: need}), ASSETS, POLICY, block=100,
                  routes={urgent.key: route()})
    kinds = {a.position_key: a.kind for a in result.actions}
    assert kinds == {urgent.key: ActionKind.DELEVERAGE, other.key: ActionKind.REPAY}
    assert result.actions[0].position_key == urgent.key  # sent most urgent first


@pytest.mark.parametrize("cut", ["thin pool", "caps"])
def test_a_thin_pool_or_the_caps_cut_it_short_with_an_alert(cut):
    pos = aave(10, 16_000)
    r = route(depth_usd=150_000) if cut == "thin pool" else route(cap_weth=0.4)
    result = plan([pos], RISK, Reserve(), ASSETS, POLICY, block=100, routes={pos.key: r})
    (a,) = result.actions
    assert a.kind is ActionKind.DELEVERAGE and a.reason.p_after > POLICY.target
    sale_usd = a.swap.sell_raw / 10**18 * WETH.price_usd
    assert a.swap.sell_raw <= r.sell_cap_raw
    assert r.pool_fee + r.impact(sale_usd) <= r.max_slippage - IMPACT_MARGIN + 1e-12  # within the bound
    assert any(al.kind == "deleverage_partial" for al in result.alerts)


def test_no_room_in_the_slippage_means_no_deleverage_and_the_shortfall_alert():
    pos = aave(10, 16_000)
    result = plan([pos], RISK, Reserve(), ASSETS, POLICY, block=100, routes={pos.key: route(slip=0.003)})
    assert not result.actions
    assert [al.kind for al in result.alerts] == ["reserve_short"]
    assert "above budget" in dict(result.skipped)[pos.key]


def test_below_its_own_weight_a_position_cannot_be_deleveraged_and_the_skip_says_why():
    """At health 0.81 with WETH weighted 0.83, selling collateral worth V (plus the slippage bound) to repay V
    of debt lowers health further: no deleverage is planned, and the skip says why."""
    pos = aave(10, 20_500)
    assert pos.health < 0.83 * route().sell_per_repay
    result = plan([pos], RISK, Reserve(), ASSETS, POLICY, block=100, routes={pos.key: route()})
    assert result.actions == ()
    (why,) = [w for k, w in result.skipped if k == pos.key]
    assert "deleverage cannot lower its P now" in why and "health 0.810" in why
