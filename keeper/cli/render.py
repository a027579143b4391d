"""How the commands print what the services return: positions as JSON, actions, journal reports."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from keeper.views import position_row

if TYPE_CHECKING:
    from rich.console import Console

    from keeper.app.reconcile import ReconcileReport
    from keeper.config import Config
    from keeper.domain import Action
    from keeper.protocols.reader import Snapshot


def err(msg: str) -> None:
    print(f"keeper: error: {msg}", file=sys.stderr)


def labels(cfg: Config) -> dict[str, str]:
    return {a.address: a.label for c in cfg.chains.values() for a in c.accounts if a.label}


def snapshot_json(snap: Snapshot) -> dict[str, Any]:
    return {"chain": snap.chain, "block": snap.block, "block_hash": snap.block_hash, "timestamp": snap.timestamp,
            "positions": [position_row(p) for p in snap.positions],
            "prices": {addr: {"name": r.name, "price": r.price if r.round else None, "ok": r.ok, "issue": r.issue}
                       for addr, r in snap.prices.items()}}


def action_json(a: Action) -> dict[str, Any]:
    return {"kind": a.kind.value, "position": a.position_key, "asset": a.asset.symbol, "asset_address": a.asset.address,
            "amount": a.amount, "amount_raw": str(a.amount_raw), "usd": a.usd, "target": a.target_key,
            "reason": {**a.reason.__dict__}}


def print_action(out: Console, a: Action) -> None:
    from rich.markup import escape

    r = a.reason
    out.print(f"[bold]{a.kind.value}[/bold] {a.amount:,.6g} {a.asset.symbol} (~{a.usd:,.2f} USD) on {a.position_key}"
              + (f" -> {a.target_key}" if a.target_key else ""))
    out.print(f"    P(liq {r.horizon_hours:g}h) {r.p_before:.3%} -> {r.p_after:.3%} (budget {r.epsilon:.2%}); "
              f"health {r.health_before:.4f} -> {r.health_after:.4f} (estimate)")
    out.print(f"    forecast: {escape(r.model)}")
    if r.note:
        out.print(f"    why: {escape(r.note)}")


def print_reconcile(out: Console, report: ReconcileReport) -> None:
    for what in ("mined", "reverted", "failed", "abandoned", "rebroadcast"):
        ids = getattr(report, what)
        if ids:
            out.print(f"journal: {what}: entries {', '.join(map(str, ids))}")
