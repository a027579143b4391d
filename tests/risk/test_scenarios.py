"""Monte Carlo scenario paths: moments, correlation, tails, jumps, determinism, chunking."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from keeper.risk.scenarios import (
    BLOCK_PATHS,
    ScenarioSpec,
    filtered_historical,
    price_ratios,
    replay_windows,
    scenario_block,
    scenario_chunks,
    seed_sequence,
    simulate_log_returns,
    worst_windows,
)

CORR = np.array([[1.0, 0.8, -0.2], [0.8, 1.0, 0.0], [-0.2, 0.0, 1.0]])
VOLS = np.array([0.01, 0.02, 0.005])


def spec(**kw):
    base = dict(symbols=("ETH", "BTC", "USDC"), steps=8, vols=VOLS, corr=CORR)
    base.update(kw)
    return ScenarioSpec(**base)


def flat(x):
    return x.reshape(-1, x.shape[2]).astype(float)


def test_shape_dtype_and_gaussian_moments():
    x = simulate_log_returns(spec(), 20_000, seed=1)
    assert x.shape == (20_000, 8, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    f = flat(x)
    assert np.all(np.abs(f.mean(axis=0)) < 4 * VOLS / math.sqrt(len(f)))
    np.testing.assert_allclose(f.std(axis=0), VOLS, rtol=0.01)
    np.testing.assert_allclose(np.corrcoef(f.T), CORR, atol=0.01)
    assert abs(stats.kurtosis(f[:, 0])) < 0.1


def test_float64_option():
    assert simulate_log_returns(spec(), 10, seed=1, dtype=np.float64).dtype == np.float64


def test_student_t_unit_variance_fat_tails_and_correlation():
    nu = 5.0
    x = flat(simulate_log_returns(spec(nu=nu), 40_000, seed=2))
    np.testing.assert_allclose(x.std(axis=0), VOLS, rtol=0.04)
    np.testing.assert_allclose(np.corrcoef(x.T), CORR, atol=0.02)
    k = stats.kurtosis(x[:, 0])  # excess kurtosis of a t_5 is 6
    assert 3.0 < k < 12.0
    # tail dependence: joint crashes of ETH and BTC are more frequent than under a Gaussian
    g = flat(simulate_log_returns(spec(), 40_000, seed=2))
    def joint(y):
        q = np.quantile(y[:, :2], 0.001, axis=0)
        return np.mean((y[:, 0] < q[0]) & (y[:, 1] < q[1]))
    assert joint(x) > joint(g)


def test_term_structure_of_vols():
    vols = np.outer(np.linspace(1, 3, 8), VOLS)
    x = simulate_log_returns(spec(vols=vols), 30_000, seed=3).astype(float)
    np.testing.assert_allclose(x.std(axis=0), vols, rtol=0.05)


def test_jumps_add_the_compound_poisson_moments():
    lam, jm, js = 0.05, -0.05, 0.02
    s = spec(vols=np.zeros(3), jump_intensity=[lam, 0, 0], jump_mean=jm, jump_std=js)
    x = flat(simulate_log_returns(s, 50_000, seed=4))
    n = len(x)
    assert x[:, 0].mean() == pytest.approx(lam * jm, rel=0.05)
    assert x[:, 0].var() == pytest.approx(lam * (jm**2 + js**2), rel=0.06)
    assert np.all(x[:, 1:] == 0)
    assert np.mean(x[:, 0] != 0) == pytest.approx(1 - math.exp(-lam), rel=0.05)
    assert n == 400_000


def test_common_jumps_hit_every_asset_together():
    s = spec(vols=np.zeros(3), common_jump_intensity=0.02, common_jump_mean=[-0.1, -0.2, 0.0],
             common_jump_std=[0.01, 0.02, 0.0])
    x = flat(simulate_log_returns(s, 20_000, seed=5))
    hit = x[:, 0] != 0
    assert hit.mean() == pytest.approx(0.02, rel=0.1)
    np.testing.assert_array_equal(hit, x[:, 1] != 0)
    np.testing.assert_allclose(x[hit, 1], 2 * x[hit, 0], rtol=1e-5)  # same Z, scaled


def test_vol_of_vol_keeps_variance_but_fattens_horizon_tails():
    x = simulate_log_returns(spec(vol_of_vol=0.5), 40_000, seed=6).astype(float)
    assert x[:, :, 0].std() == pytest.approx(VOLS[0], rel=0.05)
    horizon = x[:, :, 0].sum(axis=1)
    assert stats.kurtosis(horizon) > 0.5


def test_determinism_by_seed_and_generator():
    a = simulate_log_returns(spec(nu=4, jump_intensity=0.01, jump_std=0.05), 5000, seed=7)
    b = simulate_log_returns(spec(nu=4, jump_intensity=0.01, jump_std=0.05), 5000, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, simulate_log_returns(spec(), 5000, seed=8))
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    np.testing.assert_array_equal(simulate_log_returns(spec(), 100, g1), simulate_log_returns(spec(), 100, g2))


@given(st.integers(1, 3 * BLOCK_PATHS + 17), st.integers(1, 5))
@settings(max_examples=8, deadline=None)
def test_chunking_equals_one_shot(n, blocks_per_chunk):
    s = spec(steps=3, nu=6, jump_intensity=0.02, jump_std=0.03, vol_of_vol=0.2)
    whole = simulate_log_returns(s, n, seed=11)
    budget = s.bytes_for(BLOCK_PATHS) * blocks_per_chunk
    chunks = list(scenario_chunks(s, n, seed=11, max_bytes=budget))
    assert all(c.nbytes <= budget for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    ss = seed_sequence(11)
    blocks = [scenario_block(s, n, ss, i) for i in range(len(list(range(0, n, BLOCK_PATHS))))]
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_memory_guard_refuses_one_shot_over_budget():
    s = spec()
    with pytest.raises(MemoryError):
        simulate_log_returns(s, 10_000, seed=1, max_bytes=s.bytes_for(10_000) - 1)
    chunks = list(scenario_chunks(s, 10_000, seed=1, max_bytes=s.bytes_for(BLOCK_PATHS)))
    assert len(chunks) == 3 and sum(len(c) for c in chunks) == 10_000


def test_invalid_specs():
    with pytest.raises(ValueError):
        spec(nu=2.0)
    with pytest.raises(ValueError):
        spec(corr=np.eye(2))
    with pytest.raises(ValueError):
        spec(vols=np.ones(4))
    # a singular (semi-definite) correlation is accepted
    s = spec(corr=np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1.0]]))
    x = flat(simulate_log_returns(s, 2000, seed=1))
    assert np.corrcoef(x.T)[0, 1] > 0.999


def test_price_ratios():
    r = np.array([[[0.1], [-0.2], [0.05]]])
    np.testing.assert_allclose(price_ratios(r)[0, :, 0], np.exp([0.1, -0.1, -0.05]))


def test_filtered_historical_simulation():
    rng = np.random.default_rng(9)
    z = rng.standard_t(4, size=(5000, 2)) * [1.0, 3.0] + 0.5
    z[:, 1] += 2 * z[:, 0]
    vols = np.array([[0.01, 0.02]] * 6)
    x = filtered_historical(z, vols, 20_000, seed=1)
    assert x.shape == (20_000, 6, 2)
    np.testing.assert_allclose(x.astype(float).std(axis=(0,)), vols, rtol=0.05)
    assert np.corrcoef(flat(x).T)[0, 1] == pytest.approx(np.corrcoef(z.T)[0, 1], abs=0.03)
    # rows come from the history: every standardised draw is one of the standardised rows
    zs = (z - z.mean(0)) / z.std(0)
    assert np.isin(np.round(x[0, :, 0] / 0.01, 4), np.round(zs[:, 0].astype(np.float32), 4)).all()
    np.testing.assert_array_equal(x, filtered_historical(z, vols, 20_000, seed=1))


def test_replay_and_worst_windows():
    t = np.arange(300)
    eth = 100 * np.exp(0.001 * t)
    eth[100:110] *= np.exp(-0.03 * np.arange(1, 11))  # a crash then partial recovery
    eth[110:] *= math.exp(-0.3)
    btc = np.full(300, 50.0)
    prices = np.column_stack([eth, btc])
    shocks = replay_windows(prices, 12, {"crash": 99, "calm": 200})
    assert shocks.names == ("crash", "calm") and shocks.log_returns.shape == (2, 12, 2)
    np.testing.assert_allclose(shocks.log_returns[1, :, 0], 0.001)
    worst = worst_windows(prices, 10, k=3)
    assert worst.starts[0] == 99
    assert np.all(np.abs(np.diff(np.sort(worst.starts))) >= 10)
    with pytest.raises(ValueError):
        replay_windows(prices, 12, {"late": 295})


def test_antithetic_pairs_mirror_and_keep_moments():
    s = spec(nu=5.0, antithetic=True)
    x = simulate_log_returns(s, 20_000, seed=12)
    np.testing.assert_allclose(x[0::2], -x[1::2])  # no jumps, no vol-of-vol: exact mirrors
    vov = simulate_log_returns(spec(nu=5.0, antithetic=True, vol_of_vol=0.3), 20_000, seed=12)
    assert np.all(np.sign(vov[0::2]) == -np.sign(vov[1::2]))  # mirrored shocks, different vols
    assert flat(vov).std(axis=0) == pytest.approx(VOLS, rel=0.06)
    f = flat(x)
    np.testing.assert_allclose(f.std(axis=0), VOLS, rtol=0.05)
    np.testing.assert_allclose(np.corrcoef(f.T), CORR, atol=0.03)
    assert np.abs(f.mean(axis=0)).max() < 1e-7  # exactly centred
    chunks = list(scenario_chunks(s, 20_000, seed=12, max_bytes=s.bytes_for(BLOCK_PATHS)))
    np.testing.assert_array_equal(np.concatenate(chunks), x)
    with pytest.raises(ValueError):
        simulate_log_returns(s, 101, seed=1)
    jumps = simulate_log_returns(spec(antithetic=True, jump_intensity=0.1, jump_std=0.05), 2000, seed=1)
    assert not np.allclose(jumps[0::2], -jumps[1::2])  # jumps are drawn independently
