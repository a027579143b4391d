"""`keeper run`: the daemon: protect every configured position at every block."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from keeper.cli.args import add_model_inputs, vol_overrides

if TYPE_CHECKING:
    from keeper.cli.args import Subparsers
    from keeper.config import Config


def register(sub: Subparsers) -> None:
    run_p = sub.add_parser("run", help="the daemon: protect every configured position at every block")
    run_p.add_argument("--dry-run", action="store_true", help="plan and log every decision, send nothing")
    run_p.add_argument("--chain", default=None)
    run_p.add_argument("--replica", default=None, metavar="NAME",
                       help="run as one of several replicas on a PostgreSQL store: the one holding the chain's "
                            "keeper-key lease sends, the others plan and take over when it lapses")
    add_model_inputs(run_p)
    run_p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run_p.set_defaults(handler=run, needs_config=True)


def run(args: argparse.Namespace, cfg: Config | None) -> int:
    from keeper.daemon.keeper import Keeper
    from keeper.telemetry import setup_logging

    assert cfg is not None  # needs_config: main() loaded it
    setup_logging(args.log_level, json=cfg.telemetry.log_json)
    return Keeper(cfg, args.chain, dry_run=args.dry_run, price_files=args.prices,
                  vols=vol_overrides(args.vol), replica=args.replica).run()
