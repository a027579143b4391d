"""Benchmark: kill -9 of the *daemon* (``keeper run``) at a random point of its batch send, many times.

``bench/faults.py`` kills the operator's command (``keeper rebalance --execute``, one action); this
one kills the daemon, which sends every action of a block as one batch (``keeper.app.execution``:
gas calls, one journal commit, one broadcast batch, then receipts). Each trial, on a fresh devnet
state (snapshot/revert of one anvil with the real protocols):

1. picks at random a kill point (``keeper.faults.POINTS``), a crash (ETH and BTC prices that leave
   several vault positions needing protection), a block period (0.3 or 1 s) and a delay before
   recovery (0-2 s), and how the operator recovers (``keeper reconcile`` then the daemon, or the
   daemon alone, whose start-up reconciles);
2. runs ``keeper run`` with ``KEEPER_FAULT=<point>`` until it is SIGKILLed there;
3. recovers, runs the daemon until every position the planner wanted to protect has a
   ``KeeperAction`` and a few more blocks have passed, then stops it (SIGTERM);
4. checks: at most one ``KeeperAction`` per position (more: a double action), every position that
   needed protection got one (none: a lost intent), no journal entry left open, and the journal's
   mined hashes are exactly the actions' transactions.

    nice .venv/bin/python bench/faults_daemon.py [--trials 100] [--seed 11]

Uses the fault-suite helpers (tests/faults/conftest.py: the keeper as a subprocess, its logs
scanned for the key). Exits 1 on any double action or lost intent."""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faults import table

from keeper.demo.faultlab import (
    Env,
    Miner,
    Receiver,
    keeper_actions,
    per_position,
    planned_positions,
)
from keeper.demo.faultlab import set_feed_price as set_price
from keeper.devnet.anvil import Anvil
from keeper.devnet.deploy import deploy_devnet
from keeper.devnet.position_keeper import start_thread
from keeper.faults import POINTS
from keeper.store import Store
from keeper.store.journal import Journal

CRASHES = [(1_560, 25_000), (1_500, 24_000), (1_620, 22_000), (1_450, 26_000)]  # (ETH, BTC) in USD


@dataclass
class Trial:
    n: int
    point: str
    crash: tuple[int, int]
    period: float
    delay: float
    recovery: str  # "reconcile" or "restart"
    needed: int = 0
    protected: int = 0
    double: bool = False
    lost: bool = False
    killed: bool = True
    recovery_s: float = 0.0
    note: str = ""


def wait_for(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def run_trial(w3: Web3, dep: dict, root: Path, receiver: Receiver, t: Trial) -> None:
    env = Env(root, dep["rpc_url"], dep, receiver)
    miner = Miner(w3)
    try:
        set_price(w3, dep, "ETH", t.crash[0])
        set_price(w3, dep, "BTC", t.crash[1])
        need = planned_positions(env)
        t.needed = len(need)
        start = w3.eth.block_number
        miner.start(t.period)
        crashed = env.daemon(fault=t.point)
        code = crashed.wait_exit(90)
        if code != -9:
            t.killed, t.note = False, f"not killed (exit {code})"
        t0 = time.monotonic()
        time.sleep(t.delay)
        if t.recovery == "reconcile":
            rec = env.cli("reconcile")
            if rec.returncode != 0:
                t.note += f" reconcile exit {rec.returncode}: {rec.stderr.strip()[-160:]}"
        daemon = env.daemon()
        wait_for(lambda: len(per_position(keeper_actions(w3, dep, start))) >= len(need), 90)
        t.recovery_s = time.monotonic() - t0
        b = w3.eth.block_number
        wait_for(lambda: daemon.ticked_after(b + 3), 30)
        if daemon.stop() != 0:
            t.note += " daemon did not stop cleanly"
        actions = keeper_actions(w3, dep, start)
        counts = per_position(actions)
        t.protected = len(counts)
        with Store.open(f"sqlite:///{root / 'k.db'}") as store:
            entries = Journal(store).entries("devnet")
        open_ = [e.id for e in entries if e.status in ("intent", "signed")]
        mined = {e.mined_hash.lower() for e in entries if e.status == "mined"}
        t.double = any(c > 1 for c in counts.values())
        t.lost = len(counts) < len(need) or bool(open_) or {a["tx"].lower() for a in actions} != mined
        if t.lost and not t.note:
            t.note = (f"protected {len(counts)}/{len(need)}, open {open_}, journal mined {len(mined)}, "
                      f"chain {len(actions)}")
    finally:
        miner.stop()
        env.close()
        w3.provider.make_request("evm_setAutomine", [True])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    t_start = time.monotonic()
    receiver = Receiver()
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="keeper-faults-daemon-") as tmp, Anvil() as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        dep = {**deploy_devnet(w3), "rpc_url": node.url}
        # GMX's own position keeper, as on the devnet and in the fault tests: it executes the vaults'
        # PositionRouter requests (the gated perps' top-ups) a block later
        pk_thread, pk_stop = start_thread(w3, dep["perp"])
        base = w3.provider.make_request("evm_snapshot", [])["result"]
        for n in range(args.trials):
            t = Trial(n, rng.choice(POINTS), rng.choice(CRASHES), rng.choice([0.3, 1.0]), round(rng.uniform(0, 2), 2),
                      rng.choice(["reconcile", "restart"]))
            root = Path(tmp) / f"t{n}"
            root.mkdir()
            try:
                run_trial(w3, dep, root, receiver, t)
            finally:
                assert w3.provider.make_request("evm_revert", [base])["result"]
                base = w3.provider.make_request("evm_snapshot", [])["result"]
            trials.append(t)
            flag = "DOUBLE " if t.double else ("LOST " if t.lost else "ok")
            print(f"{n:>3} {t.point:<14} ETH {t.crash[0]} BTC {t.crash[1]} blocks {t.period:.1f} s "
                  f"delay {t.delay:4.2f} {t.recovery:<9} -> protected {t.protected}/{t.needed} "
                  f"recovery {t.recovery_s:5.2f} s {flag} {t.note}", flush=True)
        pk_stop.set()
        pk_thread.join(timeout=30)
    receiver.close()
    print()
    print(table(trials))
    print(f"\n{len(trials)} trials in {time.monotonic() - t_start:.0f} s; {sum(t.protected for t in trials)} "
          f"protective actions; {sum(not t.killed for t in trials)} not killed at their point")
    return 1 if any(t.double or t.lost or not t.killed for t in trials) else 0


if __name__ == "__main__":
    sys.exit(main())
