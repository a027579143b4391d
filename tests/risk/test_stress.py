"""Stress report on synthetic scenarios: shapes, consistency with the Monte Carlo, fan chart."""

import dataclasses

import numpy as np
import pytest

from keeper.domain import Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.risk.probability import liquidation_probability
from keeper.risk.scenarios import ScenarioSpec, replay_windows, simulate_log_returns
from keeper.risk.stress import current_prices, fan_chart, stress_report

ETH = Asset("ETH", "0x01", 18)
BTC = Asset("BTC", "0x02", 8)
USDC = Asset("USDC", "0x03", 6)


def lending(eth, usdc, name):
    legs = (Leg(ETH, Side.COLLATERAL, int(eth * 1e18), 2000.0, 0.8), Leg(USDC, Side.DEBT, int(usdc * 1e6), 1.0))
    return Position("dev", Protocol.AAVE_V3, "0xp", name, "pool", legs, 0, 1, label=name)


def long_perp(name):
    terms = PerpTerms(ETH, True, 10_000, 800, 2000.0, 2000.0, 2.0, 5.0, 50.0, 0)
    return Position("dev", Protocol.PERP, "0xv", name, "USDC:ETH:long", (), 0, 1, perp=terms)


BOOK = [lending(10, 14_000, "tight"), lending(10, 8_000, "safe"), lending(10, 0, "idle"), long_perp("perp")]
SPEC = ScenarioSpec(("ETH", "BTC"), 24, np.array([0.012, 0.01]), corr=np.array([[1, 0.7], [0.7, 1.0]]),
                    nu=5.0, jump_intensity=0.005, jump_mean=-0.04, jump_std=0.02)


def test_report_from_spec_matches_direct_monte_carlo():
    rep = stress_report(BOOK, (SPEC, 12_000, 4), (1, 6, 24))
    direct = liquidation_probability(BOOK, SPEC.symbols, simulate_log_returns(SPEC, 12_000, 4), horizons=(1, 6, 24))
    np.testing.assert_array_equal(rep.prob, direct.prob)
    np.testing.assert_allclose(rep.expected_loss, direct.expected_loss)
    assert rep.prob.shape == (3, 4) and rep.horizons == (1, 6, 24) and rep.n_paths == 12_000
    assert np.all(np.diff(rep.prob, axis=0) >= 0)  # later horizons: at least as likely
    assert rep.prob[-1, 0] > rep.prob[-1, 1] and rep.prob[-1, 2] == 0.0
    assert rep.fixed_symbols == ("USDC",)
    rows = rep.rows()
    assert [r["label"] for r in rows] == ["tight", "safe", "idle", BOOK[3].key]  # key when unlabelled
    assert rows[0]["p_liq_24"] == rep.prob[-1, 0] and "se_6" in rows[0]
    assert rep.total_expected_loss == pytest.approx(np.nansum(rep.expected_loss))
    assert rep.tail_level == 0.99 and rep.book_es >= rep.book_var >= 0
    assert (rep.book_var, rep.book_es) == pytest.approx(direct.book_loss_tail(0.99))
    with pytest.raises(ValueError):
        stress_report(BOOK, simulate_log_returns(SPEC, 10, 1))


def test_fan_chart_quantiles():
    x = simulate_log_returns(SPEC, 20_000, seed=1)
    fan = fan_chart(x, np.array([2000.0, 40_000.0]), (0.05, 0.5, 0.95))
    assert fan.shape == (3, 25, 2)
    np.testing.assert_allclose(fan[:, 0], [[2000, 40_000]] * 3)
    assert np.all(fan[0] <= fan[1]) and np.all(fan[1] <= fan[2])
    width = fan[2, :, 0] - fan[0, :, 0]
    assert np.all(np.diff(width) > 0)  # the fan widens with the horizon
    assert fan[1, -1, 0] == pytest.approx(2000 * np.exp(np.median(x[:, :, 0].astype(float).sum(1))), rel=1e-3)


def test_report_with_array_historical_windows_and_prices():
    assert np.isnan(current_prices(BOOK, ("ETH", "BTC"))[1])
    x = simulate_log_returns(SPEC, 5000, seed=2)
    t = np.arange(100)
    eth = 2000 * np.exp(-0.02 * np.clip(t - 50, 0, 20))  # a 33% crash over 20 hours
    prices = np.column_stack([eth, np.full(100, 40_000.0)])
    hist = replay_windows(prices, 24, {"crash": 45, "calm": 0})
    rep = stress_report(BOOK, x, symbols=SPEC.symbols, historical=hist, prices_now=np.array([2000.0, 40_000.0]))
    assert rep.historical["crash"].tolist() == [True, False, False, True]
    assert not rep.historical["calm"].any()
    assert rep.fan.shape == (7, 25, 2) and rep.fan[3, 0, 1] == 40_000.0
    assert rep.rows()[0]["hist_crash"] is True


def test_positions_liquidatable_now_are_flagged_with_the_loss_of_a_liquidation_now():
    """P = 100% at every horizon with a loss valued at today's prices: lending, the bonus on the debt
    repaid (never 0 while there is debt); a perp whose losses exceed its collateral has nothing left
    to forfeit (0) — which is why the report flags these positions rather than leave a bare 0."""
    under = lending(10, 17_000, "under")  # health 10 * 2000 * 0.8 / 17000 = 0.94 <= 0.95: the whole debt
    wiped = Position("dev", Protocol.PERP, "0xv", "wiped", "USDC:ETH:long", (), 0, 1,
                     perp=PerpTerms(ETH, True, 10_000, 800, 2000.0, 1400.0, 2.0, 5.0, 50.0, 1))
    book = [under, wiped, BOOK[1], BOOK[3]]
    rep = stress_report(book, (SPEC, 2_000, 3), (1, 24))
    assert rep.liquidated_now.tolist() == [True, True, False, False]
    rows = rep.rows()
    assert [r["liquidatable_now"] for r in rows] == [True, True, False, False]
    assert rows[0]["p_liq_1"] == rows[1]["p_liq_1"] == 1.0 and rows[0]["se_24"] == 0.0
    assert rows[0]["expected_loss_usd"] == pytest.approx(0.05 * 1.0 * 17_000)
    assert rows[1]["expected_loss_usd"] == 0.0  # collateral 800 - a 3,000 loss: nothing left
    # a report built without the flag (older callers) still gives rows
    bare = dataclasses.replace(rep, liquidated_now=np.zeros(0, bool))
    assert all(r["liquidatable_now"] is False for r in bare.rows())
