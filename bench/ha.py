"""Benchmark: keeper replicas under faults. Three ``keeper run --replica`` processes share one real
PostgreSQL store (each through its own TCP proxy, which can be cut) on a devnet with 1 s blocks and
the real protocols (Aave v3, Morpho Blue, gated GMX v1 with its position keeper running). Each trial,
from the same chain state (evm_snapshot / evm_revert) and on a new database:

1. the three replicas start; the first to take the lease leads, the others plan warm;
2. a crash is replayed through the Chainlink feeds in two steps, ``STEP_S`` apart (ETH and BTC
   first part of the way, then to one of ``CRASHES``);
3. at a random moment the leader is killed (-9, restarted as a follower ``RESTART_S`` later),
   paused (SIGSTOP for 2.5-5 s, then SIGCONT) or cut off from the database (its proxy cut for 4-6 s):
   half the trials 0-0.4 s after a step's price blocks are mined (the leader is reading, planning or
   sending that block's batch), half 0.4-4 s after the first step's;
4. once no journal entry is open, the planner wants no top-up or repay and 6 blocks have passed
   since the last step, every replica is stopped.

Checked per trial:
- **double action**: two journaled actions on one position in flight at once (the later decided
  at a block before the earlier was mined), or a transaction of the key that the journal does not
  hold (the chain's nonce count against the journal's signed entries);
- **lost protective action**: the planner still wants a top-up or repay at the end, a vault
  position is liquidatable at the end, or a journal entry is left open;
- **takeover**: blocks (and seconds) from the fault to the first moment another replica holds the
  lease (the lease table, polled every 50 ms), and to the new leader's first journaled action when
  the crash still needed one.

    nice .venv/bin/python bench/ha.py [--trials 50] [--seed 13] [--ttl 2.0]

Exits 1 on any double or lost action."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keeper.app.manual import open_session, plan_now
from keeper.config import load_config
from keeper.demo.faultlab import KEEPER_KEY, VOLS, CuttableProxy, keeper_actions
from keeper.demo.faultlab import set_feed_price as set_price
from keeper.devnet.anvil import Anvil
from keeper.devnet.deploy import deploy_devnet
from keeper.devnet.position_keeper import start_thread
from keeper.devnet.postgres import temporary_postgres
from keeper.domain import ActionKind
from keeper.store import Store
from keeper.store.journal import Journal

CRASHES = [(1_560, 25_000), (1_500, 24_000), (1_620, 22_000), (1_450, 26_000)]  # (ETH, BTC) in USD
START = (2_000, 30_000)
REPLICAS = ("r0", "r1", "r2")
STEP_S = 6.0
RESTART_S = 3.0
PROTECTIVE = (ActionKind.TOP_UP, ActionKind.REPAY, ActionKind.REBALANCE, ActionKind.DELEVERAGE)


@dataclass
class Trial:
    n: int
    fault: str  # kill, stop, partition
    mid_batch: bool
    crash: tuple[int, int]
    at_s: float = 0.0  # the fault's moment, after the first step
    hold_s: float = 0.0  # pause / partition length
    leader: str = ""
    fault_block: int = 0
    takeover_blocks: int | None = None
    takeover_s: float | None = None
    first_action_blocks: int | None = None
    actions: int = 0
    double: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # the replicas' ERROR lines, by their start


class Replica:
    def __init__(self, name: str, root: Path, proxy: CuttableProxy, db: str, ttl: float) -> None:
        self.name, self.root, self.proxy, self.db, self.ttl = name, root, proxy, db, ttl
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPER")}
        env.update(KEEPER_TEST_KEY=KEEPER_KEY, PYTHONUNBUFFERED="1",
                   KEEPER__STORE__URL=f"postgresql+psycopg2://keeper@127.0.0.1:{self.proxy.port}/{self.db}",
                   KEEPER__DAEMON__LEASE_TTL_SECONDS=str(self.ttl))
        log = self.root / f"{self.name}-{self.starts}.log"
        self.starts += 1
        with open(log, "w") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "keeper", "run", "--replica", self.name,
                                          "--log-level", "DEBUG", *VOLS],
                                         cwd=self.root, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True)

    def stop(self) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGCONT)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)

    def events(self) -> list[dict]:
        out = []
        for log in sorted(self.root.glob(f"{self.name}-*.log")):
            for line in log.read_text().splitlines():
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        out.append(json.loads(line))
        return out


class LeaseWatch:
    """Polls the lease table every 50 ms: (monotonic time, chain head, holder, epoch) at each change."""

    def __init__(self, pg_port: int, db: str, w3: Web3) -> None:
        self.conn = psycopg2.connect(host="127.0.0.1", port=pg_port, user="keeper", dbname=db)
        self.conn.autocommit = True
        self.w3 = w3
        self.changes: list[tuple[float, int, str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = None
        while not self._stop.wait(0.05):
            try:
                with self.conn.cursor() as cur:
                    cur.execute("SELECT holder, epoch FROM lease")
                    row = cur.fetchone()
            except psycopg2.Error:
                continue  # the table is not there until a replica opens the store
            if row is not None and row != last:
                last = row
                self.changes.append((time.monotonic(), self.w3.eth.block_number, row[0], int(row[1])))

    def holder(self) -> tuple[str, int] | None:
        return (self.changes[-1][2], self.changes[-1][3]) if self.changes else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.conn.close()


def wait_for(cond, timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return False


def plan_wants(root: Path) -> tuple[set[str], list[str]]:
    """(positions the planner would protect now, vault positions liquidatable now), in-process."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        cfg = load_config(root / "config.toml", env={})
        session = open_session(cfg, None, vols={"WETH": 0.8, "WBTC": 0.7})
        try:
            wants = {a.position_key for _b, plan in plan_now(session) for a in plan.actions if a.kind in PROTECTIVE}
            under = [p.key for b in session.books for p in b.positions if p.liquidatable]
            return wants, under
        finally:
            session.close()
    finally:
        os.chdir(cwd)


