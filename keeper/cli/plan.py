"""`keeper plan`: what the keeper would do now and why (a dry run: nothing is sent)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from keeper.cli.args import add_model_inputs, vol_overrides
from keeper.cli.render import action_json, labels, print_action
from keeper.risk.first_loss import first_loss_view

if TYPE_CHECKING:
    from keeper.app.books import VaultBook
    from keeper.app.manual import Session
    from keeper.cli.args import Subparsers
    from keeper.config import Config
    from keeper.plan.policy import Plan


def register(sub: Subparsers) -> None:
    pl = sub.add_parser("plan", help="what the keeper would do now and why (dry run: nothing is sent)")
    pl.add_argument("--chain", default=None)
    pl.add_argument("--json", action="store_true")
    add_model_inputs(pl)
    pl.set_defaults(handler=run, needs_config=True)


def plan_positions(session: Session, plans: list[tuple[VaultBook, Plan]],
                   names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every position of the session, acted on or not: its key, short name (``names``: key -> name),
    P(liq) and the model's inputs (model, horizon, each asset's vol and its source)."""
    from keeper.views import shown_address

    names = names or {}
    inputs = session.risk.inputs()
    acted = ({a.position_key for _b, p in plans for a in p.actions}
             | {a.target_key for _b, p in plans for a in p.actions})
    p_liq = {k: v for _b, p in plans for k, v in p.p_liq.items()}
    out = []
    for book in session.books:
        for pos in book.positions:
            held = {pos.perp.index.symbol} if pos.perp is not None else {leg.asset.symbol for leg in pos.legs}
            out.append({"key": pos.key, "name": names.get(pos.key, pos.key),
                        "vault": shown_address(book.vault), "health": pos.health,
                        "p_liq": p_liq.get(pos.key, session.risk.p_liq(first_loss_view(pos))),
                        "acted_on": pos.key in acted,
                        "model": inputs["model"], "horizon_hours": inputs["horizon_hours"],
                        "vols": {s: v for s, v in inputs["vols"].items() if s in held}})
    return out


def run(args: argparse.Namespace, cfg: Config | None) -> int:
    from rich.markup import escape

    from keeper.app.manual import open_session, plan_now
    from keeper.app.session import chains_or_fail
    from keeper.names import position_names, with_names
    from keeper.views import console, shown_address

    assert cfg is not None  # needs_config: main() loaded it
    docs, out = [], console()
    for name in sorted(chains_or_fail(cfg, args.chain)):
        session = open_session(cfg, name, price_files=args.prices, vols=vol_overrides(args.vol))
        try:
            plans = plan_now(session)
        finally:
            session.close()
        names = position_names(session.snap.positions, labels(cfg))
        for w in session.warnings:
            print(f"keeper: warning: {name}: risk model: {w}", file=sys.stderr)
        if args.json:
            docs.append({"chain": session.chain, "block": session.snap.block, "model": session.risk.describe(),
                         "warnings": session.warnings, "positions": plan_positions(session, plans, names), "vaults": [
                {"vault": shown_address(book.vault), "actions": [action_json(a, names) for a in p.actions],
                 "skipped": list(map(list, p.skipped)), "alerts": [a.text for a in p.alerts], "p_liq": p.p_liq}
                for book, p in plans]})
            continue
        out.print(f"plan for {session.chain} at block {session.snap.block} (dry run: nothing is sent)")
        out.print(f"model: {escape(session.risk.describe())}")
        for book, p in plans:
            held = ", ".join(sorted(names.get(pos.key, pos.key) for pos in book.positions))
            out.print(f"\nvault {shown_address(book.vault)}: {len(book.positions)} position(s)"
                      + (f": {held}" if held else ""))
            if not p.actions:
                out.print("  no action: every position is inside its risk budget")
            for a in p.actions:
                print_action(out, a, names)
            for key, why in p.skipped:
                out.print(f"  skipped {names.get(key, key)}: {escape(with_names(why, names))}")
            for alert in p.alerts:
                out.print(f"  [red]ALERT[/red] {escape(with_names(str(alert), names))}")
    if args.json:
        print(json.dumps({"chains": docs}, indent=2, default=str))
    return 0
