"""`keeper rebalance`: act on one position by hand: plan, simulate, and with --execute send."""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING

from keeper.cli.args import add_model_inputs, positive_float, vol_overrides
from keeper.cli.render import action_json, labels, print_action, print_reconcile
from keeper.errors import ConfigError, TemporaryError

if TYPE_CHECKING:
    from rich.console import Console

    from keeper.cli.args import Subparsers
    from keeper.config import Config
    from keeper.domain import Position


def register(sub: Subparsers) -> None:
    rb = sub.add_parser("rebalance", help="act on one position by hand: plan, simulate, and with --execute send")
    rb.add_argument("position", help="the position's name as 'keeper status' shows it (e.g. bob-aave); its key, or a "
                                     "unique fragment of the key (0x15d34a:aave), also work")
    mode = rb.add_mutually_exclusive_group()
    mode.add_argument("--target-health", type=positive_float, default=None, help="top up or repay to this health")
    mode.add_argument("--amount", nargs=2, metavar=("N", "ASSET"), default=None,
                      help="top up N of ASSET (repay when ASSET is the position's debt)")
    mode.add_argument("--withdraw-excess", action="store_true", help="release what the risk budget allows")
    rb.add_argument("--execute", action="store_true", help="send it through the vault (default: simulate only)")
    rb.add_argument("--chain", default=None)
    rb.add_argument("--json", action="store_true")
    add_model_inputs(rb)
    rb.set_defaults(handler=run, needs_config=True)


def _human(as_json: bool) -> Console:
    """Where the human lines go: stdout, or stderr in --json mode (stdout then holds one JSON document)."""
    from rich.console import Console

    from keeper.views import console

    if not as_json:
        return console()
    c = Console(stderr=True)
    return c if c.is_terminal else Console(stderr=True, width=160)


def _finite(x: float) -> float | None:
    """A health for JSON: None for a position with nothing borrowed (infinite health), as `status --json`."""
    return None if math.isinf(x) else x


def run(args: argparse.Namespace, cfg: Config | None) -> int:
    from rich.markup import escape

    from keeper.app.execution import execute
    from keeper.app.manual import (
        find,
        manual_action,
        open_session,
        plan_now,
        reconcile_journal,
        simulate_on_chain,
        why_no_action,
    )
    from keeper.names import position_names, with_names

    assert cfg is not None  # needs_config: main() loaded it
    session = open_session(cfg, args.chain, price_files=args.prices, vols=vol_overrides(args.vol))
    out = _human(args.json)

    def nothing(pos: Position, name: str, why: list[str]) -> int:
        if args.json:
            print(json.dumps({"position": pos.key, "name": name, "action": None, "health": _finite(pos.health),
                              "why": why, "simulated": False, "sent": False}, default=str))
        return 0

    try:
        if args.execute:
            # Start-up: what a previous run left in the journal is settled before any new action.
            # It loads the key: without one, --execute stops here, before anything is planned or sent.
            report = reconcile_journal(cfg, session)
            print_reconcile(out, report)
            if report.rebroadcast:
                raise TemporaryError("earlier transactions are still pending; run 'keeper reconcile' and retry")
            if report.mined or report.rebroadcast:
                session.close()
                session = open_session(cfg, args.chain, price_files=args.prices, vols=vol_overrides(args.vol))
        pos, book = find(session, args.position, labels(cfg))
        names = position_names(session.snap.positions, labels(cfg))
        name = names.get(pos.key, pos.key)
        if args.target_health is not None and pos.price_ok and pos.health >= args.target_health:
            out.print(f"{name}: already at health {pos.health:.4f} >= {args.target_health:g}: nothing to do")
            return nothing(pos, name, [f"health {pos.health:.4f} >= target {args.target_health:g}"])
        if args.target_health or args.amount or args.withdraw_excess:
            amount = asset = None
            if args.amount:
                try:
                    amount, asset = float(args.amount[0]), args.amount[1]
                except ValueError:
                    raise ConfigError(f"--amount: {args.amount[0]!r} is not a number") from None
                if not amount > 0:
                    raise ConfigError("--amount must be positive")
            action = manual_action(session, pos, book, target_health=args.target_health, amount=amount, asset=asset,
                                   withdraw_excess=args.withdraw_excess, name=name)
        else:
            plans = plan_now(session)
            planned = [a for b, p in plans for a in p.actions if a.position_key == pos.key]
            if not planned:
                out.print(f"{name}: the planner has nothing to do (health {pos.health:.4f}); "
                          f"use --target-health, --amount or --withdraw-excess to act anyway")
                why = [with_names(line, names) for line in why_no_action(session, plans, pos)]
                for line in why:
                    out.print(f"    why: {escape(line)}")
                return nothing(pos, name, why)
            action = planned[0]
        print_action(out, action, names)
        # raises Reverted (decoded) before anything is sent; a dry run calls from the vault's keeper(), keyless
        sender = simulate_on_chain(cfg, session, book, action, with_key=args.execute)
        out.print("    simulation (eth_call through the vault): ok")
        if not args.execute:
            out.print("dry run: add --execute to send it")
            if args.json:
                print(json.dumps({"action": action_json(action, names), "simulated": True, "from": sender,
                                  "sent": False, "health_before": _finite(pos.health)}, default=str))
            return 0
        item, fresh, requests = execute(cfg, session, book, action)
        rc = item.receipt()
        out.print(f"mined in block {rc.block}: {rc.tx_hash} (gas {rc.gas_used:,}, "
                  f"{len(item.signed().attempts)} attempt(s))")
        for key, router, settled in requests:
            out.print(f"    GMX PositionRouter request {key} ({router}): "
                      + ("executed or cancelled by GMX's position keepers" if settled else
                         "still pending; the daemon follows it (executes it from the vault once GMX allows)"))
        if fresh is not None:
            out.print(f"{name}: health now {fresh.health:.4f} (was {pos.health:.4f}), as the protocol reports it")
        if args.json:
            print(json.dumps({"action": action_json(action, names), "simulated": True, "sent": True, "tx": rc.tx_hash,
                              "requests": [{"key": k, "position_router": r, "settled": s} for k, r, s in requests],
                              "health_before": pos.health, "health_after": fresh.health if fresh else None},
                             default=str))
        return 0
    finally:
        session.close()
