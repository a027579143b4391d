"""The operator CLI: one module per command. Each module's ``register(subparsers)`` adds its parser
and sets two defaults, ``handler`` (``run(args, cfg) -> exit code``) and ``needs_config`` (offline
commands get ``cfg=None``); each handler parses, calls a service in ``keeper.app`` (or the daemon,
the devnet, the backtests) and renders. Every error reaches the operator as one line saying what is
wrong and how to fix it; the exit code comes from the error's class (``keeper.errors``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from keeper.cli import (
    backtest,
    check_config,
    demo,
    devnet,
    fit,
    plan,
    preliq,
    rebalance,
    reconcile,
    run,
    status,
    stress,
    train,
    watch,
)
from keeper.cli.render import err
from keeper.errors import KeeperError

if TYPE_CHECKING:
    from keeper.config import Config

COMMANDS = (devnet, status, watch, check_config, plan, rebalance, preliq, run, demo, reconcile, stress, train, backtest,
            fit)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keeper", description="Risk-driven collateral keeper.")
    p.add_argument("--config", type=Path, default=None, help="config file (default ./config.toml if present)")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = None
        if args.needs_config:
            from keeper.config import load_config

            cfg = load_config(args.config, resolve_chains=args.command != "devnet")
        handler: Callable[[argparse.Namespace, Config | None], int] = args.handler
        return handler(args, cfg)
    except KeeperError as e:
        err(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`keeper status --json | head`): not an error, and no traceback; what
        # is still buffered goes nowhere, and the exit code is the shell's for SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
