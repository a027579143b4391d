"""Capital-efficiency study: the static ratio keeper vs the risk policy, tuned honestly.

Command: ``.venv/bin/python bench/capital_efficiency.py [--split 2021-01-01 [2022-01-01]]
[--variants default|all|NAME ...] [--delay 1]`` (prices: ETH and BTC hourly from
../shared/data/prices, 2018-2022, crash windows included).

Protocol (never tune on the period you report), for each split date:
1. fit every law on the bars before the split only;
2. grid-evaluate the static rule and each risk variant on the tuning bars (one lending position per
   asset: one collateral, USD debt, liquidation threshold 0.825, 5% liquidation bonus, 1-bar
   reaction delay, gas 300k units x 30 gwei x ETH price);
3. static pick: the point with the least average buffer among those with 0 liquidations AND 0 hours
   failing the trigger-survival check (a position exactly at the trigger must survive the lows of
   the next delay + 1 bars, at every hour). Risk pick of each variant: the same, among its points
   with, on every asset, no more tuning-period transactions than the static pick had there;
4. run the picks on the bars from the split on and report per asset: liquidations, failures,
   average/peak buffer, capital-days, transactions and gas, and the buffer reduction. Target, per
   asset: 0 liquidations, 0 trigger failures, >= 25% less average buffer than the static rule and no
   more transactions.

``--variants``: ``default`` (the recommended law + policy grid), ``all`` (every variant of the stage 9
study, tabulated), or names (``--list`` prints them). Writes bench/out/pareto_tuning_<split>.png and
per-asset test-period charts of the default variant (bench/out is git-ignored).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keeper.backtest.charts import pareto_chart, run_chart
from keeper.backtest.engine import Gas
from keeper.backtest.metrics import Metrics, row, table
from keeper.backtest.pareto import (
    Evaluated,
    Evaluator,
    cheapest,
    cheapest_within,
    risk_grid,
    static_grid,
)
from keeper.backtest.policies import SeriesModel, fit_tail
from keeper.backtest.prices import PriceSeries, default_files, load_prices
from keeper.risk.laws import GaussLaw

OUT = Path(__file__).resolve().parent / "out"
TARGET_CUT = 0.25
WIDE_EPS = (3e-4, 1e-4, 5e-5, 2e-5, 1e-5, 5e-6, 2e-6, 1e-6, 5e-7, 2e-7)


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    grid: Callable[[list[PriceSeries]], list]     # tuning series -> risk policies (laws fitted on them)


def _stage3(tune):
    fitted = fit_tail(tune)
    out = []
    for law in (fitted, replace(fitted, nu=6.0), replace(fitted, nu=10.0)):
        out += risk_grid(SeriesModel(law))
    return out


GAP_EPS = tuple(float(e) for e in np.geomspace(3e-4, 3e-6, 9))
GAPS = ((0.05, 0.08), (0.07, 0.1), (0.1, 0.1), (0.07, 0.15), (0.1, 0.15))   # (target, release) log moves
HOLDS = (0, 48, 168)


def _pband(jump_regime: str):
    """Bands in P (the stage-3 policy) on a law with a fitted jump regime, wide epsilon grid."""
    def grid(tune):
        return risk_grid(SeriesModel(fit_tail(tune, jump_regime=jump_regime)), epsilons=WIDE_EPS)
    return grid


def _gap(jump_regime: str, scales=(1.0,), nu: float | None = 10.0):
    """Bands in distance (``target_gap``/``release_gap``) and release holds, on laws with the
    diffusion shape ``nu`` fixed and the fitted regime exponents scaled by each of ``scales``."""
    def grid(tune):
        out = []
        for k in scales if jump_regime else (1.0,):
            law = fit_tail(tune, jump_regime=jump_regime, nu=nu, exponent_scale=k)
            out += risk_grid(SeriesModel(law), epsilons=GAP_EPS, horizons=(2,), gaps=GAPS, holds=HOLDS)
        return out
    return grid


def _gauss(tune):
    return risk_grid(SeriesModel(GaussLaw()), epsilons=(1e-3, 1e-4, 1e-5, 1e-6, 1e-7))


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("stage3", "constant jump rate (fitted nu, nu 6, nu 10), bands in P (the stage-3 study)", _stage3),
    Variant("gauss", "Gaussian first passage on EWMA 0.94 (no tails, no jumps), bands in P", _gauss),
    Variant("const-pband", "constant jump rate, fitted nu, bands in P, epsilon 3e-4..2e-7", _pband("")),
    Variant("vol-pband", "jump rate x (fast vol/ref)^a, a fitted (~2), fitted nu, bands in P", _pband("vol")),
    Variant("ratio-pband", "jump rate x (fast/long vol)^b, b fitted (~2), fitted nu, bands in P", _pband("ratio")),
    Variant("const-gap", "constant jump rate, nu 10, bands in distance + release holds", _gap("")),
    Variant("vol-gap", "jump rate x (fast vol/ref)^a, a = fitted x {0.25, 0.5}, nu 10, bands in distance + holds",
            _gap("vol", scales=(0.25, 0.5))),
    Variant("ratio-gap", "jump rate x (fast/long vol)^b, b = fitted x {0.25, 0.5}, nu 10, bands in distance + holds",
            _gap("ratio", scales=(0.25, 0.5))),
]}
DEFAULT = "vol-gap"


def per_asset_txs(e: Evaluated) -> list[int]:
    return [m.transactions for m in e.per_asset]


def verdict(r: Metrics, s: Metrics) -> tuple[float, bool]:
    cut = 1.0 - r.avg_buffer / s.avg_buffer
    ok = r.liquidations == 0 and r.trigger_failures == 0 and cut >= TARGET_CUT and r.transactions <= s.transactions
    return cut, ok


def run_split(split: str, full: list[PriceSeries], names: list[str], delay: int, gas: Gas) -> list[tuple]:
    t0 = time.perf_counter()
    tune = [s.window(None, split) for s in full]
    test = [s.window(split, None) for s in full]
    ev = Evaluator(tune, delay_bars=delay, gas=gas)
    tev = Evaluator(test, delay_bars=delay, gas=gas, keep_results=True)
    st = ev.grid(static_grid())
    s_pick = cheapest(st)
    print(f"\n=== split {split}: tune {_span(tune[0])}, test {_span(test[0])}; static grid {len(st)} points "
          f"({sum(e.feasible for e in st)} safe)")
    if s_pick is None:
        print("no safe static point on the tuning period; nothing to report")
        return []
    s_test = tev.evaluate(s_pick.policy)
    rows = [row(f"tune  static: {s_pick.policy.label()}", s_pick.metrics), row("TEST  static", s_test.metrics)]
    rows += [row(f"  {s.symbol}", m) for s, m in zip(test, s_test.per_asset)]
    summary, groups = [], {"static": st}
    for name in names:
        v = VARIANTS[name]
        t1 = time.perf_counter()
        evals = ev.grid(v.grid(tune))
        groups[name] = evals
        pick = cheapest_within(evals, per_asset_txs(s_pick))
        law = getattr(getattr((pick or evals[0]).policy, "model", None), "law", None)
        print(f"variant {name}: {len(evals)} points ({sum(e.feasible for e in evals)} safe); "
              f"{'picked' if pick else 'first'} law: {law.describe() if law is not None else '?'}; "
              f"{time.perf_counter() - t1:.0f} s")
        if law is not None and pick is not None:
            print(f"  law parameters: {law.to_dict()}")
        if pick is None:
            summary.append((split, name, "no safe point within the static pick's transactions", None, None, None))
            continue
        r = tev.evaluate(pick.policy)
        rows.append(row(f"tune  {name}: {pick.policy.label()}", pick.metrics))
        rows.append(row(f"TEST  {name}", r.metrics))
        rows += [row(f"  {s.symbol}", m) for s, m in zip(test, r.per_asset)]
        summary.append((split, name, pick.policy.label(), pick, r, s_test))
        if name == DEFAULT:
            reproduce(split, pick.policy, test)
            for s, rr in zip(test, r.results):
                run_chart(rr, OUT / f"test_{split}_{s.symbol}_{name}.png",
                          f"{s.symbol} {split}..: {pick.policy.label()}")
    pareto_chart(groups, OUT / f"pareto_tuning_{split}.png", f"tuning period < {split}: ETH+BTC, delay {delay} bar")
    print(f"\nPicked on < {split}, reported on >= {split} (delay {delay} bar, gas 300k x 30 gwei x ETH)")
    print(table(rows))
    print(f"\nTarget per asset: 0 liquidations, 0 trigger failures, >= {TARGET_CUT:.0%} less average buffer than "
          f"static, no more transactions")
    for _split, name, label, _pick, r, s in summary:
        if r is None:
            print(f"  {name}: {label}")
            continue
        parts = []
        for sym, rm, sm in zip([x.symbol for x in test], r.per_asset, s.per_asset):
            cut, ok = verdict(rm, sm)
            parts.append(f"{sym} {cut:+.1%} liqs {rm.liquidations} fails {rm.trigger_failures} "
                         f"txs {rm.transactions}/{sm.transactions} {'MET' if ok else 'MISSED'}")
        print(f"  {name}: " + "; ".join(parts))
    print(f"split {split}: {time.perf_counter() - t0:.0f} s")
    return summary


def reproduce(split: str, policy, test: list[PriceSeries]) -> None:
    """Write the pick's law as a `keeper fit` parameters file (what policy.model_params and
    `keeper backtest --params` read) and print the backtest command that replays the pick from it:
    the product, the backtest and this study run one set of numbers."""
    import json

    from keeper.risk.params import params_document

    law = policy.model.law
    path = OUT / f"fit_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(params_document(law, {"fitted_on": law.to_dict()["fitted_on"],
                                                     "window": [None, split]}), indent=2) + "\n")
    files = " ".join(str(default_files(s.symbol)[0]) for s in test)
    print(f"  pick as a params file: {path}\n  replay: keeper backtest --prices {files} --from {split} "
          f"--policy risk --params {path} --epsilon {policy.epsilon:g} --horizon {policy.horizon_hours} "
          f"--target-gap {policy.target_gap:g} --release-gap {policy.release_gap:g} --hold-hours {policy.hold_hours} "
          f"--health 1.5  (config: policy.model_params = \"{path}\", epsilon = {policy.epsilon:g}, "
          f"horizon_hours = {policy.horizon_hours}, target_gap = {policy.target_gap:g}, "
          f"release_gap = {policy.release_gap:g})")


def _span(s: PriceSeries) -> str:
    def d(x) -> str:
        return str(np.datetime64(int(x), "s"))[:10]

    return f"{d(s.t[0])}..{d(s.t[-1])}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", nargs="+", default=["2021-01-01"])
    ap.add_argument("--delay", type=int, default=1, help="reaction delay, bars")
    ap.add_argument("--symbols", nargs="+", default=["ETH", "BTC"])
    ap.add_argument("--variants", nargs="+", default=["default"])
    ap.add_argument("--list", action="store_true", help="print the variants and exit")
    args = ap.parse_args()
    if args.list:
        for v in VARIANTS.values():
            print(f"{v.name:14s} {v.what}{'  (default)' if v.name == DEFAULT else ''}")
        return 0
    names = []
    for n in args.variants:
        names += list(VARIANTS) if n == "all" else [DEFAULT] if n == "default" else [n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)} (see --list)")
    t0 = time.perf_counter()
    full = load_prices(default_files(*args.symbols))
    allsum = []
    for split in args.split:
        allsum += run_split(split, full, names, args.delay, Gas())
    print("\nAll variants (test period; cut = average-buffer reduction vs the static pick, per asset)")
    hdr = ("split", "variant", "tuning pick", "tune buf", "tune txs", *[f"{s.symbol} cut/liqs/fails/txs" for s in full],
           "target")
    rows = []
    for split, name, label, pick, r, s in allsum:
        if r is None:
            rows.append((split, name, label, "-", "-", *["-"] * len(full), "MISSED"))
            continue
        cells, oks = [], []
        for rm, sm in zip(r.per_asset, s.per_asset):
            cut, ok = verdict(rm, sm)
            oks.append(ok)
            cells.append(f"{cut:+.1%}/{rm.liquidations}/{rm.trigger_failures}/{rm.transactions}<={sm.transactions}"
                         if rm.transactions <= sm.transactions else
                         f"{cut:+.1%}/{rm.liquidations}/{rm.trigger_failures}/{rm.transactions}>{sm.transactions}")
        rows.append((split, name, label, f"{pick.metrics.avg_buffer:.1%}", str(pick.metrics.transactions), *cells,
                     "MET" if all(oks) else "MISSED"))
    print(table(rows, hdr))
    print(f"charts in {OUT}; total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
