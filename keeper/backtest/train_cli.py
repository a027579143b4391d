"""`keeper train` and `keeper evaluate`: the learned P(liquidation) model from the command line.

``register(subparsers)`` adds both subcommands; each parser carries its handler in
``args.keeper_handler`` (``handle(args)`` dispatches on it). Handlers print their results and
return an exit code; bad input raises ``keeper.errors.ConfigError``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from keeper.errors import ConfigError

DEFAULT_SYMBOLS = ("ETH", "BTC")


def parse_horizon(text: str) -> int:
    """'24h' -> 24, '1d' -> 24, '36' -> 36 (hours). Raises ConfigError on anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*([hd]?)\s*", str(text).lower())
    if not m:
        raise ConfigError(f"bad horizon {text!r}", hint="use hours or days, e.g. 24h or 2d")
    hours = int(m.group(1)) * (24 if m.group(2) == "d" else 1)
    if not 1 <= hours <= 24 * 90:
        raise ConfigError(f"horizon {text!r} out of range", hint="between 1h and 90d")
    return hours


def _price_paths(given: list[str] | None) -> list[Path]:
    if given:
        paths = [Path(p) for p in given]
        for p in paths:
            if not p.is_file():
                raise ConfigError(f"no price file at {p}")
        return paths
    from keeper.backtest.prices import default_files
    return default_files(*DEFAULT_SYMBOLS)


def _check_date(text: str | None, what: str) -> str | None:
    if text is None:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?)?", text.strip()):
        raise ConfigError(f"bad {what} date {text!r}", hint="use YYYY-MM-DD")
    return text.strip()


def register(subparsers) -> None:
    """Add `train` and `evaluate` to an argparse subparsers object."""
    tr = subparsers.add_parser("train", help="fit the learned P(liquidation) model on price history")
    tr.add_argument("--prices", nargs="+", metavar="CSV", default=None,
                    help="hourly OHLC files (default: ETH and BTC from shared/data/prices)")
    tr.add_argument("--horizon", default="24h", help="liquidation horizon, e.g. 24h or 2d (default 24h)")
    tr.add_argument("--out", default="models/", help="directory for the model bundle (default models/)")
    tr.add_argument("--split", default="2021-01-01",
                    help="train on bars before this date; 'none' uses all bars (default 2021-01-01)")
    tr.add_argument("--max-samples", type=int, default=150_000, help="training positions per price file")
    tr.add_argument("--max-iter", type=int, default=300, help="boosting iterations (default 300)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--json", action="store_true", help="print the result as JSON")
    tr.set_defaults(keeper_handler=handle_train)

    ev = subparsers.add_parser("evaluate", help="score a trained model on a held-out period vs baselines")
    ev.add_argument("--prices", nargs="+", metavar="CSV", default=None,
                    help="hourly OHLC files (default: ETH and BTC from shared/data/prices)")
    ev.add_argument("--model", required=True, help="model bundle written by `keeper train`")
    ev.add_argument("--test-from", default="2021-01-01", help="first date of the held-out period")
    ev.add_argument("--test-to", default=None, help="end of the held-out period (default: end of data)")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(keeper_handler=handle_evaluate)


def handle(args: argparse.Namespace) -> int:
    return args.keeper_handler(args)


def handle_train(args: argparse.Namespace) -> int:
    from keeper.backtest.training import load_model, train
    horizon = parse_horizon(args.horizon)
    split = None if str(args.split).lower() == "none" else _check_date(args.split, "split")
    if args.max_samples < 1000:
        raise ConfigError("--max-samples must be at least 1000")
    if not 10 <= args.max_iter <= 5000:
        raise ConfigError("--max-iter must be within 10-5000")
    paths = _price_paths(args.prices)
    t0 = time.perf_counter()
    path = train(paths, horizon, Path(args.out), split, max_samples=args.max_samples,
                 seed=args.seed, max_iter=args.max_iter)
    bundle = load_model(path)
    info = {"model": str(path), "horizon_hours": horizon, "trained_on": list(bundle["trained_on"]),
            "train_hash": bundle["train_hash"], "samples": bundle["n_samples"],
            "event_rate": round(bundle["event_rate"], 5), "seconds": round(time.perf_counter() - t0, 1)}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"model written to {path}")
        print(f"  horizon {horizon}h, trained on {info['trained_on'][0]} .. {info['trained_on'][1]}, "
              f"{info['samples']} positions (event rate {info['event_rate']:.4f}), {info['seconds']} s")
        print(f"  data hash {info['train_hash']}")
    return 0


def handle_evaluate(args: argparse.Namespace) -> int:
    from keeper.backtest.training import evaluate, format_report
    test_from = _check_date(args.test_from, "test-from")
    test_to = _check_date(args.test_to, "test-to")
    report = evaluate(_price_paths(args.prices), Path(args.model), test_from, test_to)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
