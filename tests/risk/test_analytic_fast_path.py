"""The one-pass analytic P (what the planner calls for every amount it tries) is the same float as
the definition: the largest single-asset first passage over ``health.liquidation_points``, and the
co-moving check from ``lending_health``."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.domain import Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.plan.risk_model import AnalyticRisk
from keeper.risk.health import lending_health, liquidation_points
from keeper.risk.probability import analytic_position_probability, first_passage_probability, liquidated_now

ASSETS = [Asset("ETH", "0x01", 18), Asset("BTC", "0x02", 8), Asset("USDC", "0x03", 6), Asset("DAI", "0x04", 18)]
PRICES = {"ETH": 1700.0, "BTC": 40_000.0, "USDC": 1.0, "DAI": 1.0}


def reference_p(position, vols, drifts=None):
    if position.perp is None and not any(l.side is Side.DEBT and l.value_usd > 0 for l in position.legs):
        return 0.0
    if liquidated_now(position):
        return 1.0
    best = 0.0
    for pt in liquidation_points(position):
        vol = vols.get(pt.symbol)
        if vol is None or pt.price <= 0:
            continue
        b = math.log(pt.price / pt.current)
        best = max(best, float(first_passage_probability(b, vol, (drifts or {}).get(pt.symbol, 0.0))))
    return best


def reference_comove(position, vols):
    if any(vols.get(l.asset.symbol, 0.0) > 0 for l in position.legs_on(Side.DEBT)):
        return 0.0
    health = lending_health(position.legs)
    weighted = [(l.value_usd * l.liquidation_weight, vols.get(l.asset.symbol, 0.0))
                for l in position.legs_on(Side.COLLATERAL)]
    total = sum(w for w, _ in weighted)
    if not math.isfinite(health) or total <= 0:
        return 0.0
    if health <= 1.0:
        return 1.0
    vol = sum(w * v for w, v in weighted) / total
    return float(first_passage_probability(math.log(1.0 / health), vol)) if vol > 0 else 0.0


legs = st.lists(st.tuples(st.sampled_from(range(4)), st.booleans(), st.floats(0, 1e6), st.floats(0.5, 0.95)),
                min_size=1, max_size=5)


@settings(max_examples=400, deadline=None)
@given(legs, st.floats(0.001, 0.5), st.floats(0.001, 0.5), st.floats(-0.1, 0.1), st.booleans())
def test_fast_path_is_the_same_float(spec, eth_vol, btc_vol, drift, stable_debt_vol):
    built = tuple(Leg(ASSETS[i], Side.COLLATERAL if coll else Side.DEBT,
                      int(amount / PRICES[ASSETS[i].symbol] * 10**ASSETS[i].decimals), PRICES[ASSETS[i].symbol],
                      weight if coll else 1.0)
                  for i, coll, amount, weight in spec)
    pos = Position("dev", Protocol.AAVE_V3, "0xp", "u", "pool", built, 0, 1)
    vols = {"ETH": eth_vol, "BTC": btc_vol} | ({"DAI": 0.001} if stable_debt_vol else {})
    drifts = {"ETH": drift}
    assert analytic_position_probability(pos, vols) == reference_p(pos, vols)
    assert analytic_position_probability(pos, vols, drifts) == reference_p(pos, vols, drifts)
    risk = AnalyticRisk(vols)
    assert risk._comove(pos) == reference_comove(pos, vols)
    assert risk.p_liq(pos) == min(1.0, max(reference_p(pos, vols), reference_comove(pos, vols)))


@settings(max_examples=400, deadline=None)
@given(st.booleans(), st.floats(1_000, 1e6), st.floats(0.5, 120), st.floats(-0.3, 0.3), st.floats(0, 0.01),
       st.sampled_from([0.0, 5.0]), st.floats(1.5, 100), st.floats(0.001, 0.5))
def test_perp_fast_path_uses_one_threshold(is_long, size, lev_x, move, fee_rate, liq_fee, max_lev, vol):
    """For perps the fast path's "liquidated now" (probability's threshold) and its barrier
    (health's liquidation price) are the same GMX v1 rule: not liquidated now exactly when the
    liquidation price is on the losing side of the mark, profitable positions included."""
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
    p = analytic_position_probability(pos, {"ETH": vol})
    if now:
        assert p == 1.0
        return
    points = liquidation_points(pos)
    if not points:  # a long that survives a fall to zero
        assert is_long and p == 0.0
        return
    (pt,) = points
    assert (pt.price < mark) if is_long else (pt.price > mark)
    assert p == reference_p(pos, {"ETH": vol})
