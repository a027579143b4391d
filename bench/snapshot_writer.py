"""Benchmark: the snapshot writer's CPU per block (``record_snapshot`` -> ``Store.write_tick``) on
SQLite in a temporary directory, with a synthetic snapshot of N positions (Aave-like: one or two
collateral legs and a USDC debt; every tenth a perp), no chain.

Each block moves every position a little: its debt accrues (Aave's variable debt grows with every
second, so a real 1 s chain changes every borrower's debt and health each block) while collateral
nobody borrows keeps its amount; every block's positions are fresh objects, as a reader decodes
them. ``--changed F`` moves only that fraction of the positions, the rest keep the values of the
block before.

Process CPU time (``time.process_time``) is measured per block over ``--blocks`` blocks after
``--warm`` blocks that are not counted; ``--profile`` prints the top functions of a cProfile of the
same loop (of both paths with ``--compare``). The cost grows with the history already stored: the
unique (position_key, block) index takes one entry per position per block at ~5,000 places spread
over the index, and once every position's entries fill pages of their own each block dirties one
index page per position (``--warm 60`` shows the steady state; ``--warm 3`` a young database).

``--compare`` runs the legacy write path (``legacy_write_tick`` below: the writer as it was before,
every position's ``snapshot_row`` dict, legs encoded by ``json.dumps``, through the typed
``Table.insert()`` executemany) and the current one back to back, alternating, in one process, each
on its own new database, and prints the ratio of the two: the machine is shared, so only the ratio of
one run means anything.

    .venv/bin/python bench/snapshot_writer.py [--positions 5000] [--blocks 20] [--warm 3]
        [--changed 1.0] [--compare] [--rounds 3] [--profile]

    e.g. .venv/bin/python bench/snapshot_writer.py --compare --rounds 3            # young database
         .venv/bin/python bench/snapshot_writer.py --compare --rounds 1 --warm 60  # steady state
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import math
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from keeper.app.recording import record_snapshot
from keeper.domain import WAD, Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.protocols.reader import Snapshot
from keeper.risk.health import nearest_liquidation
from keeper.store import PriceRoundRecord, Store, records
from keeper.store.db import _translated, _write
from keeper.store.models import Checkpoint, PositionSnapshot, PriceRound, table_of

CHAIN = "devnet"
WETH = Asset("WETH", "0x00000000000000000000000000000000000000E1", 18)
WBTC = Asset("WBTC", "0x00000000000000000000000000000000000000B7", 8)
USDC = Asset("USDC", "0x00000000000000000000000000000000000000C6", 6)
POOL = "0x0000000000000000000000000000000000000A0E"
PERP = "0x0000000000000000000000000000000000000B0B"


def base_positions(n: int, seed: int = 7) -> list[Position]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        account = f"0x{i + 1:040x}"
        if i % 10 == 9:
            terms = PerpTerms(index=WETH, is_long=bool(i % 2), size_usd=rng.uniform(1e3, 5e4),
                              collateral_usd=rng.uniform(200, 5e3), average_price=2_000.0, mark_price=2_010.0,
                              margin_fees_usd=rng.uniform(0, 20), liquidation_fee_usd=5.0, max_leverage=50.0,
                              liquidation_state=0)
            legs = (Leg(USDC, Side.COLLATERAL, int(terms.collateral_usd * 10**6), 1.0),)
            out.append(Position(CHAIN, Protocol.PERP, PERP, account, f"{USDC.address}:{WETH.address}:long",
                                legs, int(rng.uniform(1.05, 3.0) * WAD), 0, perp=terms))
            continue
        legs = (Leg(WETH, Side.COLLATERAL, int(rng.uniform(1, 5) * 10**18), 2_000.0, 0.825),)
        if i % 3 == 0:
            legs += (Leg(WBTC, Side.COLLATERAL, int(rng.uniform(0.01, 0.2) * 10**8), 60_000.0, 0.78),)
        legs += (Leg(USDC, Side.DEBT, int(rng.uniform(500, 6_000) * 10**6), 1.0),)
        out.append(Position(CHAIN, Protocol.AAVE_V3, POOL, account, "pool", legs,
                            int(rng.uniform(1.0, 3.4) * WAD), 0))
    return out


def at_block(prev: list[Position], block: int, changed: float, rng: random.Random) -> list[Position]:
    """The positions at ``block``: a fraction ``changed`` accrues a little debt (amounts and health move)."""
    out = []
    for p in prev:
        # a reader decodes fresh objects every block: equal values, new Leg and PerpTerms objects
        perp = replace(p.perp) if p.perp is not None else None
        if rng.random() < changed:
            legs = tuple(replace(leg, amount_raw=leg.amount_raw + 1 + leg.amount_raw // 10**7)
                         if leg.side is Side.DEBT else replace(leg) for leg in p.legs)
            p = replace(p, legs=legs, perp=perp, health_wad=max(1, p.health_wad - p.health_wad // 10**7 - 1))
        else:
            p = replace(p, legs=tuple(replace(leg) for leg in p.legs), perp=perp)
        out.append(replace(p, block=block))
    return out


def snapshots(n: int, blocks: int, changed: float, seed: int = 11) -> list[Snapshot]:
    rng = random.Random(seed)
    ps = base_positions(n)
    out = []
    for b in range(1, blocks + 1):
        ps = at_block(ps, b, changed, rng)
        out.append(Snapshot(CHAIN, b, f"0x{b:064x}", 1_700_000_000 + b, ps, {}))
    return out


def legacy_snapshot_row(position: Position, block_hash: str) -> dict:
    """``records.snapshot_row`` as it was before the fast path (legs encoded by ``json.dumps``)."""
    try:
        point = nearest_liquidation(position)
    except ArithmeticError:
        point = None
    if point is not None and not math.isfinite(point.price):
        point = None
    fin = records._finite
    return {
        "chain": position.chain, "block": position.block, "block_hash": block_hash,
        "position_key": position.key, "protocol": str(position.protocol),
        "protocol_address": position.protocol_address, "account": position.account,
        "market": position.market, "health_wad": position.health_wad, "health": fin(position.health),
        "collateral_usd": fin(position.collateral_usd), "debt_usd": fin(position.debt_usd),
        "liquidation_symbol": point.symbol if point else None,
        "liquidation_price": point.price if point else None,
        "distance": fin(point.distance) if point else None,
        "price_ok": position.price_ok, "price_issue": position.price_issue,
        "legs": records._legs_to_json_reference(position.legs), "perp": records.perp_to_json(position.perp),
        "label": position.label,
    }


def legacy_write_tick(store: Store, chain: str, block: int, block_hash: str, positions: list[Position],
                      rounds: Sequence[PriceRoundRecord] = ()) -> None:
    """``Store.write_tick`` as it was before the fast path (same checks, same transaction)."""
    keys: set[str] = set()
    for p in positions:
        if p.chain != chain or p.block != block:
            raise ValueError(f"position {p.key} was read at {p.chain}@{p.block}, not {chain}@{block}")
        if p.key in keys:
            raise ValueError(f"position {p.key} appears twice in the tick at block {block}")
        keys.add(p.key)
    rows = [legacy_snapshot_row(p, block_hash) for p in positions]
    snap = table_of(PositionSnapshot)
    with _translated(f"writing the tick at {chain}@{block}"), store.write() as conn:
        conn.execute(snap.delete().where((snap.c.chain == chain) & (snap.c.block == block)))
        if rows:
            conn.execute(snap.insert(), rows)
        _write(conn, table_of(PriceRound), [
            {"chain": r.chain, "feed": r.feed.lower(), "round_id": r.round_id, "answer": r.answer,
             "started_at": r.started_at, "updated_at": r.updated_at, "answered_in_round": r.answered_in_round}
            for r in rounds], ("chain", "feed", "round_id"), update=False)
        _write(conn, table_of(Checkpoint), [{"chain": chain, "name": "tick", "block": block,
                                             "block_hash": block_hash, "updated_at": time.time()}],
               ("chain", "name"), update=True)


def legacy_record_snapshot(store: Store, snap: Snapshot, *, watched: Sequence[str] = (), kind: str = "watch") -> None:
    """``keeper.app.recording.record_snapshot`` through the legacy write path (its price rounds too;
    the daemon's writer passes no watched accounts): what bench/idle_cpu.py's legacy writer calls."""
    rounds = [PriceRoundRecord(snap.chain, r.feed.lower(), r.round.round_id, r.round.answer, r.round.started_at,
                               r.round.updated_at, r.round.answered_in_round)
              for r in snap.prices.values() if r.round is not None]
    legacy_write_tick(store, snap.chain, snap.block, snap.block_hash, snap.positions, rounds)


def run(store: Store, snaps: list[Snapshot], warm: int, legacy: bool) -> list[float]:
    """CPU seconds of each counted block's write."""
    cpu = []
    for i, snap in enumerate(snaps):
        t0 = time.process_time()
        if legacy:
            legacy_write_tick(store, snap.chain, snap.block, snap.block_hash, snap.positions)
        else:
            record_snapshot(store, snap)
        if i >= warm:
            cpu.append(time.process_time() - t0)
    return cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--positions", type=int, default=5_000)
    ap.add_argument("--blocks", type=int, default=20, help="counted blocks per run")
    ap.add_argument("--warm", type=int, default=3, help="blocks written first and not counted")
    ap.add_argument("--changed", type=float, default=1.0, help="fraction of positions that move per block")
    ap.add_argument("--compare", action="store_true", help="legacy vs current write path, same process")
    ap.add_argument("--rounds", type=int, default=3, help="alternating legacy/current runs with --compare")
    ap.add_argument("--profile", action="store_true", help="cProfile of the current path, top 25 functions")
    args = ap.parse_args()

    snaps = snapshots(args.positions, args.warm + args.blocks, args.changed)
    # The synthetic input is no part of the writer's cost: keep later collections from traversing it
    # (the daemon freezes what it loaded at start-up, and drops each snapshot once written).
    gc.collect()
    gc.freeze()
    print(f"{args.positions} positions, {args.blocks} counted blocks (+{args.warm} warm), changed "
          f"{args.changed:.0%} per block; load average {os.getloadavg()[0]:.2f}")
    variants = ("legacy", "current") if args.compare else ("current",)
    per: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds if args.compare else 1):
            for v in variants:
                with Store.open(f"sqlite:///{Path(tmp) / f'{v}-{r}.db'}") as store:
                    per[v] += run(store, snaps, args.warm, legacy=v == "legacy")
        for v in variants:
            xs = per[v]
            print(f"{v:8s} CPU per block: median {statistics.median(xs) * 1e3:7.1f} ms, "
                  f"mean {statistics.fmean(xs) * 1e3:7.1f} ms over {len(xs)} blocks")
        if args.compare:
            ratio = statistics.median(per["current"]) / statistics.median(per["legacy"])
            mean_ratio = statistics.fmean(per["current"]) / statistics.fmean(per["legacy"])
            print(f"ratio current/legacy, same run: median {ratio:.3f}, mean {mean_ratio:.3f} "
                  f"(the mean includes the WAL checkpoints)")
        for v in variants if args.profile else ():
            prof = cProfile.Profile()
            with Store.open(f"sqlite:///{Path(tmp) / f'profile-{v}.db'}") as store:
                prof.enable()
                run(store, snaps, args.warm, legacy=v == "legacy")
                prof.disable()
            print(f"\n=== cProfile, {v} write path ({len(snaps)} blocks)")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
            pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
