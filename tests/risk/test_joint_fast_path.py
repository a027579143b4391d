"""The joint factor's one-pass sums (what the planner calls for every amount it tries) agree with the
array definition (``probability.exposures``, the Monte Carlo's margins) and with the exact rule of
``liquidated_now``; for perps the factor's distance is GMX v1's liquidation price."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.domain import Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.risk.health import liquidation_points
from keeper.risk.joint import Factor, exposures_of, reduce_position
from keeper.risk.market import AssetState, Market
from keeper.risk.probability import exposures, liquidated_now

ASSETS = [Asset("ETH", "0x01", 18), Asset("BTC", "0x02", 8), Asset("USDC", "0x03", 6), Asset("DAI", "0x04", 18)]
PRICES = {"ETH": 1700.0, "BTC": 40_000.0, "USDC": 1.0, "DAI": 1.0}
MARKET = Market({"ETH": AssetState(0.01, "t"), "BTC": AssetState(0.008, "t")})

legs = st.lists(st.tuples(st.sampled_from(range(4)), st.booleans(), st.floats(0, 1e6), st.floats(0.5, 0.95)),
                min_size=1, max_size=5)


@settings(max_examples=400, deadline=None)
@given(legs)
def test_one_pass_sums_are_the_array_margins(spec):
    built = tuple(Leg(ASSETS[i], Side.COLLATERAL if coll else Side.DEBT,
                      int(amount / PRICES[ASSETS[i].symbol] * 10**ASSETS[i].decimals), PRICES[ASSETS[i].symbol],
                      weight if coll else 1.0)
                  for i, coll, amount, weight in spec)
    pos = Position("dev", Protocol.AAVE_V3, "0xp", "u", "pool", built, 0, 1)
    ex = exposures([pos], ("ETH", "BTC"))
    got = exposures_of(pos)
    if not ex.at_risk[0]:
        assert got is None and reduce_position(pos, MARKET) == 0.0
        return
    now, e, k = got
    assert now == liquidated_now(pos) == bool(ex.liquidated_now[0])
    for i, sym in enumerate(("ETH", "BTC")):
        assert math.isclose(e.get(sym, 0.0), ex.linear[i, 0], rel_tol=1e-12, abs_tol=1e-9)
    assert math.isclose(k, ex.const[0], rel_tol=1e-12, abs_tol=1e-6)
    f = reduce_position(pos, MARKET)
    margin = sum(e.values()) + k
    if now:
        assert f == 1.0
    elif isinstance(f, Factor):
        assert f.x > 0 and f.sigma >= 0 and margin > 0
    else:
        assert f in (0.0, 1.0)


@settings(max_examples=400, deadline=None)
@given(st.booleans(), st.floats(1_000, 1e6), st.floats(0.5, 120), st.floats(-0.3, 0.3), st.floats(0, 0.01),
       st.sampled_from([0.0, 5.0]), st.floats(1.5, 100))
def test_perp_factor_is_gmx_liquidation_price(is_long, size, lev_x, move, fee_rate, liq_fee, max_lev):
    """Not liquidated now exactly when the liquidation price is on the losing side of the mark,
    profitable positions included; the factor's distance is the log distance to that price."""
    avg = 1700.0
    mark = avg * (1 + move)
    terms = PerpTerms(ASSETS[0], is_long, size, size / lev_x, avg, mark, size * fee_rate, liq_fee, max_lev, 0)
    pos = Position("dev", Protocol.PERP, "0xv", "t", "USDC:ETH:long", (), 0, 1, perp=terms)
    threshold = max(size * fee_rate + liq_fee, size / max_lev)
    remaining = size / lev_x + size * move * (1 if is_long else -1)
    if abs(remaining - threshold) < 1e-9 * size:
        return  # within float rounding of the boundary
    now = liquidated_now(pos)
    assert now == (remaining < threshold)
    f = reduce_position(pos, MARKET)
    if now:
        assert f == 1.0
        return
    points = liquidation_points(pos)
    if not points:  # a long that survives a fall to zero
        assert is_long and f == 0.0
        return
    (pt,) = points
    assert (pt.price < mark) if is_long else (pt.price > mark)
    assert math.isclose(f.x, abs(math.log(pt.price / pt.current)), rel_tol=1e-9, abs_tol=1e-12)