def doubles(entries) -> list[str]:
    """Journaled actions on one position in flight at once: decided at a block before an earlier
    one of that position was mined."""
    by_pos: dict[str, list[tuple[int, int]]] = {}
    for e in entries:
        if e.status in ("mined", "reverted") and e.mined_block is not None:
            decided = int(e.idempotency_key.rsplit(":", 3)[1])
            by_pos.setdefault(e.position_key, []).append((decided, e.mined_block))
    out = []
    for pos, xs in by_pos.items():
        xs.sort()
        for (d1, m1), (d2, _m2) in itertools.pairwise(xs):
            if d1 <= d2 < m1:
                out.append(f"{pos[-24:]}: decided at {d2} while the one decided at {d1} was not mined before {m1}")
    return out


def run_trial(w3: Web3, dep: dict, root: Path, pg_port: int, proxies: dict[str, CuttableProxy], t: Trial,
              ttl: float, rng: random.Random) -> None:
    db = f"t{t.n}"
    c = psycopg2.connect(host="127.0.0.1", port=pg_port, user="keeper", dbname="postgres")
    c.autocommit = True  # (CREATE DATABASE refuses a transaction block)
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
    c.close()
    (root / "dep.json").write_text(json.dumps(dep))
    (root / "config.toml").write_text(
        f'[store]\nurl = "postgresql+psycopg2://keeper@127.0.0.1:{pg_port}/{db}"\n'
        '[keeper]\nkey_env = "KEEPER_TEST_KEY"\n'
        '[daemon]\npoll_interval = 0.2\nwatchdog_seconds = 60\nheartbeat_seconds = 5\n'
        '[chains.devnet]\ndeployment = "dep.json"\n')
    os.environ["KEEPER_TEST_KEY"] = KEEPER_KEY
    keeper_addr = dep["roles"]["keeper"]
    nonce0 = w3.eth.get_transaction_count(keeper_addr)
    for p in proxies.values():
        p.restore()
    replicas = {n: Replica(n, root, proxies[n], db, ttl) for n in REPLICAS}
    watch: LeaseWatch | None = None
    start_block = w3.eth.block_number
    try:
        for r in replicas.values():
            r.start()
        # 1 s blocks: transactions wait for the next block (no automine), as on a real chain
        w3.provider.make_request("evm_setAutomine", [False])
        w3.provider.make_request("evm_setIntervalMining", [1])
        watch = LeaseWatch(pg_port, db, w3)
        # every replica ticking (the followers plan warm) before the crash
        if not wait_for(lambda: all(any(e.get("event") == "tick" for e in r.events()) for r in replicas.values())
                        and watch.holder() is not None, 90):
            raise RuntimeError("the replicas did not start: " + "; ".join(
                f"{r.name}: {(root / f'{r.name}-0.log').read_text()[-300:]}" for r in replicas.values()))
        held = watch.holder()
        assert held is not None
        t.leader = held[0]
        mid = [(START[0] + t.crash[0]) / 2, (START[1] + t.crash[1]) / 2]
        t.at_s = round(rng.uniform(0.0, 0.4) if t.mid_batch else rng.uniform(0.4, 4.0), 3)
        second = t.mid_batch and rng.random() < 0.5  # right after the second step instead
        stepped = {1: threading.Event(), 2: threading.Event()}
        at: dict[str, float] = {}

        def fault() -> None:
            step = 2 if second else 1
            stepped[step].wait(60)  # the step's price blocks are mined: the leader is handling them
            time.sleep(max(0.0, at[f"step{step}"] + t.at_s - time.monotonic()))
            leader = replicas[t.leader]
            at["fault"] = time.monotonic()
            t.fault_block = w3.eth.block_number
            assert leader.proc is not None
            if t.fault == "kill":
                leader.proc.kill()
                leader.proc.wait(10)
                time.sleep(RESTART_S)
                leader.start()
            elif t.fault == "stop":
                t.hold_s = round(rng.uniform(2.5, 5.0), 2)
                leader.proc.send_signal(signal.SIGSTOP)
                time.sleep(t.hold_s)
                leader.proc.send_signal(signal.SIGCONT)
            else:
                t.hold_s = round(rng.uniform(4.0, 6.0), 2)
                leader.proxy.cut()
                time.sleep(t.hold_s)
                leader.proxy.restore()

        th = threading.Thread(target=fault, daemon=True)
        th.start()
        set_price(w3, dep, "ETH", mid[0])
        set_price(w3, dep, "BTC", mid[1])
        at["step1"] = time.monotonic()
        stepped[1].set()
        time.sleep(max(0.0, at["step1"] + STEP_S - time.monotonic()))
        set_price(w3, dep, "ETH", t.crash[0])
        set_price(w3, dep, "BTC", t.crash[1])
        at["step2"] = time.monotonic()
        stepped[2].set()
        last_step = w3.eth.block_number
        th.join(60)
        fault_at = at["fault"]
        if second:
            t.at_s = round(STEP_S + t.at_s, 3)  # (shown from the first step)

        def settled() -> bool:
            if w3.eth.block_number < last_step + 6:
                return False
            with Store.open(f"postgresql+psycopg2://keeper@127.0.0.1:{pg_port}/{db}") as s:
                if any(e.status in ("intent", "signed") for e in Journal(s).entries("devnet")):
                    return False
            return not plan_wants(root)[0]

        wait_for(settled, 90, every=1.0)
        wants, under = plan_wants(root)
        # the takeover: the first holder other than the faulted leader after the fault
        after = [(ts, b, h, ep) for ts, b, h, ep in watch.changes if ts >= fault_at and h != t.leader]
        if after:
            t.takeover_s = round(after[0][0] - fault_at, 2)
            t.takeover_blocks = after[0][1] - t.fault_block
        with Store.open(f"postgresql+psycopg2://keeper@127.0.0.1:{pg_port}/{db}") as s:
            entries = Journal(s).entries("devnet")
        if after:
            epoch = after[0][3]
            with psycopg2.connect(host="127.0.0.1", port=pg_port, user="keeper", dbname=db) as c2, c2.cursor() as cur:
                cur.execute("SELECT min(mined_block) FROM journal_entry WHERE epoch >= %s AND mined_block IS NOT NULL",
                            (epoch,))
                first = cur.fetchone()[0]
            c2.close()
            if first is not None:
                t.first_action_blocks = int(first) - t.fault_block
        signed = [e for e in entries if e.status in ("mined", "reverted")]
        t.actions = len(signed)
        t.double = doubles(entries)
        sent = w3.eth.get_transaction_count(keeper_addr) - nonce0
        if sent != len(signed):
            t.double.append(f"the key sent {sent} transactions, the journal holds {len(signed)} mined")
        chain_txs = {a["tx"].lower() for a in keeper_actions(w3, dep, start_block)}
        journal_txs = {e.mined_hash.lower() for e in signed if e.mined_hash}
        if not chain_txs <= journal_txs:
            t.double.append(f"{len(chain_txs - journal_txs)} keeper actions on chain not in the journal")
        open_ = [e.id for e in entries if e.status in ("intent", "signed")]
        if wants:
            t.lost.append(f"the planner still wants to protect {len(wants)} position(s)")
        if under:
            t.lost.append(f"{len(under)} vault position(s) liquidatable at the end")
        if open_:
            t.lost.append(f"journal entries left open: {open_}")
        t.errors = Counter(str(e.get("msg", ""))[:70] for r in replicas.values() for e in r.events()
                           if e.get("level") in ("ERROR", "CRITICAL"))
    finally:
        for r in replicas.values():
            r.stop()
        if watch is not None:
            watch.close()
        w3.provider.make_request("evm_setIntervalMining", [0])
        w3.provider.make_request("evm_setAutomine", [True])


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * len(xs) + 0.5) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--ttl", type=float, default=2.0, help="daemon.lease_ttl_seconds")
    ap.add_argument("--faults", default="kill,stop,partition", help="the faults to draw from (comma-separated)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the trials' logs and configs here")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    began = time.monotonic()
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="keeper-ha-") as scratch, temporary_postgres() as pg_url, Anvil() as node:
        tmp = args.keep or scratch
        if pg_url is None:
            print("no PostgreSQL server binaries: run make setup", file=sys.stderr)
            return 2
        pg_port = int(pg_url.rsplit(":", 1)[1].split("/")[0])
        proxies = {n: CuttableProxy(pg_port) for n in REPLICAS}
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        dep = {**deploy_devnet(w3), "rpc_url": node.url}
        pk_thread, pk_stop = start_thread(w3, dep["perp"])
        try:
            run_all(w3, dep, Path(tmp), pg_port, proxies, args, rng, trials)
        finally:
            pk_stop.set()
            pk_thread.join(timeout=30)
            for p in proxies.values():
                p.close()
    print()
    return summary(trials, args, began)


