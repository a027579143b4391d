"""``keeper status``'s positions table: health, liquidation price and distance are never cut, at any
width down to 80 columns; the other columns shrink or go first; ``wide=True`` shows every column.
Synthetic positions, no chain."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from rich.table import Table

from keeper.domain import WAD, Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.risk.health import lending_health, nearest_liquidation
from keeper.views import console, health_text, positions_table

ALICE = "0x1111111111111111111111111111111111111111"
BOB = "0x2222222222222222222222222222222222222222"
CAROL = "0x3333333333333333333333333333333333333333"
MORPHO_ID = "0x" + "ab" * 32
WETH = Asset("WETH", "0xweth", 18)
WSTETH = Asset("wstETH", "0xwsteth", 18)
USDC = Asset("USDC", "0xusdc", 6)


def aave(weth: float, usdc_debt: float, account: str, **kw) -> Position:
    legs = (Leg(WETH, Side.COLLATERAL, int(weth * 10**18), 2000.0, 0.83),
            Leg(USDC, Side.DEBT, int(usdc_debt * 10**6), 1.0))
    return Position("eth", Protocol.AAVE_V3, "0xpool", account, "pool", legs, int(lending_health(legs) * WAD), 100,
                    **kw)


def perp(collateral_usd: float, size_usd: float = 50_000.0) -> Position:
    """A GMX v1 long; health: the collateral over what max leverage requires."""
    terms = PerpTerms(WETH, True, size_usd, collateral_usd, 2000.0, 2000.0, size_usd * 0.001, 5.0, 50.0, 0)
    legs = (Leg(Asset("USD", "usd", 30), Side.COLLATERAL, int(collateral_usd * 10**30), 1.0),)
    health = collateral_usd / (size_usd / terms.max_leverage)
    return Position("eth", Protocol.PERP, "0xvault", "0xa", "0xusdc:0xweth:long", legs, int(health * WAD), 100,
                    perp=terms)


def morpho(wsteth: float, usdc_debt: float, account: str = CAROL, chain: str = "eth") -> Position:
    legs = (Leg(WSTETH, Side.COLLATERAL, int(wsteth * 10**18), 2300.0, 0.945),
            Leg(USDC, Side.DEBT, int(usdc_debt * 10**6), 1.0))
    return Position(chain, Protocol.MORPHO_BLUE, "0xmorpho", account, MORPHO_ID, legs,
                    int(lending_health(legs) * WAD), 100)


def book() -> list[Position]:
    return [aave(10, 13_000, account=ALICE, extra={"emode": 1, "verified": True}),  # 1.2769 ✓
            aave(3, 6_000, account=BOB, price_ok=False, price_issue="health unverified: pool disagrees"),
            morpho(5, 9_000),
            morpho(25_000, 1_000_000, account="0x4444444444444444444444444444444444444444"),  # big money
            perp(2_000.0)]  # GMX: health in units of max leverage, as views prints it


LABELS = {ALICE: "treasury-hot-wallet"}


def render(table, width: int, **kw) -> str:
    out = Console(width=width, record=True, file=io.StringIO(), **kw)
    out.print(table)
    return out.export_text()


def critical_cells(p: Position) -> tuple[str, str, str]:
    pt = nearest_liquidation(p)
    assert pt is not None
    return health_text(p)[0], f"{pt.symbol} {pt.price:,.2f}", f"{pt.move:+.1%}"


def assert_critical_in_full(text: str, positions: list[Position], width: int | None) -> None:
    lines = text.splitlines()
    if width is not None:
        assert max(map(len, lines)) <= width
    for p in positions:
        health, price, distance = critical_cells(p)
        rows = [line for line in lines if health in line and price in line and distance in line]
        assert rows, f"{health!r} / {price!r} / {distance!r} not all shown on one line:\n{text}"
        for row in rows:  # the critical columns are the last three
            tail = row[row.index(health):]
            assert "…" not in tail, row
            assert tail.index(health) < tail.index(price) < tail.rindex(distance)


@pytest.mark.parametrize("width", [80, 100, 120])
def test_health_liquidation_price_and_distance_are_never_cut(width):
    positions = book()
    assert_critical_in_full(render(positions_table(positions, "eth at block 100", LABELS), width), positions, width)


def test_the_old_table_needed_more_than_80_columns():
    """The case from the review: the full table is far wider than 80 columns, so narrow mode must
    drop or shorten columns rather than the health column."""
    wide = render(positions_table(book(), "eth at block 100", LABELS, wide=True), 80, soft_wrap=True)
    assert max(map(len, wide.splitlines())) > 130


@pytest.mark.parametrize("width", [80, 120])
def test_every_kind_of_position_is_shown(width):
    text = render(positions_table(book(), "eth at block 100", LABELS), width)
    for word in ("aave", "morpho", "perp"):
        assert word in text
    assert "health unverified" in text and "✓" in text


def test_narrow_drops_less_important_columns_and_says_so():
    text = render(positions_table(book(), "eth at block 100", LABELS), 80)
    header = next(line for line in text.splitlines() if "health" in line and "distance" in line)
    assert "market" not in header and "chain" not in header
    assert "not shown:" in text and "market" in text.split("not shown:")[1]
    assert ALICE not in text  # whole addresses only in the wide view


def test_wide_shows_every_column_in_full():
    positions = book()
    for width in (80, 120):
        text = render(positions_table(positions, "eth at block 100", LABELS, wide=True), width, soft_wrap=True)
        header = next(line for line in text.splitlines() if "health" in line and "distance" in line)
        for col in ("chain", "protocol", "account", "market", "collateral $", "debt $", "health", "liq. price",
                    "distance"):
            assert col in header
        assert "…" not in text and "not shown" not in text
        for full in (ALICE, BOB, CAROL, MORPHO_ID, "treasury-hot-wallet", "aave_v3", "morpho_blue", "pool e-mode 1",
                     "1,000,000.00"):
            assert full in text
        assert_critical_in_full(text, positions, None)


def test_wide_table_is_not_cropped_on_the_wide_console():
    c = console(wide=True)
    c.file, c.record = io.StringIO(), True
    c.width = 80
    c.print(positions_table(book(), "eth at block 100", LABELS, wide=True))
    assert MORPHO_ID in c.export_text()


def test_many_chains_and_a_plain_call_still_fit():
    """Existing callers pass (positions, title, labels); positions on two chains keep the critical
    columns whole at 80 columns too."""
    positions = [*book(), morpho(7, 10_000, chain="arbitrum"),
                 aave(1, 1_500, "0x5555555555555555555555555555555555555555")]
    table = positions_table(positions, "two chains", LABELS)
    assert isinstance(table, Table)
    assert_critical_in_full(render(table, 80), positions, 80)
    assert_critical_in_full(render(positions_table(positions), 80), positions, 80)


def test_roomy_terminal_keeps_today_s_columns():
    text = render(positions_table(book(), "eth at block 100", LABELS), 200)
    header = next(line for line in text.splitlines() if "health" in line and "distance" in line)
    for col in ("chain", "protocol", "account", "market", "collateral $", "debt $"):
        assert col in header
    assert "not shown" not in text
    assert "…" not in re.sub(r"0x[0-9a-f]{4}…[0-9a-f]{4}", "", text)  # only today's short addresses


def test_empty_table_renders():
    assert "nothing here" in render(positions_table([], "nothing here"), 80)


@pytest.mark.parametrize("width", [80, 120, 200])
def test_every_row_leads_with_the_position_s_name(width):
    """The name ``rebalance`` takes is shown at every width; at worst folded onto a second line, never cut."""
    text = render(positions_table(book(), "eth at block 100", LABELS), width)
    header = next(line for line in text.splitlines() if "health" in line and "distance" in line)
    assert header.replace("┃", " ").split()[0] == "name"
    for name in ("0x222222-aave", "0x333333-morpho", "0x444444-morpho", "0xa-perp-eth-long"):
        assert name in text
    flat = "".join(line.strip("│ ").split("│")[0].strip() for line in text.splitlines())
    assert "treasury-hot-wallet-aave" in flat and "treasury-hot-wallet-a…" not in text


def test_status_json_rows_carry_the_name_and_the_key():
    from keeper.cli.render import snapshot_json
    from keeper.names import position_names
    from keeper.protocols.reader import Snapshot

    positions = book()
    snap = Snapshot("eth", 100, "0xhash", 0, positions, {})
    rows = snapshot_json(snap, position_names(positions, LABELS))["positions"]
    assert rows[0]["name"] == "treasury-hot-wallet-aave" and rows[0]["key"] == positions[0].key
    assert snapshot_json(snap)["positions"][0]["name"] == "0x111111-aave"  # no labels given
