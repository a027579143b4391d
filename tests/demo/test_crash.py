"""The demo's crash path (pure): its drawdown, its partial rebound, a volatility build-up before it,
correlated assets, determinism."""

import numpy as np
import pytest

from keeper.demo.crash import CrashSpec, generate, max_drawdown, phase_lengths, realised_vol

SEEDS = range(10)
STEPS = (30, 40, 90, 200)


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("seed", SEEDS)
def test_drawdown_is_about_forty_percent_and_the_rebound_is_partial(steps, seed):
    p = generate(CrashSpec(steps=steps, seed=seed))
    assert len(p) == steps and len(p.phases) == steps
    assert 0.35 <= max_drawdown(p.eth) <= 0.45
    assert 0.25 <= max_drawdown(p.btc) <= 0.45
    trough = p.eth.min()
    assert p.phases[int(np.argmin(p.eth))] in ("crash", "rebound")
    peak = p.eth[: int(np.argmin(p.eth))].max()
    assert trough * 1.05 < p.eth[-1] < peak * 0.9  # it rebounds, but only part of the way


def test_the_crash_happens_within_a_few_hours_of_market_time():
    p = generate()
    crash = p.phase_slice("crash")
    hours = (crash.stop - crash.start) * p.minutes_per_step / 60
    assert 1 <= hours <= 6
    fall = 1 - p.eth[crash.stop - 1] / p.eth[crash.start - 1]
    assert fall > 0.3  # most of the drawdown is inside the crash phase


@pytest.mark.parametrize("seed", SEEDS)
def test_volatility_builds_up_before_the_crash(seed):
    p = generate(CrashSpec(steps=90, seed=seed))
    calm = realised_vol(p.eth[p.phase_slice("calm")], p.minutes_per_step)
    build = realised_vol(p.eth[p.phase_slice("build-up")], p.minutes_per_step)
    assert build > 1.5 * calm


def test_default_build_up_is_clearly_stormier_than_the_calm():
    p = generate()
    for prices in (p.eth, p.btc):
        calm = realised_vol(prices[p.phase_slice("calm")], p.minutes_per_step)
        build = realised_vol(prices[p.phase_slice("build-up")], p.minutes_per_step)
        assert build > 2 * calm


def test_eth_and_btc_move_together():
    p = generate(CrashSpec(steps=400))
    calm = p.phase_slice("calm")
    r_eth, r_btc = np.diff(np.log(p.eth[calm])), np.diff(np.log(p.btc[calm]))
    assert np.corrcoef(r_eth, r_btc)[0, 1] > 0.5


def test_same_spec_same_path_and_another_seed_another_path():
    a, b = generate(CrashSpec(seed=7)), generate(CrashSpec(seed=7))
    assert np.array_equal(a.eth, b.eth) and np.array_equal(a.btc, b.btc) and a.phases == b.phases
    c = generate(CrashSpec(seed=8))
    assert not np.allclose(a.eth, c.eth)


def test_starts_at_the_devnet_prices_and_phases_are_in_order():
    p = generate()
    assert p.eth[0] == 2_000 and p.btc[0] == 30_000
    order = list(dict.fromkeys(p.phases))
    assert order == ["calm", "build-up", "crash", "rebound"]
    assert sum(phase_lengths(90)) == 90


@pytest.mark.parametrize("steps", [24, 30, 46, 60, 90, 500])
def test_short_replays_keep_the_crash_long(steps):
    calm, build, crash, rebound = phase_lengths(steps)
    assert calm + build + crash + rebound == steps and min(calm, build, rebound) >= 4
    assert crash >= min(28, steps - 12) and crash >= round(0.45 * steps)


@pytest.mark.parametrize("bad", [dict(steps=23), dict(drawdown=1.2), dict(rebound=1.0), dict(correlation=1.0),
                                 dict(btc_drawdown=0.01)])
def test_bad_specs_are_refused(bad):
    with pytest.raises(ValueError):
        CrashSpec(**bad)


def test_explicit_phase_lengths():
    p = generate(CrashSpec(phase_steps=(4, 8, 28, 6)))
    assert len(p) == 46 and p.phase_slice("crash") == slice(12, 40)
    assert 0.35 <= max_drawdown(p.eth) <= 0.45
    with pytest.raises(ValueError):
        CrashSpec(phase_steps=(2, 8, 28, 6))
