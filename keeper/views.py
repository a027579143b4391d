"""How positions look to an operator: a rich table and a JSON document (``keeper status``/``watch``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from eth_utils.address import to_checksum_address
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import TextType

from keeper.domain import USD_ADDRESS, ZERO_ADDRESS, Address, Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.names import PROTOCOL_WORD, names_by_chain
from keeper.risk.health import nearest_liquidation


@lru_cache(maxsize=4096)
def shown_address(address: str) -> str:
    """An address as operators read it: EIP-55 checksummed (the keeper holds ``Address``, lower case).
    Anything that is not an address (``"usd"``, ``""``) is shown as it is. Cached: a keccak each, and
    output shows the same few addresses over and over."""
    try:
        return to_checksum_address(Address(address))
    except ValueError:
        return address


def _short(addr: str) -> str:
    return addr if len(addr) <= 12 else f"{addr[:6]}…{addr[-4:]}"


def market_label(p: Position) -> str:
    if p.protocol is Protocol.AAVE_V3:
        emode = p.extra.get("emode") if p.extra else None
        return f"pool e-mode {emode}" if emode else "pool"
    if p.protocol is Protocol.MORPHO_BLUE:
        coll = next((leg.asset.symbol for leg in p.legs if leg.side.value == "collateral"), "?")
        debt = next((leg.asset.symbol for leg in p.legs if leg.side.value == "debt"), "?")
        return f"{coll}/{debt} {_short(p.market)}"
    if p.perp is not None:
        side = "long" if p.perp.is_long else "short"
        return f"{p.perp.index.symbol} {side} {p.perp.size_usd / p.perp.collateral_usd:.1f}x"
    return p.market


def position_row(p: Position) -> dict[str, Any]:
    pt = nearest_liquidation(p)
    return {
        "key": p.key,
        "chain": p.chain,
        "protocol": p.protocol.value,
        "account": shown_address(p.account),
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
        "protocol_address": shown_address(p.protocol_address),
        "legs": [{"asset": leg.asset.symbol, "address": leg.asset.address, "decimals": leg.asset.decimals,
                  "side": leg.side.value, "amount": leg.amount, "amount_raw": str(leg.amount_raw),
                  "price_usd": leg.price_usd, "liquidation_weight": leg.liquidation_weight} for leg in p.legs],
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


def position_from_row(row: dict[str, Any]) -> Position:
    """The inverse of ``position_row`` (``keeper status --json``), for offline tools (``stress``)."""
    legs = tuple(Leg(Asset(leg["asset"], _asset_address(leg["address"]), _decimals(leg)), Side(leg["side"]),
                     int(leg["amount_raw"]), float(leg["price_usd"]), float(leg["liquidation_weight"]))
                 for leg in row["legs"])
    perp = None
    if row.get("perp"):
        p = row["perp"]
        perp = PerpTerms(Asset(p["index"], p["index"], 18), p["is_long"], p["size_usd"], p["collateral_usd"],
                         p["average_price"], p["mark_price"], p["margin_fees_usd"], p.get("liquidation_fee_usd", 5.0),
                         p.get("max_leverage", 50.0), p["liquidation_state"])
    return Position(chain=row["chain"], protocol=Protocol(row["protocol"]),
                    protocol_address=Address(row["protocol_address"]) if row.get("protocol_address") else ZERO_ADDRESS,
                    account=Address(row["account"]), market=row["market"],
                    legs=legs, health_wad=int(row["health_wad"]), block=row["block"], perp=perp,
                    price_ok=row["price_ok"], price_issue=row["price_issue"])


def _asset_address(text: str) -> Address:
    return USD_ADDRESS if text == USD_ADDRESS else Address(text)


def _decimals(leg: dict[str, Any]) -> int:
    if "decimals" in leg:
        return int(leg["decimals"])
    raw, amount = int(leg["amount_raw"]), float(leg["amount"])  # older files: recover from the amounts
    return round(math.log10(raw / amount)) if raw and amount else 18


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _money_short(x: float) -> str:
    """``_money`` abbreviated for narrow terminals: 1234567.8 -> ``1.23M``."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return _money(x)


_PROTOCOL_SHORT = PROTOCOL_WORD
_MIN_ELIDED = 8  # a shrunk market/account cell keeps at least this many columns
_UNBOUNDED = 100_000  # "as wide as it wants" when measuring a table's natural width


