"""Benchmark: the node's own share of the reaction time at K positions at risk — how long the node
(anvil here) takes to serve what the keeper must ask of it between a price update's block and its
last protective transaction, with the keeper's Python work taken out.

Set-up as bench/reaction.py (bench/fleet.py: ``--watch`` watched borrowers, ``--k`` KeeperVaults with
an Aave position each, ETH 2,000 -> ``--price``). Per round, from the same chain state (evm_snapshot /
evm_revert), one after the other as the keeper's update tick needs them:

1. read: the tick's read of the accounts it acts for (``Keeper._read``: positions, prices, the vaults'
   books; Python decoding included, so an upper bound of the node's part), after one quiet read as
   the daemon has made before a crash (the books laid out and cached: keeper.app.book_cache);
2. simulate: the tick's vault calls (the planner's actions, planned before the clock starts) through
   ``simulate_in_order`` in the daemon's chunks (``keeper.app.execution.chunk_target``, taking each
   action as one vault's), one request after the other;
3. send: the same calls signed (before the clock starts) and sent with ``eth_sendRawTransaction`` in
   JSON-RPC batches of the same chunks.

The sum is a floor for the decision latency of the round's last transaction on this machine and
node whatever the keeper's own code costs (which the keeper overlaps with these waits only in part).

    .venv/bin/python bench/node_floor.py [--k 100] [--watch 900] [--rounds 5] [--price 1700]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fleet as F

from keeper.app.books import asset_params, plan_books
from keeper.app.execution import chunk_target
from keeper.chain.tx import simulate_in_order
from keeper.config import Config, DaemonConfig, KeeperConfig, PolicyConfig, StoreConfig, chain_from_deployment
from keeper.daemon.keeper import Keeper
from keeper.domain import ActionKind
from keeper.protocols.vault_calls import vault_request

VOLS = {"WETH": 0.8, "WBTC": 0.7}


def _chunks(n: int) -> list[tuple[int, int]]:
    """The daemon's simulation chunks for ``n`` actions, one per vault, as (start, end) slices."""
    out, start, started = [], 0, 0
    for done in range(1, n + 1):
        if done - start >= chunk_target(started, n - done):
            out.append((start, done))
            start, started = done, started + 1
    if start < n:
        out.append((start, n))
    return out


def one_round(fl: F.Fleet, dep_path: Path, store: Path, args: argparse.Namespace) -> dict[str, float]:
    cfg = Config(chains={"bench": chain_from_deployment(dep_path)}, keeper=KeeperConfig(key_env="KEEPER_BENCH_KEY"),
                 store=StoreConfig(url=f"sqlite:///{store}"), daemon=DaemonConfig(watchdog_seconds=120),
                 policy=PolicyConfig(model="tail"))
    k = Keeper(cfg, vols=VOLS)
    try:
        k.startup()
        # one quiet tick's read first, as the daemon has before a crash: the books' calls are laid
        # out and cached, so the measured read is the daemon's (the books read ahead, only the
        # vaults whose logs changed read again), not a first read
        # (the books only: the executor's key check must first run at the measured read, after the
        # last round's transactions, which outlive evm_revert in the pool, are mined again)
        warm = k.reader.read(fl.w3.eth.block_number)
        warm_assets = asset_params(k.reader, warm)
        k.books.read(warm, warm_assets)
        k.books.lay_out(warm, warm_assets)
        fl.price_tx("ETH", args.price)
        fl.w3.provider.make_request("evm_mine", [])
        block = fl.w3.eth.block_number
        t0 = time.perf_counter()
        t = k._read(block)
        read = time.perf_counter() - t0
        k.executor.finish()
        plans = list(plan_books(t.books, k._model(), t.assets, k.policy, block, {}))
        actions = [(book, a) for book, plan in plans for a in plan.actions if a.kind is not ActionKind.WITHDRAW_EXCESS]
        if not actions:
            raise RuntimeError(f"nothing to act on at block {block}: "
                               f"{[(p.skipped, [x.health for x in b.positions]) for b, p in plans][:3]}")
        pipe = k.executor
        senders = [pipe._sender() for _ in actions]  # type: ignore[attr-defined]
        reqs = [vault_request(book.vault, a, {p.key: p for p in book.positions}) for book, a in actions]
        calls = [s.call_obj(r) for s, r in zip(senders, reqs)]
        nonce = fl.w3.eth.get_transaction_count(fl.dep["roles"]["keeper"], "pending")
        fees = senders[0].base_fees()
        raws = ["0x" + s.signed(r, nonce + i, 1_000_000, s.first_bid(r, 1.0, fees)).attempts[0].raw.hex()
                for i, (s, r) in enumerate(zip(senders, reqs))]
        cuts = _chunks(len(calls))
        t1 = time.perf_counter()
        for i, j in cuts:
            simulate_in_order(k.client, calls[i:j])
        simulate = time.perf_counter() - t1
        t2 = time.perf_counter()
        for i, j in cuts:
            k.client.batch_each([("eth_sendRawTransaction", [r]) for r in raws[i:j]])
        send = time.perf_counter() - t2
        for _ in range(20):  # out of the pool (it outlives evm_revert): the next round's revert drops them
            fl.w3.provider.make_request("evm_mine", [])
            if int(fl.w3.provider.make_request("txpool_status", [])["result"]["pending"], 16) == 0:
                break
            time.sleep(0.05)
        return {"actions": len(actions), "read_ms": read * 1e3, "simulate_ms": simulate * 1e3, "send_ms": send * 1e3,
                "sum_ms": (read + simulate + send) * 1e3}
    finally:
        k.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=100, help="vault-held positions at risk")
    ap.add_argument("--watch", type=int, default=900, help="watched borrowers without a vault")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prune-history", type=int, default=None, metavar="N",
                    help="anvil keeps N states in memory and writes none to disk")
    ap.add_argument("--price", type=float, default=1_700.0, help="ETH price after the move (from 2,000)")
    args = ap.parse_args()
    os.environ["KEEPER_BENCH_KEY"] = F.KEEPER_KEY
    t0 = time.perf_counter()
    fl = F.build(args.watch, args.k, borrow_usdc=13_000, floor=1.3, prune_history=args.prune_history,
                 log=lambda m: print(f"set-up: {m} ({time.perf_counter() - t0:.1f} s)", flush=True))
    rows = []
    try:
        for r, dep_path, store in fl.rounds(args.rounds):
            res = one_round(fl, dep_path, store, args)
            rows.append(res)
            print(f"round {r + 1}: {res['actions']} actions: read {res['read_ms']:.1f} ms, simulate "
                  f"{res['simulate_ms']:.1f} ms, send {res['send_ms']:.1f} ms, sum {res['sum_ms']:.1f} ms",
                  flush=True)
    finally:
        fl.node.stop()
    # Known defect: after the first round, evm_revert does not bring back every vault's need (rounds 2+
    # plan fewer actions, not understood yet); only rounds that act for all K positions are summed.
    full = [r for r in rows if r["actions"] == args.k]
    print(f"\nthe node's share at K = {args.k} ({args.watch + args.k:,} positions), median of the {len(full)} of "
          f"{len(rows)} rounds with {args.k} actions; load average {os.getloadavg()[0]:.2f}")
    print("| step | ms |\n|---|---|")
    for key in ("read_ms", "simulate_ms", "send_ms", "sum_ms"):
        print(f"| {key[:-3]} | {statistics.median(r[key] for r in full):.1f} |" if full else f"| {key[:-3]} | - |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
