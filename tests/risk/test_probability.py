"""P(liquidation): analytic first passage, exposures of every position kind, Monte Carlo."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from keeper.domain import Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.risk import perp_math as pm
from keeper.risk.health import lending_health
from keeper.risk.probability import (
    exposures,
    first_passage_probability,
    first_passage_probability_discrete,
    liquidated_now,
    liquidation_probability,
    monte_carlo_liquidation,
    morpho_incentive,
)
from keeper.risk.scenarios import ScenarioSpec, scenario_chunks, simulate_log_returns

ETH = Asset("ETH", "0x01", 18)
BTC = Asset("BTC", "0x02", 8)
USDC = Asset("USDC", "0x03", 6)
DAI = Asset("DAI", "0x04", 18)
PRICES = {"ETH": 2000.0, "BTC": 40_000.0, "USDC": 1.0, "DAI": 1.0}


def leg(asset, side, amount, weight=1.0):
    return Leg(asset, side, int(amount * 10**asset.decimals), PRICES[asset.symbol], weight)


def lending(*legs, protocol=Protocol.AAVE_V3, name="u"):
    return Position("dev", protocol, "0xp", name, "pool", tuple(legs), 0, 1)


def perp(is_long, size, collateral, avg=2000.0, mark=2000.0, fees=2.0, liq_fee=5.0, lev=50.0, name="t"):
    terms = PerpTerms(ETH, is_long, size, collateral, avg, mark, fees, liq_fee, lev, 0)
    return Position("dev", Protocol.PERP, "0xv", name, f"USDC:ETH:{is_long}", (), 0, 1, perp=terms)


# ------------------------------------------------------------------------------ analytic


@given(st.floats(-1.0, -0.01), st.floats(-1.0, -0.01), st.floats(0.01, 1.0), st.floats(-0.2, 0.2))
@settings(max_examples=100)
def test_monotone_in_distance_and_vol(b1, b2, vol, drift):
    near, far = max(b1, b2), min(b1, b2)
    assert first_passage_probability(near, vol, drift) >= first_passage_probability(far, vol, drift) - 1e-12
    assert first_passage_probability(near, vol * 1.5, 0.0) >= first_passage_probability(near, vol, 0.0) - 1e-12
    p = first_passage_probability(near, vol, drift)
    assert 0.0 <= p <= 1.0


@given(st.floats(0.01, 1.0), st.floats(0.01, 1.0), st.floats(-0.2, 0.2))
@settings(max_examples=50)
def test_upper_barrier_is_the_mirror(b, vol, drift):
    assert first_passage_probability(b, vol, drift) == pytest.approx(
        first_passage_probability(-b, vol, -drift), abs=1e-12)


@settings(max_examples=300)
@given(st.floats(-3, 3), st.floats(0, 2), st.floats(-1, 1))
def test_scalar_path_equals_the_vectorised_formula(b, vol, drift):
    """One value takes a pure-Python path; it must give what the numpy path gives."""
    vec = first_passage_probability(np.array([b, b]), np.array([vol, vol]), np.array([drift, drift]))[0]
    assert first_passage_probability(b, vol, drift) == pytest.approx(vec, abs=1e-14)


def test_driftless_is_twice_the_terminal_probability():
    from scipy.stats import norm
    assert first_passage_probability(-0.2, 0.1) == pytest.approx(2 * norm.cdf(-2.0))
    np.testing.assert_allclose(first_passage_probability(np.array([-0.1, -0.2]), np.array([[0.1], [0.2]])),
                               [[2 * norm.cdf(-1), 2 * norm.cdf(-2)], [2 * norm.cdf(-0.5), 2 * norm.cdf(-1)]])
    assert first_passage_probability(0.0, 0.1) == 1.0
    assert first_passage_probability(-0.1, 0.0, 0.0) == 0.0
    assert first_passage_probability(-0.1, 0.0, -0.2) == 1.0


def test_discrete_monitoring_is_below_continuous():
    cont = first_passage_probability(-0.1, 0.05)
    disc = first_passage_probability_discrete(-0.1, 0.05 / math.sqrt(24), 24)
    assert disc < cont


# ------------------------------------------------------------------------------ exposures


def test_lending_margin_matches_health_everywhere():
    pos = lending(leg(ETH, Side.COLLATERAL, 10, 0.825), leg(BTC, Side.COLLATERAL, 0.5, 0.7),
                  leg(USDC, Side.DEBT, 15_000), leg(ETH, Side.DEBT, 1))
    ex = exposures([pos], ("ETH", "BTC"))
    assert ex.fixed_symbols == ("USDC",)
    rng = np.random.default_rng(0)
    for m in rng.uniform(0.3, 1.5, size=(50, 2)):
        margin = ex.linear[:, 0] @ m + ex.const[0]
        debt = ex.debt[:, 0] @ m + ex.debt_const[0]
        repriced = tuple(Leg(lg.asset, lg.side, lg.amount_raw,
                             lg.price_usd * (m[0] if lg.asset is ETH else m[1] if lg.asset is BTC else 1.0),
                             lg.liquidation_weight) for lg in pos.legs)
        assert margin / debt + 1 == pytest.approx(lending_health(repriced))


def perp_threshold(p):
    """GMX v1: states 1 and 2 of validateLiquidation together."""
    return max(p.margin_fees_usd + p.liquidation_fee_usd, p.size_usd / p.max_leverage)


def test_perp_margin_sign_matches_liquidation_rule():
    # 1000 collateral is well above T = 200; 150 is below it: only a profit keeps that one alive
    for collateral in (1000, 150):
        for is_long in (True, False):
            pos = perp(is_long, 10_000, collateral, avg=2100.0 if is_long else 1900.0)
            ex = exposures([pos], ("ETH",))
            p = pos.perp
            t = perp_threshold(p)
            assert ex.perp_threshold[0] == t == 200.0
            outcomes = set()
            for price in np.linspace(1500, 2500, 101):
                m = price / p.mark_price
                pnl = p.size_usd * (price - p.average_price) / p.average_price * (1 if is_long else -1)
                liquidated = p.collateral_usd + pnl < t  # a profit counts
                outcomes.add(liquidated)
                margin = ex.linear[0, 0] * m + ex.const[0]
                assert (margin < 0) == liquidated
                assert margin + t == pytest.approx(p.collateral_usd + pnl, abs=1e-6)
            assert outcomes == {True, False}


@given(st.floats(0.1, 20), st.floats(0, 2), st.floats(100, 40_000), st.floats(0, 2), st.booleans(),
       st.floats(1_000, 50_000), st.floats(50, 5_000), st.floats(1_500, 2_500))
def test_liquidated_now_equals_the_exposures_rule(eth, btc, usdc_debt, eth_debt, is_long, size, coll, avg):
    """The planner's scalar check gives exactly what the vectorised exposures say."""
    book = [lending(leg(ETH, Side.COLLATERAL, eth, 0.825), leg(BTC, Side.COLLATERAL, btc, 0.7),
                    leg(USDC, Side.DEBT, usdc_debt), leg(ETH, Side.DEBT, eth_debt)),
            lending(leg(ETH, Side.COLLATERAL, eth, 0.86), leg(USDC, Side.DEBT, usdc_debt),
                    protocol=Protocol.MORPHO_BLUE),
            lending(leg(ETH, Side.COLLATERAL, eth, 0.825)),
            perp(is_long, size, coll, avg=avg)]
    for pos in book:
        assert liquidated_now(pos) == bool(exposures([pos], ()).liquidated_now[0])


