"""Plain records the store takes and gives, and the conversion of positions to snapshot rows and back.

Legs and perp terms are kept as JSON text: integers (``amount_raw``) as decimal strings so no JSON
reader can round them, floats as Python's ``repr`` (exact round trip; NaN/Infinity allowed)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from keeper.domain import MAX_UINT256, USD_ADDRESS, WAD, Address, Asset, Leg, PerpTerms, Position, Protocol, Side
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
    a = d["address"]  # rows written before the Address type may hold checksummed addresses
    return Asset(d["symbol"], USD_ADDRESS if a == USD_ADDRESS else Address(a), int(d["decimals"]))


def _legs_to_json_reference(legs: tuple[Leg, ...]) -> str:
    """``legs_to_json`` written the plain way (``json.dumps``); the tests hold the fast one to it."""
    return json.dumps([
        {**_asset_json(leg.asset), "side": leg.side.value, "amount_raw": str(leg.amount_raw),
         "price_usd": leg.price_usd, "liquidation_weight": leg.liquidation_weight}
        for leg in legs
    ], separators=(",", ":"))


# '{"symbol":..,"address":..,"decimals":..,"side":..' per asset and side, keyed by the plain field
# values (a tuple of str/int hashes in C; the frozen dataclass's __hash__ is Python code).
_LEG_HEADS: dict[tuple[str, str, int, str], str] = {}


def _leg_head(asset: Asset, side: Side) -> str:
    k = (asset.symbol, asset.address, asset.decimals, side)
    head = _LEG_HEADS.get(k)
    if head is None:
        if len(_LEG_HEADS) > 4096:  # assets are few; a bound all the same
            _LEG_HEADS.clear()
        head = json.dumps({**_asset_json(asset), "side": side.value}, separators=(",", ":"))[:-1]
        _LEG_HEADS[k] = head
    return head


def _json_number(x: float) -> str:
    """What ``json.dumps`` writes for a float (``float.__repr__``; NaN/Infinity spelt as it does)."""
    if type(x) is float or isinstance(x, float):
        if x != x:
            return "NaN"
        if x in (math.inf, -math.inf):
            return "Infinity" if x > 0 else "-Infinity"
        return float.__repr__(x)
    return json.dumps(x)


def legs_to_json(legs: tuple[Leg, ...]) -> str:
    """The legs as JSON text, the same characters as ``json.dumps`` of the leg objects (compact
    separators) but built from a cached head per (asset, side): this runs for every position of
    every recorded block."""
    return "[" + ",".join([_leg_json(leg) for leg in legs]) + "]"


def _leg_json(leg: Leg) -> str:
    price, weight = leg.price_usd, leg.liquidation_weight
    if type(price) is float and type(weight) is float and price - price == 0.0 and weight - weight == 0.0:
        # finite floats (the usual case): ``repr`` is what json.dumps writes
        return (f'{_leg_head(leg.asset, leg.side)},"amount_raw":"{leg.amount_raw}","price_usd":{price!r},'
                f'"liquidation_weight":{weight!r}}}')
    return (f'{_leg_head(leg.asset, leg.side)},"amount_raw":"{leg.amount_raw}","price_usd":'
            f'{_json_number(price)},"liquidation_weight":{_json_number(weight)}}}')


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


# position_snapshot's columns in the order ``SnapshotRows`` prepares them (``id`` is the database's).
SNAPSHOT_COLUMNS = ("chain", "block", "block_hash", "position_key", "protocol", "protocol_address", "account",
                    "market", "health_wad", "health", "collateral_usd", "debt_usd", "liquidation_symbol",
                    "liquidation_price", "distance", "price_ok", "price_issue", "legs", "perp", "label")


def _fingerprint(p: Position) -> tuple[Any, ...]:
    """Everything of a position a snapshot row is made from, except chain, block and its key; the
    cheap fields first (tuples compare element by element and stop at the first difference: a moved
    health never reaches the legs' dataclass comparisons)."""
    return (p.health_wad, p.price_ok, p.price_issue, p.label, p.protocol, p.protocol_address, p.account,
            p.market, p.legs, p.perp)


class SnapshotRows:
    """Prepared ``position_snapshot`` rows (tuples in ``SNAPSHOT_COLUMNS`` order, values as the
    driver takes them), the values of ``snapshot_row``.

    A position whose content did not change since the previous call (same legs, health, perp
    terms, flags and label: only the block moved) reuses that call's derived values (liquidation
    point, USD sums, JSON texts, the bound health integer) instead of computing them again. The
    cache holds the positions of the last call only, so it stays as large as one snapshot.
    ``health_wad`` converts the health integer to what the driver is given (the column type's bind
    processing, e.g. zero-padded text on SQLite)."""

    def __init__(self, health_wad: Callable[[int], Any] = lambda v: v) -> None:
        self._health_wad = health_wad
        self._last: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
        self.reused = self.built = 0  # counters of the last call

    def rows(self, block: int, block_hash: str, positions: Sequence[Position],
             keys: Sequence[str]) -> list[tuple[Any, ...]]:
        last, now = self._last, {}
        out = []
        reused = 0
        for p, key in zip(positions, keys, strict=True):
            fp = _fingerprint(p)
            hit = last.get(key)
            if hit is not None and hit[0] == fp:
                tail = hit[1]
                reused += 1
            else:
                tail = self._tail(p, key)
            now[key] = (fp, tail)
            out.append((p.chain, block, block_hash, *tail))
        self._last = now
        self.reused, self.built = reused, len(out) - reused
        return out

    def _tail(self, p: Position, key: str) -> tuple[Any, ...]:
        """``snapshot_row``'s values from ``position_key`` on, computed the same way (the tests hold
        the two equal): for a lending position one pass over the legs gives the USD sums and
        ``nearest_liquidation``'s point, with the same float operations in the same order."""
        point: tuple[str, float, float] | None = None  # symbol, price, distance
        if p.perp is None:
            coll: float = 0
            debt: float = 0
            weighted = debt_w = best = 0.0
            main = None
            for leg in p.legs:
                value = leg.amount_raw / 10**leg.asset.decimals * leg.price_usd
                if leg.side is Side.DEBT:
                    debt += value
                    debt_w += value
                else:
                    coll += value
                    if leg.liquidation_weight > 0:
                        w = value * leg.liquidation_weight
                        weighted += w
                        if main is None or w > best:
                            main, best = leg, w
            if main is not None and debt_w > 0:
                health = weighted / debt_w
                if health > 0:
                    m = 1.0 / health
                    point = (main.asset.symbol, main.price_usd * m, abs(m - 1.0))
            coll_usd, debt_usd = _finite(coll), _finite(debt)
        else:
            try:
                lp = nearest_liquidation(p)
            except ArithmeticError:
                lp = None
            if lp is not None:
                point = (lp.symbol, lp.price, lp.distance)
            coll_usd, debt_usd = _finite(p.perp.collateral_usd), _finite(p.perp.size_usd)
        if point is not None and not math.isfinite(point[1]):
            point = None
        wad = p.health_wad
        return (key, str(p.protocol), p.protocol_address, p.account, p.market, self._health_wad(wad),
                None if wad >= MAX_UINT256 else _finite(wad / WAD), coll_usd, debt_usd,
                point[0] if point else None, point[1] if point else None,
                _finite(point[2]) if point else None,
                p.price_ok, p.price_issue, legs_to_json(p.legs), perp_to_json(p.perp), p.label)


def snapshot_to_position(row: PositionSnapshot) -> Position:
    return Position(
        chain=row.chain,
        protocol=Protocol(row.protocol),
        protocol_address=Address(row.protocol_address),
        account=Address(row.account),
        market=row.market,
        legs=legs_from_json(row.legs),
        health_wad=row.health_wad,
        block=row.block,
        perp=perp_from_json(row.perp),
        price_ok=row.price_ok,
        price_issue=row.price_issue,
        label=row.label,
    )
