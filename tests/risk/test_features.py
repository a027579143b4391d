"""Features of the learned P(liq): no look-ahead, units, side flip (synthetic series only)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.risk.features import (
    FEATURE_NAMES,
    MARKET_NAMES,
    WARMUP_BARS,
    assemble,
    feature_matrix,
    flip_side,
    log_distance_of,
    market_features,
    valid_rows,
)

T0 = 1_514_764_800  # 2018-01-01 00:00 UTC, a Monday


def synthetic(n=1000, seed=0, sigma=0.01):
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(n) * sigma * np.exp(0.5 * np.sin(np.arange(n) / 150))
    close = 1000 * np.exp(np.cumsum(r))
    open_ = np.r_[1000.0, close[:-1]]
    wig = np.abs(rng.standard_normal((2, n))) * sigma * 0.5
    high = np.maximum(open_, close) * np.exp(wig[0])
    low = np.minimum(open_, close) * np.exp(-wig[1])
    t = T0 + 3600 * np.arange(n, dtype=np.int64)
    return t, close, high, low


def test_names_and_shapes():
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert FEATURE_NAMES[0] == "dist_vol_units"
    t, c, h, lo = synthetic(900)
    m = market_features(t, c, h, lo)
    assert m.shape == (900, len(MARKET_NAMES))
    X = feature_matrix(t, c, h, lo, 0.1, 24)
    assert X.shape == (900, len(FEATURE_NAMES))
    ok = valid_rows(m)
    assert not ok[:WARMUP_BARS].any() and ok[WARMUP_BARS:].all()
    assert np.all(np.isfinite(X[ok]))


@settings(max_examples=15)
@given(cut=st.integers(min_value=WARMUP_BARS, max_value=1150), seed=st.integers(0, 10_000))
def test_no_look_ahead(cut, seed):
    """Changing every bar after ``cut`` leaves every row up to ``cut`` unchanged."""
    t, c, h, lo = synthetic(1200, seed=1)
    base = feature_matrix(t, c, h, lo, 0.07, 24, funding=np.linspace(0, 1e-4, 1200))
    rng = np.random.default_rng(seed)
    shock = np.ones(1200)
    shock[cut + 1:] = np.exp(np.cumsum(rng.standard_normal(1200 - cut - 1) * 0.05))
    funding = np.linspace(0, 1e-4, 1200)
    funding[cut + 1:] = rng.standard_normal(1200 - cut - 1)
    wick = np.where(np.arange(1200) > cut, 1.01, 1.0)
    moved = feature_matrix(t, c * shock, h * shock * wick, lo * shock / wick, 0.07, 24, funding=funding)
    np.testing.assert_array_equal(base[: cut + 1], moved[: cut + 1])
    assert not np.allclose(base[cut + 2:], moved[cut + 2:], equal_nan=True) or cut + 2 >= 1200


def test_distance_in_vol_units():
    t, c, h, lo = synthetic(900)
    m = market_features(t, c, h, lo)
    rows = np.array([800, 850])
    X = assemble(m, rows, np.array([0.1, 0.2]), 24)
    sigma = m[rows, MARKET_NAMES.index("ewma_vol_094")]
    expected = -np.log(1 - np.array([0.1, 0.2])) / (sigma * np.sqrt(24))
    np.testing.assert_allclose(X[:, 0], expected)
    np.testing.assert_allclose(log_distance_of(X, sigma, 24), -np.log(1 - np.array([0.1, 0.2])))
    j = FEATURE_NAMES.index("z_ret_24h")
    np.testing.assert_allclose(X[:, j], m[rows, MARKET_NAMES.index("ret_24h")] / sigma)
    j = FEATURE_NAMES.index("lv_rv30d")
    np.testing.assert_allclose(X[:, j], np.log(m[rows, MARKET_NAMES.index("rv_30d")] / sigma))
    with pytest.raises(ValueError):
        assemble(m, rows, np.array([0.0, 0.5]), 24)


def test_returns_drawdown_and_calendar():
    t, c, h, lo = synthetic(900)
    m = market_features(t, c, h, lo)
    col = {n: m[:, i] for i, n in enumerate(MARKET_NAMES)}
    assert col["ret_24h"][800] == pytest.approx(np.log(c[800] / c[776]))
    assert col["ret_1h"][800] == pytest.approx(np.log(c[800] / c[799]))
    assert np.all(col["drawdown_30d"][WARMUP_BARS:] <= 0)
    assert col["drawdown_30d"][850] == pytest.approx(np.log(c[850] / h[131:851].max()))
    # bar 0 opens Monday 00:00 and closes at 01:00: hour 1, Monday
    assert col["hour_sin"][0] == pytest.approx(np.sin(2 * np.pi / 24))
    assert col["dow_sin"][0] == pytest.approx(0.0) and col["dow_cos"][0] == pytest.approx(1.0)
    assert col["dow_cos"][23] == pytest.approx(np.cos(2 * np.pi / 7))  # closes Tuesday 00:00
    assert np.all(col["funding"] == 0)


def test_realised_vol_uses_returns_up_to_the_bar():
    t, c, h, lo = synthetic(900)
    m = market_features(t, c, h, lo)
    r = np.diff(np.log(c))
    assert m[800, MARKET_NAMES.index("rv_24h")] == pytest.approx(np.std(r[776:800], ddof=1))


def test_short_side_is_the_long_side_of_the_inverse():
    t, c, h, lo = synthetic(900)
    ic, ih, il = flip_side(c, h, lo)
    assert np.all(ih >= ic) and np.all(il <= ic)
    short = feature_matrix(t, c, h, lo, 0.25, 24, side="short")
    long_inv = feature_matrix(t, ic, ih, il, 0.2, 24)   # a 25% rise is a 20% fall of 1/price
    np.testing.assert_allclose(short, long_inv, equal_nan=True)
    long_ = feature_matrix(t, c, h, lo, 0.2, 24)
    j = FEATURE_NAMES.index("z_ret_24h")
    assert np.all(np.sign(short[800:, j]) == -np.sign(long_[800:, j]))
    with pytest.raises(ValueError):
        feature_matrix(t, c, h, lo, 0.2, 24, side="sideways")


def test_bad_inputs():
    t, c, h, lo = synthetic(100)
    with pytest.raises(ValueError):
        market_features(t[:-1], c, h, lo)
    with pytest.raises(ValueError):
        market_features(t, c, h, lo, funding=np.zeros(3))


def test_absolute_columns_and_the_default_set():
    from keeper.risk.features import DEFAULT_FEATURES, DISTANCE_FEATURES
    assert set(DEFAULT_FEATURES) <= set(FEATURE_NAMES) and len(set(DEFAULT_FEATURES)) == len(DEFAULT_FEATURES)
    assert set(DISTANCE_FEATURES) == {"dist_vol_units", "log_dist"}
    t, c, h, lo = synthetic(900)
    m = market_features(t, c, h, lo)
    rows = np.array([800, 850, 899])
    d = np.array([0.02, 0.1, 0.3])
    X = assemble(m, rows, d, 24)
    np.testing.assert_allclose(X[:, FEATURE_NAMES.index("log_dist")], -np.log1p(-d))
    np.testing.assert_allclose(X[:, FEATURE_NAMES.index("log_vol")],
                               np.log(m[rows, MARKET_NAMES.index("ewma_vol_094")]))
    # the vol-unit distance is the log distance over the horizon's vol
    np.testing.assert_allclose(X[:, 0] * np.exp(X[:, FEATURE_NAMES.index("log_vol")]) * np.sqrt(24),
                               X[:, FEATURE_NAMES.index("log_dist")])


@pytest.mark.parametrize("cut", [WARMUP_BARS, 900, 1100])
def test_new_columns_are_causal(cut):
    """Row t of log_dist / log_vol is unchanged when every bar after t moves (crash and wicks)."""
    t, c, h, lo = synthetic(1200, seed=3)
    base = feature_matrix(t, c, h, lo, 0.12, 24)
    shock = np.where(np.arange(1200) > cut, 0.6, 1.0)
    moved = feature_matrix(t, c * shock, h * shock * 1.02, lo * shock * 0.9, 0.12, 24)
    for name in ("log_dist", "log_vol", "dist_vol_units"):
        j = FEATURE_NAMES.index(name)
        np.testing.assert_array_equal(base[: cut + 1, j], moved[: cut + 1, j])
    j = FEATURE_NAMES.index("log_vol")
    assert not np.allclose(base[cut + 2:, j], moved[cut + 2:, j])
