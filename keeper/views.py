"""How positions look to an operator: a rich table and a JSON document (``keeper status``/``watch``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from keeper.domain import Position, Protocol
from keeper.risk.health import nearest_liquidation


def _short(addr: str) -> str:
    return addr if len(addr) <= 12 else f"{addr[:6]}…{addr[-4:]}"


def market_label(p: Position) -> str:
    if p.protocol is Protocol.AAVE_V3:
        return "pool"
    if p.protocol is Protocol.MORPHO_BLUE:
        coll = next((l.asset.symbol for l in p.legs if l.side.value == "collateral"), "?")
        debt = next((l.asset.symbol for l in p.legs if l.side.value == "debt"), "?")
        return f"{coll}/{debt} {_short(p.market)}"
    if p.perp is not None:
        return f"{p.perp.index.symbol} {'long' if p.perp.is_long else 'short'} {p.perp.size_usd / p.perp.collateral_usd:.1f}x"
    return p.market


def position_row(p: Position) -> dict:
    pt = nearest_liquidation(p)
    return {
        "key": p.key,
        "chain": p.chain,
        "protocol": p.protocol.value,
        "account": p.account,
        "market": p.market,
        "market_label": market_label(p),
        "block": p.block,
        "collateral_usd": p.collateral_usd,
        "debt_usd": p.debt_usd,
        "health": None if math.isinf(p.health) else p.health,
        "health_wad": str(p.health_wad),
        "liquidatable": p.liquidatable,
        "liquidation_asset": pt.symbol if pt else None,
        "liquidation_price": pt.price if pt else None,
        "distance_pct": round(pt.move * 100, 4) if pt else None,
        "price_ok": p.price_ok,
        "price_issue": p.price_issue,
        "legs": [{"asset": l.asset.symbol, "address": l.asset.address, "side": l.side.value,
                  "amount": l.amount, "amount_raw": str(l.amount_raw), "price_usd": l.price_usd,
                  "liquidation_weight": l.liquidation_weight} for l in p.legs],
        "perp": None if p.perp is None else {
            "index": p.perp.index.symbol, "is_long": p.perp.is_long, "size_usd": p.perp.size_usd,
            "collateral_usd": p.perp.collateral_usd, "average_price": p.perp.average_price,
            "mark_price": p.perp.mark_price, "margin_fees_usd": p.perp.margin_fees_usd,
            "liquidation_state": p.perp.liquidation_state},
    }


def _money(x: float) -> str:
    return f"{x:,.2f}"


def positions_table(positions: Sequence[Position], title: str = "positions", labels: dict[str, str] | None = None) -> Table:
    labels = {k.lower(): v for k, v in (labels or {}).items()}
    table = Table(title=title)
    for col, justify in (("chain", "left"), ("protocol", "left"), ("account", "left"), ("market", "left"),
                         ("collateral $", "right"), ("debt $", "right"), ("health", "right"),
                         ("liq. price", "right"), ("distance", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    for p in sorted(positions, key=lambda p: p.health):
        pt = nearest_liquidation(p)
        health = "∞" if math.isinf(p.health) else f"{p.health:.4f}"
        style = "bold red" if p.liquidatable else ("yellow" if p.health < 1.1 else None)
        if not p.price_ok:
            health, style = f"{health} (price unusable)", "magenta"
        who = labels.get(p.account.lower())
        table.add_row(p.chain, p.protocol.value, f"{who} {_short(p.account)}" if who else _short(p.account),
                      market_label(p), _money(p.collateral_usd), _money(p.debt_usd), health,
                      f"{pt.symbol} {pt.price:,.2f}" if pt else "-", f"{pt.move:+.1%}" if pt else "-", style=style)
    return table


def console() -> Console:
    c = Console()
    return c if c.is_terminal else Console(width=160)  # piped or in CI: do not truncate to 80 columns