@dataclass(frozen=True)
class _Layout:
    """Which columns a positions table shows, and how much of each. Health, liquidation price and
    distance are always shown in full; everything else may be abbreviated, elided or dropped."""

    chain: bool = True
    protocol: str = "full"  # "full" | "short" | "" (dropped)
    # "full" (whole address) | "short" (label + 0x1234…abcd) | "compact" (label or 0x1234…abcd) | "" (dropped)
    account: str = "short"
    market: str = "short"  # "full" (whole market id) | "short" (market_label) | "" (dropped)
    money: str = "full"  # "full" | "short" (1.23M)
    collateral: bool = True
    debt: bool = True
    edge: bool = True  # the table's outer border and padding
    elide: tuple[str, ...] = ()  # columns that may be cut (with …) to fit: "market", "account", "name"


_WIDE = _Layout(account="full", market="full")


def _narrow_layouts(single_chain: bool) -> list[_Layout]:
    """Today's look first, then ever more compact: the least important columns go first."""
    steps = [_Layout()]

    def then(**kw: Any) -> None:
        steps.append(replace(steps[-1], **kw))

    if single_chain:
        then(chain=False)  # the title names the chain
    then(protocol="short")
    then(account="compact")
    then(protocol="")  # the name says both
    then(account="")
    then(money="short")
    then(elide=("market",))
    then(edge=False)
    then(market="", elide=())
    if not single_chain:
        then(chain=False)
    then(debt=False)
    then(collateral=False)
    then(elide=("name",))  # folded, not cut (_fill)
    return steps


@dataclass(frozen=True)
class _Row:
    name: str  # the short name commands accept (keeper.names)
    chain: str
    protocol: str
    account: str  # the whole address
    who: str | None  # the operator's label for the account
    market_full: str
    market_short: str
    collateral_usd: float
    debt_usd: float
    health: str
    liq_price: str
    distance: str
    style: str | None

    def account_text(self, mode: str) -> str:
        if mode == "full":
            return f"{self.who} {self.account}" if self.who else self.account
        if mode == "compact" and self.who:
            return self.who
        return f"{self.who} {_short(self.account)}" if self.who else _short(self.account)


def health_text(p: Position) -> tuple[str, str | None]:
    """The health cell of ``positions_table`` and its row style."""
    health = "∞" if math.isinf(p.health) else f"{p.health:.4f}"
    style = "bold red" if p.liquidatable else ("yellow" if p.health < 1.1 else None)
    if not p.price_ok:
        unverified = (p.price_issue or "").startswith("health unverified")
        health, style = f"{health} ({'health unverified' if unverified else 'price unusable'})", "magenta"
    elif health_verified(p):
        health = f"{health} ✓"  # equal to the pool's getUserAccountData in the same read
    return health, style


def _market_full(p: Position) -> str:
    if p.protocol is Protocol.MORPHO_BLUE:
        return market_label(p).rsplit(" ", 1)[0] + f" {p.market}"
    if p.perp is not None:
        return f"{market_label(p)} {p.market}"
    return market_label(p)


def _row(p: Position, labels: Mapping[Address, str], names: dict[str, str]) -> _Row:
    pt = nearest_liquidation(p)
    health, style = health_text(p)
    return _Row(names.get(p.key, p.key),
                p.chain, p.protocol.value, shown_address(p.account), labels.get(p.account), _market_full(p),
                market_label(p),
                p.collateral_usd, p.debt_usd, health, f"{pt.symbol} {pt.price:,.2f}" if pt else "-",
                f"{pt.move:+.1%}" if pt else "-", style)


