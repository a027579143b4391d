"""How positions look to an operator: a rich table and a JSON document (``keeper status``/``watch``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from keeper.domain import Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.risk.health import nearest_liquidation


def _short(addr: str) -> str:
    return addr if len(addr) <= 12 else f"{addr[:6]}…{addr[-4:]}"


def market_label(p: Position) -> str:
    if p.protocol is Protocol.AAVE_V3:
        emode = p.extra.get("emode") if p.extra else None
        return f"pool e-mode {emode}" if emode else "pool"
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
        # Aave: health checked against the pool's getUserAccountData in the same read (None elsewhere)
        "health_verified": health_verified(p),
        "protocol_address": p.protocol_address,
        "legs": [{"asset": l.asset.symbol, "address": l.asset.address, "decimals": l.asset.decimals, "side": l.side.value,
                  "amount": l.amount, "amount_raw": str(l.amount_raw), "price_usd": l.price_usd,
                  "liquidation_weight": l.liquidation_weight} for l in p.legs],
        "perp": None if p.perp is None else {
            "index": p.perp.index.symbol, "is_long": p.perp.is_long, "size_usd": p.perp.size_usd,
            "collateral_usd": p.perp.collateral_usd, "average_price": p.perp.average_price,
            "mark_price": p.perp.mark_price, "margin_fees_usd": p.perp.margin_fees_usd,
            "liquidation_fee_usd": p.perp.liquidation_fee_usd, "max_leverage": p.perp.max_leverage,
            "liquidation_state": p.perp.liquidation_state},
    }


def health_verified(p: Position) -> bool | None:
    """True when the protocol's own health view confirmed the computed health in the same read;
    None where the read does not cross-check (Morpho and perps: their health is computed from the
    same state the protocol's liquidation uses)."""
    if p.protocol is not Protocol.AAVE_V3 or not p.extra or "verified" not in p.extra:
        return None
    return bool(p.extra["verified"]) and p.price_ok


def position_from_row(row: dict) -> Position:
    """The inverse of ``position_row`` (``keeper status --json``), for offline tools (``stress``)."""
    legs = tuple(Leg(Asset(l["asset"], l["address"], _decimals(l)), Side(l["side"]), int(l["amount_raw"]),
                     float(l["price_usd"]), float(l["liquidation_weight"])) for l in row["legs"])
    perp = None
    if row.get("perp"):
        p = row["perp"]
        perp = PerpTerms(Asset(p["index"], p["index"], 18), p["is_long"], p["size_usd"], p["collateral_usd"],
                         p["average_price"], p["mark_price"], p["margin_fees_usd"], p.get("liquidation_fee_usd", 5.0),
                         p.get("max_leverage", 50.0), p["liquidation_state"])
    return Position(chain=row["chain"], protocol=Protocol(row["protocol"]), protocol_address=row.get("protocol_address", ""),
                    account=row["account"], market=row["market"], legs=legs, health_wad=int(row["health_wad"]),
                    block=row["block"], perp=perp, price_ok=row["price_ok"], price_issue=row["price_issue"])


def _decimals(leg: dict) -> int:
    if "decimals" in leg:
        return int(leg["decimals"])
    raw, amount = int(leg["amount_raw"]), float(leg["amount"])  # older files: recover from the amounts
    return round(math.log10(raw / amount)) if raw and amount else 18


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
            unverified = (p.price_issue or "").startswith("health unverified")
            health, style = f"{health} ({'health unverified' if unverified else 'price unusable'})", "magenta"
        elif health_verified(p):
            health = f"{health} ✓"  # equal to the pool's getUserAccountData in the same read
        who = labels.get(p.account.lower())
        table.add_row(p.chain, p.protocol.value, f"{who} {_short(p.account)}" if who else _short(p.account),
                      market_label(p), _money(p.collateral_usd), _money(p.debt_usd), health,
                      f"{pt.symbol} {pt.price:,.2f}" if pt else "-", f"{pt.move:+.1%}" if pt else "-", style=style)
    return table


def console() -> Console:
    c = Console()
    return c if c.is_terminal else Console(width=160)  # piped or in CI: do not truncate to 80 columns
