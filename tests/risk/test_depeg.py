"""Stablecoin depegs are stress scenarios of their own (stable legs never get a vol)."""

from keeper.domain import Side
from keeper.risk.stress import depeg_scenarios
from tests.risk.test_joint_model import leg, lending


def test_depegs_hurt_the_side_that_holds_the_stablecoin():
    # USDC collateral (weight 0.8) against WETH debt at health 1.04: a 5% USDC fall liquidates it
    usdc_coll = lending(leg("USDC", Side.COLLATERAL, 13_000), leg("WETH", Side.DEBT, 10_000))
    # WETH collateral against USDC debt at health 1.03: a 5% USDC rise liquidates it
    usdc_debt = lending(leg("WETH", Side.COLLATERAL, 12_875), leg("USDC", Side.DEBT, 10_000))
    # already liquidatable: never counted as the depeg's doing
    under = lending(leg("WETH", Side.COLLATERAL, 10_000), leg("USDC", Side.DEBT, 9_000))
    out = depeg_scenarios([usdc_coll, usdc_debt, under])
    assert set(out) == {"USDC -10%", "USDC -5%", "USDC -2%", "USDC +2%", "USDC +5%"}
    assert out["USDC -5%"].tolist() == [True, False, False]
    assert out["USDC -2%"].tolist() == [False, False, False]
    assert out["USDC +5%"].tolist() == [False, True, False]
    assert out["USDC +2%"].tolist() == [False, False, False]
