"""`keeper status`: every watched position: health, liquidation price, distance."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from keeper.cli.render import labels, snapshot_json, snapshot_names

if TYPE_CHECKING:
    from keeper.cli.args import Subparsers
    from keeper.config import Config


def register(sub: Subparsers) -> None:
    st = sub.add_parser("status", help="every watched position: health, liquidation price, distance")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--chain", default=None, help="only this configured chain")
    st.add_argument("--wide", action="store_true",
                    help="every column in full (default: fit the terminal; health, liquidation price and distance "
                         "are never cut)")
    st.set_defaults(handler=run, needs_config=True)


def run(args: argparse.Namespace, cfg: Config | None) -> int:
    from keeper.app.session import read_status
    from keeper.views import console, positions_table, shown_address

    assert cfg is not None  # needs_config: main() loaded it
    snaps = read_status(cfg, args.chain)
    if args.json:
        print(json.dumps({"chains": [snapshot_json(s, snapshot_names(s, cfg)) for s in snaps]}, indent=2))
        return 0
    out = console(wide=args.wide)
    for s in snaps:
        out.print(positions_table(s.positions, f"{s.chain} at block {s.block}", labels(cfg), wide=args.wide))
        bad = [r for r in s.prices.values() if not r.ok]
        for r in bad:
            out.print(f"[magenta]price unusable: {r.name} ({shown_address(r.feed)}): {r.issue}[/magenta]")
    return 0
