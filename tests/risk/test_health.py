"""Pure liquidation maths: liquidation prices put health exactly at the boundary."""

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from keeper.domain import Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.risk import perp_math as pm
from keeper.risk.health import lending_health, liquidation_points, nearest_liquidation, perp_liquidation_price

WETH = Asset("WETH", "0x01", 18)
WBTC = Asset("WBTC", "0x02", 8)
USDC = Asset("USDC", "0x03", 6)


def leg(asset, side, amount, price, weight=1.0):
    return Leg(asset, side, int(amount * 10**asset.decimals), price, weight)


def lending(legs):
    return Position("devnet", Protocol.AAVE_V3, "0xpool", "0xuser", "pool", tuple(legs), 0, 1)


def reprice(legs, symbol, price):
    return tuple(Leg(leg.asset, leg.side, leg.amount_raw, price if leg.asset.symbol == symbol else leg.price_usd,
                     leg.liquidation_weight) for leg in legs)


def test_single_collateral_single_debt():
    legs = (leg(WETH, Side.COLLATERAL, 10, 2000, 0.825), leg(USDC, Side.DEBT, 10_000, 1.0))
    assert lending_health(legs) == pytest.approx(1.65)
    pt = nearest_liquidation(lending(legs))
    assert pt.symbol == "WETH"
    assert pt.price == pytest.approx(2000 / 1.65)
    assert pt.move == pytest.approx(1 / 1.65 - 1)


def test_headline_distance_moves_all_collateral_together():
    legs = (leg(WETH, Side.COLLATERAL, 10, 2000, 0.825), leg(WBTC, Side.COLLATERAL, 0.5, 30000, 0.75),
            leg(USDC, Side.DEBT, 20_000, 1.0))
    pt = nearest_liquidation(lending(legs))
    h = (20_000 * 0.825 + 15_000 * 0.75) / 20_000
    assert pt.symbol == "WETH" and pt.move == pytest.approx(1 / h - 1)
    moved = reprice(reprice(legs, "WETH", 2000 / h), "WBTC", 30000 / h)
    assert lending_health(moved) == pytest.approx(1.0)


def test_no_debt_has_no_liquidation_price():
    legs = (leg(WETH, Side.COLLATERAL, 1, 2000, 0.8),)
    assert lending_health(legs) == math.inf
    assert liquidation_points(lending(legs)) == []


def test_debt_in_a_volatile_asset_liquidates_on_a_rise():
    legs = (leg(USDC, Side.COLLATERAL, 10_000, 1.0, 0.8), leg(WETH, Side.DEBT, 2, 2000))
    pts = {p.symbol: p for p in liquidation_points(lending(legs))}
    assert pts["WETH"].move == pytest.approx(0.8 * 10_000 / 4000 - 1)  # +100%
    assert pts["WETH"].move > 0


amounts = st.floats(min_value=0.01, max_value=1e4)
prices = st.floats(min_value=1.0, max_value=1e5)
weights = st.floats(min_value=0.5, max_value=0.95)


@settings(max_examples=200)
@given(amounts, prices, weights, amounts, prices, weights, st.floats(min_value=100, max_value=1e6))
def test_liquidation_price_puts_health_at_one(a1, p1, w1, a2, p2, w2, debt):
    legs = (leg(WETH, Side.COLLATERAL, a1, p1, w1), leg(WBTC, Side.COLLATERAL, a2, p2, w2),
            leg(USDC, Side.DEBT, debt, 1.0))
    for pt in liquidation_points(lending(legs)):
        moved = reprice(legs, pt.symbol, pt.price)
        assert lending_health(moved) == pytest.approx(1.0, rel=1e-6)


def perp_position(is_long, size, collateral, avg, mark, fees=0.0, liq_fee=5.0, max_lev=50.0):
    terms = PerpTerms(WETH, is_long, size, collateral, avg, mark, fees, liq_fee, max_lev, 0)
    return Position("devnet", Protocol.PERP, "0xperp", "0xuser", "m", (), 0, 1, perp=terms)


def remaining_after(is_long, size, collateral, avg, price):
    """Collateral plus PnL: GMX v1's liquidatePosition adds a profit."""
    return collateral + size * ((price - avg) if is_long else (avg - price)) / avg


@settings(max_examples=200)
@given(st.booleans(), st.floats(min_value=1_000, max_value=1e6), st.floats(min_value=1, max_value=200),
       st.floats(min_value=100, max_value=1e5), st.floats(min_value=0, max_value=50),
       st.sampled_from([0.0, 5.0]))
