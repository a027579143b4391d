"""The snapshot writer's fast path (keeper.store.records.SnapshotRows, legs_to_json): the same values
and the same JSON text as the plain ``snapshot_row`` / ``json.dumps``, and rows reused only when a
position did not change. No chain, no network."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from sqlalchemy import text

from keeper.domain import MAX_UINT256, WAD, Address, Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.store import Store
from keeper.store.records import (
    SNAPSHOT_COLUMNS,
    SnapshotRows,
    _legs_to_json_reference,
    legs_from_json,
    legs_to_json,
    perp_to_json,
    snapshot_row,
)

CHAIN = "devnet"
WETH = Asset("WETH", Address("0x00000000000000000000000000000000000000E1"), 18)
WBTC = Asset("WBTC", Address("0x00000000000000000000000000000000000000b7"), 8)
USDC = Asset("USDC", Address("0x00000000000000000000000000000000000000C6"), 6)
ODD = Asset('we"ird\\sym\u00e9\U0001f600', Address("0x" + "Ab" * 20), 0)
POOL = Address("0x0000000000000000000000000000000000000A0E")


def lend(i: int, legs: tuple[Leg, ...], health_wad: int = 3 * WAD // 2, block: int = 10, **kw) -> Position:
    return Position(CHAIN, Protocol.AAVE_V3, POOL, Address(f"0x{i:040X}"), "pool", legs, health_wad, block, **kw)


def perp(i: int, mark: float = 2_100.5, block: int = 10) -> Position:
    terms = PerpTerms(index=WETH, is_long=bool(i % 2), size_usd=10_000.0, collateral_usd=1_000.0 / 3,
                      average_price=2_000.0, mark_price=mark, margin_fees_usd=10.25, liquidation_fee_usd=5.0,
                      max_leverage=50.0, liquidation_state=0)
    return Position(CHAIN, Protocol.PERP, Address("0x0000000000000000000000000000000000000B0B"), Address(f"0x{i:040x}"),
                    f"{USDC.address}:{WETH.address}:long", (Leg(USDC, Side.COLLATERAL, 333_333_333, 1.0),),
                    3 * WAD // 2, block, perp=terms)


FLOATS = [2000.0 / 3, 1.0, 0.0, -0.0, 1e-300, 5e-324, 1e300, 123456789.125, math.nan, math.inf, -math.inf, 7, 0]


def many_positions() -> list[Position]:
    rng = random.Random(5)
    out = [
        lend(1, (Leg(WETH, Side.COLLATERAL, 3 * 10**18 + 7, 2000.0 / 3, 0.825), Leg(USDC, Side.DEBT, 10**9, 1.0001)),
             price_ok=False, price_issue="WETH feed stale", label="alice"),
        lend(2, (Leg(WETH, Side.COLLATERAL, 10**18, 2000.0, 0.825),), health_wad=MAX_UINT256),  # no debt
        lend(3, (Leg(WETH, Side.COLLATERAL, 10**18, 2000.0, 0.0), Leg(USDC, Side.DEBT, 10**9, 1.0))),  # no weight
        lend(4, (Leg(WETH, Side.COLLATERAL, 10**18, math.inf, 0.8), Leg(USDC, Side.DEBT, 10**9, 1.0))),
        lend(5, (Leg(WETH, Side.COLLATERAL, 10**18, math.nan, 0.8), Leg(USDC, Side.DEBT, 10**9, 1.0))),
        lend(6, (Leg(WETH, Side.COLLATERAL, 0, 2000.0, 0.8), Leg(USDC, Side.DEBT, 10**9, 1.0))),  # health 0
        lend(7, (Leg(ODD, Side.COLLATERAL, 5, 3.0, 0.5), Leg(ODD, Side.DEBT, 1, 1.0)), health_wad=0),
        lend(8, ()),
        perp(9), perp(10, mark=0.0), perp(11, mark=math.nan),
    ]
    for i in range(12, 200):
        legs = tuple(Leg(rng.choice((WETH, WBTC, USDC)), rng.choice((Side.COLLATERAL, Side.DEBT)),
                         rng.randrange(0, 10**20), rng.choice([*FLOATS, rng.uniform(0, 1e5)]),
                         rng.choice([*FLOATS, rng.random()]))
                     for _ in range(rng.randrange(0, 4)))
        out.append(lend(i, legs, health_wad=rng.choice((0, WAD, rng.randrange(MAX_UINT256), MAX_UINT256))))
    return out


def expected(p: Position, block_hash: str) -> tuple:
    row = snapshot_row(p, block_hash)
    return tuple(row[c] for c in SNAPSHOT_COLUMNS)


def same(a: tuple, b: tuple) -> bool:
    return all(x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
               for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("value", FLOATS)
def test_legs_json_is_json_dumps_character_for_character(value):
    legs = (Leg(WETH, Side.COLLATERAL, 3 * 10**18 + 7, value, 0.825), Leg(USDC, Side.DEBT, 0, 1.0, value),
            Leg(ODD, Side.DEBT, 2**255, value, value))
    assert legs_to_json(legs) == _legs_to_json_reference(legs)
    back = legs_from_json(legs_to_json(legs))
    assert [leg.amount_raw for leg in back] == [leg.amount_raw for leg in legs]
    assert legs_to_json(()) == _legs_to_json_reference(()) == "[]"


def test_rows_equal_snapshot_row_for_every_kind_of_position():
    positions = many_positions()
    rows = SnapshotRows().rows(10, "0xhash", positions, [p.key for p in positions])
    for p, row in zip(positions, rows, strict=True):
        assert same(row, expected(p, "0xhash")), p


def test_unchanged_positions_reuse_their_values_changed_ones_do_not():
    positions = many_positions()
    sr = SnapshotRows()
    sr.rows(10, "0xa", positions, [p.key for p in positions])
    assert (sr.reused, sr.built) == (0, len(positions))
    moved = [dataclasses.replace(p, block=11) for p in positions]
    moved[0] = dataclasses.replace(moved[0], health_wad=WAD)  # changed
    moved[1] = dataclasses.replace(moved[1], label="renamed")  # changed
    moved[2] = dataclasses.replace(moved[2], account="0X" + moved[2].account[2:])  # same key, other spelling
    assert moved[2].key == positions[2].key
    rows = sr.rows(11, "0xb", moved, [p.key for p in moved])
    assert (sr.reused, sr.built) == (len(positions) - 3, 3)
    for p, row in zip(moved, rows, strict=True):
        assert same(row, expected(p, "0xb")), p
    # the cache holds the last call only: a position that left and came back is built again
    sr.rows(12, "0xc", moved[:1], [moved[0].key])
    sr.rows(13, "0xd", moved[:2], [moved[0].key, moved[1].key])
    assert (sr.reused, sr.built) == (1, 1)


def test_health_wad_goes_through_the_converter():
    p = lend(1, (), health_wad=WAD)
    [row] = SnapshotRows(lambda v: f"<{v}>").rows(1, "0x1", [p], [p.key])
    assert row[SNAPSHOT_COLUMNS.index("health_wad")] == f"<{WAD}>"


def test_consecutive_blocks_through_the_store_read_back_exactly(tmp_path):
    positions = many_positions()
    with Store.open(f"sqlite:///{tmp_path / 'k.db'}") as store:
        for block in (10, 11, 12):
            ps = [dataclasses.replace(p, block=block) for p in positions]
            if block == 12:
                ps[0] = dataclasses.replace(ps[0], health_wad=WAD + 12)
            store.write_tick(CHAIN, block, f"0x{block:x}", ps)
        for p in positions:
            rows = store.snapshots(p.key)
            assert [(r.block, r.block_hash) for r in rows] == [(10, "0xa"), (11, "0xb"), (12, "0xc")]
            for r in rows:
                want = dataclasses.replace(p, block=r.block)
                if r.block == 12 and p is positions[0]:
                    want = dataclasses.replace(want, health_wad=WAD + 12)
                back = r.to_position()
                assert back.health_wad == want.health_wad and back.key == want.key
                assert perp_to_json(back.perp) == perp_to_json(want.perp)  # NaN-safe
                # NaN-safe comparison of the legs (an int price reads back as a float, as it always did)
                assert legs_to_json(back.legs) == legs_to_json(legs_from_json(legs_to_json(want.legs)))
                assert same(tuple(getattr(r, c) for c in SNAPSHOT_COLUMNS[9:17]),
                            expected(want, r.block_hash)[9:17])
        latest = store.latest_snapshots(CHAIN)
        assert len(latest) == len(positions) and {r.block for r in latest} == {12}
        with store.engine.connect() as conn:  # health_wad is still the zero-padded exact text
            kinds = conn.execute(text("SELECT DISTINCT typeof(health_wad), length(health_wad) "
                                      "FROM position_snapshot")).all()
        assert kinds == [("text", 78)]
