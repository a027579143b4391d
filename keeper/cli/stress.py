"""`keeper stress`: Monte Carlo stress of the current positions."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keeper.cli.args import vol_item, vol_overrides
from keeper.cli.render import labels
from keeper.errors import ConfigError

if TYPE_CHECKING:
    from keeper.cli.args import Subparsers
    from keeper.config import Config


def register(sub: Subparsers) -> None:
    sp = sub.add_parser("stress", help="Monte Carlo stress of the current positions: P(liq) per horizon, expected "
                                       "shortfall, crash replays, a fan chart")
    sp.add_argument("--positions", type=Path, default=None,
                    help="a `keeper status --json` file (default: read the chain)")
    sp.add_argument("--chain", default=None, help="only this configured chain")
    sp.add_argument("--horizons", default="1,4,24", help="hours, comma-separated (default 1,4,24)")
    sp.add_argument("--paths", type=int, default=100_000, help="Monte Carlo paths (default 100,000)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--prices", nargs="*", type=Path, default=None,
                    help="hourly price CSVs: vols where the chain's history is short, and crash replays "
                         "(default: shared/data if present)")
    sp.add_argument("--vol", action="append", type=vol_item, default=[], metavar="SYMBOL=ANNUAL",
                    help="override an asset's annualised vol, e.g. WETH=0.9 (repeatable; 0 < ANNUAL <= 20)")
    sp.add_argument("--out", type=Path, default=None,
                    help="where the fan chart PNG goes (default: the state directory's stress/, .keeper/stress)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(handler=run, needs_config=True)


def run(args: argparse.Namespace, cfg: Config | None) -> int:
    from keeper.app import stress as stress_cmd
    from keeper.names import names_by_chain

    assert cfg is not None  # needs_config: main() loaded it
    try:
        horizons = sorted({int(h) for h in args.horizons.split(",") if h.strip()})
    except ValueError:
        raise ConfigError(f"--horizons: hours as integers, comma-separated, got {args.horizons!r}") from None
    if not horizons or horizons[0] < 1 or horizons[-1] > 24 * 30:
        raise ConfigError("--horizons: each within 1..720 hours")
    if not 100 <= args.paths <= 5_000_000:
        raise ConfigError("--paths: within 100..5,000,000")
    vols = vol_overrides(args.vol)
    if args.prices is None:
        from keeper.backtest.prices import DEFAULT_PRICES_DIR

        args.prices = sorted(DEFAULT_PRICES_DIR.glob("*USDT_binance_1h.csv")) if DEFAULT_PRICES_DIR.is_dir() else []
    if args.positions:
        from keeper.app.risk_setup import model_for

        positions = stress_cmd.positions_from_json(args.positions)
        model, warnings = model_for(cfg, positions, price_files=args.prices, overrides=vols)
    else:
        from keeper.app.manual import open_session

        session = open_session(cfg, args.chain, price_files=args.prices, vols=vols)
        session.close()
        positions, model, warnings = list(session.snap.positions), session.risk, session.warnings
    for w in warnings:
        print(f"keeper: warning: risk model: {w}", file=sys.stderr)
    # The fan chart goes beside the keeper's other state (devnet.state_dir, .keeper by default),
    # not into the working directory; made before the run, so a bad --out fails before the paths.
    out_dir = args.out if args.out is not None else cfg.devnet.state_dir / "stress"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out_dir}: cannot create the directory: {e.strerror or e}") from None
    # 100,000 paths take seconds: say so on a terminal (never in --json mode, never into a pipe).
    progress = not args.json and sys.stderr.isatty()
    if progress:
        print(f"stress: {args.paths:,} paths x {len(horizons)} horizon{'s' if len(horizons) > 1 else ''} ...",
              end="", file=sys.stderr, flush=True)
    started, done = time.monotonic(), False
    try:
        report, notes = stress_cmd.run_stress(positions, horizons_h=horizons, n_paths=args.paths, seed=args.seed,
                                              model=model, price_files=args.prices)
        png = stress_cmd.fan_png(report, out_dir / "stress_fan.png")
        done = True
    finally:
        if progress:
            print(f" {time.monotonic() - started:.1f} s" if done else " failed", file=sys.stderr, flush=True)
    names = names_by_chain(positions, labels(cfg))
    rows = [{"name": names.get(row["key"], row["label"]), **row} for row in report.rows()]
    if args.json:
        print(json.dumps({"horizons_h": horizons, "model": model.describe(), "calibration": notes,
                          "rows": rows, "book_var_usd": report.book_var, "book_es_usd": report.book_es,
                          "tail_level": report.tail_level, "fan_chart": str(png)}, indent=2))
        return 0
    from rich.table import Table

    from keeper.views import console

    table = Table(title=f"stress: {report.n_paths:,} paths, P(liquidation) within each horizon")
    table.add_column("position", no_wrap=True)
    for h in horizons:
        table.add_column(f"P {h}h", justify="right")
    for name in report.historical:
        table.add_column(f"replay {name}", justify="right")
    table.add_column("expected loss $", justify="right")
    for row in rows:
        cells = [f"{row[f'p_liq_{h}']:.2%} ±{row[f'se_{h}']:.2%}" for h in horizons]
        cells += ["LIQ" if row[f"hist_{n}"] else "ok" for n in report.historical]
        table.add_row(row["name"], *cells, loss_cell(row))
    out = console()
    out.print(table)
    out.print(f"book loss at {report.tail_level:.0%}: VaR {report.book_var:,.2f} USD, "
              f"expected shortfall {report.book_es:,.2f} USD")
    for name, hit in report.depegs.items():
        hit_keys = [names.get(k, k) for k, h in zip(report.keys, hit) if h]
        out.print(f"  depeg {name}: " + (f"liquidates {', '.join(hit_keys)}" if hit_keys else "no position liquidated"))
    for sym, note in notes.items():
        out.print(f"  {sym}: {note}")
    out.print(f"fan chart: {png}")
    return 0


def loss_cell(row: dict[str, Any]) -> str:
    """The expected-loss cell of one ``StressReport.rows()`` row. A position liquidatable at today's
    prices is marked so: its loss is that of a liquidation now (lending: the bonus on the debt
    repaid; perps: the collateral still left), and a perp whose losses already ate its collateral
    has nothing left to lose — "0.00" would read as "no risk", so it says what happened instead."""
    loss = float(row["expected_loss_usd"])
    if not row.get("liquidatable_now"):
        return f"{loss:,.2f}"
    if loss > 0:
        return f"{loss:,.2f} (liquidatable now)"
    return "liquidatable now (collateral already lost)"
