"""Benchmark: the daemon's idle CPU per block — the process CPU time a ``Keeper`` spends per block
while it has nothing to do, split into the tick (read + plan, on the runner's thread) and the
snapshot writer's thread; the rest (head feed, GC between ticks, metrics, I/O threads) is the
difference.

Set-up (bench/fleet.py): a fresh anvil with the devnet (real Aave v3), ``--positions - --vaults``
watched Aave borrowers and ``--vaults`` KeeperVaults (10 WETH, 13,000 USDC: health 1.27 at ETH 2,000,
a health floor of 1.3 forbids releases: the keeper plans and does nothing). Anvil mines a block every
second; the keeper runs in-process (``Keeper.run`` in a thread, its own SQLite store, poll
``--poll``), as in bench/reaction.py.

Per round: start a keeper on a new store, let ``--warm`` ticks pass (history builds up in the
store), then count ``--blocks`` ticks: process CPU (``time.process_time``, every thread of this
process; anvil is another process), the tick thread's CPU (``time.thread_time`` around each
``Keeper.tick``) and the writer thread's (``SnapshotWriter.cpu_seconds``). Per block = over the
ticks counted. Variants, alternating in one process on the same chain (only the ratios of one run
mean anything on a shared machine):

- ``legacy`` (with ``--compare``): every position at every block through the write path as it was
  before stage 11 (``bench/snapshot_writer.py``'s ``legacy_record_snapshot``);
- ``every-block``: today's write path, ``store.history_interval_s = 0`` (every position at every
  block);
- ``default``: the daemon as shipped, ``store.history_interval_s`` at its default (every position
  once per 60 s of chain time and at every block acted at; rounds and checkpoint every block).

    .venv/bin/python bench/idle_cpu.py [--positions 5000] [--vaults 1] [--warm 30] [--blocks 64]
                                       [--rounds 1] [--compare] [--poll 0.5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fleet as F
import snapshot_writer as SW

from keeper.app import recording
from keeper.config import Config, DaemonConfig, KeeperConfig, PolicyConfig, StoreConfig, chain_from_deployment
from keeper.daemon.keeper import Keeper

VOLS = {"WETH": 0.8, "WBTC": 0.7}


def wait_for(cond, timeout: float, what: str, every: float = 0.1) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(every)


def one_round(dep_path: Path, store: Path, args: argparse.Namespace, variant: str) -> dict:
    history = {"default": {}}.get(variant, {"history_interval_s": 0.0})
    cfg = Config(chains={"bench": chain_from_deployment(dep_path)}, keeper=KeeperConfig(key_env="KEEPER_BENCH_KEY"),
                 store=StoreConfig(url=f"sqlite:///{store}", **history),
                 daemon=DaemonConfig(poll_interval=args.poll, watchdog_seconds=120, heartbeat_seconds=60),
                 policy=PolicyConfig(model="tail"))
    original = recording.record_snapshot
    if variant == "legacy":
        recording.record_snapshot = SW.legacy_record_snapshot  # what SnapshotWriter's thread calls
    k = Keeper(cfg, vols=VOLS)
    tick_cpu: list[tuple[int, float, int]] = []  # (block, tick thread CPU seconds, actions)
    orig_tick = k.tick

    def timed_tick(block: int) -> int:
        c0 = time.thread_time()
        done = orig_tick(block)
        tick_cpu.append((block, time.thread_time() - c0, done))
        return done

    k.tick = timed_tick  # type: ignore[method-assign]
    runner = threading.Thread(target=lambda: k.run(install_signals=False), daemon=True)
    try:
        runner.start()
        wait_for(lambda: k.ticks >= args.warm or k.halted is not None, 120 + 3 * args.warm, "the warm-up ticks")
        if k.halted:
            raise RuntimeError(f"keeper halted: {k.halted}")
        k.recorder.flush()
        n0, p0, w0, written0, skipped0 = (len(tick_cpu), time.process_time(), k.recorder.cpu_seconds,
                                          k.recorder.written, k.recorder.skipped)
        wait_for(lambda: len(tick_cpu) >= n0 + args.blocks or k.halted is not None, 60 + 3 * args.blocks,
                 "the counted ticks")
        k.recorder.flush()  # the last counted block's write belongs to the window
        p1, w1 = time.process_time(), k.recorder.cpu_seconds
        counted = tick_cpu[n0:n0 + args.blocks]
        n = len(counted)
        if k.halted:
            raise RuntimeError(f"keeper halted: {k.halted}")
        return {"blocks": n, "first": counted[0][0], "last": counted[-1][0],
                "process_ms": (p1 - p0) / n * 1e3,
                "tick_ms": sum(c for _, c, _ in counted) / n * 1e3,
                "tick_median_ms": statistics.median(c for _, c, _ in counted) * 1e3,
                "writer_ms": (w1 - w0) / n * 1e3,
                "written": k.recorder.written - written0, "coalesced": k.recorder.skipped - skipped0,
                "actions": sum(a for _, _, a in counted), "positions": args.positions}
    finally:
        k.stop.set()
        runner.join(timeout=120)
        recording.record_snapshot = original


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--positions", type=int, default=5_000, help="watched + vault-held positions")
    ap.add_argument("--vaults", type=int, default=1, help="vault-held positions (idle: above their floor)")
    ap.add_argument("--warm", type=int, default=30, help="ticks before counting (history in the store)")
    ap.add_argument("--blocks", type=int, default=64, help="counted ticks per round")
    ap.add_argument("--rounds", type=int, default=1, help="rounds per variant")
    ap.add_argument("--compare", action="store_true", help="also the legacy writer, alternating")
    ap.add_argument("--poll", type=float, default=0.5, help="daemon.poll_interval (seconds; the default's)")
    args = ap.parse_args()
    os.environ["KEEPER_BENCH_KEY"] = F.KEEPER_KEY
    t0 = time.perf_counter()
    fl = F.build(args.positions - args.vaults, args.vaults, borrow_usdc=13_000, floor=1.3,
                 log=lambda m: print(f"set-up: {m} ({time.perf_counter() - t0:.1f} s)", flush=True))
    variants = (("legacy",) if args.compare else ()) + ("every-block", "default")
    results: dict[str, list[dict]] = {v: [] for v in variants}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            dep_path = fl.write_deployment(Path(tmp) / "devnet.json")
            fl.w3.provider.make_request("evm_setIntervalMining", [1])
            for r in range(args.rounds):
                for v in variants:
                    res = one_round(dep_path, Path(tmp) / f"{v}-{r}.db", args, v)
                    results[v].append(res)
                    print(f"{v:8s} round {r + 1}: blocks {res['first']}..{res['last']} ({res['blocks']} ticks, "
                          f"{res['written']} written, {res['coalesced']} coalesced, {res['actions']} actions): "
                          f"process {res['process_ms']:.1f} ms/block = tick {res['tick_ms']:.1f} (median "
                          f"{res['tick_median_ms']:.1f}) + writer {res['writer_ms']:.1f} + rest "
                          f"{res['process_ms'] - res['tick_ms'] - res['writer_ms']:.1f}; load average "
                          f"{os.getloadavg()[0]:.2f}", flush=True)
    finally:
        fl.node.stop()
    print(f"\nidle CPU per block, {args.positions:,} positions ({args.vaults} vault-held), 1 s blocks, "
          f"{args.warm} warm + {args.blocks} counted ticks per round; load average {os.getloadavg()[0]:.2f}")
    print("| writer | process ms/block | tick ms/block | writer ms/block | rest ms/block |")
    print("|---|---|---|---|---|")
    mean = {}
    for v in variants:
        rs = results[v]
        m = {key: statistics.fmean(x[key] for x in rs) for key in ("process_ms", "tick_ms", "writer_ms")}
        mean[v] = m
        print(f"| {v} | {m['process_ms']:.1f} | {m['tick_ms']:.1f} | {m['writer_ms']:.1f} | "
              f"{m['process_ms'] - m['tick_ms'] - m['writer_ms']:.1f} |")
    for v in variants if args.compare else ():
        cur, old = mean[v], mean["legacy"]
        if v != "legacy":
            print(f"ratio {v}/legacy, same run: process {cur['process_ms'] / old['process_ms']:.3f}, "
                  f"writer {cur['writer_ms'] / old['writer_ms']:.3f}")
    if "default" in mean:
        cur, old = mean["default"], mean["every-block"]
        print(f"ratio default/every-block, same run: process {cur['process_ms'] / old['process_ms']:.3f}, "
              f"writer {cur['writer_ms'] / old['writer_ms']:.3f}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
