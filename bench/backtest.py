"""Backtest speed: five years of hourly bars x one position, both policies.

Target (issue, stage 3): 5 years of hourly data x 1 position in < 10 s.

Command: ``.venv/bin/python bench/backtest.py [--runs 3] [--prices CSV]`` (default: ETH hourly
2018-2022 from ../shared/data/prices). Times the policy's per-bar thresholds (the risk model
evaluated once for the whole series) and the replay loop separately, then their total.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keeper.backtest.engine import lending_position, policy_thresholds, run
from keeper.backtest.metrics import summarize
from keeper.backtest.policies import RiskPolicy, SeriesModel, StaticPolicy, fit_tail
from keeper.backtest.prices import default_files, load_prices


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prices", default=None)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    s = load_prices([args.prices] if args.prices else default_files("ETH"))[0]
    load_s = time.perf_counter() - t0
    model = SeriesModel(fit_tail([s.window(None, "2021-01-01")]))
    policies = {"static": StaticPolicy(1.4, 1.5, 1.65, 1.5), "risk": RiskPolicy(1e-4, 2, 0.1, model, 0.5)}
    rows = []
    for name, pol in policies.items():
        th_t, loop_t, tot = [], [], []
        for _ in range(args.runs):
            a = time.perf_counter()
            th = policy_thresholds(pol, s, "long")
            b = time.perf_counter()
            res = run([s], lending_position(s.symbol, float(s.close[0]), 1.5), pol, delay_bars=1, thresholds=th)
            m = summarize(res)
            c = time.perf_counter()
            th_t.append(b - a), loop_t.append(c - b), tot.append(c - a)
        rows.append((name, len(s), statistics.median(th_t), statistics.median(loop_t), statistics.median(tot),
                     m.transactions, m.liquidations))
    years = (s.t[-1] - s.t[0]) / (365.25 * 86400)
    print(f"{s.symbol}: {len(s):,} hourly bars ({years:.1f} years), 1 position; CSV load {load_s:.2f} s; "
          f"median of {args.runs} runs")
    print(f"{'policy':8s} {'bars':>7s} {'thresholds s':>13s} {'replay s':>9s} {'total s':>8s} {'txs':>5s} {'liqs':>5s}")
    for name, n, a, b, c, tx, lq in rows:
        print(f"{name:8s} {n:7,d} {a:13.2f} {b:9.2f} {c:8.2f} {tx:5d} {lq:5d}")
    worst = max(r[4] for r in rows)
    print(f"target < 10 s per 5y x 1 position: {'met' if worst < 10 else 'MISSED'} (worst {worst:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
