"""The single-factor laws (``keeper.risk.laws``) on synthetic series: the vectorised and scalar paths
agree, P is monotone, parameters round-trip, states are causal, fits recover planted parameters."""

import math
from dataclasses import replace

import numpy as np
import pytest

from keeper.risk.laws import (
    LAWS,
    GaussLaw,
    TailLaw,
    _poisson_fit,
    bar_drops,
    law_from_dict,
    next_hour_vol,
)

REGIME = TailLaw(fast=0.94, slow=0.98, nu=3.5, u=0.03, lam_u=0.01, xi=0.25, beta=0.015, long=0.995,
                 jump_vol=1.3, jump_ratio=0.7, jump_ref=0.008, jump_min=0.2, jump_max=20.0)
LAWS_UNDER_TEST = [GaussLaw(), GaussLaw(lam=0.97), TailLaw(), TailLaw(nu=2.5, slow=0.99, lam_u=0.0),
                   TailLaw(xi=0.0), TailLaw(xi=-0.2, beta=0.05), REGIME,
                   replace(REGIME, jump_ratio=0.0, long=0.0, jump_max=0.0), replace(REGIME, jump_vol=0.0)]


def series(n=3000, seed=0, vol=0.008, storm_at=None, jumps=()):
    """Closes and lows of a t(4) random walk; ``storm_at``: 4x the vol from there; ``jumps``: bars
    whose low falls that far below the previous close."""
    rng = np.random.default_rng(seed)
    sig = np.full(n, vol)
    if storm_at is not None:
        sig[storm_at:] *= 4
    c = 100 * np.exp(np.cumsum(sig * rng.standard_t(4, n) / math.sqrt(2.0)))
    low = np.minimum(c, c * np.exp(-np.abs(rng.normal(0, vol / 2, n))))
    for i, size in jumps:
        low[i] = min(low[i], c[i - 1] * (1 - size))
    return c, low


@pytest.mark.parametrize("law", LAWS_UNDER_TEST, ids=lambda law: law.kind + "/" + getattr(law, "tag", ""))
def test_prob_and_prob_scalar_agree_over_a_grid_with_state_extras(law):
    c, low = series(2000, storm_at=1000, seed=1)
    st = law.state(c, low)
    assert st.shape[0] == len(c) and np.all(st[:, 0] > 0)
    rows = st[::97]
    xs = np.array([-0.1, 0.0, 1e-4, 0.003, 0.01, 0.03, 0.05, 0.1, 0.2, 0.35, 0.6, 1.2])
    for h in (1, 2, 6, 24):
        for je in (1.0, 0.6, 1.7):
            vec = law.prob(xs[None, :], rows[:, None, :], h, je)
            for i, r in enumerate(rows):
                for j, x in enumerate(xs):
                    one = law.prob_scalar(float(x), float(r[0]), h, je, tuple(float(v) for v in r[1:]))
                    assert one == pytest.approx(vec[i, j], rel=1e-9, abs=1e-15), (h, je, r, x)


@pytest.mark.parametrize("law", LAWS_UNDER_TEST, ids=lambda law: law.kind + "/" + getattr(law, "tag", ""))
def test_prob_is_a_probability_falling_in_x_and_rising_in_h(law):
    c, low = series(1500, storm_at=700, seed=2)
    st = law.state(c, low)[::50]
    xs = np.geomspace(1e-4, 2.0, 80)
    p = law.prob(xs[None, :], st[:, None, :], 6)
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p, axis=1) <= 1e-15)
    assert np.all(law.prob(xs[None, :], st[:, None, :], 24) >= p - 1e-15)
    assert np.all(law.prob(np.array([0.0, -1.0]), st[:1], 6) == 1.0)


def test_a_regime_law_without_extras_reads_the_vol_column_only():
    sig = 0.012
    one = REGIME.prob_scalar(0.2, sig, 6)
    assert one == pytest.approx(REGIME.prob_scalar(0.2, sig, 6, 1.0, (sig, sig)))
    assert one == pytest.approx(float(REGIME.prob(0.2, np.array([sig]), 6)))


def test_jump_intensity_follows_the_regime_and_is_clipped():
    base = replace(REGIME, nu=30.0)
    calm, storm = (0.004, 0.004), (0.03, 0.01)
    x = 0.25                                             # far beyond the diffusion at these vols
    assert base.prob_scalar(x, 0.004, 2, 1.0, calm) < base.prob_scalar(x, 0.004, 2, 1.0, storm)
    m = base._multiplier_scalar(0.03, 0.01)
    assert m == pytest.approx(min(20.0, (0.03 / 0.008) ** 1.3 * 3.0 ** 0.7))
    assert base._multiplier_scalar(1e-6, 1.0) == pytest.approx(0.2)                 # the floor
    assert base._multiplier_scalar(1.0, 1e-6) == pytest.approx(20.0)                # the cap


@pytest.mark.parametrize("law", LAWS_UNDER_TEST, ids=lambda law: law.kind + "/" + getattr(law, "tag", ""))
def test_to_dict_round_trips_every_parameter(law):
    d = law.to_dict()
    back = law_from_dict(d)
    assert back == law and type(back) is type(law) and d["kind"] in LAWS
    import json
    assert law_from_dict(json.loads(json.dumps(d))) == law
    with pytest.raises(ValueError, match="unknown"):
        law_from_dict({**d, "bogus": 1})
    with pytest.raises(ValueError, match="unknown law kind"):
        law_from_dict({**d, "kind": "nope"})


