"""Plain records the store takes and gives, and the conversion of positions to snapshot rows and back.

Legs and perp terms are kept as JSON text: integers (``amount_raw``) as decimal strings so no JSON
reader can round them, floats as Python's ``repr`` (exact round trip; NaN/Infinity allowed)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from keeper.domain import Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.risk.health import nearest_liquidation
from keeper.store.models import ACCOUNT_KINDS, PositionSnapshot


@dataclass(frozen=True)
class PriceRoundRecord:
    """One Chainlink round (``getRoundData``), integers exactly as the feed returned them."""

    chain: str
    feed: str
    round_id: int
    answer: int
    started_at: int
    updated_at: int
    answered_in_round: int


@dataclass(frozen=True)
class AccountRecord:
    """An address the keeper knows. ``kind`` is one of ``ACCOUNT_KINDS``."""

    chain: str
    address: str
    kind: str
    label: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACCOUNT_KINDS:
            raise ValueError(f"account kind {self.kind!r} is not one of {', '.join(ACCOUNT_KINDS)}")


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _asset_json(a: Asset) -> dict[str, Any]:
    return {"symbol": a.symbol, "address": a.address, "decimals": a.decimals}


def _asset(d: dict[str, Any]) -> Asset:
    return Asset(d["symbol"], d["address"], int(d["decimals"]))


def legs_to_json(legs: tuple[Leg, ...]) -> str:
    return json.dumps([
        {**_asset_json(leg.asset), "side": leg.side.value, "amount_raw": str(leg.amount_raw),
         "price_usd": leg.price_usd, "liquidation_weight": leg.liquidation_weight}
        for leg in legs
    ], separators=(",", ":"))


def legs_from_json(text: str) -> tuple[Leg, ...]:
    return tuple(
        Leg(_asset(d), Side(d["side"]), int(d["amount_raw"]), float(d["price_usd"]),
            float(d["liquidation_weight"]))
        for d in json.loads(text)
    )


def perp_to_json(perp: PerpTerms | None) -> str | None:
    if perp is None:
        return None
    return json.dumps({
        "index": _asset_json(perp.index), "is_long": perp.is_long, "size_usd": perp.size_usd,
        "collateral_usd": perp.collateral_usd, "average_price": perp.average_price,
        "mark_price": perp.mark_price, "margin_fees_usd": perp.margin_fees_usd,
        "liquidation_fee_usd": perp.liquidation_fee_usd, "max_leverage": perp.max_leverage,
        "liquidation_state": perp.liquidation_state, "deposit_fee_bps": perp.deposit_fee_bps,
        "release_cap_usd": perp.release_cap_usd,
    }, separators=(",", ":"))


def perp_from_json(text: str | None) -> PerpTerms | None:
    if text is None:
        return None
    d = json.loads(text)
    return PerpTerms(
        index=_asset(d["index"]), is_long=bool(d["is_long"]), size_usd=float(d["size_usd"]),
        collateral_usd=float(d["collateral_usd"]), average_price=float(d["average_price"]),
        mark_price=float(d["mark_price"]), margin_fees_usd=float(d["margin_fees_usd"]),
        liquidation_fee_usd=float(d["liquidation_fee_usd"]), max_leverage=float(d["max_leverage"]),
        liquidation_state=int(d["liquidation_state"]), deposit_fee_bps=int(d.get("deposit_fee_bps", 0)),
        release_cap_usd=None if d.get("release_cap_usd") is None else float(d["release_cap_usd"]),
    )


def snapshot_row(position: Position, block_hash: str) -> dict[str, Any]:
    """The ``position_snapshot`` row (a dict, for a bulk insert) of one position."""
    try:
        point = nearest_liquidation(position)
    except ArithmeticError:  # e.g. a perp whose mark price reads 0: no meaningful point
        point = None
    if point is not None and not math.isfinite(point.price):
        point = None
    return {
        "chain": position.chain,
        "block": position.block,
        "block_hash": block_hash,
        "position_key": position.key,
        "protocol": str(position.protocol),
        "protocol_address": position.protocol_address,
        "account": position.account,
        "market": position.market,
        "health_wad": position.health_wad,
        "health": _finite(position.health),
        "collateral_usd": _finite(position.collateral_usd),
        "debt_usd": _finite(position.debt_usd),
        "liquidation_symbol": point.symbol if point else None,
        "liquidation_price": point.price if point else None,
        "distance": _finite(point.distance) if point else None,
        "price_ok": position.price_ok,
        "price_issue": position.price_issue,
        "legs": legs_to_json(position.legs),
        "perp": perp_to_json(position.perp),
        "label": position.label,
    }


def snapshot_to_position(row: PositionSnapshot) -> Position:
    return Position(
        chain=row.chain,
        protocol=Protocol(row.protocol),
        protocol_address=row.protocol_address,
        account=row.account,
        market=row.market,
        legs=legs_from_json(row.legs),
        health_wad=row.health_wad,
        block=row.block,
        perp=perp_from_json(row.perp),
        price_ok=row.price_ok,
        price_issue=row.price_issue,
        label=row.label,
    )
