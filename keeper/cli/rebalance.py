"""`keeper rebalance`: act on one position by hand: plan, simulate, and with --execute send."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from keeper.cli.args import add_model_inputs, positive_float, vol_overrides
from keeper.cli.render import action_json, print_action, print_reconcile
from keeper.errors import ConfigError, TemporaryError

if TYPE_CHECKING:
    from keeper.cli.args import Subparsers
    from keeper.config import Config


def register(sub: Subparsers) -> None:
    rb = sub.add_parser("rebalance", help="act on one position by hand: plan, simulate, and with --execute send")
    rb.add_argument("position", help="the position's key, or a unique fragment of it (account, protocol, market)")
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


def run(args: argparse.Namespace, cfg: Config | None) -> int:
    from keeper.app.manual import (
        execute,
        find,
        manual_action,
        open_session,
        plan_now,
        reconcile_journal,
        simulate_on_chain,
    )
    from keeper.views import console

    assert cfg is not None  # needs_config: main() loaded it
    session = open_session(cfg, args.chain, price_files=args.prices, vols=vol_overrides(args.vol))
    out = console()
    try:
        if args.execute:
            # Start-up: what a previous run left in the journal is settled before any new action.
            report = reconcile_journal(cfg, session)
            print_reconcile(out, report)
            if report.rebroadcast:
                raise TemporaryError("earlier transactions are still pending; run 'keeper reconcile' and retry")
            if report.mined or report.rebroadcast:
                session.close()
                session = open_session(cfg, args.chain, price_files=args.prices, vols=vol_overrides(args.vol))
        pos, book = find(session, args.position)
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
                                   withdraw_excess=args.withdraw_excess)
        else:
            planned = [a for b, p in plan_now(session) for a in p.actions if a.position_key == pos.key]
            if not planned:
                out.print(f"{pos.key}: the planner has nothing to do (health {pos.health:.4f}); "
                          f"use --target-health, --amount or --withdraw-excess to act anyway")
                return 0
            action = planned[0]
        print_action(out, action)
        simulate_on_chain(cfg, session, book, action)  # raises Reverted (decoded) before anything is sent
        out.print("    simulation (eth_call through the vault): ok")
        if not args.execute:
            out.print("dry run: add --execute to send it")
            return 0
        tx, fresh, requests = execute(cfg, session, book, action)
        rc = tx.receipt
        assert rc is not None  # execute returns a mined transaction
        out.print(f"mined in block {int(rc['blockNumber'], 16)}: {tx.mined_hash} (gas {int(rc['gasUsed'], 16):,}, "
                  f"{len(tx.attempts)} attempt(s))")
        for key, router, settled in requests:
            out.print(f"    GMX PositionRouter request {key} ({router}): "
                      + ("executed or cancelled by GMX's position keepers" if settled else
                         "still pending; the daemon follows it (executes it from the vault once GMX allows)"))
        if fresh is not None:
            out.print(f"health now {fresh.health:.4f} (was {pos.health:.4f}), as the protocol reports it")
        if args.json:
            print(json.dumps({"action": action_json(action), "tx": tx.mined_hash,
                              "requests": [{"key": k, "position_router": r, "settled": s} for k, r, s in requests],
                              "health_before": pos.health, "health_after": fresh.health if fresh else None},
                             default=str))
        return 0
    finally:
        session.close()
