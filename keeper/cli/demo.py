"""`keeper demo`: replay a crash on a fresh devnet; summary and PNG timeline."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from keeper.cli.args import port
from keeper.cli.render import err

if TYPE_CHECKING:
    from keeper.cli.args import Subparsers
    from keeper.config import Config


def register(sub: Subparsers) -> None:
    demo = sub.add_parser("demo", help="replay a crash on a fresh devnet: the daemon protects alice's positions, "
                                       "a liquidator takes carol's unprotected twins; summary and PNG timeline")
    demo.add_argument("--out", type=Path, default=Path(".keeper/demo"), help="output directory (default .keeper/demo)")
    demo.add_argument("--port", type=port, default=None, help="anvil's RPC port (default: a free one)")
    demo.add_argument("--steps", type=int, default=90, help="crash steps, one 1 s block each (24..2000, default 90)")
    demo.set_defaults(handler=run, needs_config=False)


def run(args: argparse.Namespace, cfg: Config | None = None) -> int:
    from keeper.demo.runner import DemoOptions, run_demo

    try:
        result = run_demo(DemoOptions(out=args.out, port=args.port, steps=args.steps))
    except KeyboardInterrupt:
        err("demo interrupted; the daemon, the liquidator and anvil it started are stopped")
        return 130
    print(result.text)
    print(f"timeline: {result.timeline}")
    print(f"summary: {args.out / 'summary.json'} ({result.seconds:.0f} s)")
    if not result.ok:
        err(result.summary.verdict())
        return 1
    return 0
