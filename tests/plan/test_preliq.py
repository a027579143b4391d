"""Pre-liquidation parameters from the risk model (``keeper.plan.preliq``): the band starts where P
reaches the budget, one pre-liquidation there lands the position at the keeper's target, the values
meet the PreLiquidation contract's own requirements, a riskier market starts the band earlier.
Synthetic positions; the analytic risk model."""

from __future__ import annotations

import pytest

from keeper.domain import WAD, Leg, Position, Protocol, Side
from keeper.plan.preliq import MAX_GAP, MIN_GAP, PRE_LIF1, _at_ltv, propose
from keeper.plan.whatif import _health_wad
from keeper.risk.health import lending_health
from keeper.risk.model import LawRisk
from tests.plan.test_planner import POLICY, RISK, USDC, WETH, aave

LLTV = 0.86
CALM = LawRisk.lognormal({"WETH": 0.03, "WBTC": 0.03}, 24.0)  # hourly vols: the band falls inside its bounds


def morpho(weth: float, usdc_debt: float) -> Position:
    legs = (Leg(WETH.asset, Side.COLLATERAL, int(weth * 10**18), WETH.price_usd, LLTV),
            Leg(USDC.asset, Side.DEBT, int(usdc_debt * 10**6), 1.0, 1.0))
    return Position("eth", Protocol.MORPHO_BLUE, "0xmorpho", "0xb", "0x" + "11" * 32, legs,
                    _health_wad(lending_health(legs)), 100)


def test_the_band_starts_where_p_reaches_the_budget_and_one_pre_liquidation_lands_at_the_target():
    pos = morpho(3, 4_000)  # LTV 0.667 at ETH 2,000
    prop = propose(pos, CALM, POLICY, LLTV)
    p = prop.params
    assert LLTV - MAX_GAP <= p.pre_lltv <= LLTV - MIN_GAP
    assert prop.ltv_now == pytest.approx(4_000 / 6_000)
    assert prop.p_at_pre_lltv == pytest.approx(POLICY.epsilon, rel=1e-3)
    assert CALM.p_liq(_at_ltv(pos, prop.ltv_now, prop.target_ltv)) == pytest.approx(POLICY.target, rel=1e-3)
    # one pre-liquidation at preLltv: repay preLCF1 of the debt, seize it times preLIF1 in collateral
    ltv, r = p.pre_lltv, p.pre_lcf1
    assert (ltv - r * ltv) / (1 - r * ltv * p.pre_lif1) == pytest.approx(prop.target_ltv, rel=1e-9)
    assert prop.pre_cost_usd == pytest.approx((PRE_LIF1 - 1) * r * 4_000)
    assert prop.pre_cost_usd < prop.full_expected_usd  # a small certain cost against a larger expected one
    assert "Pre-liquidation from LTV" in prop.explain()


def test_the_parameters_meet_the_contracts_requirements():
    pre_lltv, lcf1, lcf2, lif1, lif2 = propose(morpho(3, 4_000), CALM, POLICY, LLTV).params.as_wad()
    lltv = int(LLTV * WAD)
    assert pre_lltv < lltv and lcf1 <= lcf2 and lcf1 <= WAD  # PreLiquidation's constructor, in its units
    assert WAD <= lif1 <= lif2 <= WAD * WAD // lltv


def test_a_more_volatile_market_starts_the_band_earlier_but_never_too_far_from_the_lltv():
    calm = propose(morpho(3, 4_000), CALM, POLICY, LLTV).params.pre_lltv
    wild = propose(morpho(3, 4_000), LawRisk.lognormal({"WETH": 0.05, "WBTC": 0.05}, 24.0), POLICY, LLTV)
    assert wild.params.pre_lltv < calm
    storm = propose(morpho(3, 4_000), RISK, POLICY, LLTV)  # P passes the budget even 15 points under the LLTV
    assert storm.params.pre_lltv == pytest.approx(LLTV - MAX_GAP) and storm.p_at_pre_lltv > POLICY.epsilon


def test_only_for_morpho_positions_with_debt():
    with pytest.raises(ValueError, match="Morpho"):
        propose(aave(10, 10_000), RISK, POLICY, LLTV)
    with pytest.raises(ValueError, match="no debt"):
        propose(morpho(3, 0), RISK, POLICY, LLTV)
