"""`keeper watch`: read-only monitoring of any address, refreshed every block (no key needed)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from keeper.cli.render import labels, snapshot_json, snapshot_names
from keeper.errors import ConfigError

if TYPE_CHECKING:
    from keeper.cli.args import Subparsers
    from keeper.config import Config
    from keeper.protocols.reader import Snapshot


def register(sub: Subparsers) -> None:
    w = sub.add_parser("watch", help="read-only monitoring of any address, refreshed every block (no key needed)")
    w.add_argument("addresses", nargs="+", help="accounts to watch")
    w.add_argument("--protocol", action="append", choices=["aave_v3", "morpho_blue", "perp"],
                   help="only these protocols (repeatable; default: every configured one)")
    w.add_argument("--chain", default=None, help="the configured chain (needed when several are)")
    w.add_argument("--blocks", type=int, default=None, help="stop after this many blocks (default: run until Ctrl-C)")
    w.add_argument("--json", action="store_true", help="one JSON document per block")
    w.add_argument("--record", action="store_true", help="also write each block's snapshot to the store (store.url)")
    w.add_argument("--wide", action="store_true", help="every column in full (default: fit the terminal)")
    w.set_defaults(handler=run, needs_config=True)


def run(args: argparse.Namespace, cfg: Config | None) -> int:
    from keeper.app.session import watch
    from keeper.config import parse_address
    from keeper.views import console, positions_table

    assert cfg is not None  # needs_config: main() loaded it
    try:
        addresses = [parse_address(a) for a in args.addresses]
    except ValueError as e:
        raise ConfigError(f"watch: {e}") from None
    out = console(wide=args.wide)
    store = None
    if args.record:
        from keeper.store import Store

        store = Store.open(cfg.store.url)

    def show(snap: Snapshot) -> None:
        if store is not None:
            from keeper.app.recording import record_snapshot

            record_snapshot(store, snap, watched=addresses)
        if args.json:
            print(json.dumps(snapshot_json(snap, snapshot_names(snap, cfg))), flush=True)
        else:
            out.print(positions_table(snap.positions, f"{snap.chain} at block {snap.block}", labels(cfg),
                                      wide=args.wide))

    try:
        watch(cfg, addresses, chain=args.chain, protocols=args.protocol, on_snapshot=show, blocks=args.blocks)
    finally:
        if store is not None:
            store.close()
    return 0
