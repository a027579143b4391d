"""Policies and their P(liq) models, on synthetic series."""

from dataclasses import replace

import numpy as np
import pytest

from keeper.backtest.engine import (
    flipped,
    lending_position,
    policy_thresholds,
    rise_from_fall,
    run,
)
from keeper.backtest.metrics import summarize
from keeper.backtest.policies import (
    GRID,
    RiskPolicy,
    SeriesModel,
    StaticPolicy,
    distance_at,
    fit_tail,
)
from keeper.backtest.prices import PriceSeries
from keeper.risk.laws import GaussLaw, TailLaw, next_hour_vol

T0 = 1_577_836_800


def gbm(n=3000, vol=0.01, seed=0, calm_then_storm=False):
    rng = np.random.default_rng(seed)
    sig = np.full(n, vol)
    if calm_then_storm:
        sig[n // 2:] = vol * 4
    r = sig * rng.standard_t(4, size=n) / np.sqrt(2.0)
    c = 100 * np.exp(np.cumsum(r))
    low = c * np.exp(-np.abs(rng.normal(0, vol, n)))
    high = c * np.exp(np.abs(rng.normal(0, vol, n)))
    return PriceSeries("ETH", T0 + 3600 * np.arange(n, dtype=np.int64), c.copy(), high, low, c,
                       np.zeros(n, dtype=bool))


def test_static_thresholds_are_health_ratios_as_distances():
    th = StaticPolicy(1.25, 1.5, 2.0, 1.6).thresholds(gbm(10))
    assert th.trigger[0] == pytest.approx(0.2) and th.target[0] == pytest.approx(1 / 3)
    assert th.release[0] == pytest.approx(0.5) and th.release_target[0] == pytest.approx(0.375)
    assert StaticPolicy(1.25, 1.5, float("inf"), 1.5).thresholds(gbm(10)).release[0] == 1.0
    with pytest.raises(ValueError):
        StaticPolicy(1.5, 1.2, 2.0, 1.6)


def test_distance_at_inverts_a_monotone_probability():
    p = np.exp(-GRID / 0.05)[None, :].repeat(3, axis=0)
    d = distance_at(p, 1e-3)
    assert d == pytest.approx(np.full(3, 0.05 * np.log(1e3)), rel=0.03)
    assert distance_at(np.ones((1, len(GRID))), 1e-3)[0] == pytest.approx(GRID[-1])   # never safe: the cap


def test_tail_model_is_monotone_and_fatter_than_gaussian():
    law = TailLaw(nu=3.0, lam_u=0.01, u=0.03, xi=0.2, beta=0.015)
    m = SeriesModel(law)
    sig = np.array([[0.005], [0.02]])
    p = m.prob(sig, np.broadcast_to(GRID, (2, len(GRID))), 6)
    assert np.all(np.diff(p, axis=1) <= 1e-15) and np.all(p[1] >= p[0])
    no_jump = SeriesModel(replace(law, lam_u=0.0)).prob(sig, np.broadcast_to(GRID, (2, len(GRID))), 6)
    far = GRID > 0.15
    assert np.all(p[0, far] > no_jump[0, far])           # the jump term sets a floor in calm markets
    g = SeriesModel(GaussLaw()).prob(sig, np.broadcast_to(GRID, (2, len(GRID))), 6)
    assert np.all(no_jump[:, far] >= g[:, far])


def test_tail_model_fit_recovers_fat_tails_and_jumps():
    s = gbm(20_000, seed=1)
    m = fit_tail([s])
    assert 2.2 <= m.nu < 8 and m.lam_u >= 0 and "ETH" in m.fitted_on


def test_vol_forecast_is_causal():
    s = gbm(500, seed=2)
    c = s.close.copy()
    v1 = next_hour_vol(c, 0.94)
    c2 = c.copy()
    c2[300:] *= 1.5
    v2 = next_hour_vol(c2, 0.94)
    assert np.array_equal(v1[:300], v2[:300]) and v1[300] != v2[300]


def test_risk_policy_demands_more_in_a_storm_and_has_hysteresis():
    s = gbm(4000, calm_then_storm=True, seed=3)
    pol = RiskPolicy(1e-3, 6, 0.05, SeriesModel(TailLaw(nu=4.0, lam_u=0.0)))
    th = pol.thresholds(s)
    assert np.median(th.trigger[3000:]) > 2.5 * np.median(th.trigger[1000:2000])
    assert np.all(th.trigger <= th.target + 1e-12) and np.all(th.target <= th.release + 1e-12)
    assert np.array_equal(th.release_target, th.target)
    with pytest.raises(ValueError):
        RiskPolicy(1e-3, 6, 0.5, None, 0.2).levels()


def test_risk_policy_runs_and_tracks_its_target():
    s = gbm(3000, seed=4)
    pol = RiskPolicy(1e-3, 6, 0.05, SeriesModel(TailLaw(nu=4.0, lam_u=0.0)))
    res = run(s, lending_position("ETH", float(s.close[0]), 2.0), pol, delay_bars=1)
    m = summarize(res)
    assert m.liquidations == 0 and m.transactions > 0
    late = slice(500, None)
    assert np.mean(res.distance[late] >= res.thresholds.trigger[late] * 0.8) > 0.95


def test_short_side_thresholds_come_from_the_flipped_series():
    s = gbm(1000, seed=5)
    pol = RiskPolicy(1e-3, 6, 0.05, SeriesModel(TailLaw(nu=4.0, lam_u=0.0)))
    short = policy_thresholds(pol, s, "short")
    direct = pol.thresholds(flipped(s))
    assert short.trigger == pytest.approx(rise_from_fall(direct.trigger))
    assert np.all(short.trigger > direct.trigger)


def test_rolling_max_is_causal_and_hold_only_widens_releases():
    from keeper.backtest.policies import rolling_max
    x = np.zeros(10)
    x[3] = 1.0
    assert list(rolling_max(x, 4)) == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert list(rolling_max(x, 5)) == [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    s = gbm(1500, calm_then_storm=True, seed=6)
    base = RiskPolicy(1e-3, 6, 0.05, SeriesModel(TailLaw(nu=4.0, lam_u=0.0)))
    held = replace(base, hold_hours=48)
    a, b = base.thresholds(s), held.thresholds(s)
    assert np.array_equal(a.trigger, b.trigger) and np.all(b.release >= a.release)
    assert np.all(b.release_target >= a.target)
    assert "hold 48h" in held.label()


def test_distance_bands_are_log_moves_from_the_trigger():
    s = gbm(1500, calm_then_storm=True, seed=7)
    law = TailLaw(nu=10.0, lam_u=0.01, jump_vol=1.0, jump_ref=0.01)
    pol = RiskPolicy(1e-4, 2, model=SeriesModel(law), target_gap=0.07, release_gap=0.1)
    th = pol.thresholds(s)
    def x(d):
        return -np.log1p(-d)

    assert x(th.target) - x(th.trigger) == pytest.approx(np.full(len(s), 0.07))
    assert x(th.release) - x(th.target) == pytest.approx(np.full(len(s), 0.1))
    assert np.array_equal(th.trigger, replace(pol, target_gap=0.0, release_gap=0.0).thresholds(s).trigger)
    assert "tgt +0.07 rel +0.1" in pol.label() and "/jv1" in pol.label()
    held = replace(pol, hold_hours=24).thresholds(s)
    assert np.all(held.release >= th.release) and np.all(held.release_target >= th.target)
    with pytest.raises(ValueError):
        RiskPolicy(1e-4, 2, target_gap=0.07)


def test_regime_law_raises_the_trigger_with_the_vol_and_keeps_a_floor():
    s = gbm(4000, calm_then_storm=True, seed=8)
    flat = TailLaw(nu=30.0, lam_u=0.01, u=0.03, xi=0.2, beta=0.015)
    regime = replace(flat, jump_vol=1.0, jump_ref=0.02, jump_min=0.5)
    t_flat = RiskPolicy(1e-5, 2, 0.05, SeriesModel(flat)).thresholds(s).trigger
    t_reg = RiskPolicy(1e-5, 2, 0.05, SeriesModel(regime)).thresholds(s).trigger
    calm, storm = slice(500, 2000), slice(2500, None)
    assert np.median(t_reg[calm]) < np.median(t_flat[calm])           # calm vol (0.01) < jump_ref
    assert np.median(t_reg[storm]) > np.median(t_flat[storm])         # storm vol (0.04) > jump_ref
    floor = RiskPolicy(1e-5, 2, 0.05, SeriesModel(replace(flat, lam_u=0.005))).thresholds(s).trigger
    assert np.all(t_reg[calm] >= floor[calm] - 1e-9)                   # never below half the rate


def test_fit_tail_passes_the_regime_options():
    s = gbm(20_000, seed=9)
    law = fit_tail([s], jump_regime="vol", nu=10.0, exponent_scale=0.5, u=0.02)
    assert law.nu == 10.0 and law.regime and law.jump_ref > 0 and "exponents x 0.5" in law.fitted_on
