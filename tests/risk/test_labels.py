"""Labels: the vectorised barrier crossing equals a plain loop; subsampling is well formed."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.risk.labels import (
    DEFAULT_DISTANCES,
    future_min_low,
    label_grid,
    labelled_rows,
    sample_positions,
    sampled_labels,
)


def brute_labels(close, low, h, distances):
    n = len(close)
    out = np.full((n, len(distances)), np.nan)
    for i in range(n - h):
        m = min(low[i + 1: i + h + 1])
        for j, d in enumerate(distances):
            out[i, j] = float(m <= close[i] * (1 - d))
    return out


@settings(max_examples=40)
@given(n=st.integers(2, 60), h=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_grid_matches_a_loop(n, h, seed):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.standard_normal(n) * 0.03))
    low = close * np.exp(-np.abs(rng.standard_normal(n)) * 0.02)
    d = np.array([0.01, 0.03, 0.1, 0.3])
    got = label_grid(close, low, h, d)
    np.testing.assert_array_equal(got, brute_labels(close, low, h, d))
    assert labelled_rows(close, h).sum() == max(n - h, 0)


def test_future_min_low_excludes_the_current_bar():
    low = np.array([1.0, 5.0, 4.0, 6.0, 0.5])
    np.testing.assert_array_equal(future_min_low(low, 2), [4.0, 4.0, 0.5, np.nan, np.nan])
    with pytest.raises(ValueError):
        future_min_low(low, 0)


def test_touching_the_barrier_counts_and_labels_fall_with_distance():
    close = np.array([100.0, 100.0, 100.0])
    low = np.array([100.0, 90.0, 95.0])
    assert label_grid(close, low, 1, np.array([0.1, 0.1000001]))[0].tolist() == [1.0, 0.0]
    rng = np.random.default_rng(3)
    c = 100 * np.exp(np.cumsum(rng.standard_normal(500) * 0.01))
    g = label_grid(c, c * 0.995, 24)[:-24]
    assert np.all(np.diff(g, axis=1) <= 0)   # a farther barrier is never hit more


def test_sampling():
    rng = np.random.default_rng(0)
    rows = np.arange(100, 200)
    r, d = sample_positions(rows, len(DEFAULT_DISTANCES), 5, rng)
    assert len(r) == 500 and np.all(np.diff(r) >= 0)
    for row in (100, 150, 199):
        assert len(set(d[r == row])) == 5
    r2, d2 = sample_positions(rows, 4, 10, rng)
    assert len(r2) == 400 and set(d2) == {0, 1, 2, 3}
    r3, _ = sample_positions(rows, 24, 6, rng, max_samples=50)
    assert len(r3) == 50 and np.all(np.diff(r3) >= 0)
    assert len(sample_positions(np.array([], dtype=int), 24, 6, rng)[0]) == 0


def test_sampled_labels_agree_with_the_grid():
    rng = np.random.default_rng(1)
    c = 100 * np.exp(np.cumsum(rng.standard_normal(300) * 0.02))
    lo = c * 0.99
    grid = label_grid(c, lo, 12)
    r, d = sample_positions(np.arange(288), len(DEFAULT_DISTANCES), 3, rng)
    np.testing.assert_array_equal(sampled_labels(c, lo, 12, r, d), grid[r, d])