def run_all(w3: Web3, dep: dict, tmp: Path, pg_port: int, proxies: dict[str, CuttableProxy],
            args: argparse.Namespace, rng: random.Random, trials: list[Trial]) -> None:
    base = w3.provider.make_request("evm_snapshot", [])["result"]
    for n in range(args.trials):
        t = Trial(n, rng.choice(args.faults.split(",")), rng.random() < 0.5, rng.choice(CRASHES))
        root = tmp / f"t{n}"
        root.mkdir(parents=True)
        try:
            run_trial(w3, dep, root, pg_port, proxies, t, args.ttl, rng)
        finally:
            assert w3.provider.make_request("evm_revert", [base])["result"]
            base = w3.provider.make_request("evm_snapshot", [])["result"]
        trials.append(t)
        flag = "DOUBLE " + "; ".join(t.double) if t.double else ("LOST " + "; ".join(t.lost) if t.lost else "ok")
        print(f"{n:>3} {t.fault:<9} {'mid-batch' if t.mid_batch else 'any      '} at {t.at_s:5.2f} s "
              f"hold {t.hold_s:4.2f} s leader {t.leader} -> takeover "
              f"{t.takeover_blocks if t.takeover_blocks is not None else '-'} blocks "
              f"({t.takeover_s if t.takeover_s is not None else '-'} s), first action "
              f"{t.first_action_blocks if t.first_action_blocks is not None else '-'} blocks, "
              f"{t.actions} actions: {flag}", flush=True)
        for msg, k in t.errors.most_common(4):
            print(f"      {k} x ERROR {msg}", flush=True)