class PositionsTable(Table):
    """The positions table, fitted to the width it is rendered at.

    As a ``Table`` it holds every column in full (the ``wide`` view). Rendered with ``wide=False``
    it shows the first of ``_narrow_layouts`` that fits the available width, so health, liquidation
    price and distance are never cut: the other columns are abbreviated, elided or dropped first
    (the caption names the dropped ones). Rendered with ``wide=True`` it keeps its natural width
    even beyond the terminal's (print it with ``crop=False``, or on ``console(wide=True)``, to see
    the lines whole)."""

    def __init__(self, rows: Sequence[_Row], title: str, wide: bool) -> None:
        super().__init__(title=title)
        self._position_rows = tuple(rows)
        self.wide = wide
        _fill(self, self._position_rows, _WIDE)

    def fitted(self, console: Console, width: int) -> Table:
        """The table as it is shown ``width`` columns wide."""
        if self.wide:
            return self
        table: Table | None = None
        for layout in _narrow_layouts(len({r.chain for r in self._position_rows}) <= 1):
            table = _fill(_new_table(self.title, layout), self._position_rows, layout)
            over = _natural_width(console, table) - width
            if over <= 0:
                return table
            widths = _shrinkable(table, layout, over)
            if widths is not None:
                return _fill(_new_table(self.title, layout), self._position_rows, layout, widths)
        assert table is not None  # _narrow_layouts is never empty
        return table  # narrower than the critical columns: rich squeezes what is left

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.wide:
            width = max(options.max_width, _natural_width(console, self))
            yield from super().__rich_console__(console, options.update_width(width))
        else:
            yield self.fitted(console, options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        if self.wide:
            width = _natural_width(console, self)
            return Measurement(width, width)
        return Measurement.get(console, options, self.fitted(console, options.max_width))


def _natural_width(console: Console, table: Table) -> int:
    return Table.__rich_measure__(table, console, console.options.update_width(_UNBOUNDED)).maximum


def _new_table(title: TextType | None, layout: _Layout) -> Table:
    return Table(title=title, show_edge=layout.edge, pad_edge=layout.edge)


def _shrinkable(table: Table, layout: _Layout, over: int) -> dict[str, int] | None:
    """Widths for the layout's elidable columns that take ``over`` columns off the table, or None
    when they cannot give that much without going below ``_MIN_ELIDED``."""
    widths: dict[str, int] = {}
    for col in table.columns:
        name = str(col.header)
        if name in layout.elide and over > 0:
            natural = max(cell_len(str(c)) for c in [col.header, *col.cells])
            widths[name] = max(_MIN_ELIDED, natural - over)
            over -= natural - widths[name]
    return widths if widths and over <= 0 else None


def _fill(table: Table, rows: Sequence[_Row], layout: _Layout, widths: dict[str, int] | None = None) -> Table:
    widths = widths or {}
    money = _money if layout.money == "full" else _money_short
    cols: list[tuple[str, JustifyMethod, Callable[[_Row], str]]] = [("name", "left", lambda r: r.name)]
    hidden: list[str] = []
    if layout.chain:
        cols.append(("chain", "left", lambda r: r.chain))
    else:
        hidden.append("chain")
    if layout.protocol:
        short = layout.protocol == "short"
        cols.append(("protocol", "left",
                     lambda r: _PROTOCOL_SHORT.get(Protocol(r.protocol), r.protocol) if short else r.protocol))
    else:
        hidden.append("protocol")
    if layout.account:
        cols.append(("account", "left", lambda r: r.account_text(layout.account)))
    else:
        hidden.append("account")
    if layout.market:
        cols.append(("market", "left", lambda r: r.market_full if layout.market == "full" else r.market_short))
    else:
        hidden.append("market")
    if layout.collateral:
        cols.append(("collateral $", "right", lambda r: money(r.collateral_usd)))
    else:
        hidden.append("collateral $")
    if layout.debt:
        cols.append(("debt $", "right", lambda r: money(r.debt_usd)))
    else:
        hidden.append("debt $")
    critical: tuple[tuple[str, JustifyMethod, Callable[[_Row], str]], ...] = (
        ("health", "right", lambda r: r.health), ("liq. price", "right", lambda r: r.liq_price),
        ("distance", "right", lambda r: r.distance))
    for name, justify, _ in cols:
        if name == "name" and name in widths:  # the name is what commands take: folded onto a 2nd line, never cut
            table.add_column(name, justify=justify, overflow="fold", max_width=widths[name])
        elif name in widths:
            table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis", max_width=widths[name])
        else:
            table.add_column(name, justify=justify, no_wrap=True)
    for name, justify, cell in critical:  # never cut: as wide as their widest cell
        table.add_column(name, justify=justify, no_wrap=True, overflow="ignore",
                         min_width=max(cell_len(s) for s in [name, *map(cell, rows)]))
    for r in rows:
        table.add_row(*(cell(r) for _, _, cell in (*cols, *critical)), style=r.style)
    if hidden:
        table.caption = f"not shown: {', '.join(hidden)} (the wide view shows every column)"
    return table


def positions_table(positions: Sequence[Position], title: str = "positions",
                    labels: Mapping[Address, str] | None = None, wide: bool = False) -> Table:
    """The positions, least healthy first, each by its short name (``keeper.names``). Fits the width it is
    printed at (health, liquidation price and distance are never cut; other columns shrink or go; the name
    is cut last); ``wide=True`` shows every column in full."""
    labels = labels or {}
    names = names_by_chain(positions, labels)
    rows = [_row(p, labels, names) for p in sorted(positions, key=lambda p: p.health)]
    return PositionsTable(rows, title, wide)


def console(wide: bool = False) -> Console:
    """The operator's console. ``wide``: lines wider than the terminal are printed whole (the
    terminal wraps them) rather than cropped, for ``positions_table(..., wide=True)``."""
    c = Console(soft_wrap=wide)
    return c if c.is_terminal else Console(width=160, soft_wrap=wide)  # piped or in CI: do not truncate to 80 columns
