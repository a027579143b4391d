"""``keeper backtest``: replay price files through a simulated position under a policy.

    keeper backtest --prices ETHUSDT_binance_1h.csv --policy risk --from 2021-01-01 --out out/
    keeper backtest --policy static --grid --from 2018-01-01 --to 2021-01-01

One lending position per price file (one collateral, USD debt, Aave v3 WETH-like threshold 0.825)
is replayed; the table shows liquidations, hours failing the trigger-survival check, average and
peak buffer (share of debt), capital-days, transactions and gas. ``--grid`` evaluates both
policies over their parameter grids and draws the Pareto frontier. The risk policy's tail model is
fitted on ``--fit-from/--fit-to`` (default: everything before ``--from``, else the replay window).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keeper.cli.progress import Progress
from keeper.errors import ConfigError

if TYPE_CHECKING:
    from keeper.backtest.book import LendingPosition
    from keeper.backtest.engine import Policy
    from keeper.backtest.pareto import Evaluated, Evaluator
    from keeper.backtest.policies import LearnedModel, SeriesModel
    from keeper.backtest.prices import PriceSeries
    from keeper.cli.args import Subparsers
    from keeper.config import Config


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("backtest", help="replay price history through a simulated position and a policy",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prices", nargs="+", metavar="CSV", help="price files (default: ETH from shared data)")
    p.add_argument("--policy", choices=("static", "risk"), default="static")
    p.add_argument("--grid", action="store_true", help="evaluate both policies' grids; Pareto chart")
    p.add_argument("--from", dest="start", metavar="DATE")
    p.add_argument("--to", dest="end", metavar="DATE")
    p.add_argument("--delay", type=int, default=1, metavar="BARS", help="reaction delay in bars (default 1)")
    p.add_argument("--delay-minutes", type=float, metavar="MIN", help="reaction delay in minutes (overrides --delay)")
    p.add_argument("--out", metavar="DIR", help="write PNG charts here")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    g = p.add_argument_group("static policy (health ratios)")
    g.add_argument("--trigger", type=float, default=1.4)
    g.add_argument("--target", type=float, default=1.5)
    g.add_argument("--boost-trigger", type=float, default=1.65)
    g.add_argument("--boost-target", type=float, default=1.5)
    r = p.add_argument_group("risk policy")
    r.add_argument("--epsilon", type=float, default=1e-4, help="P(liq within horizon) budget")
    r.add_argument("--horizon", type=int, default=2, help="hours")
    r.add_argument("--target-below", type=float, default=0.5, help="top up to P = this x epsilon")
    r.add_argument("--release-below", type=float, default=0.1, help="release when P < this x epsilon")
    r.add_argument("--target-gap", type=float, default=0.0, metavar="LOG",
                   help="bands in distance: top up to this log move beyond the trigger (with --release-gap)")
    r.add_argument("--release-gap", type=float, default=0.0, metavar="LOG",
                   help="... and release only this log move beyond the target")
    r.add_argument("--hold-hours", type=int, default=0,
                   help="release only past the max release level of the last hours")
    r.add_argument("--params", metavar="JSON", help="the law's parameters from `keeper fit` (what the daemon runs "
                                                    "with policy.model_params); default: fit on --fit-from/--fit-to")
    r.add_argument("--model", metavar="PATH", help="a learned model bundle (`keeper train`) instead of the tail model")
    r.add_argument("--fit-from", metavar="DATE")
    r.add_argument("--fit-to", metavar="DATE")
    c = p.add_argument_group("costs")
    c.add_argument("--gas-units", type=int, default=300_000)
    c.add_argument("--gwei", type=float, default=30.0)
    c.add_argument("--gas-usd", type=float, help="flat USD per transaction instead of units x gwei x ETH")
    c.add_argument("--health", type=float, help="opening health (default: the policy's target)")
    c.add_argument("--lt", type=float, default=0.825, help="liquidation threshold")
    c.add_argument("--penalty", type=float, default=0.05, help="liquidation bonus")
    p.set_defaults(handler=run, needs_config=False)
    return p


def _load(args: argparse.Namespace) -> tuple[list[PriceSeries], list[PriceSeries]]:
    from keeper.backtest.prices import default_files, load_prices
    paths = args.prices or default_files("ETH")
    full = load_prices(paths, aligned=False)
    series = [s.window(args.start, args.end) for s in full]
    if any(len(s) < 50 for s in series):
        raise ConfigError("fewer than 50 bars in the chosen window")
    return full, series


def _model(args: argparse.Namespace, full: list[PriceSeries]) -> tuple[LearnedModel | SeriesModel, str]:
    from keeper.backtest.policies import LearnedModel, SeriesModel, fit_tail
    if args.model:
        from keeper.backtest.training import load_model
        return LearnedModel(load_model(args.model)), "learned model " + str(args.model)
    if args.params:
        from keeper.app.risk_setup import read_params
        law, meta = read_params(Path(args.params))
        return SeriesModel(law), f"{law.kind} law from {args.params} ({meta.get('fitted_on', '?')})"
    fit_to = args.fit_to or args.start
    fit = [s.window(args.fit_from, fit_to) for s in full] if fit_to else []
    if not fit or any(len(s) < 2000 for s in fit):
        fit = [s.window(args.fit_from, args.end) for s in full]
        where = "the replay window (in-sample: pass --fit-to before --from for an honest test)"
    else:
        where = f"{args.fit_from or 'start'} .. {fit_to}"
    return SeriesModel(fit_tail(fit)), f"tail model fitted on {where}"


def _grid(ev: Evaluator, policies: list[Policy], name: str, progress: Progress) -> list[Evaluated]:
    """``ev.grid(policies)``, one progress line per point."""
    out = []
    for i, pol in enumerate(policies, 1):
        progress.step(f"{name} grid {i}/{len(policies)}")
        out.append(ev.evaluate(pol))
    return out


def run(args: argparse.Namespace, cfg: Config | None = None) -> int:
    from keeper.backtest.charts import pareto_chart, run_chart
    from keeper.backtest.engine import Gas, delay_bars_of
    from keeper.backtest.metrics import row, table, thresholds_digest
    from keeper.backtest.pareto import Evaluator, cheapest, frontier, risk_grid, static_grid
    from keeper.backtest.policies import RiskPolicy, StaticPolicy

    progress = Progress("backtest", show=None if args.grid else False, json_mode=args.json)  # --grid: long
    full, series = _load(args)
    delay = delay_bars_of(args.delay_minutes, series[0].step) if args.delay_minutes is not None else args.delay
    gas = Gas(args.gas_units, args.gwei, flat_usd=args.gas_usd)
    model: LearnedModel | SeriesModel | None
    if args.policy == "risk" or args.grid:
        with progress.phase("risk model"):
            model, model_note = _model(args, full)
    else:
        model, model_note = None, ""
    try:
        static = StaticPolicy(args.trigger, args.target, args.boost_trigger, args.boost_target)
        risk = RiskPolicy(args.epsilon, args.horizon, args.release_below, model, args.target_below,
                          hold_hours=args.hold_hours, target_gap=args.target_gap, release_gap=args.release_gap)
        if args.policy == "risk":
            risk.levels()
    except ValueError as e:
        raise ConfigError(f"backtest: {e}") from None
    policy: Policy = static if args.policy == "static" else risk

    def make_position(s: PriceSeries, pol: Policy) -> LendingPosition:
        from keeper.backtest.engine import lending_position
        h = args.health or (pol.target if isinstance(pol, StaticPolicy) else 1.5)
        return lending_position(s.symbol, float(s.close[0]), h, lt=args.lt, penalty=args.penalty)

    ev = Evaluator(series, delay_bars=delay, gas=gas, make_position=make_position, keep_results=True)
    out = Path(args.out) if args.out else None
    report: dict[str, Any] = {"delay_bars": delay, "model": model_note, "window": [args.start, args.end], "runs": []}
    progress.step(f"{policy.label()} on {', '.join(s.symbol for s in series)}")
    evaluated = ev.evaluate(policy)
    rows = []
    for s, m, res in zip(series, evaluated.per_asset, evaluated.results):
        rows.append(row(f"{s.symbol} {policy.label()}", m))
        report["runs"].append({"symbol": s.symbol, "policy": policy.label(), **m.as_dict(),
                               "thresholds_sha256": thresholds_digest(res.thresholds)})
        if out is not None:
            report.setdefault("charts", []).append(str(run_chart(res, out / f"backtest_{s.symbol}_{args.policy}.png",
                                                                 f"{s.symbol}: {policy.label()}")))
    if args.grid:
        ev.keep_results = False
        groups = {"static": _grid(ev, list(static_grid()), "static", progress),
                  "risk": _grid(ev, list(risk_grid(model)), "risk", progress)}
        report["grid"] = {}
        for name, evals in groups.items():
            best = cheapest(evals)
            report["grid"][name] = {
                "points": len(evals), "feasible": sum(x.feasible for x in evals),
                "cheapest": None if best is None else {"policy": best.policy.label(), **best.metrics.as_dict()},
                "frontier": [{"policy": x.policy.label(), **x.metrics.as_dict()} for x in frontier(evals)]}
            for x in frontier(evals):
                rows.append(row(f"frontier {x.policy.label()}", x.metrics))
        if out is not None:
            report["pareto_chart"] = str(pareto_chart(groups, out / "pareto.png"))
    if args.json:
        print(json.dumps(report, indent=2, default=float))
    else:
        print(f"delay {delay} bar(s); {model_note}".rstrip("; "))
        print(table(rows))
        for k in ("charts", "pareto_chart"):
            if k in report:
                print(f"wrote {report[k]}")
    return 0
