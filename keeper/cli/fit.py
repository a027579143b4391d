"""``keeper fit``: fit the risk model's law on hourly price history and write the parameters file
that ``policy.model_params`` (the daemon, ``plan``, ``rebalance``, ``stress``) and
``keeper backtest --params`` read — so the benchmarks and the product run one set of numbers.

    keeper fit --prices ETHUSDT_binance_1h.csv BTCUSDT_binance_1h.csv --to 2022-01-01 --out fit.json

Only bars inside ``--from`` .. ``--to`` are used (tune on the past, report on what follows)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from keeper.errors import ConfigError
from keeper.risk.recipes import DEFAULT_FIT

if TYPE_CHECKING:
    from keeper.cli.args import Subparsers
    from keeper.config import Config


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("fit", help="fit the risk model's law on price history; write a parameters file",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prices", nargs="+", metavar="CSV",
                   help="hourly OHLC files (default: ETH and BTC from shared data)")
    p.add_argument("--model", choices=("tail", "analytic"), default="tail", help="which law (default tail)")
    p.add_argument("--from", dest="start", metavar="DATE")
    p.add_argument("--to", dest="end", metavar="DATE", help="first date NOT used (e.g. the report period's start)")
    p.add_argument("--jump-threshold", type=float, default=0.03, metavar="U",
                   help="hourly drops beyond this are jumps (default 0.03)")
    p.add_argument("--slow", type=float, default=0.0, metavar="LAMBDA",
                   help="also a slow EWMA with this lambda; vol = max(fast, slow) (default: none)")
    p.add_argument("--jump-regime", choices=("none", "vol", "ratio", "vol+ratio"), default=DEFAULT_FIT["jump_regime"],
                   help="jump rate conditioned on the vol regime (default vol: the benchmarks' pick)")
    p.add_argument("--exponent-scale", type=float, default=DEFAULT_FIT["exponent_scale"], metavar="K",
                   help="shrink the fitted regime exponents by K (default 0.25: the benchmarks' pick)")
    p.add_argument("--nu", default=str(DEFAULT_FIT["nu"]), metavar="NU|fit",
                   help="the diffusion's Student-t degrees of freedom, or 'fit' (default 10: the benchmarks' pick)")
    p.add_argument("--out", type=Path, required=True, help="the parameters file to write (JSON)")
    p.add_argument("--json", action="store_true", help="print the parameters as JSON")
    p.set_defaults(handler=run, needs_config=False)
    return p


def run(args: argparse.Namespace, cfg: Config | None = None) -> int:
    from keeper.backtest.fit import fit_from_files
    from keeper.backtest.prices import default_files
    from keeper.risk.params import params_document

    paths = [Path(p) for p in args.prices] if args.prices else default_files("ETH", "BTC")
    try:
        nu = None if str(args.nu).lower() == "fit" else float(args.nu)
    except ValueError:
        raise ConfigError(f"--nu: a number > 2 or 'fit', got {args.nu!r}") from None
    if nu is not None and not nu > 2:
        raise ConfigError("--nu must be > 2")
    law, meta = fit_from_files(paths, args.model, args.start, args.end, u=args.jump_threshold, slow=args.slow,
                               jump_regime=args.jump_regime, exponent_scale=args.exponent_scale, nu=nu)
    doc = params_document(law, {**meta, "command": "keeper " + shlex.join(sys.argv[1:])})
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as e:
        raise ConfigError(f"cannot write {args.out}: {e.strerror}") from None
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{law.describe()}\n  fitted on {meta['fitted_on']} ({args.start or 'start'} .. {args.end or 'end'})\n"
              f"  written to {args.out}; use it with policy.model_params or keeper backtest --params")
    return 0