def summary(trials: list[Trial], args: argparse.Namespace, began: float) -> int:
    took = [t.takeover_blocks for t in trials if t.takeover_blocks is not None]
    secs = [t.takeover_s for t in trials if t.takeover_s is not None]
    print(f"{len(trials)} trials in {time.monotonic() - began:.0f} s, lease {args.ttl:g} s, 1 s blocks, "
          f"seed {args.seed}")
    print("| fault | trials | mid-batch | takeovers | double | lost | actions |")
    print("|---|---|---|---|---|---|---|")
    for f in ("kill", "stop", "partition"):
        ts = [t for t in trials if t.fault == f]
        print(f"| {f} | {len(ts)} | {sum(t.mid_batch for t in ts)} | {sum(t.takeover_blocks is not None for t in ts)} "
              f"| {sum(bool(t.double) for t in ts)} | {sum(bool(t.lost) for t in ts)} | {sum(t.actions for t in ts)} |")
    if took:
        print(f"\ntakeover: p50 {statistics.median(took):g} blocks, p99 {pct(took, 0.99):g} blocks, max {max(took)} "
              f"(seconds: p50 {statistics.median(secs):.2f}, p99 {pct(secs, 0.99):.2f}); goal p99 <= 3 blocks: "
              f"{'met' if pct(took, 0.99) <= 3 else 'MISSED'}")
    firsts = [t.first_action_blocks for t in trials if t.first_action_blocks is not None]
    if firsts:
        print(f"new leader's first action after the fault: p50 {statistics.median(firsts):g} blocks, "
              f"p99 {pct(firsts, 0.99):g}, max {max(firsts)} ({len(firsts)} trials where the crash still needed one)")
    return 1 if any(t.double or t.lost for t in trials) else 0


if __name__ == "__main__":
    sys.exit(main())