def test_perp_liquidation_price_is_the_boundary(is_long, size, leverage, avg, fees, liq_fee):
    collateral = size / leverage
    p = perp_liquidation_price(is_long, size, collateral, avg, fees, liq_fee, 50.0)
    threshold = max(fees + liq_fee, size / 50.0)
    if p <= 0:
        assert is_long and collateral - size >= threshold  # a long that survives a fall to zero
        return
    assert remaining_after(is_long, size, collateral, avg, p) == pytest.approx(threshold, rel=1e-9)
    # Just inside the boundary the position is healthy, just outside it is not (on either side
    # of the average price: below 50x the boundary is on the profit side).
    if abs(collateral - threshold) > 1e-9 * size:
        on_profit_side = p > avg if is_long else p < avg
        assert on_profit_side == (collateral < threshold)
    step = p * 1e-6
    inside, outside = (p + step, p - step) if is_long else (p - step, p + step)
    assert remaining_after(is_long, size, collateral, avg, inside) > threshold
    assert remaining_after(is_long, size, collateral, avg, outside) < threshold


def test_perp_point_direction():
    long = nearest_liquidation(perp_position(True, 20_000, 4_000, 2000, 2000, fees=20))
    short = nearest_liquidation(perp_position(False, 9_000, 3_000, 30_000, 30_000, fees=9))
    assert long.move < 0 and short.move > 0
    # T = max(20 + 5, 20_000 / 50) = 400 (the fees are not added to the leverage term)
    assert long.price == pytest.approx(2000 * (1 - (4_000 - 400) / 20_000))
    # T = max(9 + 5, 180) = 180
    assert short.price == pytest.approx(30_000 * (1 + (3_000 - 180) / 9_000))
    # a small position: the fee term binds, T = 20 + 5 = 25 > 1_000 / 50
    small = nearest_liquidation(perp_position(True, 1_000, 100, 2000, 2000, fees=20))
    assert small.price == pytest.approx(2000 * (1 - (100 - 25) / 1_000))


def test_perp_profit_keeps_an_overlevered_position_alive():
    """Below the collateral a 50x position needs, a profit still counts: the boundary is above the
    average price for a long, below it for a short."""
    long = perp_position(True, 10_000, 150, 2000, 2050, fees=10)  # T = 200, +250 profit at 2050
    pt = nearest_liquidation(long)
    assert pt.price == pytest.approx(2000 * (1 + 50 / 10_000)) and pt.move < 0
    short = perp_position(False, 10_000, 150, 2000, 1950, fees=10)
    pt = nearest_liquidation(short)
    assert pt.price == pytest.approx(2000 * (1 - 50 / 10_000)) and pt.move > 0


USD = pm.PRICE_PRECISION


@settings(max_examples=500)
@given(is_long=st.booleans(), size=st.integers(min_value=10**30, max_value=10**9 * 10**30),
       lev_x=st.floats(min_value=0.5, max_value=100), avg=st.integers(min_value=10**28, max_value=10**36),
       fee_bps=st.integers(min_value=0, max_value=200), liq=st.sampled_from([0, 5 * 10**30, 100 * 10**30]),
       lev_bps=st.integers(min_value=10_001, max_value=2_000_000))
def test_perp_liquidation_price_flips_the_integer_rule(is_long, size, lev_x, avg, fee_bps, liq, lev_bps):
    """The float liquidation price is GMX v1's integer boundary: at 1e-9 (relative) either side of
    it, validateLiquidation (as liquidatePosition runs it, min-profit rule off) changes state."""
    collateral = int(size / lev_x)
    fees = size * fee_bps // 10_000
    p = perp_liquidation_price(is_long, size / USD, collateral / USD, avg / USD, fees / USD, liq / USD,
                               lev_bps / 10_000)
    assume(p > avg / USD * 1e-3)  # a long far from any boundary above zero: nothing to flip

    def state(price: float) -> int:
        d = pm.get_delta(size, avg, int(price * USD), is_long)
        return pm.validate_liquidation(collateral, size, d.has_profit, d.delta, fees, liq, lev_bps).state

    healthy_side, liquid_side = (p * (1 + 1e-9), p * (1 - 1e-9)) if is_long else (p * (1 - 1e-9), p * (1 + 1e-9))
    assert state(healthy_side) == 0
    assert state(liquid_side) != 0