USD = pm.PRICE_PRECISION


@settings(max_examples=500)
@given(is_long=st.booleans(), size=st.integers(10**30, 10**8 * 10**30), lev_x=st.floats(0.5, 120),
       avg=st.integers(10**29, 10**35), move=st.floats(-0.3, 0.3), fee_bps=st.integers(0, 100),
       liq=st.sampled_from([0, 5 * 10**30]), lev_bps=st.integers(10_001, 1_000_000))
def test_liquidated_now_is_validate_liquidation_at_the_mark(is_long, size, lev_x, avg, move, fee_bps, liq, lev_bps):
    """The float check at the mark says what GMX v1's integer validateLiquidation says (state != 0),
    profitable positions included, wherever the two are not within float rounding of the boundary."""
    collateral = int(size / lev_x)
    fees = size * fee_bps // 10_000
    mark = int(avg * (1 + move))
    assume(mark > 0)
    d = pm.get_delta(size, avg, mark, is_long)
    remaining = collateral + d.delta if d.has_profit else collateral - d.delta
    boundary = max(fees + liq, -(-size * 10_000 // lev_bps))
    assume(abs(remaining - boundary) > size // 10**9)  # not within float noise of the boundary
    check = pm.validate_liquidation(collateral, size, d.has_profit, d.delta, fees, liq, lev_bps)
    terms = PerpTerms(ETH, is_long, size / USD, collateral / USD, avg / USD, mark / USD, fees / USD, liq / USD,
                      lev_bps / 10_000, check.state)
    pos = Position("dev", Protocol.PERP, "0xv", "t", f"USDC:ETH:{is_long}", (), 0, 1, perp=terms)
    assert liquidated_now(pos) == (check.state != 0)
    assert bool(exposures([pos], ()).liquidated_now[0]) == (check.state != 0)


def test_morpho_incentive_and_no_debt():
    assert morpho_incentive(0.86) == pytest.approx(1 / (1 - 0.3 * 0.14))
    assert morpho_incentive(0.0) == 1.15
    ex = exposures([lending(leg(ETH, Side.COLLATERAL, 1, 0.8))], ("ETH",))
    assert not ex.at_risk[0]


# ---------------------------------------------------------------------------- Monte Carlo

STEPS, VOL = 24, 0.01


def gaussian_paths(n, seed=1, steps=STEPS, vol=VOL):
    return simulate_log_returns(ScenarioSpec(("ETH",), steps, np.array([vol])), n, seed=seed)


@pytest.mark.parametrize("health", [1.08, 1.12])
def test_monte_carlo_agrees_with_analytic_discrete_monitoring(health):
    """Single asset, Gaussian, 24 steps monitored at step ends: the analytic formula with the
    Broadie-Glasserman-Kou barrier shift is within 4 standard errors of the Monte Carlo."""
    debt = 10 * 2000 * 0.8 / health
    pos = lending(leg(ETH, Side.COLLATERAL, 10, 0.8), leg(USDC, Side.DEBT, debt))
    res = liquidation_probability([pos], ("ETH",), gaussian_paths(200_000))
    analytic = first_passage_probability_discrete(math.log(1 / health), VOL, STEPS)
    assert res.p[0] == pytest.approx(analytic, abs=4 * res.stderr[-1, 0] + 1e-4)
    assert res.stderr[-1, 0] == pytest.approx(math.sqrt(res.p[0] * (1 - res.p[0]) / 200_000))
    # the continuous formula overstates the discretely monitored probability
    assert first_passage_probability(math.log(1 / health), VOL * math.sqrt(STEPS)) > res.p[0]


def test_fine_grid_approaches_continuous_formula():
    health = 1.1
    pos = lending(leg(ETH, Side.COLLATERAL, 10, 0.8), leg(USDC, Side.DEBT, 16_000 / health))
    steps = 400
    res = liquidation_probability([pos], ("ETH",), gaussian_paths(20_000, steps=steps, vol=0.04 / math.sqrt(steps)))
    cont = first_passage_probability(math.log(1 / health), 0.04)
    disc = first_passage_probability_discrete(math.log(1 / health), 0.04 / math.sqrt(steps), steps)
    assert res.p[0] == pytest.approx(disc, abs=4 * res.stderr[-1, 0])
    assert abs(cont - disc) < 0.1 * cont


def mixed_book():
    return [
        lending(leg(ETH, Side.COLLATERAL, 10, 0.825), leg(BTC, Side.COLLATERAL, 0.5, 0.75),
                leg(USDC, Side.DEBT, 20_000), leg(DAI, Side.DEBT, 5_000), name="multi"),
        lending(leg(BTC, Side.COLLATERAL, 1, 0.86), leg(USDC, Side.DEBT, 30_000),
                protocol=Protocol.MORPHO_BLUE, name="morpho"),
        lending(leg(USDC, Side.COLLATERAL, 30_000, 0.8), leg(ETH, Side.DEBT, 11), name="short-eth"),
        lending(leg(ETH, Side.COLLATERAL, 5, 0.8), name="no-debt"),
        perp(True, 20_000, 1_500, name="long"),
        perp(False, 20_000, 1_500, name="short"),
        perp(True, 20_000, 300, avg=2100.0, name="underwater"),
    ]


def book_spec(**kw):
    base = dict(symbols=("ETH", "BTC"), steps=12, vols=np.array([0.012, 0.009]),
                corr=np.array([[1, 0.8], [0.8, 1.0]]), nu=4.0, jump_intensity=0.01, jump_mean=-0.03,
                jump_std=0.02)
    base.update(kw)
    return ScenarioSpec(**base)


def test_mixed_book_monte_carlo_matches_brute_force_health():
    book = mixed_book()
    spec = book_spec()
    x = simulate_log_returns(spec, 3000, seed=5, dtype=np.float64)
    res = liquidation_probability(book, spec.symbols, x, horizons=(4, 12))
    ratios = np.exp(np.cumsum(x, axis=1))
    ex = exposures(book, spec.symbols)
    for k, pos in enumerate(book):
        margin = ratios @ ex.linear[:, k] + ex.const[k]  # (paths, steps)
        if pos.perp is None and pos.debt_usd > 0:
            debt = ratios @ ex.debt[:, k] + ex.debt_const[k]
            # health along the path, from the legs, on a few paths
            for i in range(3):
                m = ratios[i, -1]
                legs = tuple(Leg(lg.asset, lg.side, lg.amount_raw,
                                 lg.price_usd * (m[0] if lg.asset is ETH else m[1] if lg.asset is BTC else 1.0),
                                 lg.liquidation_weight) for lg in pos.legs)
                assert margin[i, -1] / debt[i, -1] + 1 == pytest.approx(lending_health(legs))
        for h_i, h in enumerate((4, 12)):
            expect = np.mean(margin[:, :h].min(axis=1) < 0) if ex.at_risk[k] else 0.0
            if ex.liquidated_now[k]:
                expect = 1.0
            assert res.prob[h_i, k] == pytest.approx(expect)
    assert res.p[3] == 0.0 and res.stderr[-1, 3] == 0.0
    assert res.p[6] == 1.0  # already below its maintenance threshold
    assert np.all(res.prob[0] <= res.prob[1])


def test_losses_given_liquidation():
    book = mixed_book()
    spec = book_spec(vols=np.array([0.03, 0.03]))
    res = liquidation_probability(book, spec.symbols, (spec, 20_000, 3), detail=True)
    multi, morpho, long_ = res.loss_given_liq[0], res.loss_given_liq[1], res.loss_given_liq[4]
    assert 0.5 * 0.05 * 20_000 < multi < 0.05 * 40_000
    assert morpho == pytest.approx((morpho_incentive(0.86) - 1) * 30_000, rel=0.02)
    p = book[4].perp
    t = perp_threshold(p)
    # remaining collateral at the first crossing: below T, and not far below unless a jump/gap
    assert 0 <= long_ <= t + 1e-6
    np.testing.assert_allclose(res.expected_loss[:3], res.p[:3] * res.loss_given_liq[:3], rtol=1e-9)
    assert math.isnan(res.loss_given_liq[3]) and res.expected_loss[3] == 0.0


def test_sources_threads_and_chunks_agree():
    book = mixed_book()
    spec = book_spec()
    ex = exposures(book, spec.symbols)
    a = monte_carlo_liquidation(ex, (spec, 9000, 7))
    b = monte_carlo_liquidation(ex, (spec, 9000, 7), workers=2)
    c = monte_carlo_liquidation(ex, scenario_chunks(spec, 9000, seed=7, max_bytes=10**6), horizons=(12,))
    d = monte_carlo_liquidation(ex, simulate_log_returns(spec, 9000, seed=7), workers=2)
    for r in (b, c, d):
        np.testing.assert_array_equal(a.prob, r.prob)
    e = monte_carlo_liquidation(ex, (spec, 9000, 7), detail=True, workers=2)
    np.testing.assert_array_equal(a.prob, e.prob)


@given(st.floats(1.02, 2.0), st.floats(0.002, 0.02))
@settings(max_examples=10, deadline=None)
def test_mc_monotone_in_health_and_vol(health, vol):
    """Common random numbers: a healthier position or a calmer market is never more at risk."""
    def mk(h):
        return lending(leg(ETH, Side.COLLATERAL, 10, 0.8), leg(USDC, Side.DEBT, 16_000 / h))

    x = gaussian_paths(2000, seed=2, vol=vol)
    p = liquidation_probability([mk(health), mk(health * 1.05)], ("ETH",), x).p
    assert p[0] >= p[1]
    p_calm = liquidation_probability([mk(health)], ("ETH",), x * 0.8).p
    assert p[0] >= p_calm[0]


def test_errors():
    ex = exposures(mixed_book(), ("ETH", "BTC"))
    with pytest.raises(ValueError):
        monte_carlo_liquidation(ex, np.zeros((10, 5, 3), np.float32))
    with pytest.raises(ValueError):
        monte_carlo_liquidation(ex, np.zeros((10, 5, 2), np.float32), horizons=(6,))


def test_antithetic_standard_error_from_pairs():
    health = 1.1
    pos = lending(leg(ETH, Side.COLLATERAL, 10, 0.8), leg(USDC, Side.DEBT, 16_000 / health))
    ex = exposures([pos], ("ETH",))
    anti = ScenarioSpec(("ETH",), STEPS, np.array([VOL]), antithetic=True)
    res = monte_carlo_liquidation(ex, (anti, 100_000, 3))
    plain = monte_carlo_liquidation(ex, (ScenarioSpec(("ETH",), STEPS, np.array([VOL])), 100_000, 3))
    analytic = first_passage_probability_discrete(math.log(1 / health), VOL, STEPS)
    assert res.p[0] == pytest.approx(analytic, abs=4 * res.stderr[-1, 0] + 1e-4)
    # a one-sided barrier: a path and its mirror are rarely both liquidated, so pairing helps
    assert res.stderr[-1, 0] < plain.stderr[-1, 0]
    # the pair formula on held paths (told they are antithetic) equals the spec run
    held = simulate_log_returns(anti, 100_000, seed=3)
    np.testing.assert_allclose(monte_carlo_liquidation(ex, held, antithetic=True).stderr, res.stderr)
    # iid paths declared as pairs: the pair formula agrees with the binomial one
    iid = monte_carlo_liquidation(ex, gaussian_paths(100_000), antithetic=True)
    binom = math.sqrt(iid.p[0] * (1 - iid.p[0]) / 100_000)
    assert iid.stderr[-1, 0] == pytest.approx(binom, rel=0.1)


def test_loss_of_a_position_liquidatable_now():
    book = mixed_book()
    res = liquidation_probability(book, ("ETH", "BTC"), gaussian_paths(100, steps=4).repeat(2, axis=2))
    p = book[6].perp
    t = perp_threshold(p)
    loss_price = p.size_usd * (p.average_price - p.mark_price) / p.average_price
    assert res.p[6] == 1.0 and res.stderr[-1, 6] == 0.0
    assert res.loss_given_liq[6] == pytest.approx(max(p.collateral_usd - loss_price, 0.0))
    assert res.expected_loss[6] == res.loss_given_liq[6]
    assert t > 0


def test_book_loss_tail_and_short_horizon_losses():
    book = mixed_book()
    spec = book_spec(vols=np.array([0.02, 0.02]))
    x = simulate_log_returns(spec, 4000, seed=9)
    res = liquidation_probability(book, spec.symbols, x, horizons=(6,))
    assert res.path_loss.shape == (4000,)
    # the per-path losses add up to the per-position expected losses
    assert res.path_loss.mean() == pytest.approx(np.nansum(res.expected_loss), rel=1e-9)
    var, es = res.book_loss_tail(0.95)
    assert es >= var >= np.quantile(res.path_loss, 0.5)
    # losses stop at the last horizon: the same as running on the first 6 steps only
    short = liquidation_probability(book, spec.symbols, np.ascontiguousarray(x[:, :6]))
    np.testing.assert_allclose(res.expected_loss, short.expected_loss)
    np.testing.assert_array_equal(res.prob, short.prob)
    with pytest.raises(ValueError):
        liquidation_probability(book, spec.symbols, x, detail=False).book_loss_tail()


def test_float32_agrees_with_float64():
    book = mixed_book()
    spec = book_spec()
    x64 = simulate_log_returns(spec, 8192, seed=13, dtype=np.float64)
    p64 = liquidation_probability(book, spec.symbols, x64).p
    p32 = liquidation_probability(book, spec.symbols, x64.astype(np.float32)).p
    # float32 rounding can only flip paths that end within ~1e-6 of the barrier
    np.testing.assert_allclose(p32, p64, atol=3 / 8192)


def test_lazy_chunks_are_not_drawn_all_at_once(monkeypatch):
    import keeper.risk.probability as prob_mod

    spec = book_spec()
    ex = exposures(mixed_book(), spec.symbols)
    drawn, seen = [], []

    def source():
        for c in scenario_chunks(spec, 20 * 512, seed=1, max_bytes=spec.bytes_for(4096)):
            for i in range(0, len(c), 512):
                drawn.append(i)
                yield c[i:i + 512]

    real = prob_mod._eval_chunk

    def spy(chunk, *a, **kw):
        seen.append(len(drawn))
        return real(chunk, *a, **kw)

    monkeypatch.setattr(prob_mod, "_eval_chunk", spy)
    res = monte_carlo_liquidation(ex, source(), workers=2)
    assert res.n_paths == 20 * 512
    assert seen[0] <= 2 * 2 + 1  # at most 2 * workers chunks drawn before the first is evaluated


@pytest.mark.parametrize("drift", [-0.001, 0.0008])
def test_monte_carlo_with_drift_and_an_upper_barrier(drift):
    """A short-ETH position (USDC collateral, ETH debt) is liquidated when ETH rises ~9%: an upper
    barrier; with drift, MC agrees with the (BGK-corrected) reflection formula."""
    pos = lending(leg(USDC, Side.COLLATERAL, 24_000, 0.8), leg(ETH, Side.DEBT, 8.8))
    health = 24_000 * 0.8 / (8.8 * 2000)
    spec = ScenarioSpec(("ETH",), STEPS, np.array([VOL]), drift=drift)
    res = liquidation_probability([pos], ("ETH",), (spec, 100_000, 21))
    analytic = first_passage_probability_discrete(math.log(health), VOL, STEPS, drift)
    assert res.p[0] == pytest.approx(analytic, abs=4 * res.stderr[-1, 0] + 2e-4)
    assert 0.005 < res.p[0] < 0.5


@pytest.mark.parametrize(("eth", "loss"), [
    (1885.0, 2.0),  # 350 left >= fees + liquidation fee (7): state 2, closed; the margin fees only
    (1851.0, 2.0),  # 10 left: still state 2
    (1850.5, 5.0),  # 5 left < 7: state 1, everything left is forfeited
    (1800.0, 0.0),  # the losses ate the collateral: nothing left to forfeit
])
def test_perp_loss_follows_gmx_v1_liquidation_states(eth, loss):
    """GMX v1's ``liquidatePosition``: over the maximum leverage only (state 2), the position is
    decreased to zero and what is left goes back to the trader less the margin fees; below
    ``marginFees + liquidationFee`` (state 1) the collateral left is forfeited. Long 20,000 at 2,000
    with 1,500 of collateral, fees 2, liquidation fee 5, 50x: T = 400 is the state-2 line."""
    pos = perp(True, 20_000, 1_500)
    x = np.log(np.array([[[eth / 2000.0, 1.0]]]))  # one path, one step: ETH to ``eth``, BTC flat
    res = liquidation_probability([pos], ("ETH", "BTC"), x)
    assert res.p[0] == 1.0
    assert res.loss_given_liq[0] == pytest.approx(loss, abs=1e-6)


@pytest.mark.parametrize("b", [-0.38, -0.1, -0.02])
def test_a_drift_that_ends_on_the_barrier_stays_continuous_as_the_vol_shrinks(b):
    """Drift = barrier: exp(2 mu b / s^2) * Phi((b + mu) / s) tends to 1 / (|z| sqrt(2 pi)), z = 2b / s.
    Computed as a plain product it was lost once the exponent passed 700 (P fell from 0.51 to 0.50
    between two vols 0.1 % apart, an underestimate); in log space it is continuous, equal on both
    paths, and matches the tail's asymptote."""
    threshold = abs(b) / (350.0 ** 0.5)  # 2 mu b / s^2 = 700 here
    vols = [threshold * f for f in (1.02, 1.001, 0.999, 0.98, 0.5)]
    ps = [first_passage_probability(b, s, b) for s in vols]
    vec = first_passage_probability(np.full(len(vols), b), np.array(vols), np.full(len(vols), b))
    assert list(vec) == pytest.approx(ps, abs=1e-14)
    assert abs(ps[1] - ps[2]) < 1e-4, ps
    assert all(p2 < p1 for p1, p2 in itertools.pairwise(ps)), ps  # less vol: less chance to touch early
    for s, p in zip(vols, ps):
        z = abs(2.0 * b / s)
        tail = (1.0 - 1.0 / z**2 + 3.0 / z**4) / (z * math.sqrt(2.0 * math.pi))  # Mills ratio's series
        assert p == pytest.approx(0.5 + tail, rel=1e-6)