@pytest.mark.parametrize("law", LAWS_UNDER_TEST, ids=lambda law: law.kind + "/" + getattr(law, "tag", ""))
def test_state_is_causal(law):
    c, low = series(800, seed=3)
    st = law.state(c, low)
    for t in (100, 400, 798):
        c2, low2 = c.copy(), low.copy()
        c2[t + 1:] *= np.exp(np.random.default_rng(t).normal(0, 0.1, len(c) - t - 1))
        low2[t + 1:] = np.minimum(c2[t + 1:], low2[t + 1:] * 0.5)
        st2 = law.state(c2, low2)
        assert np.array_equal(st[: t + 1], st2[: t + 1])
        assert not np.array_equal(st[t + 1], st2[t + 1])


def test_regime_state_columns_are_the_fast_and_long_vols():
    c, low = series(1000, seed=4)
    st = REGIME.state(c, low)
    fast = TailLaw(fast=0.94).state(c, low)[:, 0]
    long = TailLaw(fast=0.995).state(c, low)[:, 0]
    assert st.shape == (1000, 3) and np.array_equal(st[:, 1], fast) and np.array_equal(st[:, 2], long)
    assert np.all(st[:, 0] >= st[:, 1])                 # max(fast, slow)
    assert TailLaw().state(c, low).shape == (1000, 1)    # a constant-rate law keeps one column


def test_invalid_regime_parameters_raise():
    with pytest.raises(ValueError):
        TailLaw(jump_ratio=1.0)                          # no long EWMA
    with pytest.raises(ValueError):
        TailLaw(jump_vol=1.0, jump_min=2.0, jump_max=1.0)
    with pytest.raises(ValueError):
        TailLaw(jump_vol=1.0, jump_ref=0.0)
    with pytest.raises(ValueError, match="jump_regime"):
        TailLaw.fit([np.ones(10)], [np.ones(10)], jump_regime="drawdown")


def test_poisson_fit_recovers_planted_coefficients():
    rng = np.random.default_rng(5)
    z = rng.normal(0, 1, 200_000)
    X = np.column_stack([np.ones_like(z), z])
    y = rng.poisson(np.exp(-4.0 + 0.8 * z)).astype(float)
    b = _poisson_fit(X, y)
    assert b[0] == pytest.approx(-4.0, abs=0.05) and b[1] == pytest.approx(0.8, abs=0.05)


def _planted(n, rate, seed, storm_at=None, storm_rate=None):
    """A calm t(4) walk with drops of 4-20% planted at ``rate`` per hour (``storm_rate`` from
    ``storm_at``, where the vol is also 4x)."""
    rng = np.random.default_rng(seed)
    r = np.full(n, rate)
    if storm_at is not None:
        r[storm_at:] = storm_rate
    hits = np.flatnonzero(rng.random(n) < r)
    hits = hits[hits > 0]
    sizes = 0.03 + rng.pareto(4.0, len(hits)) * 0.03 + 0.005
    return series(n, seed=seed, vol=0.004, storm_at=storm_at, jumps=list(zip(hits, np.minimum(sizes, 0.6)))), len(hits)


def test_fit_recovers_a_planted_jump_rate():
    (c, low), _ = _planted(60_000, 0.004, seed=6)
    law = TailLaw.fit([c], [low], u=0.03)
    assert law.lam_u == pytest.approx(0.004, rel=0.2)
    assert 0 < law.beta < 0.1 and law.xi < 0.6 and not law.regime
    assert law.to_dict()["lam_u"] == law.lam_u


def test_fit_finds_a_rate_that_rises_with_the_vol():
    (c, low), _ = _planted(60_000, 0.002, seed=7, storm_at=30_000, storm_rate=0.02)
    d, f = bar_drops(c, low)[200:], next_hour_vol(c, 0.94)[:-1][200:]
    law = TailLaw.fit([c], [low], u=0.03, jump_regime="vol")
    assert law.jump_vol > 0.8 and law.regime and not law.jump_ratio
    rate = law.lam_u * law._multiplier(f, f)
    assert rate.sum() == pytest.approx(np.sum(d > 0.03), rel=1e-6)       # the MLE keeps the count
    calm, storm = slice(0, 29_000), slice(30_500, None)
    assert rate[storm].mean() > 4 * rate[calm].mean()
    assert rate[storm].mean() == pytest.approx(np.mean(d[storm] > 0.03), rel=0.3)
    half = TailLaw.fit([c], [low], u=0.03, jump_regime="vol", exponent_scale=0.5)
    assert half.jump_vol == pytest.approx(law.jump_vol * 0.5, rel=1e-9)
    assert (half.lam_u * half._multiplier(f, f)).sum() == pytest.approx(np.sum(d > 0.03), rel=1e-6)
    both = TailLaw.fit([c], [low], u=0.03, jump_regime="vol+ratio", long=0.999)
    assert both.long == 0.999 and both.jump_ratio != 0.0
