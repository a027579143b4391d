"""Benchmark: Monte Carlo P(liquidation) for a mixed book.

100,000 paths x 100 positions (multi-collateral/multi-debt Aave, Morpho markets, perps long and
short) x 24 hourly steps; fat-tailed (multivariate Student-t, nu = 4) correlated paths over 5
assets with idiosyncratic and market-wide compound-Poisson jumps; P(liq) for every position.

    .venv/bin/python bench/monte_carlo.py [--paths 100000] [--positions 100] [--steps 24] \
        [--repeat 3] [--workers 2] [--blas-threads 1] [--calibrate]

``--calibrate`` replaces the synthetic vols by GARCH(1,1)-t forecasts fitted on the real hourly
files in shared/data/prices (benchmark only) and replays the five worst 24 h ETH windows.

Phases (each repeated, median shown):
  path generation      all paths generated block by block (``scenario_block``), then dropped
  health evaluation    ``monte_carlo_liquidation`` on paths already in memory (float32)
  total (fused)        generate and evaluate each block in the same worker thread, blocks spread
                       over ``--workers`` threads: the production path
  ... antithetic        as above, antithetic pairs (half the Gaussian/chi-square draws)
  total + losses       as above with ``detail=True`` (first-crossing step, loss given liquidation)

Goal (issue): <= 1 s for the fused total on this 2-core machine. BLAS is limited to
``--blas-threads`` per worker with threadpoolctl when it is installed (the products are small,
(block, 5) @ (5, 100); BLAS's own threads only fight the worker threads).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keeper.domain import Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.risk import scenarios as sc
from keeper.risk.probability import exposures, monte_carlo_liquidation

SYMBOLS = ("ETH", "BTC", "SOL", "LINK", "ARB")
PRICES = {"ETH": 3000.0, "BTC": 60_000.0, "SOL": 150.0, "LINK": 15.0, "ARB": 1.0, "USDC": 1.0, "DAI": 1.0}
HOURLY_VOL = np.array([0.008, 0.006, 0.012, 0.011, 0.013])
CORR = np.array([[1.0, 0.8, 0.7, 0.7, 0.65],
                 [0.8, 1.0, 0.65, 0.6, 0.55],
                 [0.7, 0.65, 1.0, 0.6, 0.6],
                 [0.7, 0.6, 0.6, 1.0, 0.6],
                 [0.65, 0.55, 0.6, 0.6, 1.0]])
ASSETS = {s: Asset(s, f"0x{i:040x}", 18) for i, s in enumerate((*SYMBOLS, "USDC", "DAI"))}


def book(n: int, rng: np.random.Generator) -> list[Position]:
    """A synthetic mixed book: ~50% Aave multi-asset, ~20% Morpho, ~30% perps."""
    out = []
    for k in range(n):
        kind = k % 10
        if kind < 5:  # Aave: 2-3 collateral assets, 1-2 debt assets (sometimes a volatile one)
            coll = rng.choice(len(SYMBOLS), size=rng.integers(2, 4), replace=False)
            legs = []
            value = 0.0
            for a in coll:
                usd = rng.uniform(5_000, 50_000)
                value += usd * 0.8
                legs.append(_leg(SYMBOLS[a], Side.COLLATERAL, usd, rng.uniform(0.7, 0.86)))
            debt = value / rng.uniform(1.05, 1.6)
            if rng.random() < 0.4:
                vol_debt = SYMBOLS[int(rng.integers(len(SYMBOLS)))]
                legs.append(_leg(vol_debt, Side.DEBT, 0.3 * debt))
                debt *= 0.7
            legs.append(_leg("USDC", Side.DEBT, 0.6 * debt))
            legs.append(_leg("DAI", Side.DEBT, 0.4 * debt))
            out.append(Position("bench", Protocol.AAVE_V3, "0xpool", f"0x{k:040x}", "pool", tuple(legs), 0, 1))
        elif kind < 7:  # Morpho: one collateral, USDC loan, LLTV 0.77-0.915
            a = SYMBOLS[int(rng.integers(len(SYMBOLS)))]
            lltv = float(rng.choice([0.77, 0.86, 0.915]))
            usd = rng.uniform(10_000, 100_000)
            legs = (_leg(a, Side.COLLATERAL, usd, lltv), _leg("USDC", Side.DEBT, usd * lltv / rng.uniform(1.03, 1.5)))
            out.append(Position("bench", Protocol.MORPHO_BLUE, "0xmorpho", f"0x{k:040x}", f"m{k}", legs, 0, 1))
        else:  # perps: leverage 2-20x, long or short
            a = SYMBOLS[int(rng.integers(len(SYMBOLS)))]
            size = rng.uniform(5_000, 200_000)
            lev = rng.uniform(2, 20)
            mark = PRICES[a]
            avg = mark * rng.uniform(0.97, 1.03)
            terms = PerpTerms(ASSETS[a], bool(rng.random() < 0.6), size, size / lev, avg, mark,
                              size * 0.001, 5.0, 50.0, 0)
            out.append(Position("bench", Protocol.PERP, "0xvault", f"0x{k:040x}", f"USDC:{a}", (), 0, 1, perp=terms))
    return out


def _leg(symbol: str, side: Side, usd: float, weight: float = 1.0) -> Leg:
    price = PRICES[symbol]
    return Leg(ASSETS[symbol], side, int(usd / price * 1e18), price, weight)


def spec(steps: int) -> sc.ScenarioSpec:
    return sc.ScenarioSpec(SYMBOLS, steps, HOURLY_VOL, corr=CORR, nu=4.0,
                           jump_intensity=0.002, jump_mean=-0.02, jump_std=0.03,
                           common_jump_intensity=0.001, common_jump_mean=-0.04 * HOURLY_VOL / HOURLY_VOL[0],
                           common_jump_std=0.02, vol_of_vol=0.3)


def calibrated(steps: int) -> tuple[sc.ScenarioSpec, list[str], sc.HistoricalShocks]:
    """Per-step vols from GARCH(1,1)-t fits on the real hourly ETH/BTC/SOL/LINK files (forecast
    from the last bar), EWMA correlation (lam 0.99) of the last 2,000 returns, nu = median fitted
    nu; ARB (no file) keeps its synthetic vol and a 0.6 correlation. Also the 5 worst 24-hour ETH
    windows of the history, replayed as scenarios (ARB flat)."""
    from keeper.backtest.prices import default_files, load_prices
    from keeper.risk.volatility import ewma_covariance, fit_garch11, garch_forecast, log_returns

    real = SYMBOLS[:4]
    series = load_prices(default_files(*real))
    closes = np.column_stack([x.close for x in series])
    rets = log_returns(closes)
    vols = np.tile(HOURLY_VOL, (steps, 1))
    notes, nus = [], []
    for a, sym in enumerate(real):
        fit = fit_garch11(rets[:, a])
        p = fit.params
        nus.append(p.nu)
        vols[:, a] = np.sqrt(garch_forecast(p, fit.last_variance, rets[-1, a], steps))
        notes.append(f"  {sym:5} GARCH-t omega={p.omega:.2e} alpha={p.alpha:.3f} beta={p.beta:.4f} "
                     f"nu={p.nu:.2f}  next-hour vol {vols[0, a]:.4f}, 24 h vol {np.sqrt((vols[:, a]**2).sum()):.3f}")
    _, corr4 = ewma_covariance(rets[-2000:], lam=0.99)
    corr = np.full((5, 5), 0.6)
    corr[:4, :4] = corr4
    np.fill_diagonal(corr, 1.0)
    spec_ = sc.ScenarioSpec(SYMBOLS, steps, vols, corr=corr, nu=max(2.5, float(np.median(nus))),
                            jump_intensity=0.002, jump_mean=-0.02, jump_std=0.03)
    flat = np.column_stack([closes, np.ones(len(closes))])
    return spec_, notes, sc.worst_windows(flat, steps, k=5, asset=0)


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=100_000)
    ap.add_argument("--positions", type=int, default=100)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--blas-threads", type=int, default=1)
    ap.add_argument("--calibrate", action="store_true",
                    help="vols/correlation from GARCH fits on the real hourly files (benchmark only)")
    args = ap.parse_args()

    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(limits=args.blas_threads, user_api="blas")
    except ImportError:  # pragma: no cover
        limit = nullcontext()
    positions = book(args.positions, np.random.default_rng(42))
    s, notes, hist = spec(args.steps), [], None
    if args.calibrate:
        s, notes, hist = calibrated(args.steps)
    anti = dataclasses.replace(s, antithetic=True)
    ex = exposures(positions, SYMBOLS)
    ss = sc.seed_sequence(2026)
    blocks = range(sc.n_blocks(args.paths))

    with limit:
        def gen_only():
            for i in blocks:
                sc.scenario_block(s, args.paths, ss, i)
        held = np.concatenate([sc.scenario_block(s, args.paths, ss, i) for i in blocks])
        rows = [
            ("path generation (1 thread)", *timed(gen_only, args.repeat)),
            ("health evaluation (held paths)", *timed(
                lambda: monte_carlo_liquidation(ex, held, workers=args.workers), args.repeat)),
            ("total, fused (generate+evaluate)", *timed(
                lambda: monte_carlo_liquidation(ex, (s, args.paths, ss), workers=args.workers), args.repeat)),
            ("total, fused, antithetic pairs", *timed(
                lambda: monte_carlo_liquidation(ex, (anti, args.paths, ss), workers=args.workers), args.repeat)),
            ("total + loss given liquidation", *timed(
                lambda: monte_carlo_liquidation(ex, (s, args.paths, ss), detail=True, workers=args.workers),
                args.repeat)),
        ]
    res = rows[2][2]
    print(f"{args.paths:,} paths x {args.positions} positions x {args.steps} steps, {len(SYMBOLS)} assets, "
          f"float32, workers={args.workers}, BLAS threads={args.blas_threads}")
    head = "".join(f"  run {i + 1:>2}" for i in range(args.repeat))
    print(f"{'phase (s)':36}{head}   median")
    for name, times, _ in rows:
        print(f"{name:36}" + "".join(f"{t:8.3f}" for t in times) + f" {statistics.median(times):8.3f}")
    p = res.p
    kinds = np.array([pos.protocol.value for pos in positions])
    print(f"P(liq within {args.steps} steps): mean {p.mean():.4f}, max {p.max():.4f}, "
          f"positions with P > 1%: {(p > 0.01).sum()}, max standard error {res.stderr.max():.5f}")
    for kind in ("aave_v3", "morpho_blue", "perp"):
        sel = kinds == kind
        print(f"  {kind:12} n={sel.sum():3}  mean P {p[sel].mean():.4f}")
    ar = rows[3][2]
    diff = np.abs(ar.p - p) / np.sqrt(ar.stderr[-1] ** 2 + res.stderr[-1] ** 2 + 1e-30)
    print(f"antithetic: max standard error {ar.stderr.max():.5f}; |P_anti - P_plain| <= "
          f"{diff.max():.1f} combined standard errors")
    det = rows[4][2]
    assert np.array_equal(det.prob, res.prob)
    var, es = det.book_loss_tail(0.99)
    print(f"book liquidation loss: expected {np.nansum(det.expected_loss):,.0f} USD, "
          f"99% VaR {var:,.0f} USD, 99% expected shortfall {es:,.0f} USD")
    for line in notes:
        print(line)
    if hist is not None:
        for name, start, window in zip(hist.names, hist.starts, hist.log_returns):
            one = monte_carlo_liquidation(ex, window[None].astype(np.float64))
            drop = np.expm1(window[:, 0].sum())
            print(f"  historical {name} (ETH {drop:+.1%} end to end over {args.steps} h, bar {start}): "
                  f"{int((one.p > 0.5).sum())} of {len(positions)} positions liquidated")


if __name__ == "__main__":
    main()
