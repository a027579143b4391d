"""`keeper train` and `keeper evaluate`: the learned P(liquidation) model from the command line.

``register(subparsers)`` adds both subcommands (``keeper.cli``'s one registration style: the
parser's defaults carry ``handler`` and ``needs_config``). Handlers print their results and return
an exit code; bad input raises ``keeper.errors.ConfigError``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from keeper.cli.progress import Progress
from keeper.errors import ConfigError
from keeper.risk.recipes import DEFAULT_MAX_ITER, DEFAULT_MAX_LEAF_NODES, DEFAULT_MIN_SAMPLES_LEAF

if TYPE_CHECKING:
    from keeper.cli.args import Subparsers
    from keeper.config import Config

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


def _names(paths: list[Path]) -> str:
    """'ETHUSDT_1h.csv, BTCUSDT_1h.csv' -> what a progress line calls them (file stems, at most 3)."""
    names = [p.stem for p in paths]
    return ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")


def _check_date(text: str | None, what: str) -> str | None:
    if text is None:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?)?", text.strip()):
        raise ConfigError(f"bad {what} date {text!r}", hint="use YYYY-MM-DD")
    return text.strip()


def _feature_list(text: str | None) -> list[str] | None:
    """None (the default set), 'all', or a comma-separated list of feature names."""
    from keeper.risk.features import FEATURE_NAMES
    if text is None:
        return None
    if text.strip().lower() == "all":
        return list(FEATURE_NAMES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown or not names:
        raise ConfigError(f"unknown features {unknown or text!r}", hint="choose among: " + ", ".join(FEATURE_NAMES))
    return names


def register(subparsers: Subparsers) -> None:
    """Add `train` and `evaluate` to an argparse subparsers object."""
    tr = subparsers.add_parser("train", help="fit the learned P(liquidation) model on price history")
    tr.add_argument("--prices", nargs="+", metavar="CSV", default=None,
                    help="hourly OHLC files (default: ETH and BTC from shared/data/prices)")
    tr.add_argument("--horizon", default="24h", help="liquidation horizon, e.g. 24h or 2d (default 24h)")
    tr.add_argument("--out", default="models/", help="directory for the model bundle (default models/)")
    tr.add_argument("--split", default="2021-01-01",
                    help="train on bars before this date; 'none' uses all bars (default 2021-01-01)")
    tr.add_argument("--max-samples", type=int, default=150_000, help="training positions per price file")
    tr.add_argument("--max-iter", type=int, default=DEFAULT_MAX_ITER,
                    help=f"boosting iterations (default {DEFAULT_MAX_ITER})")
    tr.add_argument("--max-leaf-nodes", type=int, default=DEFAULT_MAX_LEAF_NODES,
                    help=f"leaves per tree (default {DEFAULT_MAX_LEAF_NODES})")
    tr.add_argument("--min-samples-leaf", type=int, default=DEFAULT_MIN_SAMPLES_LEAF,
                    help=f"fewest training positions per leaf (default {DEFAULT_MIN_SAMPLES_LEAF})")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--features", default=None, metavar="NAME,NAME",
                    help="the model's inputs, comma-separated names of keeper.risk.features.FEATURE_NAMES "
                         "(default: DEFAULT_FEATURES; 'all': every computable feature)")
    tr.add_argument("--calibration", choices=("isotonic", "sigmoid", "none"), default="isotonic",
                    help="calibration of the boosted scores, fitted forward in time (default isotonic)")
    tr.add_argument("--json", action="store_true", help="print the result as JSON")
    tr.set_defaults(handler=run_train, needs_config=False)

    ev = subparsers.add_parser("evaluate", help="score a trained model on a held-out period vs baselines")
    ev.add_argument("--prices", nargs="+", metavar="CSV", default=None,
                    help="hourly OHLC files (default: ETH and BTC from shared/data/prices)")
    ev.add_argument("--model", required=True, help="model bundle written by `keeper train`")
    ev.add_argument("--test-from", default="2021-01-01", help="first date of the held-out period")
    ev.add_argument("--test-to", default=None, help="end of the held-out period (default: end of data)")
    ev.add_argument("--out", default=None, metavar="DIR",
                    help="write calibration charts (PNG, one per asset and one pooled) to DIR")
    ev.add_argument("--params", default=None, metavar="JSON",
                    help="also score the product's law from a `keeper fit` file (forecast 'tail')")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(handler=run_evaluate, needs_config=False)


def run_train(args: argparse.Namespace, cfg: Config | None = None) -> int:
    from keeper.backtest.training import load_model, train
    horizon = parse_horizon(args.horizon)
    split = None if str(args.split).lower() == "none" else _check_date(args.split, "split")
    if args.max_samples < 1000:
        raise ConfigError("--max-samples must be at least 1000")
    if not 10 <= args.max_iter <= 5000:
        raise ConfigError("--max-iter must be within 10-5000")
    if not 2 <= args.max_leaf_nodes <= 1024:
        raise ConfigError("--max-leaf-nodes must be within 2-1024")
    if not 1 <= args.min_samples_leaf <= 1_000_000:
        raise ConfigError("--min-samples-leaf must be within 1-1000000")
    paths = _price_paths(args.prices)
    features = _feature_list(args.features)
    t0 = time.perf_counter()
    progress = Progress("train", json_mode=args.json)
    with progress.phase(f"{_names(paths)}, horizon {horizon}h: samples, fit, calibration"):
        path = train(paths, horizon, Path(args.out), split, max_samples=args.max_samples,
                     seed=args.seed, max_iter=args.max_iter, calibration=args.calibration, features=features,
                     model_params={"max_leaf_nodes": args.max_leaf_nodes,
                                   "min_samples_leaf": args.min_samples_leaf})
    bundle = load_model(path)
    info = {"model": str(path), "horizon_hours": horizon, "trained_on": list(bundle["trained_on"]),
            "train_window": bundle["train_window"], "feature_names": bundle["feature_names"],
            "data_hash": bundle["data_hash"], "train_hash": bundle["train_hash"], "samples": bundle["n_samples"],
            "event_rate": round(bundle["event_rate"], 5), "seconds": round(time.perf_counter() - t0, 1)}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"model written to {path}")
        print(f"  horizon {horizon}h, trained on {info['trained_on'][0]} .. {info['trained_on'][1]}, "
              f"{info['samples']} positions (event rate {info['event_rate']:.4f}), {info['seconds']} s")
        print(f"  features ({len(info['feature_names'])}): {', '.join(info['feature_names'])}")
        print(f"  data hash {info['data_hash']} (files); train hash {info['train_hash']} (files + parameters)")
    return 0


def run_evaluate(args: argparse.Namespace, cfg: Config | None = None) -> int:
    from keeper.backtest.training import evaluate, format_report
    test_from = _check_date(args.test_from, "test-from")
    assert test_from is not None  # --test-from has a default
    test_to = _check_date(args.test_to, "test-to")
    out = None if args.out is None else Path(args.out)
    law, source = None, ""
    if args.params:
        from keeper.app.risk_setup import read_params
        law, meta = read_params(Path(args.params))
        source = f"{args.params} ({meta.get('fitted_on', '?')})"
    paths = _price_paths(args.prices)
    with Progress("evaluate", json_mode=args.json).phase(f"scoring {Path(args.model).name} on {_names(paths)}"):
        report = evaluate(paths, Path(args.model), test_from, test_to, out_dir=out, law=law, law_source=source)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
