"""The learned P(liq) on synthetic regime-switching prices: monotone in distance, calibrated,
better than a constant, strict about its inputs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from keeper.risk.evaluation import brier, reliability_table
from keeper.risk.features import (
    DEFAULT_FEATURES,
    FEATURE_NAMES,
    assemble,
    columns,
    market_features,
    valid_rows,
)
from keeper.risk.labels import DEFAULT_DISTANCES, future_min_low, sample_positions
from keeper.risk.learned import LearnedPLiq

H = 24


def regime_prices(n, seed):
    """Hourly GBM whose vol switches between calm and stormy regimes, with rare jumps."""
    rng = np.random.default_rng(seed)
    regime = np.repeat(rng.random(n // 200 + 1) < 0.3, 200)[:n]
    sigma = np.where(regime, 0.02, 0.005)
    r = rng.standard_normal(n) * sigma + np.where(rng.random(n) < 0.002, rng.normal(-0.05, 0.03, n), 0.0)
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal(n)) * sigma * 0.4)
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal(n)) * sigma * 0.4)
    t = 1_514_764_800 + 3600 * np.arange(n, dtype=np.int64)
    return t, close, high, low


def inputs(m, rows, distance):
    """The default model's columns of ``assemble``."""
    return columns(assemble(m, rows, distance, H), DEFAULT_FEATURES)


def dataset(seed, n=6000, per_row=6):
    t, c, h, lo = regime_prices(n, seed)
    m = market_features(t, c, h, lo)
    ok = valid_rows(m)
    ok[n - H:] = False
    rng = np.random.default_rng(seed + 100)
    r, d = sample_positions(np.flatnonzero(ok), len(DEFAULT_DISTANCES), per_row, rng)
    y = (future_min_low(lo, H)[r] <= c[r] * (1 - DEFAULT_DISTANCES[d])).astype(float)
    return inputs(m, r, DEFAULT_DISTANCES[d]), y, t[r] + 3600, m, ok


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """OpenMP threads only slow small fits down (and badly so on a busy machine)."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def fitted(one_thread):
    X, y, t, m, ok = dataset(seed=7)
    model = LearnedPLiq(H, max_iter=60, min_samples_leaf=50).fit(X, y, t)
    return model, m, ok


def test_attributes_and_range(fitted):
    model, m, ok = fitted
    assert model.feature_names == DEFAULT_FEATURES and model.horizon_hours == H
    assert model.train_hash is None and model.trained_on is None
    X = inputs(m, np.flatnonzero(ok)[:500], 0.05)
    p = model.predict_proba(X)
    assert p.shape == (500,) and np.all((p > 0) & (p < 1))
    assert model.describe()["n_train"] == model.n_train_ > 10_000


@settings(max_examples=30)
@given(row=st.integers(0, 10_000), d=st.lists(st.floats(0.002, 0.9), min_size=2, max_size=20))
def test_probability_never_rises_with_distance(fitted, row, d):
    model, m, ok = fitted
    rows = np.flatnonzero(ok)
    i = rows[row % len(rows)]
    dist = np.sort(np.array(d))
    X = inputs(m, np.full(len(dist), i), dist)
    for p in (model.predict_proba(X), model.raw_proba(X)):
        assert np.all(np.diff(p) <= 1e-12)


def test_out_of_sample_skill_and_calibration(fitted):
    model, _, _ = fitted
    X, y, _, _, _ = dataset(seed=8, n=5000, per_row=4)
    p = model.predict_proba(X)
    assert brier(p, y) < 0.7 * brier(np.full(len(y), y.mean()), y)
    table = reliability_table(p, y)
    gaps = [abs(b.mean_pred - b.observed) for b in table]
    assert max(gaps) < 0.12 and abs(p.mean() - y.mean()) < 0.03
    # the model sees the regime: at a fixed distance, P is higher in a storm than in a calm
    t, c, h, lo = regime_prices(5000, 8)
    mm = market_features(t, c, h, lo)
    sig = mm[:, 0]
    calm, storm = np.argmin(np.where(valid_rows(mm), sig, np.inf)), np.argmax(np.where(valid_rows(mm), sig, 0))
    pc, ps = model.predict_proba(inputs(mm, np.array([calm, storm]), 0.05))
    assert ps > pc + 0.1


def test_sigmoid_and_uncalibrated_variants():
    X, y, t, _, _ = dataset(seed=9, n=3000, per_row=3)
    for cal, scheme in (("sigmoid", "forward"), ("isotonic", "holdout"), ("sigmoid", "holdout"), ("none", "forward")):
        model = LearnedPLiq(H, calibration=cal, scheme=scheme, max_iter=20).fit(X, y, t)
        p = model.predict_proba(X[:100])
        assert np.all((p > 0) & (p < 1)) and model.describe()["scheme"] == scheme


def test_bad_inputs():
    model = LearnedPLiq(H)
    with pytest.raises(RuntimeError):
        model.predict_proba(np.zeros((1, len(FEATURE_NAMES))))
    with pytest.raises(ValueError):
        model.fit(np.zeros((10, 3)), np.zeros(10))
    with pytest.raises(ValueError):
        model.fit(np.zeros((10, len(DEFAULT_FEATURES))), np.zeros(10))       # one class only
    with pytest.raises(ValueError):
        model.fit(np.zeros((2, len(DEFAULT_FEATURES))), np.array([0.0, 0.5]))
    with pytest.raises(ValueError):
        LearnedPLiq(H, calibration="magic")
    with pytest.raises(ValueError):
        LearnedPLiq(H, scheme="random")
    with pytest.raises(ValueError):
        LearnedPLiq(H, n_folds=1)


def test_sample_weights_and_monotone_choice():
    X, y, t, _, _ = dataset(seed=11, n=3000, per_row=3)
    names = ["dist_vol_units", "log_dist", "lv_rv24h"]
    assert LearnedPLiq(H, feature_names=names)._monotonic_cst() == [-1, -1, 0]
    assert LearnedPLiq(H, feature_names=names, decreasing=("dist_vol_units",))._monotonic_cst() == [-1, 0, 0]
    assert LearnedPLiq(H).decreasing == ("dist_vol_units",)      # the default set has no log_dist
    model = LearnedPLiq(H, max_iter=20, decreasing=()).fit(X, y, t)
    assert model._monotonic_cst() == [0] * len(DEFAULT_FEATURES)
    w = np.where(np.arange(len(y)) % 2 == 0, 1.0, 0.0)
    plain = LearnedPLiq(H, max_iter=20, calibration="none").fit(X, y, t)
    weighted = LearnedPLiq(H, max_iter=20, calibration="none").fit(X, y, t, sample_weight=w)
    assert not np.allclose(plain.predict_proba(X[:200]), weighted.predict_proba(X[:200]))
    LearnedPLiq(H, max_iter=20).fit(X, y, t, sample_weight=np.full(len(y), 2.0))   # forward + isotonic
    for bad in (np.ones(3), np.full(len(y), -1.0), np.full(len(y), np.nan)):
        with pytest.raises(ValueError, match="sample_weight"):
            LearnedPLiq(H, max_iter=20).fit(X, y, t, sample_weight=bad)
