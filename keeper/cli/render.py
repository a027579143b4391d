"""How the commands print what the services return: positions as JSON, actions, journal reports."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from keeper.app.reconcile import ReconcileReport
    from keeper.config import Config
    from keeper.domain import Action, Address
    from keeper.protocols.reader import Snapshot


def err(msg: str) -> None:
    print(f"keeper: error: {msg}", file=sys.stderr)


def labels(cfg: Config) -> dict[Address, str]:
    """address -> the operator's label for it, from every chain's accounts."""
    return {a.address: a.label for c in cfg.chains.values() for a in c.accounts if a.label}


def snapshot_names(snap: Snapshot, cfg: Config | None) -> dict[str, str]:
    """key -> short name for every position of ``snap`` (one chain), as every command shows them."""
    from keeper.names import position_names

    return position_names(snap.positions, labels(cfg) if cfg is not None else None)


def snapshot_json(snap: Snapshot, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``status --json``: each position's row, with its ``name`` (``names``: key -> name; computed without
    labels when not given)."""
    from keeper.names import position_names
    from keeper.views import position_row

    names = names if names is not None else position_names(snap.positions)
    return {"chain": snap.chain, "block": snap.block, "block_hash": snap.block_hash, "timestamp": snap.timestamp,
            "positions": [{"name": names.get(p.key, p.key), **position_row(p)} for p in snap.positions],
            "prices": {addr: {"name": r.name, "price": r.price if r.round else None, "ok": r.ok, "issue": r.issue}
                       for addr, r in snap.prices.items()}}


def action_json(a: Action, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An action as JSON: positions by key (``position``, ``target``) and, given ``names``, by name."""
    doc = {"kind": a.kind.value, "position": a.position_key, "asset": a.asset.symbol, "asset_address": a.asset.address,
           "amount": a.amount, "amount_raw": str(a.amount_raw), "usd": a.usd, "target": a.target_key,
           "reason": {**a.reason.__dict__}}
    if a.swap is not None:  # a deleverage: what it sells, where, and the flash source
        w = a.swap
        doc["swap"] = {"sells": w.sell_raw / 10**w.collateral.decimals, "sells_asset": w.collateral.symbol,
                       "sell_raw": str(w.sell_raw), "min_out_raw": str(w.min_out_raw), "pool": w.pool,
                       "flash_source": w.flash_source, "swap_cost_usd": w.loss_usd}
    if names is not None:
        doc["position_name"] = names.get(a.position_key, a.position_key)
        doc["target_name"] = names.get(a.target_key, a.target_key) if a.target_key else None
    return doc


def print_action(out: Console, a: Action, names: Mapping[str, str] | None = None) -> None:
    """An action, its forecast and its reason; positions by name (``names``: key -> name), else by key."""
    from rich.markup import escape

    from keeper.names import with_names

    r, names = a.reason, names or {}
    target = names.get(a.target_key, a.target_key) if a.target_key else None
    out.print(f"[bold]{a.kind.value}[/bold] {a.amount:,.6g} {a.asset.symbol} (~{a.usd:,.2f} USD) on "
              f"{names.get(a.position_key, a.position_key)}" + (f" -> {target}" if target else ""))
    out.print(f"    P(liq {r.horizon_hours:g}h) {r.p_before:.3%} -> {r.p_after:.3%} (budget {r.epsilon:.2%}); "
              f"health {r.health_before:.4f} -> {r.health_after:.4f} (estimate)")
    if a.swap is not None:
        w = a.swap
        out.print(f"    sells {w.sell_raw / 10**w.collateral.decimals:,.6g} {w.collateral.symbol} in pool {w.pool} "
                  f"for at least {w.min_out_raw / 10**a.asset.decimals:,.6g} {a.asset.symbol}; flash loan from "
                  f"{w.flash_source}; swap and flash cost ~{w.loss_usd:,.2f} USD; no reserve used")
    out.print(f"    forecast: {escape(r.model)}")
    if r.note:
        out.print(f"    why: {escape(with_names(r.note, names))}")


def print_reconcile(out: Console, report: ReconcileReport) -> None:
    for what in ("mined", "reverted", "failed", "abandoned", "rebroadcast"):
        ids = getattr(report, what)
        if ids:
            out.print(f"journal: {what}: entries {', '.join(map(str, ids))}")
