"""Pure tests of keeper/risk/perp_math.py (no chain): hand-computed GMX v1 cases and properties.

The rule is gmx-io/gmx-contracts ``VaultUtils.validateLiquidation`` as ``Vault.liquidatePosition``
calls it (``_raise = false``: an unrealised profit is added to the collateral; the max-leverage test
does not subtract the fees)."""

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


def test_get_delta_min_profit_rule():
    """Vault.getDelta: within minProfitTime of the last increase a profit of at most
    minProfitBasisPoints of the size counts as 0; after it (strictly later), or on a loss, it does not."""
    size, avg = 1_000 * USD, 2_000 * USD
    rule = {"last_increased_time": 1_000, "min_profit_time": 600, "min_profit_bps": 150}  # 1.5%
    # +1.5% exactly: delta * 10000 == size * 150 -> counts as 0 until now > 1600
    at = 2_030 * USD
    assert pm.get_delta(size, avg, at, True) == pm.Delta(True, 15 * USD)
    assert pm.get_delta(size, avg, at, True, now=1_600, **rule) == pm.Delta(True, 0)
    assert pm.get_delta(size, avg, at, True, now=1_601, **rule) == pm.Delta(True, 15 * USD)
    assert pm.get_delta(size, avg, at, True, now=1_000, **rule) == pm.Delta(True, 0)
    # one unit above the threshold counts in full
    above = pm.get_delta(size, avg, at + 2 * USD // 1_000, True, now=1_600, **rule)
    assert above.has_profit and above.delta > 15 * USD
    # shorts the same way round
    assert pm.get_delta(size, avg, 1_970 * USD, False, now=1_600, **rule) == pm.Delta(True, 0)
    # a loss is never zeroed
    assert pm.get_delta(size, avg, 1_990 * USD, True, now=1_600, **rule) == pm.Delta(False, 5 * USD)
    # the rule at block time 0 with everything 0 is still GMX's: 0 > 0 is false, so minBps applies
    assert pm.get_delta(size, avg, at, True, min_profit_bps=150) == pm.Delta(True, 0)


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
    assert (c.state, c.margin_fees, c.reason) == (1, fee, "LiquidationFeesExceedCollateral")
    # 10_000 size at 50x needs remaining >= 200, fees NOT subtracted: 200 with a 1 USD fee is fine
    assert pm.validate_liquidation(200 * USD, 10_000 * USD, False, 0, fee, liq, lev).state == 0
    c = pm.validate_liquidation(200 * USD - 1, 10_000 * USD, False, 0, fee, liq, lev)
    assert (c.state, c.margin_fees, c.reason) == (2, fee, "MaxLeverageExceeded")
    assert not pm.validate_liquidation(200 * USD, 10_000 * USD, False, 0, fee, liq, lev).liquidatable


def test_validate_liquidation_adds_profit_unless_raising():
    fee, liq, lev = USD, 5 * USD, 500_000
    # 6 USD - 1 of collateral is short of fee + liquidation fee, but a 1 USD profit covers it
    assert pm.validate_liquidation(6 * USD - 1, 100 * USD, True, USD, fee, liq, lev).state == 0
    c = pm.validate_liquidation(6 * USD - 1, 100 * USD, True, USD, fee, liq, lev, raise_=True)
    assert (c.state, c.reason) == (1, "LiquidationFeesExceedCollateral")
    # the profit also counts in the fee cap: remaining = 0.5 + 0.25 < 1 fee -> fees capped to 0.75
    c = pm.validate_liquidation(USD // 2, 100 * USD, True, USD // 4, fee, 0, lev)
    assert (c.state, c.margin_fees, c.reason) == (1, 3 * USD // 4, "FeesExceedCollateral")
    c = pm.validate_liquidation(USD // 2, 100 * USD, True, USD // 4, fee, 0, lev, raise_=True)
    assert (c.state, c.margin_fees) == (1, USD // 2)
    # ... and in the leverage check: 150 collateral + 50 profit backs 10_000 at 50x
    assert pm.validate_liquidation(150 * USD, 10_000 * USD, True, 50 * USD, fee, liq, lev).state == 0
    assert pm.validate_liquidation(150 * USD, 10_000 * USD, True, 50 * USD - 1, fee, liq, lev).state == 2
    assert pm.validate_liquidation(150 * USD, 10_000 * USD, True, 50 * USD, fee, liq, lev,
                                   raise_=True).state == 2
    # a loss is handled the same either way
    for raise_ in (False, True):
        assert pm.validate_liquidation(250 * USD, 10_000 * USD, False, 50 * USD, fee, liq, lev,
                                       raise_=raise_).state == 0
        assert pm.validate_liquidation(250 * USD, 10_000 * USD, False, 50 * USD + 1, fee, liq, lev,
                                       raise_=raise_).state == 2


def test_perp_health_values():
    fee, liq, lev = USD, 5 * USD, 500_000
    assert pm.perp_health(0, 0, False, 0, 0, liq, lev) == pm.MAX_UINT256
    assert pm.perp_health(100 * USD, 1_000 * USD, False, 200 * USD, fee, liq, lev) == 0
    assert pm.perp_health(100 * USD, 1_000 * USD, False, 99 * USD + 1, fee, liq, lev) == 0
    # 200 collateral, 10_000 size, 50x: leverage term exactly 1e18 (fees not subtracted); fee term 39e18
    assert pm.perp_health(200 * USD, 10_000 * USD, False, 0, fee, liq, lev) == 10**18
    assert pm.perp_health(200 * USD - 1, 10_000 * USD, False, 0, fee, liq, lev) == 10**18 - 1
    # a profit counts: 150 + 50
    assert pm.perp_health(150 * USD, 10_000 * USD, True, 50 * USD, fee, liq, lev) == 10**18
    # small position: the liquidation-fee term binds: (11 - 1) / 5 = 2 (leverage term 11 * 50 / 100)
    assert pm.perp_health(11 * USD, 100 * USD, False, 0, fee, liq, lev) == 2 * 10**18
    # no liquidation fee: only the leverage term, on the whole remaining collateral
    assert pm.perp_health(11 * USD, 100 * USD, False, 0, fee, 0, lev) == 55 * 10**17  # 11 * 50 / 100
    # remaining == fees: with a liquidation fee that is state 1 (health 0) ...
    assert pm.perp_health(fee, 100 * USD, False, 0, fee, liq, lev) == 0
    assert pm.validate_liquidation(fee, 100 * USD, False, 0, fee, liq, lev).state == 1
    # ... without one, only the leverage test decides (1 USD backs 50 USD at 50x)
    assert pm.perp_health(fee, 50 * USD, False, 0, fee, 0, lev) == 10**18
    assert pm.validate_liquidation(fee, 50 * USD, False, 0, fee, 0, lev).state == 0
    assert pm.perp_health(fee, 50 * USD + 1, False, 0, fee, 0, lev) == 10**18 - 1
    assert pm.validate_liquidation(fee, 50 * USD + 1, False, 0, fee, 0, lev).state == 2
    # nothing left and no fees at all: over max leverage
    assert pm.perp_health(0, 1, False, 0, 0, 0, lev) == 0
    assert pm.validate_liquidation(0, 1, False, 0, 0, 0, lev).state == 2


def test_position_check_matches_parts():
    pos = pm.PerpPosition(size=1_000 * USD, collateral=100 * USD, average_price=2_000 * USD,
                          entry_funding_rate=10, last_increased_time=500)
    d, check, health = pm.position_check(pos, 1_900 * USD, True, 30, P)
    assert d == pm.Delta(False, 50 * USD)
    fees = pm.position_fee(pos.size, 10) + pm.funding_fee(pos.size, 30, 10)
    assert check == pm.validate_liquidation(100 * USD, pos.size, False, 50 * USD, fees, 5 * USD, 500_000)
    assert health == pm.perp_health(100 * USD, pos.size, False, 50 * USD, fees, 5 * USD, 500_000)
    # a profit counts, except a small one shortly after the last increase (min-profit rule)
    small = pm.PerpPosition(size=10_000 * USD, collateral=190 * USD, average_price=2_000 * USD,
                            last_increased_time=500)
    d, check, health = pm.position_check(small, 2_002 * USD, True, 0, P)  # +0.1%: 10 USD profit
    assert d == pm.Delta(True, 10 * USD) and check.state == 0 and health == 10**18
    d, check, health = pm.position_check(small, 2_002 * USD, True, 0, P, now=800, min_profit_time=300,
                                         min_profit_bps=10)
    assert d == pm.Delta(True, 0) and check.state == 2 and health < 10**18
    assert pm.position_check(small, 2_002 * USD, True, 0, P, now=801, min_profit_time=300,
                             min_profit_bps=10)[1].state == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        pos.size = 1  # type: ignore[misc]


usd_amounts = st.integers(min_value=0, max_value=10**9 * USD)
leverages = st.integers(min_value=10_001, max_value=2_000_000)
liq_fees = st.one_of(st.just(0), st.integers(min_value=0, max_value=100 * USD))


@st.composite
def liquidation_inputs(draw):
    """(collateral, size, has_profit, delta, fees, liq, lev) with the remaining collateral often
    within a few units of one of the rule's thresholds (0, fees, fees + liq, size / max leverage)."""
    size = draw(st.integers(min_value=1, max_value=10**9 * USD))
    lev = draw(leverages)
    liq = draw(liq_fees)
    fees = draw(st.one_of(st.just(0), st.integers(min_value=0, max_value=10**4 * USD)))
    has_profit = draw(st.booleans())
    anchors = [0, fees, fees + liq, -(-size * pm.BASIS_POINTS_DIVISOR // lev)]
    remaining = draw(st.one_of(st.sampled_from(anchors).flatmap(lambda a: st.integers(a - 3, a + 3)),
                               st.integers(min_value=-10**6 * USD, max_value=10**9 * USD)))
    if has_profit:
        remaining = max(remaining, 0)
        delta = draw(st.integers(min_value=0, max_value=remaining))
        collateral = remaining - delta
    else:
        delta = draw(usd_amounts)
        collateral = max(0, remaining + delta)
    return collateral, size, has_profit, delta, fees, liq, lev


def gmx_validate_liquidation(collateral, size, has_profit, delta, fees, liq, lev, raise_):
    """VaultUtils.validateLiquidation transcribed line by line (state, marginFees)."""
    if not has_profit and collateral < delta:
        return 1, fees
    remaining = collateral
    if not has_profit:
        remaining = collateral - delta
    if not raise_ and has_profit:
        remaining = collateral + delta
    if remaining < fees:
        return 1, remaining
    if remaining < fees + liq:
        return 1, fees
    if remaining * lev < size * 10_000:
        return 2, fees
    return 0, fees


@settings(max_examples=1000)
@given(liquidation_inputs())
def test_health_below_one_iff_not_healthy(args):
    """perp_health < 1e18 exactly when validateLiquidation (as liquidatePosition runs it) is not 0,
    profits and a zero liquidation fee included; the state and capped fees are GMX's."""
    check = pm.validate_liquidation(*args)
    health = pm.perp_health(*args)
    assert (health < pm.HEALTH_ONE) == (check.state != 0)
    for raise_ in (False, True):
        c = pm.validate_liquidation(*args, raise_=raise_)
        assert (c.state, c.margin_fees) == gmx_validate_liquidation(*args, raise_)
    assert 0 <= check.margin_fees <= args[4]


@settings(max_examples=500)
@given(collateral=usd_amounts, size=usd_amounts, has_profit=st.booleans(), delta=usd_amounts,
       fees=st.integers(min_value=0, max_value=10**4 * USD), liq=liq_fees, lev=leverages)
def test_health_below_one_iff_not_healthy_uniform(collateral, size, has_profit, delta, fees, liq, lev):
    if size == 0:
        assert pm.perp_health(collateral, size, has_profit, delta, fees, liq, lev) == pm.MAX_UINT256
        return
    check = pm.validate_liquidation(collateral, size, has_profit, delta, fees, liq, lev)
    health = pm.perp_health(collateral, size, has_profit, delta, fees, liq, lev)
    assert (health < pm.HEALTH_ONE) == (check.state != 0)


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
@given(liquidation_inputs())
def test_raising_is_at_least_as_strict(args):
    """``_raise = true`` ignores a profit: whatever liquidatePosition may liquidate, a raising
    call rejects too; without a profit the two agree."""
    quiet = pm.validate_liquidation(*args)
    raising = pm.validate_liquidation(*args, raise_=True)
    if quiet.state != 0:
        assert raising.state != 0
    if not args[2] or args[3] == 0:
        assert raising == quiet


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
