"""A Morpho position with an authorised pre-liquidation (``Position.preliq``) as the keeper counts it
(``keeper.risk.first_loss``): P of its first loss, the pre-liquidation at ``pre_lltv``, under every model;
the loss given it, the pre-liquidation's first incentive on its first close factor; the planner acting
on that P and, with a short reserve, serving first the position a full liquidation would hit. Synthetic
positions; the analytic risk model and the Monte Carlo exposures."""

from __future__ import annotations

from dataclasses import replace

import pytest

from keeper.domain import WAD, ActionKind, Address, Leg, Position, PreLiqTerms, Protocol, Side
from keeper.plan.planner import Reserve, _loss_weight, plan
from keeper.risk.first_loss import first_loss_fraction, first_loss_view
from keeper.risk.health import lending_health
from keeper.risk.probability import exposures, morpho_incentive
from tests.plan.test_planner import ASSETS, POLICY, RISK, USDC, WETH

PRE = PreLiqTerms(Address("0x" + "ee" * 20), 0.80, 0.10, 1.0, 1.01, 1.022)


def morpho(weth: float, usdc_debt: float, account: str = "0xa", preliq: PreLiqTerms | None = PRE) -> Position:
    legs = (Leg(WETH.asset, Side.COLLATERAL, int(weth * 10**18), WETH.price_usd, 0.86),
            Leg(USDC.asset, Side.DEBT, int(usdc_debt * 10**6), 1.0, 1.0))
    return Position("eth", Protocol.MORPHO_BLUE, "0xmorpho", account, "0x" + "11" * 32, legs,
                    int(lending_health(legs) * WAD), 100, preliq=preliq)


def test_the_view_weights_the_collateral_at_the_pre_lltv_and_is_idempotent():
    pos = morpho(5, 6_800)  # LTV 0.68; Morpho health 0.86 / 0.68
    view = first_loss_view(pos)
    assert view.legs[0].liquidation_weight == 0.80 and view.legs[1] == pos.legs[1]
    assert view.health == pytest.approx(pos.health * 0.80 / 0.86)
    assert first_loss_view(view) == view
    bare = replace(pos, preliq=None)
    assert first_loss_view(bare) is bare


def test_p_counts_the_pre_liquidation_and_the_loss_its_incentive():
    pos = morpho(5, 7_400)  # LTV 0.74
    p_full, p_first = RISK.p_liq(replace(pos, preliq=None)), RISK.p_liq(first_loss_view(pos))
    assert p_first > p_full > 0
    assert first_loss_fraction(pos) == pytest.approx(0.01 * 0.10)
    assert _loss_weight(pos, POLICY) == (pytest.approx(0.001), pos.debt_usd)
    assert _loss_weight(replace(pos, preliq=None), POLICY)[0] == pytest.approx(morpho_incentive(0.86) - 1)
    # the Monte Carlo exposures: the barrier at the pre-LLTV, the loss per USD of debt the incentive's
    ex = exposures([pos, replace(pos, preliq=None)], ("WETH",))
    assert ex.bonus[0] == pytest.approx(0.001) and ex.bonus[1] == pytest.approx(morpho_incentive(0.86) - 1)
    assert ex.linear[0, 0] == pytest.approx(5 * 2000 * 0.80) and ex.linear[0, 1] == pytest.approx(5 * 2000 * 0.86)


def test_the_planner_protects_against_the_first_loss_and_says_so():
    pos = morpho(5, 6_420)  # Morpho health 1.34; at the pre-LLTV 1.25
    assert RISK.p_liq(replace(pos, preliq=None)) < POLICY.epsilon < RISK.p_liq(first_loss_view(pos))
    assert plan([replace(pos, preliq=None)], RISK, Reserve(), ASSETS, POLICY, block=100).actions == ()
    reserve = Reserve({USDC.address: 100_000 * 10**6, WETH.address: 100 * 10**18})
    result = plan([pos], RISK, reserve, ASSETS, POLICY, block=100)
    (a,) = result.actions
    assert a.kind in (ActionKind.TOP_UP, ActionKind.REPAY)
    assert a.reason.p_before == pytest.approx(RISK.p_liq(first_loss_view(pos)))
    assert a.reason.p_after <= POLICY.target
    assert "pre-liquidation" in a.reason.note and "80.0%" in a.reason.note
    assert result.p_liq[pos.key] == pytest.approx(a.reason.p_before)


def test_a_short_reserve_goes_first_to_the_position_a_full_liquidation_would_hit():
    backed, bare = morpho(5, 7_700, "0xa"), morpho(5, 7_700, "0xb", preliq=None)
    assert RISK.p_liq(first_loss_view(backed)) > POLICY.epsilon and RISK.p_liq(bare) > POLICY.epsilon
    one = plan([bare], RISK, Reserve({USDC.address: 10**12}), ASSETS, POLICY, block=100).actions[0]
    # enough USDC for one of the two repayments, not both
    result = plan([backed, bare], RISK, Reserve({USDC.address: int(one.amount_raw * 1.2)}), ASSETS, POLICY,
                  block=100)
    got = {a.position_key: a for a in result.actions}
    assert got[bare.key].reason.p_after <= POLICY.target  # served in full
    assert got[backed.key].reason.p_after > POLICY.target  # what is left: its loss given a pre-liquidation is small
    assert got[backed.key].amount_raw < got[bare.key].amount_raw
