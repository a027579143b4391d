"""Pure tests of keeper/risk/perp_math.py (no chain): hand-computed GMX v1 cases and properties."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.risk import perp_math as pm

USD = pm.PRICE_PRECISION
P = pm.PerpParams()


def test_scale_price_and_conversions():
    assert pm.scale_price(2_000 * 10**8, 8) == 2_000 * USD
    assert pm.scale_price(1, 8) == 10**22
    with pytest.raises(ValueError):
        pm.scale_price(0, 8)
    with pytest.raises(ValueError):
        pm.scale_price(-5, 8)
    assert pm.token_to_usd(3 * 10**18, 2_000 * USD, 18) == 6_000 * USD
    assert pm.usd_to_token(6_000 * USD, 2_000 * USD, 18) == 3 * 10**18
    assert pm.usd_to_token(1, 3 * USD, 6) == 0  # floors like Solidity
    assert pm.token_to_usd(0, 1, 6) == pm.usd_to_token(0, 1, 6) == 0


def test_get_delta_long_and_short():
    # long 1000 USD at 2000, price 2100: +5% -> 50 USD profit
    assert pm.get_delta(1_000 * USD, 2_000 * USD, 2_100 * USD, True) == pm.Delta(True, 50 * USD)
    assert pm.get_delta(1_000 * USD, 2_000 * USD, 1_900 * USD, True) == pm.Delta(False, 50 * USD)
    # a short profits when the price falls
    assert pm.get_delta(1_000 * USD, 2_000 * USD, 1_900 * USD, False) == pm.Delta(True, 50 * USD)
    assert pm.get_delta(1_000 * USD, 2_000 * USD, 2_000 * USD, False) == pm.Delta(False, 0)
    # floor division: 10 * 1 / 3
    assert pm.get_delta(10, 3, 4, True) == pm.Delta(True, 3)
    with pytest.raises(ValueError):
        pm.get_delta(0, 0, 1, True)


def test_position_fee_rounds_up():
    assert pm.position_fee(0, 10) == 0
    assert pm.position_fee(1_000 * USD, 10) == USD  # 0.1% of 1000 USD
    assert pm.position_fee(1, 10) == 1  # 1 - floor(1 * 9990 / 10000) = 1
    assert pm.position_fee(9_999, 10) == 10  # 9999 - floor(9999*0.999) = 9999 - 9989


def test_funding_fee_and_next_rate():
    assert pm.funding_fee(0, 50, 0) == 0
    assert pm.funding_fee(1_000 * USD, 150, 100) == 1_000 * USD * 50 // 10**6
    with pytest.raises(ValueError):
        pm.funding_fee(1, 1, 2)
    # 100 * 10 reserved / 100 pool = 10 per interval; 2.5 intervals -> 2 whole ones
    assert pm.next_funding_rate(3600 * 3 + 1800, 3600, 3600, 100, 10, 100) == 20
    assert pm.next_funding_rate(3600 + 3599, 3600, 3600, 100, 10, 100) == 0
    assert pm.next_funding_rate(3600 * 9, 3600, 3600, 100, 10, 0) == 0
    assert pm.margin_fees(1_000 * USD, 150, 100, 10) == USD + 1_000 * USD * 50 // 10**6


def test_next_average_price():
    # long 1000 at 2000, price 2200 (+100 profit), add 1000: 2200 * 2000 / 2100
    assert pm.next_average_price(1_000 * USD, 2_000 * USD, True, 2_200 * USD, 1_000 * USD) == \
        2_200 * USD * 2_000 // 2_100
    # long at a loss: divisor nextSize - delta
    assert pm.next_average_price(1_000 * USD, 2_000 * USD, True, 1_800 * USD, 1_000 * USD) == \
        1_800 * USD * 2_000 // 1_900
    # short in profit (price fell): divisor nextSize - delta
    assert pm.next_average_price(1_000 * USD, 2_000 * USD, False, 1_800 * USD, 1_000 * USD) == \
        1_800 * USD * 2_000 // 1_900
    # short at a loss: divisor nextSize + delta
    assert pm.next_average_price(1_000 * USD, 2_000 * USD, False, 2_200 * USD, 1_000 * USD) == \
        2_200 * USD * 2_000 // 2_100
    # unchanged price keeps the average
    assert pm.next_average_price(1_000 * USD, 2_000 * USD, True, 2_000 * USD, 500 * USD) == 2_000 * USD
    assert pm.next_global_short_average_price(1_000 * USD, 2_000 * USD, 1_800 * USD, 1_000 * USD) == \
        1_800 * USD * 2_000 // 1_900


def test_validate_liquidation_branches_in_gmx_order():
    fee, liq, lev = USD, 5 * USD, 500_000
    # losses exceed collateral
    c = pm.validate_liquidation(100 * USD, 1_000 * USD, False, 101 * USD, fee, liq, lev)
    assert (c.state, c.margin_fees, c.reason) == (1, fee, "LossesExceedCollateral")
    # fees exceed the remaining collateral: fees capped to it
    c = pm.validate_liquidation(100 * USD, 1_000 * USD, False, 99 * USD + 1, fee, liq, lev)
    assert (c.state, c.margin_fees, c.reason) == (1, USD - 1, "FeesExceedCollateral")
    # remaining covers the fees but not the liquidation fee
    c = pm.validate_liquidation(100 * USD, 1_000 * USD, False, 95 * USD, fee, liq, lev)
    assert (c.state, c.reason) == (1, "LiquidationFeesExceedCollateral")
    # profit is not added: 6 USD collateral with a huge profit is still short of 1 + 5
    c = pm.validate_liquidation(6 * USD - 1, 100 * USD, True, 10**6 * USD, fee, liq, lev)
    assert c.state == 1
    # over 50x after fees: 10_000 size needs 200 backing; 201 collateral - 1 fee = 200 -> ok
    assert pm.validate_liquidation(201 * USD, 10_000 * USD, True, 0, fee, liq, lev).state == 0
    c = pm.validate_liquidation(201 * USD - 1, 10_000 * USD, True, 0, fee, liq, lev)
    assert (c.state, c.reason) == (2, "MaxLeverageExceeded")
    # GMX v1 itself does not subtract the fees in the leverage check
    assert pm.validate_liquidation(201 * USD - 1, 10_000 * USD, True, 0, fee, liq, lev,
                                   fees_in_leverage_check=False).state == 0
    assert not pm.validate_liquidation(201 * USD, 10_000 * USD, True, 0, fee, liq, lev).liquidatable


def test_perp_health_values():
    fee, liq, lev = USD, 5 * USD, 500_000
    assert pm.perp_health(0, 0, False, 0, 0, liq, lev) == pm.MAX_UINT256
    assert pm.perp_health(100 * USD, 1_000 * USD, False, 200 * USD, fee, liq, lev) == 0
    assert pm.perp_health(100 * USD, 1_000 * USD, False, 99 * USD, fee, liq, lev) == 0
    # 201 collateral, 10_000 size, 50x: backing 200 -> leverage term exactly 1e18; fee term 40e18
    assert pm.perp_health(201 * USD, 10_000 * USD, True, 0, fee, liq, lev) == 10**18
    # small position: the liquidation-fee term binds: (11 - 1) / 5 = 2
    assert pm.perp_health(11 * USD, 100 * USD, False, 0, fee, liq, lev) == 2 * 10**18
    # no liquidation fee: only the leverage term
    assert pm.perp_health(11 * USD, 100 * USD, False, 0, fee, 0, lev) == 5 * 10**18  # 10 * 50 / 100


def test_position_check_matches_parts():
    pos = pm.PerpPosition(size=1_000 * USD, collateral=100 * USD, average_price=2_000 * USD,
                          entry_funding_rate=10)
    d, check, health = pm.position_check(pos, 1_900 * USD, True, 30, P)
    assert d == pm.Delta(False, 50 * USD)
    fees = pm.position_fee(pos.size, 10) + pm.funding_fee(pos.size, 30, 10)
    assert check == pm.validate_liquidation(100 * USD, pos.size, False, 50 * USD, fees, 5 * USD, 500_000)
    assert health == pm.perp_health(100 * USD, pos.size, False, 50 * USD, fees, 5 * USD, 500_000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pos.size = 1  # type: ignore[misc]


usd_amounts = st.integers(min_value=0, max_value=10**9 * USD)
leverages = st.integers(min_value=10_001, max_value=2_000_000)
liq_fees = st.integers(min_value=0, max_value=100 * USD)


@settings(max_examples=500)
@given(collateral=usd_amounts, size=usd_amounts, has_profit=st.booleans(), delta=usd_amounts,
       fees=st.integers(min_value=0, max_value=10**4 * USD), liq=liq_fees, lev=leverages)
def test_health_below_one_iff_not_healthy(collateral, size, has_profit, delta, fees, liq, lev):
    if size == 0:
        assert pm.perp_health(collateral, size, has_profit, delta, fees, liq, lev) == pm.MAX_UINT256
        return
    check = pm.validate_liquidation(collateral, size, has_profit, delta, fees, liq, lev)
    health = pm.perp_health(collateral, size, has_profit, delta, fees, liq, lev)
    assert (health < pm.HEALTH_ONE) == (check.state != 0)
    assert 0 <= check.margin_fees <= fees


@settings(max_examples=300)
@given(size=st.integers(min_value=1, max_value=10**9 * USD), collateral=usd_amounts,
       step=st.integers(min_value=0, max_value=10**6 * USD), has_profit=st.booleans(), delta=usd_amounts,
       fees=st.integers(min_value=0, max_value=10**4 * USD), liq=liq_fees, lev=leverages)
def test_health_monotone_in_collateral(size, collateral, step, has_profit, delta, fees, liq, lev):
    """A top-up never lowers health (what a keeper's margin top-up relies on)."""
    before = pm.perp_health(collateral, size, has_profit, delta, fees, liq, lev)
    after = pm.perp_health(collateral + step, size, has_profit, delta, fees, liq, lev)
    assert after >= before


@settings(max_examples=300)
@given(collateral=usd_amounts, size=st.integers(min_value=1, max_value=10**9 * USD),
       has_profit=st.booleans(), delta=usd_amounts, fees=st.integers(min_value=0, max_value=10**4 * USD),
       liq=liq_fees, lev=leverages)
def test_perp_vault_rule_is_at_least_as_strict_as_gmx(collateral, size, has_profit, delta, fees, liq, lev):
    ours = pm.validate_liquidation(collateral, size, has_profit, delta, fees, liq, lev)
    gmx = pm.validate_liquidation(collateral, size, has_profit, delta, fees, liq, lev,
                                  fees_in_leverage_check=False)
    if gmx.state != 0:
        assert ours.state == gmx.state
    if ours.state == 0:
        assert gmx.state == 0


@settings(max_examples=300)
@given(size=st.integers(min_value=1, max_value=10**12 * USD),
       avg=st.integers(min_value=1, max_value=10**6 * USD),
       price=st.integers(min_value=1, max_value=10**6 * USD),
       size_delta=st.integers(min_value=0, max_value=10**12 * USD), is_long=st.booleans())
def test_next_average_price_keeps_pnl(size, avg, price, size_delta, is_long):
    """Adding size at the new average price keeps the unrealised PnL about the same (GMX v1's intent)."""
    d = pm.get_delta(size, avg, price, is_long)
    if d.has_profit != is_long and d.delta >= size + size_delta:
        return  # the divisor nextSize - delta would not be positive (unreachable for real positions)
    nxt = pm.next_average_price(size, avg, is_long, price, size_delta)
    assert nxt > 0
    after = pm.get_delta(size + size_delta, nxt, price, is_long)
    if d.delta > 0 and after.delta > 0:
        assert after.has_profit == d.has_profit
    # the average price is floored by < 1 unit: the delta moves by about nextSize * price / nxt**2
    n = size + size_delta
    assert abs(after.delta - d.delta) <= n * (price + nxt) // nxt**2 + 2
