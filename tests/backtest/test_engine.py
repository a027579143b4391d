"""The replay loop on synthetic price paths (no shared data)."""

import numpy as np
import pytest

from keeper.backtest.book import PerpPosition
from keeper.backtest.engine import Gas, delay_bars_of, lending_position, run
from keeper.backtest.metrics import summarize, trigger_failures
from keeper.backtest.policies import StaticPolicy, Thresholds
from keeper.backtest.prices import PriceSeries

T0 = 1_577_836_800  # 2020-01-01


def series(close, low=None, high=None, symbol="ETH"):
    close = np.asarray(close, dtype=float)
    low = close * 0.999 if low is None else np.asarray(low, dtype=float)
    high = close * 1.001 if high is None else np.asarray(high, dtype=float)
    t = T0 + 3600 * np.arange(len(close), dtype=np.int64)
    return PriceSeries(symbol, t, close.copy(), np.maximum(high, close), np.minimum(low, close), close,
                       np.zeros(len(close), dtype=bool))


def slide(n=200, start=100.0, per_bar=-0.005, crash_at=None, crash=0.0):
    """A steady fall of ``per_bar`` per hour, optionally a one-bar crash."""
    c = start * np.exp(per_bar * np.arange(n))
    if crash_at is not None:
        c[crash_at:] *= 1 - crash
    return c


def test_a_crash_liquidates_an_unprotected_position():
    s = series(slide(200, per_bar=-0.004))          # -55% over 200 h
    pos = lending_position("ETH", 100.0, health=1.5)
    res = run(s, pos, None)
    m = summarize(res)
    assert m.liquidations >= 1 and m.penalty_usd > 0 and m.transactions == 0


def test_the_static_policy_saves_it_with_enough_delay_budget():
    s = series(slide(200, per_bar=-0.004))
    pos = lending_position("ETH", 100.0, health=1.5)
    m = summarize(run(s, pos, StaticPolicy(1.3, 1.5, 3.0, 2.5), delay_bars=1))
    assert m.liquidations == 0 and m.topups >= 3 and m.gas_usd > 0


def test_reaction_delay_matters():
    # 1.5%/h slide: a trigger at 1.05 (4.8% away) survives a 1-bar delay, not a 5-bar one
    s = series(slide(150, per_bar=-0.015))
    pol = StaticPolicy(1.05, 1.15, 3.0, 2.5)
    fast = summarize(run(s, lending_position("ETH", 100.0, 1.15), pol, delay_bars=1))
    slow = summarize(run(s, lending_position("ETH", 100.0, 1.15), pol, delay_bars=5))
    assert fast.liquidations == 0 and slow.liquidations >= 1
    assert delay_bars_of(5) == 1 and delay_bars_of(60) == 1 and delay_bars_of(61) == 2 and delay_bars_of(0) == 0


def test_execution_lands_after_the_delay_at_the_then_price():
    s = series(slide(60, per_bar=-0.01))
    res = run(s, lending_position("ETH", 100.0, 1.5), StaticPolicy(1.4, 1.6, 3.0, 2.5), delay_bars=3)
    a = res.actions[0]
    assert a.executed - a.decided == 3 and a.kind == "topup" and a.usd > 0
    # the amount was fixed at the decision: it buys less distance than asked at the lower price
    assert res.distance[a.executed] < 1 - 1 / 1.6


def test_gas_is_counted_per_transaction_units_gwei_eth_or_flat():
    s = series(np.r_[slide(100, per_bar=-0.005), slide(100, start=60.0, per_bar=0.006)])
    pol = StaticPolicy(1.3, 1.4, 1.7, 1.5)
    m = summarize(run(s, lending_position("ETH", 100.0, 1.4), pol, gas=Gas(200_000, 50.0)))
    assert m.topups >= 1 and m.releases >= 1 and m.transactions == m.topups + m.releases
    res = run(s, lending_position("ETH", 100.0, 1.4), pol, gas=Gas(200_000, 50.0))
    expect = sum(200_000 * 50e-9 * s.close[a.executed] for a in res.actions)   # ETH series prices gas
    assert summarize(res).gas_usd == pytest.approx(expect)
    flat = summarize(run(s, lending_position("ETH", 100.0, 1.4), pol, gas=Gas(flat_usd=7.0)))
    assert flat.gas_usd == pytest.approx(7.0 * flat.transactions)


def test_a_lucky_band_passes_liquidations_but_not_the_stricter_check():
    # the position sits high in its band when a 20% one-bar drop comes: no liquidation, but a
    # position exactly at the trigger (1.2 -> 16.7% away) would have been liquidated
    c = np.full(100, 100.0)
    low = c * 0.999
    low[50] = 79.0
    s = series(c, low=low)
    pol = StaticPolicy(1.2, 1.6, 3.0, 2.5)
    m = summarize(run(s, lending_position("ETH", 100.0, 1.6), pol))
    assert m.liquidations == 0
    assert m.trigger_failures >= 1 and m.first_failure in (48, 49)
    safe = summarize(run(s, lending_position("ETH", 100.0, 1.6), StaticPolicy(1.3, 1.6, 3.0, 2.5)))
    assert safe.trigger_failures == 0


def test_trigger_failures_window_is_delay_plus_one_and_sided():
    close = np.full(10, 100.0)
    low, high = close.copy(), close.copy()
    low[5] = 89.0
    trig = np.full(10, 0.10)
    f0 = trigger_failures(close, low, high, trig, 0)
    f2 = trigger_failures(close, low, high, trig, 2)
    assert list(np.flatnonzero(f0)) == [4] and list(np.flatnonzero(f2)) == [2, 3, 4]
    high[7] = 112.0
    assert list(np.flatnonzero(trigger_failures(close, low, high, trig, 0, side="short"))) == [6]


def test_a_short_perp_is_managed_on_highs():
    s = series(slide(120, per_bar=0.004))          # a rally hurts a short
    pos = PerpPosition("ETH", False, size_usd=10_000, collateral_usd=1_500, average_price=100.0)
    bare = summarize(run(s, PerpPosition("ETH", False, 10_000, 1_500, 100.0), None))
    assert bare.liquidations == 1
    m = summarize(run(s, pos, StaticPolicy(1.08, 1.15, 3.0, 2.5)))
    assert m.liquidations == 0 and m.topups >= 1


def test_unmanaged_thresholds_and_explicit_thresholds():
    s = series(np.full(30, 100.0))
    n = len(s)
    th = Thresholds(np.full(n, 0.5), np.full(n, 0.6), np.full(n, 0.9), np.full(n, 0.6))
    res = run(s, lending_position("ETH", 100.0, 1.5), None, thresholds=th, delay_bars=0)
    assert res.actions[0].decided == res.actions[0].executed == 0
    assert res.distance[0] == pytest.approx(0.6)
    assert len(res.actions) == 1
