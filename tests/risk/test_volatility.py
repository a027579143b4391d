"""Volatility forecasts on synthetic data: EWMA recursion, realised vol, GARCH(1,1) recovery."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from keeper.risk.volatility import (
    Garch11,
    ewma_covariance,
    ewma_next_variance,
    ewma_variance,
    ewma_vol,
    fit_garch11,
    garch_forecast,
    garch_variance_path,
    horizon_vol,
    log_returns,
    realised_vol,
    simulate_garch11,
)

small_returns = arrays(np.float64, st.integers(1, 200),
                       elements=st.floats(-0.3, 0.3, allow_nan=False, allow_subnormal=False))


def test_log_returns_one_and_two_dimensional():
    p = np.array([100.0, 110.0, 99.0])
    np.testing.assert_allclose(log_returns(p), [math.log(1.1), math.log(0.9)])
    p2 = np.column_stack([p, 2 * p])
    np.testing.assert_allclose(log_returns(p2)[:, 0], log_returns(p2)[:, 1])
    with pytest.raises(ValueError):
        log_returns(np.array([1.0, -1.0]))


def naive_ewma(r, lam, init):
    out = [init]
    for x in r[:-1]:
        out.append(lam * out[-1] + (1 - lam) * x * x)
    return np.array(out)


@given(small_returns, st.floats(0.5, 0.999), st.floats(1e-6, 1e-2))
@settings(max_examples=60)
def test_ewma_matches_naive_loop(r, lam, init):
    np.testing.assert_allclose(ewma_variance(r, lam, init), naive_ewma(r, lam, init), rtol=1e-9, atol=1e-15)


@given(small_returns)
@settings(max_examples=40)
def test_ewma_is_a_forecast_without_lookahead(r):
    """Changing the last return never changes any value of the series (only the next forecast)."""
    v = ewma_variance(r, 0.94, 1e-4)
    r2 = r.copy()
    r2[-1] += 0.1
    np.testing.assert_array_equal(v, ewma_variance(r2, 0.94, 1e-4))
    assert np.all(v >= 0)
    nxt = ewma_next_variance(r, 0.94, 1e-4)
    assert nxt == pytest.approx(0.94 * v[-1] + 0.06 * r[-1] ** 2)


def test_ewma_vol_is_sqrt_and_default_init():
    r = np.random.default_rng(0).normal(0, 0.01, 500)
    np.testing.assert_allclose(ewma_vol(r) ** 2, ewma_variance(r))
    assert ewma_variance(r)[0] == pytest.approx(np.mean(r[:20] ** 2))
    assert ewma_vol(r)[-1] == pytest.approx(0.01, rel=0.4)


@given(arrays(np.float64, st.integers(0, 60), elements=st.floats(-1, 1, allow_nan=False)), st.integers(2, 10))
@settings(max_examples=50)
def test_realised_vol_matches_rolling_std(r, window):
    rv = realised_vol(r, window)
    assert len(rv) == len(r)
    for i in range(len(r)):
        if i < window - 1:
            assert math.isnan(rv[i])
        else:
            assert rv[i] == pytest.approx(np.std(r[i - window + 1:i + 1], ddof=1), abs=1e-12)


def test_ewma_covariance_recovers_correlation():
    rng = np.random.default_rng(3)
    corr = np.array([[1.0, 0.7, -0.3], [0.7, 1.0, 0.1], [-0.3, 0.1, 1.0]])
    sd = np.array([0.01, 0.02, 0.005])
    x = rng.multivariate_normal(np.zeros(3), corr * np.outer(sd, sd), size=4000)
    cov, c = ewma_covariance(x, lam=0.999)
    np.testing.assert_allclose(c, corr, atol=0.08)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), sd, rtol=0.1)
    assert np.allclose(c, c.T) and np.all(np.linalg.eigvalsh(c) > -1e-12)


def test_ewma_covariance_weights_match_recursion():
    x = np.random.default_rng(4).normal(size=(50, 2))
    lam = 0.9
    cov, _ = ewma_covariance(x, lam)
    w = (1 - lam) * lam ** np.arange(49, -1, -1)
    expected = sum(wi * np.outer(row, row) for wi, row in zip(w, x)) / w.sum()
    np.testing.assert_allclose(cov, expected)


TRUE = Garch11(omega=2e-6, alpha=0.08, beta=0.9, nu=6.0, mu=1e-4)


@pytest.fixture(scope="module")
def simulated():
    return simulate_garch11(TRUE, 30_000, np.random.default_rng(11))


def test_garch_recovers_known_parameters(simulated):
    fit = fit_garch11(simulated, dist="t")
    p = fit.params
    assert p.alpha == pytest.approx(TRUE.alpha, abs=0.02)
    assert p.beta == pytest.approx(TRUE.beta, abs=0.03)
    assert p.persistence == pytest.approx(TRUE.persistence, abs=0.01)
    assert p.nu == pytest.approx(TRUE.nu, abs=1.5)
    assert p.unconditional_variance == pytest.approx(TRUE.unconditional_variance, rel=0.25)
    assert p.alpha + p.beta < 1
    assert fit.n == len(simulated) and fit.variances.shape == simulated.shape
    assert np.var(fit.std_resid) == pytest.approx(1.0, abs=0.1)
    # the likelihood at the fit beats the likelihood at the truth (it is a maximum)
    normal = fit_garch11(simulated, dist="normal")
    assert math.isinf(normal.params.nu)
    assert fit.loglik > normal.loglik  # fat tails are detected


def test_garch_stationarity_enforced_on_a_random_walk_in_variance():
    rng = np.random.default_rng(5)
    r = rng.normal(0, 0.01, 2000) * np.exp(np.cumsum(rng.normal(0, 0.05, 2000)))
    fit = fit_garch11(r, dist="normal")
    assert fit.params.alpha + fit.params.beta < 1
    assert fit.params.omega > 0 and fit.params.alpha >= 0 and fit.params.beta >= 0


def test_variance_path_matches_naive_loop(simulated):
    r = simulated[:300]
    h = garch_variance_path(TRUE, r, init=1e-4)
    naive = [1e-4]
    for x in r[:-1]:
        naive.append(TRUE.omega + TRUE.alpha * (x - TRUE.mu) ** 2 + TRUE.beta * naive[-1])
    np.testing.assert_allclose(h, naive, rtol=1e-10)


def test_forecast_converges_to_unconditional_variance():
    vbar = TRUE.unconditional_variance
    for start in (vbar * 10, vbar / 10):
        f = garch_forecast(TRUE, start, 0.0, 2000)
        assert f[0] == pytest.approx(TRUE.omega + TRUE.alpha * TRUE.mu**2 + TRUE.beta * start)
        assert f[-1] == pytest.approx(vbar, rel=1e-6)
        assert np.all(np.diff(f) <= 0) if start > vbar else np.all(np.diff(f) >= 0)
    # step k+1 = omega + persistence * step k
    f = garch_forecast(TRUE, 3e-4, 0.02, 10)
    np.testing.assert_allclose(f[1:], TRUE.omega + TRUE.persistence * f[:-1])


def test_horizon_vol():
    assert horizon_vol(np.full(24, 1e-4)) == pytest.approx(math.sqrt(24e-4))
    assert horizon_vol(garch_forecast(TRUE, TRUE.unconditional_variance,
                                     TRUE.mu + math.sqrt(TRUE.unconditional_variance), 24)) == pytest.approx(
        math.sqrt(24 * TRUE.unconditional_variance), rel=1e-9)


@given(st.floats(1e-7, 1e-5), st.floats(0.0, 0.3), st.floats(0.0, 0.69), st.floats(1e-6, 1e-2),
       st.floats(-0.1, 0.1), st.integers(1, 50))
@settings(max_examples=60)
def test_forecast_properties(omega, alpha, beta, h0, r0, h):
    p = Garch11(omega, alpha, beta)
    f = garch_forecast(p, h0, r0, h)
    assert f.shape == (h,) and np.all(f > 0)
    # monotone towards the unconditional variance
    vbar = p.unconditional_variance
    d = np.abs(f - vbar)
    assert np.all(np.diff(d) <= 1e-12 + 1e-9 * vbar)
    assert horizon_vol(f) ** 2 == pytest.approx(f.sum())


def test_fit_rejects_short_or_flat_series():
    with pytest.raises(ValueError):
        fit_garch11(np.zeros(10))
    with pytest.raises(ValueError):
        fit_garch11(np.zeros(100))
    with pytest.raises(ValueError):
        fit_garch11(np.ones(100), dist="laplace")
